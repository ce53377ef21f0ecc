"""The paper's Table 1 as data, the mapping of our rows onto it, and the comparison section.

The paper prints parameters in millions with one decimal, so "differs by more than rounding"
means our count, in millions, is more than 0.05 away from the printed figure. Every number in a
note is computed from the summaries; nothing about our runs is written down here.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from .collect import finite
from .table import Row, fmt_number, fmt_stat, md_escape

PAPER_MODEL = "DialoGPT-medium"
PARAMS_DECIMALS = 1  # the paper's "Parameters (M)" column: 3.1, 6.3, ...
PARAMS_HALF_STEP = 0.5 * 10**-PARAMS_DECIMALS


from ..paper_table import PAPER_TABLE1, PaperRow  # noqa: E402,F401  (one copy of Table 1)

# Spellings of strategy names a summary may carry, onto the names above.
_STRATEGY_ALIASES = {
    "uniform": "uniform",
    "fixed": "uniform",
    "fixed_rank": "uniform",
    "baseline": "uniform",
    "lora": "uniform",
    "linear_decay": "linear_decay",
    "linear": "linear_decay",
    "lineardecay": "linear_decay",
    "attention_heavy": "attention_heavy",
    "attn_heavy": "attention_heavy",
    "attentionheavy": "attention_heavy",
    "empirical": "empirical",
}


def _norm(name) -> str:
    return str(name or "").strip().lower().replace("-", "_").replace(" ", "_")


def canonical_strategy(name) -> str | None:
    return _STRATEGY_ALIASES.get(_norm(name))


def _config(summary: dict | None) -> dict:
    cfg = (summary or {}).get("config")
    return cfg if isinstance(cfg, dict) else {}


def uniform_rank(summary: dict | None) -> int | None:
    """The run's base rank: ``config["r"]``, else the plan's single rank."""
    r = finite(_config(summary).get("r"))
    if r is not None:
        return int(r)
    ranks = {finite(m.get("rank")) for m in plan_modules(summary)}
    ranks.discard(None)
    return int(ranks.pop()) if len(ranks) == 1 else None


def plan_modules(summary: dict | None) -> list[dict]:
    plan = (summary or {}).get("plan")
    modules = plan.get("modules") if isinstance(plan, dict) else None
    return [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []


def base_name(group: str) -> str:
    """The run name of a group: the sweep runner appends ``@<budget>`` and ``+<variant>``."""
    return re.split(r"[@+]", str(group), maxsplit=1)[0]


def paper_row_for(group: str, summary: dict | None) -> PaperRow | None:
    """The paper row our group reproduces or extends: by run name, else by strategy (and rank
    for the uniform baselines) from the summary."""
    for row in PAPER_TABLE1:
        if _norm(base_name(group)) == _norm(row.group):
            return row
    strategy = canonical_strategy((summary or {}).get("strategy"))
    if strategy is None:
        return None
    for row in PAPER_TABLE1:
        if row.strategy != strategy:
            continue
        if row.rank is None or uniform_rank(summary) == row.rank:
            return row
    return None


def _summary_of(row: Row) -> dict | None:
    for r in row.runs:
        if r.summary is not None:
            return r.summary
    return None


def variant_of(row: Row) -> str | None:
    variant = row.first("variant")
    if variant:
        return str(variant)
    return row.group.split("+", 1)[1] if "+" in row.group else None


def is_reproduction(row: Row) -> bool:
    """A row run as the paper ran it: no budget rescaling, and no variant other than one named
    ``paper`` (a sweep's way to spell "the paper's settings" beside its stabilised variants)."""
    variant = variant_of(row)
    return row.budget_label is None and (variant is None or _norm(variant) == "paper")


def match_rows(rows: Sequence[Row]) -> list[tuple[PaperRow, list[Row]]]:
    """Each paper row with our rows that map onto it, reproductions first."""
    out = []
    for prow in PAPER_TABLE1:
        ours = [r for r in rows if paper_row_for(r.group, _summary_of(r)) is prow]
        ours.sort(key=lambda r: not is_reproduction(r))  # stable: keeps first-seen order otherwise
        out.append((prow, ours))
    return out


def model_name(rows: Sequence[Row]) -> str | None:
    for row in rows:
        for run in row.runs:
            cfg = _config(run.summary)
            for value in (run.get("model"), cfg.get("model"), cfg.get("model_name"), cfg.get("model_id"),
                          cfg.get("base_model"), cfg.get("model_name_or_path")):
                if isinstance(value, str) and value:
                    return value
    return None


def is_paper_model(name: str | None) -> bool:
    return name is not None and "dialogpt-medium" in name.lower()


# --------------------------------------------------------------------------- notes


def _planned_m(row: Row) -> float | None:
    x = finite(row.first("planned_params"))
    return None if x is None else x / 1e6


def _realised_m(row: Row) -> float | None:
    x = finite(row.first("trainable_params"))
    return None if x is None else x / 1e6


def mean_rank(row: Row) -> tuple[float, int] | None:
    """(mean rank over the plan's modules, number of modules), from the first plan found."""
    for r in row.runs:
        ranks = [finite(m.get("rank")) for m in plan_modules(r.summary)]
        ranks = [x for x in ranks if x is not None]
        if ranks:
            return sum(ranks) / len(ranks), len(ranks)
    return None


def rounds_to(value_m: float, paper_m: float) -> bool:
    """True when ``value_m`` would be printed as ``paper_m`` at the paper's precision."""
    return abs(value_m - paper_m) <= PARAMS_HALF_STEP + 1e-9


def _ratio_range(p: float, q: float) -> tuple[float, float]:
    """Range of the true ratio p/q given both were printed rounded to the paper's precision."""
    h = PARAMS_HALF_STEP
    return (p - h) / (q + h), (p + h) / (q - h)


def params_note(prow: PaperRow, row: Row, repro: Sequence[Row]) -> str | None:
    """Note when our planned count for ``row`` cannot be the paper's printed count."""
    planned = _planned_m(row)
    if planned is None or rounds_to(planned, prow.params_m):
        return None
    text = (
        f"**{prow.label}**: the paper reports {prow.params_m:.1f}M trainable parameters; our plan for "
        f"`{md_escape(row.group)}` has {planned:.3f}M"
    )
    mr = mean_rank(row)
    if mr is not None:
        text += f" (mean rank {mr[0]:.2f} over {mr[1]} adapted modules)"
    text += f", which does not round to {prow.params_m:.1f}M."
    same = [(r, _planned_m(r)) for r in repro if r is not row and _planned_m(r) is not None]
    same = [(r, m) for r, m in same if rounds_to(m, prow.params_m)]
    if same:
        r, m = same[0]
        text += f" {prow.params_m:.1f}M is what our `{md_escape(r.group)}` plans ({m:.3f}M)."
    return text


def ratio_note(prow: PaperRow, row: Row, ref_prow: PaperRow, ref: Row) -> str | None:
    """Note when our planned count relative to uniform r=16 cannot match the paper's ratio.

    Used when the runs are on another model, where absolute counts differ by construction.
    """
    planned, base = _planned_m(row), _planned_m(ref)
    if planned is None or not base or row is ref:
        return None
    ours = planned / base
    lo, hi = _ratio_range(prow.params_m, ref_prow.params_m)
    if lo - 1e-9 <= ours <= hi + 1e-9:
        return None
    return (
        f"**{prow.label}**: relative to {ref_prow.label}, the paper's count is "
        f"{prow.params_m / ref_prow.params_m:.2f}x ({prow.params_m:.1f}M / {ref_prow.params_m:.1f}M); "
        f"our plan for `{md_escape(row.group)}` is {ours:.2f}x ({planned:.3f}M / {base:.3f}M)."
    )


def outcome_note(prow: PaperRow, row: Row) -> str | None:
    """Note when the paper and our runs disagree on whether the strategy trains at all."""
    if not row.runs or any(r.status in ("incomplete", "unreadable") for r in row.runs):
        return None
    if prow.diverged and row.n == len(row.runs):
        return f"**{prow.label}**: the paper reports NaN (training diverged); every run of `{md_escape(row.group)}` completed here."
    if not prow.diverged and row.n == 0:
        return f"**{prow.label}**: the paper reports a finite result; no run of `{md_escape(row.group)}` completed here ({md_escape(row.status)})."
    return None


# --------------------------------------------------------------------------- section


def _paper_cells(prow: PaperRow) -> list[str]:
    def f(x: float, d: int) -> str:
        return "NaN" if math.isnan(x) else f"{x:.{d}f}"

    return [md_escape(prow.label), f(prow.eval_loss, 2), f(prow.perplexity, 1), f(prow.params_m, 1),
            f(prow.efficiency_pct, 1), f(prow.train_time_s, 1)]


def _our_cells(row: Row | None) -> list[str]:
    if row is None:
        return ["not run"] + ["—"] * 5
    label = md_escape(row.group + (f" [{row.budget_label}]" if row.budget_label is not None else ""))
    return [
        f"`{label}`",
        fmt_number(_planned_m(row), 3),
        fmt_number(_realised_m(row), 3),
        fmt_stat(row.stats["eval_loss"], 3),
        fmt_stat(row.stats["perplexity"], 1),
        md_escape(row.status),
    ]


def render_paper_section(rows: Sequence[Row]) -> str:
    """``## Paper vs this run``: each paper row beside the rows of ours that reproduce or extend it."""
    matches = match_rows(rows)
    headers = ["Paper row", "Eval Loss", "Perplexity", "Params (M)", "Efficiency (%)", "Time (s)",
               "Our row", "Planned (M)", "Realised (M)", "Our Eval Loss", "Our Perplexity", "Our Status"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * 5 + ["---"] + ["---:"] * 4 + ["---"]) + "|"]
    for prow, ours in matches:
        for i, row in enumerate(ours or [None]):
            # Further rows of ours under one paper row repeat its label, not its numbers.
            paper = _paper_cells(prow) if i == 0 else [md_escape(prow.label)] + [""] * 5
            lines.append("| " + " | ".join(paper + _our_cells(row)) + " |")

    model = model_name(rows)
    repro = [r for _, ours in matches for r in ours if is_reproduction(r)]
    notes = []
    ref_prow = next(p for p in PAPER_TABLE1 if p.group == "uniform-r16")
    ref = next((r for p, ours in matches if p is ref_prow for r in ours if is_reproduction(r)), None)
    comparable = model is None or is_paper_model(model)
    if not comparable:
        notes.append(
            f"These runs use `{md_escape(model)}`, not the paper's {PAPER_MODEL}: absolute parameter counts "
            f"differ by construction, so counts are compared relative to {ref_prow.label}."
        )
    for prow, ours in matches:
        for row in ours:
            if not is_reproduction(row):
                continue
            note = params_note(prow, row, repro) if comparable else (
                ratio_note(prow, row, ref_prow, ref) if ref is not None else None
            )
            for n in (note, outcome_note(prow, row)):
                if n:
                    notes.append(n)
    intro = (
        f"The paper's Table 1 ({PAPER_MODEL}, printed precision) beside our rows. *Planned* is the "
        "plan's sum of r·(in+out); *realised* is counted on the adapted model. Rows with a budget "
        "(`@...`) or a variant (`+...`, other than `+paper`) extend the paper and are listed after "
        "the plain reproduction; the notes cover the reproduction only."
    )
    parts = ["## Paper vs this run", intro, "\n".join(lines)]
    if notes:
        parts.append("Notes (computed from the summaries):\n\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts)


__all__ = [
    "PAPER_TABLE1", "PaperRow", "canonical_strategy", "match_rows", "paper_row_for",
    "render_paper_section", "rounds_to",
]
