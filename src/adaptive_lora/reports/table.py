"""Table 1 of the paper, computed from run folders: one row per (budget, group), mean +- std.

Rules the table follows (they are repeated as notes under it, so readers need not find this file):

* Only ``completed`` runs contribute numbers. A diverged, failed or unfinished run is named in
  the Status column and nowhere else; a row with no completed run shows ``—`` in every metric.
* Several seeds give ``mean ± std`` with the sample standard deviation (ddof=1); one seed gives
  its value alone.
* Perplexity is the mean of the per-run perplexities, not exp of the mean eval loss.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .._io import atomic_write_text
from .collect import INCOMPLETE, UNREADABLE, RunResult, finite, num, seedless

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
DASH = "—"
ERROR_CHARS = 60  # a failed run's error is cut to this many characters in the Status column


@dataclass(frozen=True)
class Metric:
    """One numeric column of Table 1."""

    key: str  # CSV column stem
    header: str  # Markdown header, as in the paper
    decimals: int
    read: Callable[[dict], float | None]  # summary -> value


def _params_m(summary: dict) -> float | None:
    x = num(summary.get("trainable_params"))
    return None if x is None else x / 1e6


METRICS: tuple[Metric, ...] = (
    Metric("eval_loss", "Eval Loss", 3, lambda s: num(s.get("eval_loss"))),
    Metric("perplexity", "Perplexity", 1, lambda s: num(s.get("perplexity"))),
    Metric("params_m", "Parameters (M)", 3, _params_m),
    Metric("efficiency_pct", "Efficiency (%)", 3, lambda s: num(s.get("efficiency_pct"))),
    Metric("train_time_s", "Training Time (s)", 1, lambda s: num(s.get("train_time_s"))),
    # general-text loss after minus before training (schema.METRIC_DEFINITIONS): lower = less forgotten
    Metric("forgetting_delta", "Forgetting (Δ loss)", 4, lambda s: num(s.get("forgetting_delta"))),
)


@dataclass(frozen=True)
class ComparedMetric:
    """A per-run number compared between strategies, paired by seed (``compare.py``); lower is
    better for every metric listed here."""

    key: str  # prefix of its CSV columns and the ``metric`` of a comparison dict
    label: str  # words used in results.md
    summary_key: str  # field of summary.json
    optional: bool  # skipped silently when no summary carries it


COMPARED_METRICS: tuple[ComparedMetric, ...] = (
    ComparedMetric("eval_loss", "eval loss", "eval_loss", optional=False),
    # The increase of the loss on general text after fine-tuning, when training measures it.
    ComparedMetric("forgetting", "forgetting", "forgetting_delta", optional=True),
)


@dataclass
class Stat:
    """Values of one metric over the completed runs of a row."""

    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return math.fsum(self.values) / self.n if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None below two values."""
        if self.n < 2:
            return None
        if not all(math.isfinite(v) for v in self.values):
            return math.nan  # spread around an infinite or NaN mean is undefined
        return statistics.stdev(self.values)


@dataclass
class Row:
    """One (budget_label, group) of Table 1 and the runs behind it."""

    budget_label: str | None
    group: str
    strategy: str | None = None
    runs: list[RunResult] = field(default_factory=list, repr=False)
    stats: dict[str, Stat] = field(default_factory=dict)

    @property
    def completed(self) -> list[RunResult]:
        return [r for r in self.runs if r.status == "completed"]

    @property
    def n(self) -> int:
        """Seeds behind the numbers: the completed runs."""
        return len(self.completed)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def seeds(self) -> list:
        return [r.get("seed") for r in self.runs if r.get("seed") is not None]

    @property
    def status(self) -> str:
        return status_text(self.runs)

    def first(self, key: str):
        """First non-null summary field over the row's runs, any status (e.g. planned_params)."""
        for r in self.runs:
            v = r.get(key)
            if v is not None:
                return v
        return None

    def mean(self, key: str) -> float | None:
        stat = self.stats.get(key)
        return stat.mean if stat else None


# --------------------------------------------------------------------------- status text


def _diverged_steps(runs: Sequence[RunResult]) -> list[str]:
    steps = []
    for r in runs:
        step = num(r.get("diverged_step"))
        steps.append(str(int(step)) if step is not None and math.isfinite(step) else "?")
    return steps


