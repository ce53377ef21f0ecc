"""Ranks proportional to a score, in integers, under an exact parameter budget.

Several published allocations state a *target* rank per module (AlphaLoRA: proportional to
alpha ** beta; GoRA: a share of the budget proportional to an importance) and then round and
clamp it, which misses the budget. :func:`proportional_fill` keeps their proportions and our
budget rule: it is the D'Hondt apportionment run through :func:`~.data_driven.water_fill`. The
value of a module's (k+1)-th rank is ``target * cost / (k + 1)``, so water-filling by gain per
parameter always gives the next rank to the module whose rank is furthest below its target
share (``target / (k + 1)`` largest). The result lies within [r_min, r_max], never exceeds the
budget, and misses it by less than one rank step of the cheapest module not at r_max.
"""

from __future__ import annotations

from ..errors import UserError
from .data_driven import water_fill


def proportional_fill(target: dict, cost: dict, budget: int, r_min: int, r_max: int) -> dict:
    """Integer ranks roughly proportional to ``target[name]`` (any positive scale) with
    ``sum(rank * cost) <= budget``; see the module docstring."""
    bad = [n for n, t in target.items() if not t >= 0]  # also catches NaN
    if bad:
        raise UserError(f"the probe gave module {bad[0]} a score of {target[bad[0]]!r}: rerun the probe "
                        f"(delete its file in plan_cache)")
    gains = {n: [target.get(n, 0.0) * cost[n] / (k + 1) for k in range(r_max)] for n in cost}
    return water_fill(gains, cost, budget, r_min, r_max)


def needs_probe(params, key: str, strategy: str):
    """``params.extra[key]`` and the budget, or a one-line error saying how to run the probe."""
    value, budget = params.extra.get(key), params.extra.get("budget")
    if value is None or budget is None:
        raise UserError(f"{strategy} needs its probe: use it through 'adaptive-lora train' or 'run'")
    return value, int(budget)


def module_costs(layout) -> dict:
    """LoRA parameters per unit of rank: in + out."""
    return {m.name: m.in_features + m.out_features for m in layout.modules}
