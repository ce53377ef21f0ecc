"""``weight_spectrum``: data-free ranks from the heavy-tailed spectra of the pretrained weights.

After AlphaLoRA (Qing et al., EMNLP 2024), which builds on heavy-tailed self-regularisation
(HT-SR) theory (Martin & Mahoney; the WeightWatcher tool): the eigenvalues of W^T W of a
well-trained weight follow a power law p(lambda) ~ lambda^-alpha in their tail; the smaller
alpha, the heavier the tail and the better trained the layer. A layer with a *larger* alpha is
less well trained and, in AlphaLoRA, gets more LoRA experts, in proportion to alpha ** beta.

What is theirs: the metric (the Hill estimate of the tail exponent of the ESD of W^T W) and
the allocation in proportion to alpha ** beta with their default beta = 2.5 (``expert_number.py``
of the reference code). What differs here: (1) ranks instead of numbers of experts, and per
module instead of one alpha averaged over a layer's modules; (2) the tail starts at a fixed
quantile of the spectrum (``spectrum_tail``, default the median, AlphaPruning's ``xmin_mid``)
instead of WeightWatcher's search for the xmin that minimises the Kolmogorov-Smirnov distance,
so the estimate needs only the top part of the spectrum; (3) integer ranks under an exact
budget within [r_min, r_max] (:func:`~.proportional.proportional_fill`) instead of rounding
and fixing the sum.

The alphas come from the ``weight_spectra`` probe (``training/probe.py``), which reads the
weights only; ``spectrum_power`` (beta) reaches this function in ``params.extra``.
"""

from __future__ import annotations

import math

from .proportional import module_costs, needs_probe, proportional_fill
from .registry import register

SPECTRUM_POWER = 2.5  # AlphaLoRA's beta (the reference code's default)


def hill_alpha(eigs_desc, k: int) -> float:
    """Hill (maximum-likelihood) estimate of the exponent of p(x) ~ x^-alpha from the ``k`` largest
    values of ``eigs_desc`` (sorted descending, positive): xmin is the k-th largest and
    alpha = 1 + k / sum_{i<=k} ln(x_i / xmin). A flat tail (every value equal) has no power law
    at all; it is given a huge finite alpha, i.e. "least heavy-tailed"."""
    if k < 2 or len(eigs_desc) < k:
        raise ValueError(f"the Hill estimate needs 2 <= k <= {len(eigs_desc)} values, got k={k}")
    xmin = float(eigs_desc[k - 1])
    spread = sum(math.log(float(x) / xmin) for x in eigs_desc[:k])
    return 1.0 + k / max(spread, 1e-12)


@register(
    "weight_spectrum",
    "data-free (AlphaLoRA): ranks proportional to alpha ** spectrum_power, alpha the heavy-tail exponent of each "
    "weight's spectrum (larger = less trained = more rank; exact budget)",
    "data-driven",
    probe="weight_spectra",
    allocates_budget=True,
)
def weight_spectrum(layout, params):
    alphas, budget = needs_probe(params, "alphas", "weight_spectrum")
    power = float(params.extra.get("spectrum_power", SPECTRUM_POWER))
    cost = module_costs(layout)
    target = {n: float(alphas[n]) ** power for n in cost if n in alphas}
    return proportional_fill(target, cost, budget, params.r_min, params.r_max)
