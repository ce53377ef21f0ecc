"""A plan: the ranks a strategy gives every targeted module, with its parameter accounting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import UserError
from .budget import match_budget, parse_budget, parse_budget_like
from .params import StrategyParams
from .registry import get_strategy


@dataclass(frozen=True)
class Plan:
    """Ranks for every targeted module (0 = no adapter) and what they cost."""

    strategy: str
    layout: object  # Layout restricted to the targets
    ranks: dict  # {module_name: rank}
    params: StrategyParams
    budget_target: int | None = None
    budget_source: str | None = None  # e.g. "uniform:8" or "params"
    shape_ranks: dict | None = None  # the strategy's own ranks, before budget matching
    notes: tuple = field(default=())

    @property
    def adapted(self) -> dict:
        """Modules that get an adapter, in model order."""
        return {n: r for n, r in self.ranks.items() if r > 0}

    @property
    def trainable_params(self) -> int:
        by = self.layout.by_name()
        return sum(by[n].lora_params(r) for n, r in self.ranks.items())

    @property
    def base_params(self) -> int:
        return self.layout.base_params

    @property
    def total_params(self) -> int:
        return self.base_params + self.trainable_params

    @property
    def efficiency_pct(self) -> float:
        """trainable / (base + trainable) * 100: how the paper's 0.9 % and 1.7 % come out."""
        return 100.0 * self.trainable_params / self.total_params

    @property
    def mean_rank(self) -> float:
        """Mean rank over adapted modules."""
        a = self.adapted
        return sum(a.values()) / len(a) if a else 0.0

    def per_layer(self) -> list[dict]:
        """One row per layer: mean rank over its targeted modules and its parameter count."""
        by = self.layout.by_name()
        rows = []
        for i in range(self.layout.n_layers):
            mods = [m for m in self.layout.modules if m.layer == i]
            if not mods:
                continue
            ranks = [self.ranks[m.name] for m in mods]
            rows.append(
                {
                    "layer": i,
                    "mean_rank": sum(ranks) / len(ranks),
                    "ranks": {m.role: self.ranks[m.name] for m in mods},
                    "params": sum(by[m.name].lora_params(self.ranks[m.name]) for m in mods),
                }
            )
        return rows

    def modules_table(self) -> list[dict]:
        return [
            {
                "name": m.name,
                "layer": m.layer,
                "kind": m.kind,
                "role": m.role,
                "in_features": m.in_features,
                "out_features": m.out_features,
                "rank": self.ranks[m.name],
                "params": m.lora_params(self.ranks[m.name]),
            }
            for m in self.layout.modules
        ]

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "params": self.params.to_dict(),
            "model_type": self.layout.model_type,
            "family": self.layout.family,
            "n_layers": self.layout.n_layers,
            "budget_target": self.budget_target,
            "budget_source": self.budget_source,
            "trainable_params": self.trainable_params,
            "base_params": self.base_params,
            "total_params": self.total_params,
            "efficiency_pct": self.efficiency_pct,
            "mean_rank": self.mean_rank,
            "modules": self.modules_table(),
            "notes": list(self.notes),
        }


def strategy_ranks(layout, strategy: str, params: StrategyParams) -> dict:
    """Run a registered strategy and check its output covers the layout with valid ranks."""
    st = get_strategy(strategy)
    ranks = st.fn(layout, params)  # a data-driven strategy without its probe data raises a UserError
    names = {m.name for m in layout.modules}
    if set(ranks) != names:  # a bug in the strategy, not user input
        raise AssertionError(f"strategy {strategy} returned ranks for {sorted(set(ranks) ^ names)[:3]}...")
    for n, r in ranks.items():
        if not isinstance(r, int) or r < 0:
            raise AssertionError(f"strategy {strategy} gave {n} rank {r!r}")
    return ranks


def _target(layout, params: StrategyParams, budget, budget_like) -> tuple[int, str]:
    """The parameter budget asked for: a number, the count of another plan (``uniform:8``), or,
    when neither is given, that of uniform rank ``params.r``."""
    if budget is not None and budget_like is not None:
        raise UserError("give either budget or budget_like, not both")
    if budget is not None:
        return parse_budget(budget), "params"
    like = budget_like or f"uniform:{params.r}"
    ref_name, ref_over = parse_budget_like(like)
    ref_params = StrategyParams(**{**params.to_dict(), **ref_over, "custom": params.custom})
    ref = Plan(ref_name, layout, strategy_ranks(layout, ref_name, ref_params), ref_params)
    return ref.trainable_params, like


def largest_adapter(layout, r_max: int | None = None) -> int:
    """Parameters of the largest adapter on ``layout``: every module at min(in, out) (and r_max)."""
    top = r_max if r_max is not None else max((m.max_rank for m in layout.modules), default=0)
    return sum(m.lora_params(min(top, m.max_rank)) for m in layout.modules)


def check_ranks(layout, ranks: dict, what: str) -> None:
    """Refuse a rank above a module's min(in, out): it adds parameters and no expressiveness."""
    for m in layout.modules:
        if ranks.get(m.name, 0) > m.max_rank:
            raise UserError(f"{what} gives {m.name} rank {ranks[m.name]}, above its min(in, out) = {m.max_rank} "
                            f"({m.in_features} in, {m.out_features} out): lower the rank to at most {m.max_rank}")


