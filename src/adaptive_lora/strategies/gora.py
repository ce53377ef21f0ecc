"""``gora``: ranks from the gradient-weight sensitivity of each module, after GoRA.

GoRA (He et al., "Gradient-driven Adaptive Low Rank Adaptation", NeurIPS 2025) accumulates the
weight gradient G of every target module over some training batches before training, scores a
module by I(W) = mean(|W * G|) (elementwise product: the first-order change of the loss if that
weight were removed, averaged over the matrix), normalises the scores over all modules,
a_i = I_i / sum_j I_j, and gives module i the share a_i of the parameter budget
B = sum_i r_ref * (m_i + n_i): rank_i = a_i * B / (m_i + n_i), rounded and clamped to
[r_min, r_max].

What is theirs: the importance (their ``union_mean``), the normalisation, and the rule "parameter
share proportional to importance". What differs: integer ranks under our exact budget (the
D'Hondt fill of :func:`~.proportional.proportional_fill`, so clamping does not miss the budget);
the gradient is the one the ``gradient_sensitivity`` probe accumulates (``probe_batches``
batches, base model in eval mode, no dropout) instead of GoRA's training-mode steps; and GoRA's
gradient-based initialisation of B (a pseudo-inverse of A applied to G) is not implemented: it
makes the adapter non-zero at step 0, which the shared step-0 evaluation of a sweep assumes it
is not. The adapters are initialised as usual, so the comparison is about placement.
"""

from __future__ import annotations

from .proportional import module_costs, needs_probe, proportional_fill
from .registry import register


@register(
    "gora",
    "GoRA: parameter share proportional to each module's mean |W * dL/dW| over probe batches (exact budget)",
    "data-driven",
    probe="gora_importance",
    allocates_budget=True,
)
def gora(layout, params):
    importance, budget = needs_probe(params, "importance", "gora")
    cost = module_costs(layout)
    # A parameter share proportional to I means a rank proportional to I / (in + out).
    target = {n: float(importance[n]) / cost[n] for n in cost if n in importance}
    return proportional_fill(target, cost, budget, params.r_min, params.r_max)