def _error_text(run: RunResult) -> str:
    err = " ".join(str(run.get("error") or "no error recorded").split())
    return err[:ERROR_CHARS].rstrip()


def status_text(runs: Sequence[RunResult]) -> str:
    """Status cell: ``completed``, ``diverged at step 7``, ``2/3 completed; 1 diverged (step 41)``.

    A one-run row names what happened to the run; a several-run row counts each outcome.
    """
    if not runs:
        return DASH
    by: dict[str, list[RunResult]] = {}
    for r in runs:
        by.setdefault(r.status, []).append(r)
    if len(runs) == 1:
        r = runs[0]
        s = r.status
        if s == "completed":
            return "completed"
        if s == "diverged":
            return f"diverged at step {_diverged_steps([r])[0]}"
        if s == "failed":
            return f"failed: {_error_text(r)}"
        if s == INCOMPLETE:
            return "incomplete"
        if s == UNREADABLE:
            return "corrupt summary.json"
        return f"status {s!r}"
    done = len(by.get("completed", []))
    if done == len(runs):
        return "completed"
    parts = [f"{done}/{len(runs)} completed"]
    if "diverged" in by:
        d = by["diverged"]
        steps = _diverged_steps(d)
        parts.append(f"{len(d)} diverged ({'step' if len(d) == 1 else 'steps'} {', '.join(steps)})")
    if "failed" in by:
        f = by["failed"]
        parts.append(f"{len(f)} failed: {_error_text(f[0])}")
    if INCOMPLETE in by:
        parts.append(f"{len(by[INCOMPLETE])} incomplete")
    if UNREADABLE in by:
        parts.append(f"{len(by[UNREADABLE])} corrupt summary.json")
    for s, rs in by.items():
        if s not in ("completed", "diverged", "failed", INCOMPLETE, UNREADABLE):
            parts.append(f"{len(rs)} status {s!r}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- aggregation


Key = tuple  # (budget_label, group)


def _budget(value) -> str | None:
    return None if value is None or value == "" else str(value)


def _summary_key(run: RunResult) -> Key:
    group = run.get("group") or seedless(run.run_id)
    return (_budget(run.get("budget_label")), str(group))


def _guess_key(run: RunResult, known: list[Key]) -> Key:
    """Key of a run without a readable summary: sweep.json's hints, else its id minus the seed,
    joined to a known row when that is unambiguous (so ``2/3 completed; 1 incomplete`` reads right)."""
    if run.hints.get("group"):
        return (_budget(run.hints.get("budget_label")), str(run.hints["group"]))
    name = seedless(run.run_id)
    hits = [k for k in known if k[1] == name]
    if len(hits) > 1:  # the same group under several budgets: the budget label must be in the id
        hits = [k for k in hits if k[0] is not None and k[0] in run.run_id]
    return hits[0] if len(hits) == 1 else (None, name)


def aggregate(runs: Sequence[RunResult]) -> list[Row]:
    """One :class:`Row` per (budget_label, group), in the order rows are first seen."""
    known: list[Key] = []
    for r in runs:
        if r.summary is not None:
            k = _summary_key(r)
            if k not in known:
                known.append(k)
    rows: dict[Key, Row] = {}
    for r in runs:
        key = _summary_key(r) if r.summary is not None else _guess_key(r, known)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(budget_label=key[0], group=key[1])
        row.runs.append(r)
        if row.strategy is None and r.get("strategy"):
            row.strategy = str(r.get("strategy"))
    for row in rows.values():
        row.stats = {m.key: Stat() for m in METRICS}
        for r in row.completed:
            for m in METRICS:
                v = m.read(r.summary)
                if v is not None:
                    row.stats[m.key].values.append(v)
    return list(rows.values())


def budget_sections(rows: Sequence[Row]) -> list[tuple[str | None, list[Row]]]:
    """Rows grouped by budget label, budgets in first-seen order, rows in order within each."""
    out: dict = {}
    for row in rows:
        out.setdefault(row.budget_label, []).append(row)
    return list(out.items())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats, lower being better on both coordinates.

    A point is dominated when another is <= on both coordinates and < on one. Points with a
    non-finite coordinate are never on the front. Indices come back sorted by x (then y), which is
    the order to draw the front in. O(n^2), fine for the tens of rows a sweep has.
    """
    ok = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
    front = []
    for i in ok:
        xi, yi = points[i]
        dominated = any(
            points[j][0] <= xi and points[j][1] <= yi and (points[j][0] < xi or points[j][1] < yi)
            for j in ok
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


# --------------------------------------------------------------------------- formatting


def fmt_number(x: float | None, decimals: int) -> str:
    if x is None:
        return DASH
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{decimals}f}"


def fmt_stat(stat: Stat, decimals: int) -> str:
    """``—`` without values, the value for one, ``mean ± std`` for several."""
    if stat.n == 0:
        return DASH
    mean = fmt_number(stat.mean, decimals)
    std = stat.std
    if std is None or not math.isfinite(std):
        return mean
    return f"{mean} ± {fmt_number(std, decimals)}"


def md_escape(text: str) -> str:
    """Keep a cell on one line and its pipes from splitting the table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def row_label(row: Row) -> str:
    return row.group


def metric_cell(row: Row, m: Metric) -> str:
    stat = row.stats.get(m.key, Stat())
    text = fmt_stat(stat, m.decimals)
    # A completed run that lacks this one field leaves fewer values than seeds: say so.
    if 0 < stat.n < row.n:
        text += f" (n={stat.n})"
    return text


REFERENCE_CELL = "reference"  # verdict cell of the row the others are compared with


def _key(row: Row) -> Key:
    return (row.budget_label, row.group)


def comparisons_by_row(comparisons: Sequence[dict], metric: str) -> dict[Key, dict]:
    """(budget_label, group) -> that row's comparison dict for ``metric``."""
    return {(c["budget_label"], c["group"]): c for c in comparisons if c["metric"] == metric}


def verdict_cell(row: Row, comparisons: Sequence[dict], metric: str = "eval_loss") -> str:
    """The row's eval-loss verdict, ``reference`` for the row others are compared with, or ``—``."""
    found = comparisons_by_row(comparisons, metric).get(_key(row))
    if found is not None:
        return found["verdict"]
    refs = {(c["budget_label"], c["reference"]) for c in comparisons if c["metric"] == metric}
    return REFERENCE_CELL if _key(row) in refs else DASH


def excluded_text(excluded: Sequence[dict]) -> str:
    """``seed 2 (linear_decay: diverged at step 41)``, joined by ``; ``."""
    return "; ".join(f"seed {e['seed']} ({e['reason']})" for e in excluded)


def render_rows_md(rows: Sequence[Row], comparisons: Sequence[dict] = ()) -> str:
    headers = ["Strategy"] + [m.header for m in METRICS] + ["n", "Status", "Verdict (eval loss)"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(METRICS) + 1) + ["---", "---"]) + "|",
    ]
    for row in rows:
        cells = [md_escape(row_label(row))] + [metric_cell(row, m) for m in METRICS]
        cells += [str(row.n), md_escape(row.status), md_escape(verdict_cell(row, comparisons))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLE_NOTES = (
    "Numbers are mean ± sample standard deviation (ddof=1) over the completed seeds; `n` counts "
    "those seeds, and a single seed shows its value alone.",
    "Perplexity is aggregated as the mean ± std of the per-run perplexities (each run's "
    "exp(eval loss)), not as exp of the mean eval loss.",
    f"Diverged, failed and unfinished runs contribute no number; they are named in Status. "
    f"`{DASH}` marks a metric with no completed run.",
    "Verdict: the paired comparison of eval loss with the reference row of the same budget (see "
    "Paired comparisons). Rows are better or worse than the reference only where it says so; a "
    "lower mean alone is not a difference.",
)


def render_table_md(rows: Sequence[Row], comparisons: Sequence[dict] = ()) -> str:
    """Table 1 in Markdown: one table, or one per budget when rows carry several budget labels."""
    sections = budget_sections(rows)
    parts = []
    if len(sections) > 1:
        for budget, brows in sections:
            parts.append(f"### Budget: {md_escape(budget)}" if budget is not None else "### No budget")
            parts.append(render_rows_md(brows, comparisons))
    else:
        budget = sections[0][0] if sections else None
        if budget is not None:
            parts.append(f"All rows share the budget `{md_escape(budget)}`.")
        parts.append(render_rows_md(rows, comparisons))
    parts.append("\n".join(f"- {note}" for note in TABLE_NOTES))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- CSV


def _csv_number(x: float | None) -> str:
    # repr keeps full precision; float("nan") / float("inf") read "nan" / "inf" back.
    return "" if x is None else repr(float(x))


def csv_columns() -> list[str]:
    cols = ["budget_label", "group", "strategy", "status", "n", "n_runs"]
    cols += ["n_completed", "n_diverged", "n_failed", "n_incomplete", "n_unreadable"]
    for m in METRICS:
        cols += [f"{m.key}_mean", f"{m.key}_std"]
    cols += ["planned_params", "trainable_params", "seeds", "run_ids"]
    cols += ["reference", "detect_delta"]
    for m in COMPARED_METRICS:
        cols += [f"{m.key}_{c}" for c in _COMPARISON_COLUMNS]
    return cols


# Per compared metric: CSV column suffix -> comparison dict key (excluded_seeds is formatted).
_COMPARISON_COLUMNS = {
    "n_pairs": "n_pairs", "diff_mean": "mean_diff", "diff_sd": "sd_diff", "diff_ci_low": "ci_low",
    "diff_ci_high": "ci_high", "p": "p", "p_holm": "p_holm", "effect_dz": "effect_dz",
    "verdict": "verdict", "seeds_needed": "seeds_needed", "excluded_seeds": "excluded",
}


def _comparison_csv(row: Row, comparisons: Sequence[dict]) -> list:
    """``reference``, ``detect_delta`` and each compared metric's columns; empty without one."""
    per = {m.key: comparisons_by_row(comparisons, m.key).get(_key(row)) for m in COMPARED_METRICS}
    first = next((c for c in per.values() if c is not None), None)
    line = [first["reference"] if first else "", _csv_number(first["delta"]) if first else ""]
    for m in COMPARED_METRICS:
        c = per[m.key]
        for key in _COMPARISON_COLUMNS.values():
            value = None if c is None else c[key]
            if key == "excluded":
                line.append(excluded_text(value or []))
            elif isinstance(value, float):
                line.append(_csv_number(value))
            else:
                line.append("" if value is None else value)
    return line


def render_csv(rows: Sequence[Row], comparisons: Sequence[dict] = ()) -> str:
    """One line per row: plain numbers, empty cells where there is no number; the paired
    comparison of the row with its reference (``compare.paired_comparisons``) in the last columns."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_columns())
    for row in rows:
        counts = row.counts
        line = [
            row.budget_label or "",
            row.group,
            row.strategy or "",
            row.status,
            row.n,
            len(row.runs),
            counts.get("completed", 0),
            counts.get("diverged", 0),
            counts.get("failed", 0),
            counts.get(INCOMPLETE, 0),
            counts.get(UNREADABLE, 0),
        ]
        for m in METRICS:
            stat = row.stats.get(m.key, Stat())
            line += [_csv_number(stat.mean), _csv_number(stat.std)]
        planned, trainable = finite(row.first("planned_params")), finite(row.first("trainable_params"))
        line += [
            "" if planned is None else int(planned),
            "" if trainable is None else int(trainable),
            " ".join(str(s) for s in row.seeds),
            " ".join(r.run_id for r in row.runs),
        ]
        writer.writerow(line + _comparison_csv(row, comparisons))
    return buf.getvalue()


def write_table(
    rows: Sequence[Row],
    out_dir,
    *,
    title: str = "Results",
    intro: Sequence[str] = (),
    sections: Sequence[str] = (),
    comparisons: Sequence[dict] = (),
) -> tuple[Path, Path]:
    """Write ``results.md`` (title, intro, Table 1, then ``sections``) and ``results.csv``.

    :func:`adaptive_lora.reports.report.write_report` passes the figure, paper and environment
    sections so that results.md has a single writer, and the paired ``comparisons`` that fill
    the verdict column and the comparison columns of the CSV (empty without them).
    """
    out_dir = Path(out_dir)
    md_path, csv_path = out_dir / RESULTS_MD, out_dir / RESULTS_CSV
    parts = [f"# {title}", *intro, "## Table 1", render_table_md(rows, comparisons), *sections]
    atomic_write_text(md_path, "\n\n".join(p.strip("\n") for p in parts if p) + "\n")
    atomic_write_text(csv_path, render_csv(rows, comparisons))
    return md_path, csv_path
