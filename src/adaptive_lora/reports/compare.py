"""Paired comparisons of every row of Table 1 against a reference row of the same budget.

This is the one place that decides what is compared with what: the HTML report, the Markdown
section, the CSV columns, the Table-1 verdict column and the forest plot all read the plain dicts
:func:`paired_comparisons` returns. The statistics themselves are in :mod:`.stats`.

Pairing: two runs pair when they have the same seed and both completed with a finite value of
the metric. Every other seed of either row is excluded and named with the reason.
"""

from __future__ import annotations

import math
from typing import Sequence

from ..errors import UserError
from .collect import RunResult, num
from .stats import DEFAULT_DELTA, PairedTest, holm, paired_test, seeds_needed, verdict
from .table import COMPARED_METRICS, ComparedMetric, Row, budget_sections, status_text

DEFAULT_REFERENCE = "uniform"


# --------------------------------------------------------------------------- reference choice


def _base_name(group: str) -> str:
    """Run name without the sweep's ``@budget`` and ``+variant`` suffixes."""
    return group.split("@")[0].split("+")[0]


def reference_candidates(rows: Sequence[Row], name: str) -> list[Row]:
    """Rows that can serve as the reference ``name``: the group of that exact name, else groups
    whose run name (before ``@``/``+``) is ``name``, else rows of strategy ``name``."""
    for match in (
        lambda r: r.group == name,
        lambda r: _base_name(r.group) == name,
        lambda r: r.strategy == name,
    ):
        hits = [r for r in rows if match(r)]
        if hits:
            return hits
    return []


def _params(row: Row) -> float:
    x = num(row.first("trainable_params"))
    return x if x is not None and math.isfinite(x) else math.inf


def pick_reference(row: Row, candidates: Sequence[Row]) -> Row | None:
    """The candidate ``row`` is compared with: the same variant if there is one, then the
    nearest trainable-parameter count (several uniform ranks without budgets, e.g. r=8 and
    r=16), first seen on ties. None for a row that is itself a candidate."""
    if not candidates or any(c is row for c in candidates):
        return None
    variant = row.first("variant")
    pool = [c for c in candidates if c.first("variant") == variant] or list(candidates)
    target = _params(row)
    return min(pool, key=lambda c: abs(_params(c) - target) if math.isfinite(target) else 0.0)


# --------------------------------------------------------------------------- pairing


def _seed(run: RunResult):
    seed = run.get("seed", run.hints.get("seed"))
    return seed if isinstance(seed, (int, str)) and not isinstance(seed, bool) else None


def _value(run: RunResult, metric: ComparedMetric) -> tuple[float | None, str | None]:
    """(usable value, None) or (None, why this run gives no value)."""
    if run.status != "completed":
        return None, status_text([run])
    x = num(run.get(metric.summary_key))
    if x is None:
        return None, f"no {metric.summary_key} recorded"
    if not math.isfinite(x):
        return None, f"{metric.label} {x}"
    return x, None


def _by_seed(row: Row) -> dict:
    out: dict = {}
    for run in row.runs:
        seed = _seed(run)
        if seed is not None and seed not in out:
            out[seed] = run
    return out


def pair_runs(row: Row, ref: Row, metric: ComparedMetric) -> tuple[list, list[float], list[float], list[dict]]:
    """(paired seeds, row values, reference values, excluded) over the seeds either row has.

    ``excluded`` holds ``{"seed": s, "reason": "<group>: diverged at step 41"}`` per left-out
    seed, a reason for each side that lacks a usable value.
    """
    mine, theirs = _by_seed(row), _by_seed(ref)
    seeds, values, refs, excluded = [], [], [], []
    for seed in sorted(set(mine) | set(theirs), key=lambda s: (isinstance(s, str), s)):
        reasons = []
        got = []
        for r, runs in ((row, mine), (ref, theirs)):
            run = runs.get(seed)
            x, why = _value(run, metric) if run is not None else (None, "no run")
            got.append(x)
            if why:
                reasons.append(f"{r.group}: {why}")
        if reasons:
            excluded.append({"seed": seed, "reason": "; ".join(reasons)})
            continue
        seeds.append(seed)
        values.append(got[0])
        refs.append(got[1])
    return seeds, values, refs, excluded


