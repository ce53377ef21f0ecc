"""Data-driven strategies: ranks from a measurement of the model on the task.

The measurement (a *probe*) lives in ``training/probe.py``; what it hands over is plain data in
``params.extra``, so these functions stay pure:

* ``gradient_sensitivity`` - ``extra["spectra"]``: for each module, the squared singular values
  of its weight gradient accumulated over K probe batches. The best rank-k update of a module at
  the start of training is the top-k singular directions of that gradient, and the k-th one is
  worth sigma_k^2 of first-order loss decrease per unit step. :func:`water_fill` spends the
  parameter budget one rank at a time on the module whose next singular direction buys the most
  gradient energy per parameter, sigma_{k+1}^2 / (in + out), within [r_min, r_max].
* ``eva`` and ``adalora_derived`` - ``extra["ranks"]``: the per-module ranks that PEFT's EVA
  (explained-variance rank redistribution of the layer inputs) or a short AdaLoRA run chose.
  They are a *shape*; with a budget it is rescaled like any other strategy's.
"""

from __future__ import annotations

import heapq

from ..errors import UserError
from .registry import register


def water_fill(gains: dict, cost: dict, budget: int, r_min: int, r_max: int) -> dict:
    """Integer ranks maximising the summed ``gains`` under ``sum(rank * cost) <= budget``.

    ``gains[name][k]`` is the value of a module's (k+1)-th rank (non-increasing in k; missing
    entries count 0). Every module starts at ``r_min``; then ranks are added greedily by gain per
    parameter, skipping a module whose next step no longer fits, until nothing fits or every
    module is at ``r_max``. What is left is smaller than one rank step of the cheapest module not
    yet at ``r_max``. Ties break by name, so the result is deterministic.
    """
    names = sorted(cost)
    floor = sum(r_min * cost[n] for n in names)
    if floor > budget:
        raise UserError(
            f"budget {budget:,} is below r_min={r_min} on every module ({floor:,}): lower r_min or raise the budget"
        )
    ranks = {n: r_min for n in names}
    left = budget - floor

    def gain(n: str, k: int) -> float:
        g = gains.get(n, ())
        return float(g[k]) if k < len(g) else 0.0

    heap = [(-gain(n, r_min) / cost[n], n) for n in names if r_min < r_max]
    heapq.heapify(heap)
    while heap:
        _, n = heapq.heappop(heap)
        if cost[n] > left:
            continue  # this module's next step no longer fits; cheaper ones may
        ranks[n] += 1
        left -= cost[n]
        if ranks[n] < r_max:
            heapq.heappush(heap, (-gain(n, ranks[n]) / cost[n], n))
    return ranks


@register(
    "gradient_sensitivity",
    "probe K batches; ranks by water-filling the singular values of each module's weight gradient (exact budget)",
    "data-driven",
    probe="gradient_spectra",
    allocates_budget=True,
)
def gradient_sensitivity(layout, params):
    spectra = params.extra.get("spectra")
    budget = params.extra.get("budget")
    if spectra is None or budget is None:
        raise UserError("gradient_sensitivity needs a probe: use it through 'adaptive-lora train' or 'run'")
    cost = {m.name: m.in_features + m.out_features for m in layout.modules}
    return water_fill({n: spectra.get(n, ()) for n in cost}, cost, int(budget), params.r_min, params.r_max)


def _probed_shape(layout, params):
    ranks = params.extra.get("ranks")
    if ranks is None:
        raise UserError("this strategy needs a probe: use it through 'adaptive-lora train' or 'run'")
    return {m.name: int(ranks.get(m.name, 0)) for m in layout.modules}


register(
    "eva",
    "PEFT's EVA: ranks redistributed by explained variance of each module's inputs (shape rescaled to the budget)",
    "data-driven",
    probe="eva_ranks",
)(_probed_shape)

register(
    "adalora_derived",
    "run AdaLoRA's budget schedule briefly, keep its final ranks as a static plan for plain LoRA",
    "data-driven",
    probe="adalora_ranks",
)(lambda layout, params: _probed_shape(layout, params))
