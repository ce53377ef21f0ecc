"""``svd_compress``: post-hoc ranks from the spectra of the updates a high-rank LoRA learned.

The ``lora_update_spectra`` probe trains uniform LoRA at rank ``svd_probe_r`` for a few steps
(``probe_steps``), takes each module's learned update dW = scaling * B A and hands over its
squared singular values, the variance each direction of the update explains. Ranks are then
water-filled over them under the exact budget (:func:`~.data_driven.water_fill`: the next rank
goes to the module whose next direction explains the most variance per parameter), so the
retained variance is as large as the greedy rule gets within [r_min, r_max]; the run retrains
plain LoRA at those ranks from a fresh initialisation.

What is PEFT's: truncating a trained adapter by the SVD of its delta weight
(``peft.tuners.lora.conversion.convert_to_lora``, which keeps, per module, a fixed rank or the
rank that reaches an energy threshold). What differs: one budget shared by all modules instead
of a per-module threshold, and the result is a plan to retrain, not a compressed adapter.
"""

from __future__ import annotations

from .data_driven import water_fill
from .proportional import module_costs, needs_probe
from .registry import register


@register(
    "svd_compress",
    "train uniform LoRA at svd_probe_r briefly, water-fill the budget over the singular values of each learned "
    "update B*A (explained variance), retrain plain LoRA",
    "data-driven",
    probe="lora_update_spectra",
    allocates_budget=True,
)
def svd_compress(layout, params):
    spectra, budget = needs_probe(params, "spectra", "svd_compress")
    cost = module_costs(layout)
    return water_fill({n: spectra.get(n, ()) for n in cost}, cost, budget, params.r_min, params.r_max)
