"""``write_report``: everything a researcher publishes from a results folder.

It reads result files only (``summary.json``, ``metrics.jsonl``, ``sweep.json``) and writes
``results.md``, ``results.csv`` and ``figures/*.png``. Any mix of completed, diverged, failed,
unfinished and corrupt runs gives a report; only a missing or empty results folder is an error.
Whether a row beats the reference is decided once, by ``compare.paired_comparisons``; every
section that calls a row better or worse reads its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..schema import METRIC_DEFINITIONS
from .collect import INCOMPLETE, UNREADABLE, RunResult, collect_runs, finite, read_sweep
from .compare import comparison_settings, paired_comparisons
from .confounds import render_confounds
from .figures import FIG_DIR, FIGURES, pareto_points, write_figures
from .html import write_html_report
from .paper import render_paper_section
from .table import Row, aggregate, fmt_number, md_escape, pareto_front, write_table
from .verdicts import STATS_DEFINITIONS, render_comparisons_section

_ERROR_DETAIL_CHARS = 200


@dataclass
class ReportPaths:
    """What :func:`write_report` wrote."""

    out_dir: Path
    results_md: Path
    results_csv: Path
    figures: list[Path] = field(default_factory=list)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return value is True or value == 1


# --------------------------------------------------------------------------- sections


def render_overview(runs: Sequence[RunResult], rows: Sequence[Row], source: str) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    order = ["completed", "diverged", "failed", INCOMPLETE, UNREADABLE]
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    parts += [f"{n} with status {s!r}" for s, n in counts.items() if s not in order]
    text = f"Results folder `{md_escape(source)}`: {len(runs)} runs in {len(rows)} rows ({', '.join(parts)})."
    unfinished = [r.run_id for r in runs if r.status == INCOMPLETE]
    if unfinished:
        text += " Incomplete (no summary.json yet): " + ", ".join(f"`{md_escape(x)}`" for x in unfinished) + "."
    # The yardstick: the base model's eval loss (step 0), the same for every plan on one split.
    base = sorted({round(x, 4) for x in (finite(r.get("base_eval_loss")) for r in runs) if x is not None})
    if base:
        shown = f"{base[0]:.3f}" if len(base) == 1 else f"{base[0]:.3f} to {base[-1]:.3f} (several eval splits)"
        text += f" Base model (step 0, before training) eval loss: {shown}."
    return text + render_data_counts(runs)


def render_data_counts(runs: Sequence[RunResult]) -> str:
    """The data the runs trained and evaluated on, from their summaries: one sentence per distinct
    setting (a sweep normally has one), so a cap on the training records is never silent."""
    seen: list[str] = []
    for run in runs:
        d = run.get("data")
        if not isinstance(d, dict) or d.get("train_records") is None:
            continue  # an older summary, or a run that failed before its data was read
        cap = (f", capped by max_train {d['max_train']}" if d.get("max_train") is not None
               and d["train_records"] < (d.get("train_available") or 0) else "")
        line = (f" Data `{md_escape(d.get('source'))}` ({md_escape(d.get('format', 'alpaca'))}): "
                f"{d['train_records']} records trained of {d.get('train_available')} left after the eval split{cap}, "
                f"{d.get('eval_records')} held out; {d.get('train_tokens')} training tokens "
                f"({d.get('train_scored_tokens')} scored) per epoch.")
        if line not in seen:
            seen.append(line)
    more = f" ({len(seen) - 4} more data settings: see each run's summary.json)" if len(seen) > 4 else ""
    return "".join(seen[:4]) + more


def _detail(run: RunResult) -> str:
    s = run.status
    if s == "diverged":
        module = run.get("diverged_module")
        return f"non-finite values in `{module}`" if module else ""
    if s == "failed":
        return " ".join(str(run.get("error") or "").split())[:_ERROR_DETAIL_CHARS]
    if s == INCOMPLETE:
        return "no summary.json: unfinished" + ("" if run.path.exists() else " (folder not created)")
    if s == UNREADABLE:
        return run.problem or "summary.json has no status"
    return ""


def _run_status(run: RunResult) -> str:
    if run.status == "diverged":
        step = finite(run.get("diverged_step"))
        return f"diverged at step {int(step) if step is not None else '?'}"
    if run.status == UNREADABLE:
        return "corrupt summary.json"
    return run.status


def render_runs_section(rows: Sequence[Row]) -> str:
    """One line per run, in table order: what each seed did. Numbers for completed runs only."""
    lines = [
        "## Runs",
        "",
        "| Run | Group | Budget | Seed | Status | Eval Loss | Perplexity | Steps | Detail |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        for run in row.runs:
            done = run.status == "completed"
            steps = finite(run.get("optimizer_steps"))
            cells = [
                f"`{md_escape(run.run_id)}`",
                md_escape(row.group),
                md_escape(row.budget_label) if row.budget_label is not None else "",
                md_escape(run.get("seed", run.hints.get("seed", ""))),
                md_escape(_run_status(run)),
                fmt_number(finite(run.get("eval_loss")), 3) if done else "—",
                fmt_number(finite(run.get("perplexity")), 1) if done else "—",
                str(int(steps)) if steps is not None else "",
                md_escape(_detail(run)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _name(row: Row) -> str:
    budget = f" [{row.budget_label}]" if row.budget_label is not None else ""
    return f"`{md_escape(row.group + budget)}`"


def _pareto_caption(rows: Sequence[Row]) -> str:
    kept, points, omitted = pareto_points(rows)
    front = pareto_front(points)
    text = ""
    if front:
        items = [f"{_name(kept[i])} ({points[i][0]:.3f}M, perplexity {points[i][1]:.1f})" for i in front]
        # The front is drawn from means: it says nothing about detectable differences.
        text += " Pareto front of the means: " + ", ".join(items) + "."
    if omitted:
        text += " Not shown (no completed run): " + ", ".join(
            f"{_name(r)} ({md_escape(r.status)})" for r in omitted
        ) + "."
    return text


def render_figures_section(rows: Sequence[Row], written: Sequence[Path]) -> str:
    names = {p.name for p in written}
    parts = ["## Figures"]
    for spec in FIGURES:
        caption = spec.caption
        if spec.name == "params_vs_perplexity.png":
            caption += _pareto_caption(rows)
        if spec.name in names:
            parts.append(f"### {spec.title}\n\n![{spec.title}]({FIG_DIR}/{spec.name})\n\n{caption}")
        else:
            parts.append(f"### {spec.title}\n\nNot drawn: the figure code raised (see the warning printed with the report).")
    return "\n\n".join(parts)


def _first(runs: Sequence[RunResult], key: str):
    for r in runs:
        v = r.get(key)
        if v:
            return v
    return None


def _definition_lines(defs: dict) -> str:
    return "\n".join(f"- **{md_escape(k)}**: {' '.join(str(v).split())}" for k, v in defs.items())


def render_definitions(runs: Sequence[RunResult]) -> str:
    """The runs' own metric definitions, then the paired test behind every verdict."""
    defs = _first(runs, "metric_definitions") or METRIC_DEFINITIONS
    if isinstance(defs, dict):
        body = _definition_lines(defs)
    elif isinstance(defs, list):
        body = "\n".join(f"- {' '.join(str(v).split())}" for v in defs)
    else:
        body = str(defs).strip()
    return "## Metric definitions\n\n" + body + "\n\nPaired comparisons:\n\n" + _definition_lines(STATS_DEFINITIONS)


