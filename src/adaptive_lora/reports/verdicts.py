"""``## Paired comparisons`` of results.md, and the definition of the test, from the plain dicts
of :func:`adaptive_lora.reports.compare.paired_comparisons`."""

from __future__ import annotations

from typing import Sequence

from .compare import reference_candidates
from .stats import ALPHA, LEVEL, NO_VERDICT_ONE_SEED, POWER
from .table import COMPARED_METRICS, DASH, Row, budget_sections, excluded_text, fmt_number, md_escape

DIFF_DECIMALS = 4

# Appended to the metric definitions of results.md: the test behind every verdict.
STATS_DEFINITIONS = {
    "paired difference": "per seed, the row's value minus the reference row's value for the same "
    "seed (same data order and eval split); negative means lower, i.e. better for a loss. Seeds where "
    "either run did not complete with a finite value are excluded and named.",
    "95 % CI": "mean difference ± t(0.975, n-1) · sd / √n, with sd the sample standard deviation "
    "(ddof=1) of the n paired differences (Student t).",
    "p": "two-sided p-value of the paired t test, t = mean / (sd / √n) on n-1 degrees of freedom.",
    "Holm p": "p adjusted by Holm's step-down method over all comparisons of the same metric in "
    "this report.",
    "effect size d_z": "Cohen's d_z = mean difference / sd of the differences.",
    "verdict": "'better/worse than <reference>' only when Holm p < 0.05 and the 95 % CI excludes 0; "
    "otherwise 'no detectable difference'; fewer than two paired seeds give no verdict.",
    "seeds needed": "pairs a paired t test needs for 80 % power to detect a true difference of "
    "delta at the 5 % two-sided level, given the observed sd of the differences: the normal "
    "approximation n = ((z(0.975) + z(0.80)) · sd / delta)², then iterated with t quantiles on "
    "n-1 degrees of freedom, rounded up, at least 2.",
}


def fmt_diff(x: float | None) -> str:
    return DASH if x is None else ("+" if x > 0 else "") + fmt_number(x, DIFF_DECIMALS)


def fmt_p(p: float | None) -> str:
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(c: dict) -> str:
    if c["ci_low"] is None:
        return DASH
    return f"{fmt_diff(c['ci_low'])} to {fmt_diff(c['ci_high'])}"


def _cells(c: dict) -> list[str]:
    dz = c["effect_dz"]
    return [
        f"`{md_escape(c['group'])}`", f"`{md_escape(c['reference'])}`", str(c["n_pairs"]),
        fmt_diff(c["mean_diff"]), fmt_ci(c), fmt_p(c["p"]), fmt_p(c["p_holm"]),
        DASH if dz is None else fmt_number(dz, 2), md_escape(c["verdict"]),
        DASH if c["seeds_needed"] is None else str(c["seeds_needed"]),
        md_escape(excluded_text(c["excluded"])) or DASH,
    ]


def render_comparison_table(comparisons: Sequence[dict], delta: float) -> str:
    headers = ["Strategy", "Reference", "n pairs", "Mean diff", "95 % CI", "p", "Holm p", "d_z",
               "Verdict", f"Seeds for Δ={delta:g}", "Excluded seeds"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---", "---"] + ["---:"] * 6 + ["---", "---:", "---"]) + "|"]
    lines += ["| " + " | ".join(_cells(c)) + " |" for c in comparisons]
    return "\n".join(lines)


def sentence(c: dict) -> str:
    """One comparison in words, e.g. ``no detectable difference (95 % CI includes 0): ... about 73
    seeds would be needed to detect a difference of 0.002``."""
    head = f"`{md_escape(c['group'])}` vs `{md_escape(c['reference'])}`: {c['verdict']}"
    if c["n_pairs"] == 0:
        return head + " (no seed completed on both sides)."
    if c["verdict"] == NO_VERDICT_ONE_SEED:
        return head + f" (difference {fmt_diff(c['mean_diff'])} from a single pair; run at least 2 seeds)."
    text = head + f": mean difference {fmt_diff(c['mean_diff'])} (95 % CI {fmt_ci(c)}) over {c['n_pairs']} seeds"
    if c["verdict"].startswith("no detectable") and c["seeds_needed"] is not None:
        text += (f"; to detect a difference of {c['delta']:g} about {c['seeds_needed']} seeds would be "
                 f"needed (80 % power, 5 % two-sided)")
    return text + "."


def _intro(reference: str, delta: float, ci: str) -> str:
    how = "Student t on the paired differences" if ci == "t" else "percentile bootstrap of the paired differences (seeded)"
    return (
        f"Each row against the reference row of its budget (`{md_escape(reference)}`, paired by seed). "
        f"Difference = row − reference: negative is lower, i.e. better. {LEVEL * 100:.0f} % CI by {how}; p of the "
        f"paired t test, Holm-adjusted per metric; d_z = mean / sd of the differences. A row is called "
        f"better or worse only when Holm p < {ALPHA:g} and the CI excludes 0. Seeds needed: for "
        f"{POWER * 100:.0f} % power to detect a difference of {delta:g} at the {ALPHA * 100:.0f} % two-sided level."
    )


def _missing_reference(rows: Sequence[Row], reference: str) -> list[str]:
    out = []
    for budget, brows in budget_sections(rows):
        if len(brows) > 1 and not reference_candidates(brows, reference):
            where = f"budget `{md_escape(budget)}`" if budget is not None else "these rows"
            out.append(f"No `{md_escape(reference)}` row in {where}: no paired comparison (name one with "
                       "`reference:` in the sweep file).")
    return out


def render_comparisons_section(
    rows: Sequence[Row], comparisons: Sequence[dict], reference: str, delta: float, ci: str = "t"
) -> str:
    """``## Paired comparisons``: per compared metric and budget, a table and the verdicts in words."""
    parts = ["## Paired comparisons", _intro(reference, delta, ci)]
    for metric in COMPARED_METRICS:
        mine = [c for c in comparisons if c["metric"] == metric.key]
        if not mine:
            continue
        parts.append(f"### {metric.label.capitalize()}")
        for budget, _ in budget_sections(rows):
            group = [c for c in mine if c["budget_label"] == budget]
            if not group:
                continue
            if len({c["budget_label"] for c in mine}) > 1:
                parts.append(f"Budget `{md_escape(budget)}`:" if budget is not None else "No budget:")
            parts.append(render_comparison_table(group, delta))
            parts.append("\n".join(f"- {sentence(c)}" for c in group))
    parts += _missing_reference(rows, reference)
    if len(parts) == 2:
        parts.append("No comparison: no row has a reference row in its budget.")
    return "\n\n".join(parts)
