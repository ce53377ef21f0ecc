"""Parameter budgets: match any strategy's shape to a target number of LoRA parameters.

A rank-r adapter on a module with in/out features costs r * (in + out) parameters, so a budget
is a weighted sum of integer ranks. Matching keeps the strategy's *shape* (the ratios between
modules) and scales it: we search the largest scale s whose ranks max(1, floor(s * shape))
stay within the budget, then spend what is left one rank at a time on the modules that lost the
most to rounding. The result never exceeds the budget and misses it by less than the cost of
one rank step on the cheapest module: that is as close as integer ranks allow from below.
"""

from __future__ import annotations

import math
import re

from ..errors import UserError

_SUFFIX = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*([kKmMbB]?)\s*")


def parse_budget(value) -> int:
    """An int, or a string like ``3145728``, ``3.1M``, ``500k``, ``1e6``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"budget must be a positive number of parameters, got {value!r}")
    if isinstance(value, str):
        m = _NUMBER.fullmatch(value.replace("_", "").replace(",", ""))
        if not m:
            raise UserError(f"budget '{value}' is not a number: write e.g. 3145728, 3.1M, 500k or 1e6")
        x = float(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1)
    else:
        x = float(value)
    if not math.isfinite(x) or x <= 0 or round(x) <= 0:
        raise UserError(f"budget must be a positive number of parameters, got {value!r}")
    return int(round(x))


def parse_budget_like(text: str) -> tuple[str, dict]:
    """``uniform:8`` -> ("uniform", {"r": 8}); ``linear_decay:16`` -> ("linear_decay", {"r_base": 16});
    a bare strategy name uses its defaults."""
    from .registry import get_strategy

    if not isinstance(text, str) or not text.strip():
        raise UserError("budget_like must look like 'uniform:8' (strategy:rank)")
    name, _, rank = text.strip().partition(":")
    strategy = get_strategy(name)
    if strategy.needs_data:
        raise UserError(f"budget_like cannot use the data-driven strategy '{name}': use e.g. uniform:8")
    if not rank:
        return name, {}
    if not rank.isdigit() or int(rank) < 1:
        raise UserError(f"budget_like '{text}': the rank after ':' must be a positive integer, e.g. uniform:8")
    key = "r" if strategy.family in ("baseline", "placement") else "r_base"
    return name, {key: int(rank)}


def _total(ranks: dict, cost: dict) -> int:
    return sum(ranks[n] * cost[n] for n in ranks)


def match_budget(cost: dict, shape: dict, target: int, r_max: int | None = None, caps: dict | None = None) -> dict:
    """Scale ``shape`` ({name: rank}, 0 = no adapter) so that sum(rank * cost) is as close to
    ``target`` as integers allow without exceeding it. ``cost[name]`` is in + out; ``caps[name]``
    (optional) is the highest rank a module may get, e.g. min(in, out)."""
    active = [n for n, r in shape.items() if r > 0]
    if not active:
        raise UserError("the plan adapts no module, so it cannot be matched to a budget: check the strategy and targets")
    floor_cost = sum(cost[n] for n in active)
    if target < floor_cost:
        raise UserError(
            f"budget {target:,} is below the minimum of {floor_cost:,} (rank 1 on each of the {len(active)} adapted "
            f"modules): raise the budget or adapt fewer modules (--targets)"
        )
    top = r_max if r_max is not None else math.inf
    cap = {n: min(top, (caps or {}).get(n, math.inf)) for n in shape}
    if r_max is not None and sum(cost[n] * r_max for n in active) < target:
        raise UserError(f"budget {target:,} needs ranks above r_max={r_max}: raise r_max or lower the budget")
    largest = sum(cost[n] * cap[n] for n in active)
    if largest < target:
        raise UserError(f"budget {target:,} is above the largest possible adapter on these modules, {largest:,} "
                        f"(each at rank min(in, out)): lower the budget")

    def ranks_at(s: float) -> dict:
        return {n: (min(cap[n], max(1, math.floor(s * shape[n] + 1e-9))) if n in active else 0) for n in shape}

    lo, hi = 0.0, 1.0
    while _total(ranks_at(hi), cost) <= target and hi < 1e9 and _total(ranks_at(hi), cost) < largest:
        hi *= 2
    for _ in range(100):  # bisection on the scale; the total is monotone in s
        mid = (lo + hi) / 2
        if _total(ranks_at(mid), cost) <= target:
            lo = mid
        else:
            hi = mid
    ranks = ranks_at(lo)
    left = target - _total(ranks, cost)
    # Spend the remainder where rounding took the most (largest fractional part first), one rank
    # at a time; repeat passes until no module's next rank step fits.
    order = sorted(active, key=lambda n: (-(lo * shape[n] - math.floor(lo * shape[n] + 1e-9)), cost[n], n))
    changed = True
    while changed:
        changed = False
        for n in order:
            if cost[n] <= left and ranks[n] < cap[n]:
                ranks[n] += 1
                left -= cost[n]
                changed = True
    return ranks
