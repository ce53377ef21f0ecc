"""Property tests of the planner's invariants on random tiny GPT-2/Llama layouts (meta device).

Any strategy (data-driven ones with synthetic probe data in ``params.extra``), any layout, any
budget: ranks stay within [r_min, r_max] (adaptive strategies without a budget) and within each
module's min(in, out); a budget is never exceeded and is missed by less than one rank step of
the cheapest module that could still grow; the same inputs give the same plan.
"""

from __future__ import annotations

import functools
import random

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adaptive_lora.errors import UserError
from adaptive_lora.layout import discover_layout
from adaptive_lora.strategies import STRATEGIES, StrategyParams, make_plan

from tiny_models import CONFIGS

ADAPTIVE = ("linear_decay", "attention_heavy", "empirical")
PLANNED = ("uniform", "attention_only", "mlp_only", "custom", "gradient_sensitivity", "eva", "adalora_derived", *ADAPTIVE)


@functools.lru_cache(maxsize=None)
def layout_of(family: str, n_layer: int, width: int):
    """A layout built on the meta device (no weights), cached across examples."""
    cfg = CONFIGS[family](n_layer=n_layer)
    if family == "gpt2":
        cfg.n_embd = width
    else:
        cfg.hidden_size, cfg.intermediate_size = width, 2 * width
    return discover_layout(cfg)


def _extra(strategy: str, layout, seed: int) -> dict:
    """Synthetic probe results: what each data-driven strategy reads from ``params.extra``."""
    rng = random.Random(seed)
    if STRATEGIES[strategy].probe == "gradient_spectra":
        return {"spectra": {m.name: sorted((rng.random() for _ in range(8)), reverse=True) for m in layout.modules}}
    if STRATEGIES[strategy].needs_data:
        return {"ranks": {m.name: rng.randint(0, 12) for m in layout.modules}}
    return {}


@st.composite
def cases(draw):
    family = draw(st.sampled_from(["gpt2", "llama"]))
    layout = layout_of(family, draw(st.integers(1, 6)), draw(st.sampled_from([16, 32, 48])))
    strategy = draw(st.sampled_from(PLANNED))
    r_min = draw(st.integers(1, 4))
    r_base = draw(st.integers(r_min, 8))
    r_max = draw(st.integers(r_base, 8))  # every module of these layouts has min(in, out) >= 8
    custom = [draw(st.integers(0, 8)) for _ in range(layout.n_layers)] if strategy == "custom" else None
    params = StrategyParams(r=draw(st.integers(1, 8)), r_base=r_base, r_min=r_min, r_max=r_max,
                            rounding=draw(st.sampled_from(["floor", "round", "ceil"])), custom=custom,
                            extra=_extra(strategy, layout, draw(st.integers(0, 99))))
    budget = draw(st.one_of(st.none(), st.integers(1, 200_000)))
    return layout, strategy, params, budget


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_planner_invariants(case):
    layout, strategy, params, budget = case
    try:
        plan = make_plan(layout, strategy, params, budget=budget)
    except UserError as e:  # the only refusals: a budget out of reach, or nothing adapted
        if not any(w in str(e) for w in ("budget", "without an adapter", "adapts no module")):
            raise
        assume(False)
    by = plan.layout.by_name()
    for name, rank in plan.ranks.items():
        assert 0 <= rank <= by[name].max_rank
    if budget is None and STRATEGIES[strategy].family == "paper":
        assert all(params.r_min <= r <= params.r_max for r in plan.ranks.values())
    if plan.budget_target is not None:
        left = plan.budget_target - plan.trainable_params
        assert left >= 0
        top = params.r_max if STRATEGIES[strategy].allocates_budget else None
        growable = [m.in_features + m.out_features for m in plan.layout.modules
                    if plan.ranks[m.name] > 0 and plan.ranks[m.name] < min(top or m.max_rank, m.max_rank)]
        assert left < min(growable) if growable else left == 0
    again = make_plan(layout, strategy, params, budget=budget)
    assert again.ranks == plan.ranks
