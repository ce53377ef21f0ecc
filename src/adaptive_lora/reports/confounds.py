"""What else differs between the rows besides where the ranks go: the alpha policy.

LoRA scales a module's update by alpha/r (alpha/√r under rsLoRA). With the paper's constant
alpha and a plan that mixes ranks, a rank-4 module's update is scaled 4x a rank-16 one's: an
allocation then changes the effective step size of each module as well as its capacity, and a
difference between allocations cannot be put down to placement alone. The report says so.
"""

from __future__ import annotations

from typing import Sequence

from ..adapters.lora_config import AlphaPolicy, expected_scaling
from ..errors import UserError
from .collect import RunResult, finite, run_plan
from .table import Row, fmt_number, md_escape

_SCALE_NAME = {"rslora": "alpha/√r", "constant": "alpha/r", "proportional": "alpha/r"}
CONFOUND_NOTE = (
    "With a constant alpha and mixed ranks, step size and placement are confounded: the update of "
    "a low-rank module is scaled up relative to a high-rank one, so a difference between these "
    "rows and a uniform plan may come from the per-module step size rather than from where the "
    "ranks go. `alpha_policy: proportional` gives every module the same scale."
)


def alpha_policy(run: RunResult) -> AlphaPolicy | None:
    """The run's alpha policy from summary.json's ``config``; None when not recorded or invalid."""
    cfg = run.get("config")
    if not isinstance(cfg, dict) or "alpha_policy" not in cfg:
        return None
    kwargs = {"name": str(cfg.get("alpha_policy"))}
    for key in ("lora_alpha", "alpha_ratio"):
        if finite(cfg.get(key)) is not None:
            kwargs[key] = float(cfg[key])
    try:
        return AlphaPolicy(**kwargs)
    except UserError:
        return None


def plan_ranks(run: RunResult) -> list[int]:
    """Ranks of the adapted modules (rank > 0) in the run's plan."""
    plan = run_plan(run) or {}
    ranks = [finite(m.get("rank")) for m in plan.get("modules", []) if isinstance(m, dict)]
    return [int(r) for r in ranks if r is not None and r > 0]


def _describe(policy: AlphaPolicy) -> str:
    if policy.name == "proportional":
        return f"`proportional` (alpha = {policy.alpha_ratio:g}·r)"
    return f"`{policy.name}` (lora_alpha {policy.lora_alpha:g})"


def row_confound(row: Row) -> dict:
    """``{"policy": text, "ranks": (min, max) | None, "scale": (min, max) | None, "scale_name"}``
    from the row's first run that recorded a policy; scale is None when it is the same everywhere."""
    run = next((r for r in row.runs if alpha_policy(r) is not None), None)
    if run is None:
        return {"policy": "not recorded", "ranks": None, "scale": None, "scale_name": None}
    policy = alpha_policy(run)
    # The runs of a row share one plan; take the first run that has it.
    ranks = sorted(set(next((ranks for ranks in map(plan_ranks, row.runs) if ranks), [])))
    scales = sorted({expected_scaling(policy, r) for r in ranks})
    varies = len(scales) > 1
    return {
        "policy": _describe(policy),
        "policy_name": policy.name,
        "ranks": (ranks[0], ranks[-1]) if ranks else None,
        "scale": (scales[0], scales[-1]) if varies else None,
        "scale_name": _SCALE_NAME.get(policy.name, "scale"),
    }


def _row_line(row: Row, info: dict) -> str:
    budget = f" [{md_escape(row.budget_label)}]" if row.budget_label is not None else ""
    text = f"- `{md_escape(row.group)}`{budget}: alpha policy {info['policy']}"
    if info["ranks"] is not None:
        lo, hi = info["ranks"]
        text += f", ranks {lo}" + (f"–{hi}" if hi != lo else "")
    if info["scale"] is not None:
        lo, hi = info["scale"]
        text += f", {info['scale_name']} from {fmt_number(lo, 2)} to {fmt_number(hi, 2)} across modules"
    return text + "."


def render_confounds(rows: Sequence[Row]) -> str:
    """``## Confounds``: the alpha policy of every row and, where constant alpha meets mixed
    ranks, the range of alpha/r and the note that step size and placement are confounded."""
    infos = [(row, row_confound(row)) for row in rows if row.runs]
    lines = ["## Confounds", "", "Alpha policy in force per row (from each run's config and plan):", ""]
    lines += [_row_line(row, info) for row, info in infos]
    mixed = [row for row, info in infos if info["scale"] is not None and info.get("policy_name") == "constant"]
    if mixed:
        names = ", ".join(f"`{md_escape(r.group)}`" for r in mixed)
        lines += ["", f"**Note** ({names}): {CONFOUND_NOTE}"]
    return "\n".join(lines)