# --------------------------------------------------------------------------- comparisons


def metric_present(rows: Sequence[Row], metric: ComparedMetric) -> bool:
    """An optional metric is compared only between rows that both record it in some summary."""
    if not metric.optional:
        return True
    return all(any(run.get(metric.summary_key) is not None for run in row.runs) for row in rows)


def _compare(row: Row, ref: Row, metric: ComparedMetric, delta: float, ci: str) -> tuple[dict, PairedTest]:
    """The comparison dict (``p_holm`` and ``verdict`` filled in once the family is known) and its test."""
    seeds, values, refs, excluded = pair_runs(row, ref, metric)
    test = paired_test(values, refs, ci=ci)
    return {
        "metric": metric.key, "metric_label": metric.label,
        "budget_label": row.budget_label, "group": row.group, "strategy": row.strategy,
        "reference": ref.group, "reference_strategy": ref.strategy,
        "n_pairs": test.n, "seeds": seeds,
        "mean_diff": test.mean_diff, "sd_diff": test.sd_diff,
        "ci_low": test.ci_low, "ci_high": test.ci_high, "ci_method": test.ci_method,
        "p": test.p, "p_holm": None, "effect_dz": test.effect_dz,
        "verdict": None, "delta": delta, "seeds_needed": seeds_needed(test.sd_diff, delta),
        "excluded": excluded,
    }, test


def paired_comparisons(
    rows: Sequence[Row],
    reference: str | None = None,
    *,
    delta: float | None = None,
    ci: str = "t",
    metrics: Sequence[ComparedMetric] = COMPARED_METRICS,
) -> list[dict]:
    """Every row against its budget's reference row, per metric, paired by seed.

    ``reference`` names a group, run name or strategy (default ``uniform``). An optional metric
    (forgetting) is compared only where both rows record it. Holm's correction runs over all
    comparisons of one metric in the report. Verdicts name the reference by its run name
    (``uniform`` for the group ``uniform@r8``). Each dict (plain values only):
    ``metric``, ``metric_label``, ``budget_label``, ``group``, ``strategy``, ``reference``,
    ``reference_strategy``, ``n_pairs``, ``seeds`` (paired), ``mean_diff``, ``sd_diff``,
    ``ci_low``, ``ci_high``, ``ci_method``, ``p``, ``p_holm``, ``effect_dz``, ``verdict``,
    ``delta``, ``seeds_needed``, ``excluded`` (list of ``{"seed", "reason"}``). Differences are
    row minus reference, so negative means a lower (better) value than the reference.
    """
    name = reference or DEFAULT_REFERENCE
    delta = DEFAULT_DELTA if delta is None else float(delta)
    out: list[dict] = []
    for metric in metrics:
        family = []
        for _, brows in budget_sections(rows):
            candidates = reference_candidates(brows, name)
            for row in brows:
                ref = pick_reference(row, candidates)
                if ref is not None and metric_present((row, ref), metric):
                    family.append(_compare(row, ref, metric, delta, ci))
        for (c, test), p_holm in zip(family, holm([test.p for _, test in family])):
            c["p_holm"] = p_holm
            c["verdict"] = verdict(test, p_holm, _base_name(c["reference"]))
            out.append(c)
    return out


def comparison_settings(sweep: dict, reference: str | None = None, delta: float | None = None) -> tuple[str, float]:
    """(reference, delta): the arguments when given, else the sweep's ``reference`` / ``delta``
    (top level of sweep.json, or its ``source``, i.e. the sweep YAML), else the defaults."""
    source = sweep.get("source") if isinstance(sweep.get("source"), dict) else {}
    if reference is None:
        reference = sweep.get("reference", source.get("reference"))
    if delta is None:
        delta = sweep.get("delta", source.get("delta"))
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise UserError(f"reference must be a run name or strategy (e.g. reference: uniform), got {reference!r}")
    value = DEFAULT_DELTA if delta is None else num(delta)
    if value is None or not math.isfinite(value) or value <= 0:
        raise UserError(f"delta must be a positive eval-loss difference (e.g. delta: 0.01), got {delta!r}")
    return (reference or DEFAULT_REFERENCE).strip(), value
