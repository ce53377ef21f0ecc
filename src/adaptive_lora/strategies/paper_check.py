"""Where a plan's computed count differs from what the paper's Table 1 claims for it."""

from __future__ import annotations

from ..paper_table import PAPER_GEOMETRY, PAPER_TARGETS, paper_row


def is_paper_geometry(plan) -> bool:
    lay = plan.layout
    roles = {m.short for m in lay.modules}
    return (
        lay.family == PAPER_GEOMETRY["family"]
        and lay.n_layers == PAPER_GEOMETRY["n_layers"]
        and lay.base_params == PAPER_GEOMETRY["base_params"]
        and roles == set(PAPER_TARGETS)
    )


def paper_notes(plan) -> list[str]:
    """Notes for a plan on DialoGPT-medium with the paper's targets and default parameters."""
    if not is_paper_geometry(plan) or plan.budget_target is not None:
        return []
    row = paper_row(plan.strategy, plan.params.r)
    if row is None:
        return []
    label, claimed_m, claimed_eff = row.label, row.params_m, row.efficiency_pct
    ours_m = plan.trainable_params / 1e6
    if round(ours_m, 1) == claimed_m:
        return [f"matches the paper's Table 1 row '{label}': {claimed_m}M ({claimed_eff}%); computed "
                f"{plan.trainable_params:,} ({plan.efficiency_pct:.3f} %)."]
    note = (f"the paper's Table 1 row '{label}' claims {claimed_m}M parameters ({claimed_eff}%); its own formula "
            f"gives {plan.trainable_params:,} ({ours_m:.2f}M, {plan.efficiency_pct:.3f} %, mean rank "
            f"{plan.mean_rank:.2f}) with the paper's defaults (r_base 16, r_min 4, r_max 32, floor).")
    if row.strategy == "linear_decay":
        note += " Its claimed 6.3M is the count of uniform rank 16, which ranks 16 down to 4 cannot reach."
    return [note]