def _flat(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def render_environment(runs: Sequence[RunResult]) -> str:
    """Versions and hardware of the first run that recorded them, and whether others differ."""
    versions, hardware = _first(runs, "versions"), _first(runs, "hardware")
    lines = ["## Environment", ""]
    if isinstance(versions, dict):
        lines.append("Versions: " + ", ".join(f"{md_escape(k)} {md_escape(v)}" for k, v in versions.items()) + ".")
        differ = [r.run_id for r in runs if isinstance(r.get("versions"), dict) and r.get("versions") != versions]
        if differ:
            lines.append("")
            lines.append(f"{len(differ)} run(s) recorded other versions: " + ", ".join(f"`{md_escape(x)}`" for x in differ) + ".")
    if isinstance(hardware, dict):
        lines.append("")
        lines.append("Hardware:")
        lines.append("")
        lines += [f"- {md_escape(k)}: {md_escape(_flat(v))}" for k, v in hardware.items() if v not in (None, "", [], {})]
    if len(lines) == 2:
        lines.append("No summary recorded versions or hardware.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry point


def write_report(results_dir, out_dir=None, *, reference: str | None = None, delta: float | None = None) -> ReportPaths:
    """Write ``results.md``, ``results.csv`` and ``figures/`` for the runs under ``results_dir``.

    ``out_dir`` defaults to ``results_dir``. ``reference`` (a run name or strategy) and ``delta``
    (the eval-loss difference the seeds-needed figure is for) default to the sweep's
    ``reference`` / ``delta``, else ``uniform`` and 0.01. Raises UserError when the folder is
    missing or has no run, or a setting is invalid; a bad single run folder only shows up in
    the report.
    """
    results_dir = Path(results_dir)
    runs = collect_runs(results_dir)
    rows = aggregate(runs)
    sweep = read_sweep(results_dir)
    reference, delta = comparison_settings(sweep, reference, delta)
    comparisons = paired_comparisons(rows, reference, delta=delta)
    out = Path(out_dir) if out_dir is not None else results_dir
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(runs, rows, out, comparisons=comparisons)

    name = sweep.get("name") if isinstance(sweep.get("name"), str) else None
    sections = [render_comparisons_section(rows, comparisons, reference, delta), render_confounds(rows),
                render_figures_section(rows, figures)]
    if _truthy(sweep.get("compare_to_paper")):
        sections.append(render_paper_section(rows))
    sections += [render_runs_section(rows), render_definitions(runs), render_environment(runs)]
    md, csv = write_table(
        rows,
        out,
        title=f"Results: {name or results_dir.resolve().name}",
        intro=[render_overview(runs, rows, results_dir.resolve().name)],
        sections=sections,
        comparisons=comparisons,
    )
    write_html_report(runs, rows, out, comparisons)  # reads the results.md just written
    return ReportPaths(out_dir=out, results_md=md, results_csv=csv, figures=figures)