def budget_target(layout, strategy: str, params: StrategyParams, budget=None, budget_like=None) -> tuple[int, str]:
    """The budget a budget-allocating strategy (or any strategy, once rescaled) will spend, checked
    against the largest adapter the targeted modules can hold."""
    target, source = _target(layout, params, budget, budget_like)
    cap = params.r_max if get_strategy(strategy).allocates_budget else None
    largest = largest_adapter(layout, cap)
    if target > largest:
        limit = f"each module at min(r_max={cap}, min(in, out))" if cap else "each module at rank min(in, out)"
        raise UserError(f"budget {target:,} ({source}) is above the largest possible adapter on the targeted modules, "
                        f"{largest:,} ({limit}): lower the budget")
    return target, source


def make_plan(
    layout,
    strategy: str,
    params: StrategyParams | None = None,
    targets=None,
    budget=None,
    budget_like: str | None = None,
) -> Plan:
    """Plan ranks for ``layout``. ``targets`` selects modules (default: every one);
    ``budget`` (a number) or ``budget_like`` (e.g. ``uniform:8``) rescales the strategy's shape.
    Every rank stays within its module's min(in, out)."""
    params = params or StrategyParams()
    params.check_for(get_strategy(strategy))
    layout = layout.select(targets)
    if get_strategy(strategy).allocates_budget:
        # It spends the budget itself (e.g. water-filling), rather than being rescaled after.
        target, source = budget_target(layout, strategy, params, budget, budget_like)
        params = replace(params, extra={**params.extra, "budget": target})
        ranks = strategy_ranks(layout, strategy, params)
        check_ranks(layout, ranks, f"strategy '{strategy}'")
        return Plan(strategy, layout, ranks, params, target, source)
    shape = strategy_ranks(layout, strategy, params)
    if not any(shape.values()):
        raise UserError(f"strategy '{strategy}' leaves every targeted module without an adapter: check --targets")
    if budget is None and budget_like is None:
        check_ranks(layout, shape, f"strategy '{strategy}'")
        return Plan(strategy, layout, shape, params)
    target, source = budget_target(layout, strategy, params, budget, budget_like)
    cost = {m.name: m.in_features + m.out_features for m in layout.modules}
    ranks = match_budget(cost, shape, target, caps={m.name: m.max_rank for m in layout.modules})
    return Plan(strategy, layout, ranks, params, target, source, shape)


def _read_plan_modules(path: str) -> tuple[dict, list]:
    """(saved plan, its ``modules`` list) of a plan file, or a one-line error saying what is wrong."""
    from pathlib import Path

    from .._io import read_json

    hint = "give a plan.json written by an earlier run"
    if Path(path).expanduser().is_dir():
        raise UserError(f"plan_file '{path}' is a folder: {hint} (e.g. <run folder>/plan.json)")
    if not Path(path).expanduser().is_file():
        raise UserError(f"plan_file '{path}' does not exist: fix the path")
    try:
        saved = read_json(Path(path).expanduser())
    except (OSError, ValueError) as exc:
        raise UserError(f"plan_file '{path}' is not valid JSON ({' '.join(str(exc).split())}): {hint}") from None
    if isinstance(saved, dict) and isinstance(saved.get("plan"), dict):
        saved = saved["plan"]  # a summary.json holds its realised plan under "plan"
    if not isinstance(saved, dict):
        raise UserError(f"plan_file '{path}' holds a JSON {type(saved).__name__}, not an object with a 'modules' "
                        f"list: {hint}")
    modules = saved.get("modules")
    if not isinstance(modules, list):
        raise UserError(f"plan_file '{path}' has no 'modules' list: {hint}")
    if not modules:
        raise UserError(f"plan_file '{path}' lists no modules (its 'modules' list is empty): {hint}")
    return saved, modules


def plan_from_file(layout, path: str) -> Plan:
    """Rebuild a saved plan (``plan.json`` of an earlier run, in :meth:`Plan.to_dict` format) on
    ``layout``; every named module must exist in it and fit its rank."""
    saved, modules = _read_plan_modules(path)
    ranks = {}
    for i, m in enumerate(modules):
        rank = m.get("rank") if isinstance(m, dict) else None
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or isinstance(rank, bool) \
                or not isinstance(rank, int) or rank < 0:
            raise UserError(f"plan_file '{path}': modules[{i}] needs a 'name' and a non-negative integer 'rank', "
                            f"got {m!r}")
        ranks[m["name"]] = rank
    missing = [n for n in ranks if n not in layout.by_name()]
    if missing:
        raise UserError(f"plan_file '{path}' does not fit this model (it has no module {missing[0]}): "
                        "plan it on the same model")
    if not any(ranks.values()):
        raise UserError(f"plan_file '{path}' gives every module rank 0: there is nothing to train")
    sel = layout.select(list(ranks))
    check_ranks(sel, ranks, f"plan_file '{path}'")
    strategy = saved.get("strategy") if isinstance(saved.get("strategy"), str) else "custom"
    return Plan(strategy, sel, ranks, StrategyParams(), notes=(f"reused from {path}",))
