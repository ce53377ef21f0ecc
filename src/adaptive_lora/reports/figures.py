"""PNG figures of a results folder, drawn with matplotlib's object API on the Agg canvas.

Using ``matplotlib.figure.Figure`` directly (no ``pyplot``) needs no display, keeps no global
figure state, and leaves the backend of a user's interactive session alone.

Every figure is written even when its data are missing (it then says so), so the links in
``results.md`` always resolve. One colour per row of Table 1; each seed is a thin line, the mean
of a row's completed seeds a thick one; an unfinished or failed run is dotted, and a diverged
run ends in an ×.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._io import read_json
from .collect import PLAN, RunResult, finite
from .compare import paired_comparisons
from .table import Row, budget_sections, pareto_front

FIG_DIR = "figures"
DPI = 110


@dataclass(frozen=True)
class FigureSpec:
    name: str  # file name in figures/
    title: str
    caption: str  # what results.md says under the link


_MARKS = "Dotted: unfinished or failed runs; ×: the last finite point of a diverged run."
FIGURES = (
    FigureSpec("train_loss.png", "Training loss",
               "Training loss per optimizer step; thin lines are seeds, thick lines the mean of "
               "completed seeds. " + _MARKS),
    FigureSpec("eval_loss.png", "Eval loss",
               "Eval loss per step (step 0 is the base model): on the fixed subset of held-out examples "
               "when the runs logged one (eval_subset), else on the whole held-out split; the table's "
               "eval loss is always the whole split. Bands: min to max over seeds. " + _MARKS),
    FigureSpec("grad_norm.png", "Gradient norm",
               "Global gradient norm per optimizer step (log scale). " + _MARKS),
    FigureSpec("ranks.png", "Rank per layer",
               "Planned LoRA rank per layer: mean over attention modules and over MLP modules."),
    FigureSpec("rank_moves.png", "Ranks moved during training",
               "Total LoRA rank per layer over the optimizer steps, for runs whose ranks move during "
               "training (method prune_expand; one panel per row, its first seed): step 0 is the "
               "plan, each later column a round of moves."),
    FigureSpec("params_vs_perplexity.png", "Parameters vs perplexity",
               "Trainable parameters against perplexity (mean ± std of completed seeds); the line "
               "joins the Pareto front of the means (lower is better on both). A lower mean is not "
               "a detectable difference: see Paired comparisons."),
    FigureSpec("paired_diff.png", "Paired differences from the reference",
               "Each row's mean paired difference from the reference row of its budget (row − "
               "reference, per seed) with its 95 % CI; one panel per budget, a line at 0. Green: "
               "better, red: worse than the reference (Holm p < 0.05 and CI excluding 0); grey: no "
               "detectable difference; a hollow point: one seed, no interval."),
)


# --------------------------------------------------------------------------- data extraction


def eval_curve(runs) -> tuple[str, str]:
    """(row type, title) of the eval-loss curves: the fixed subset when the runs logged one
    (``eval_subset``: every ``eval_every`` steps), else the full held-out split."""
    n = max((int(r.get("config", {}).get("eval_subset") or 0) for r in runs if isinstance(r.get("config"), dict)),
            default=0)
    if any(m.get("type") == "eval_subset" for r in runs for m in r.metrics):
        return "eval_subset", f"Eval loss, fixed subset of {n} held-out examples"
    return "eval", "Eval loss (step 0 = base model)"


def series(run: RunResult, kind: str, key: str, positive: bool = False) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` over the ``type == kind`` rows of a run's metrics, sorted by step.

    Non-numeric and non-finite values are dropped (a diverged run logs NaN losses), and so are
    values <= 0 when ``positive`` (for log axes).
    """
    pts = []
    for row in run.metrics:
        if row.get("type") != kind:
            continue
        step, value = finite(row.get("step")), finite(row.get(key))
        if step is None or value is None or (positive and value <= 0):
            continue
        pts.append((step, value))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def mean_curve(curves: Sequence[tuple[list[float], list[float]]]) -> tuple[list[float], list[float]]:
    """Mean of several (steps, values) curves over the steps all of them have."""
    curves = [c for c in curves if c[0]]
    if not curves:
        return [], []
    maps = [dict(zip(s, v)) for s, v in curves]
    common = sorted(set.intersection(*(set(m) for m in maps)))
    return common, [math.fsum(m[s] for m in maps) / len(maps) for s in common]


def band(curves: Sequence[tuple[list[float], list[float]]], steps: list[float]) -> tuple[list[float], list[float]]:
    """(min, max) over several curves at each of ``steps`` (steps every curve has)."""
    maps = [dict(zip(s, v)) for s, v in curves if s]
    return [min(m[x] for m in maps) for x in steps], [max(m[x] for m in maps) for x in steps]


def layer_ranks(plan) -> dict[str, tuple[list[int], list[float]]]:
    """Per module kind, (layers, mean rank over that kind's modules in each layer), from a plan
    ``{"modules": [{"layer", "kind", "rank"}, ...]}``. Malformed entries are skipped."""
    modules = plan.get("modules") if isinstance(plan, dict) else None
    acc: dict[str, dict[int, list[float]]] = {}
    for m in modules if isinstance(modules, list) else []:
        if not isinstance(m, dict):
            continue
        layer, rank = finite(m.get("layer")), finite(m.get("rank"))
        if layer is None or rank is None:
            continue
        acc.setdefault(str(m.get("kind") or "other"), {}).setdefault(int(layer), []).append(rank)
    out = {}
    for kind, per_layer in acc.items():
        layers = sorted(per_layer)
        out[kind] = (layers, [sum(per_layer[i]) / len(per_layer[i]) for i in layers])
    return out


def _row_plan(row: Row):
    for r in row.runs:
        plan = r.get("plan")
        if isinstance(plan, dict) and plan.get("modules"):
            return plan
    return None


def pareto_points(rows: Sequence[Row]) -> tuple[list[Row], list[tuple[float, float]], list[Row]]:
    """(rows with a point, their (params M, mean perplexity), rows left out).

    A row is left out when no seed completed (diverged or failed) or its mean is not finite.
    """
    kept, points, omitted = [], [], []
    for row in rows:
        x, y = row.mean("params_m"), row.mean("perplexity")
        if row.n and x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
            kept.append(row)
            points.append((x, y))
        else:
            omitted.append(row)
    return kept, points, omitted


# --------------------------------------------------------------------------- drawing helpers


def plot_labels(rows: Sequence[Row]) -> dict[int, str]:
    several = len({r.budget_label for r in rows}) > 1
    return {
        id(r): f"{r.group} [{r.budget_label}]" if several and r.budget_label is not None else r.group
        for r in rows
    }


def _colors(rows: Sequence[Row]) -> dict[int, tuple]:
    cmap = colormaps["tab10" if len(rows) <= 10 else "tab20"]
    return {id(r): cmap(i % cmap.N) for i, r in enumerate(rows)}


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _auto_log(ax, values: list[float]) -> None:
    """Log scale when values span more than a factor 30."""
    pos = [v for v in values if v > 0]
    if pos and max(pos) / min(pos) > 30:
        ax.set_yscale("log")


def calm_limits(calm: list[float], every: list[float]) -> tuple[float, float] | None:
    """y-limits that fit the runs that did not diverge, when a diverged run would otherwise
    stretch the axis (a loss of 200 flattens curves near 2); None when everything fits."""
    if not calm or not every:
        return None
    lo, hi = min(calm), max(calm)
    pad = 0.08 * (hi - lo) or 0.05 * abs(hi) or 0.1
    if max(every) <= hi + 2 * pad and min(every) >= lo - 2 * pad:
        return None
    return lo - pad, hi + pad


def plot_curves(
    rows: Sequence[Row], path: Path, kind: str, key: str, ylabel: str, title: str, log: str = "auto"
) -> Path:
    """One panel per budget label; per row, each run thin, the mean of completed runs thick.

    ``log``: "log" for a log y-axis; "auto" zooms onto the runs that did not diverge (a diverged
    curve then leaves the panel and its x sits on the edge), or goes log if there are none.
    """
    sections = budget_sections(rows)
    labels, colors = plot_labels(rows), _colors(rows)
    fig = Figure(figsize=(min(6.5 * len(sections), 16), 4.6), layout="constrained")
    axes = fig.subplots(1, len(sections), sharey=True, squeeze=False)[0]
    every: list[float] = []
    calm: list[float] = []  # values of runs that did not diverge
    crosses = []  # (ax, step, value, color): drawn once the y-limits are known
    any_dotted = False
    for ax, (budget, brows) in zip(axes, sections):
        drawn = False
        for row in brows:
            color = colors[id(row)]
            done = []
            for run in row.runs:
                steps, values = series(run, kind, key, positive=(log == "log"))
                if not steps:
                    continue
                drawn = True
                every += values
                if run.status != "diverged":
                    calm += values
                unfinished = run.status not in ("completed", "diverged")
                any_dotted |= unfinished
                many = len(row.runs) > 1
                ax.plot(
                    steps, values, color=color, lw=0.9 if many else 1.6, alpha=0.45 if many else 0.95,
                    ls=":" if unfinished else "-", marker="o" if kind.startswith("eval") else None, ms=3,
                )
                # An eval curve of a diverged run often holds only the shared base-model point
                # at step 0; an x there would mark the base model, not the divergence.
                if run.status == "diverged" and steps[-1] > 0:
                    crosses.append((ax, steps[-1], values[-1], color))
                if run.status == "completed":
                    done.append((steps, values))
            if len(done) > 1:
                ms, mv = mean_curve(done)
                ax.plot(ms, mv, color=color, lw=2.2, marker="o" if kind.startswith("eval") else None, ms=4)
                lo, hi = band(done, ms)
                ax.fill_between(ms, lo, hi, color=color, alpha=0.15, lw=0)  # min-max over seeds
        if len(sections) > 1:
            ax.set_title(f"budget {budget}" if budget is not None else "no budget", fontsize=10)
        if not drawn:
            _empty(ax, f"no '{key}' in the {kind} rows of metrics.jsonl")
            continue
        ax.set_xlabel("optimizer step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)

    limits = calm_limits(calm, every) if log == "auto" else None
    if log == "log" and every:
        axes[0].set_yscale("log")  # the axes share y
    elif limits is not None:
        axes[0].set_ylim(*limits)
    elif log == "auto":
        _auto_log(axes[0], every)
    for ax, x, y, color in crosses:
        if limits is not None:
            y = min(max(y, limits[0]), limits[1])  # pin to the edge the curve left through
        ax.plot(x, y, marker="x", color=color, ms=11, mew=2.5, ls="none", clip_on=False, zorder=5)

    handles = [Line2D([], [], color=colors[id(r)], lw=2.2, label=labels[id(r)]) for r in rows]
    if crosses:
        label = "diverged: last step" + ("\n(pinned to the edge the\ncurve leaves through)" if limits else "")
        handles.append(Line2D([], [], color="k", marker="x", ls="none", ms=9, mew=2, label=label))
    if any_dotted:
        handles.append(Line2D([], [], color="k", ls=":", label="unfinished / failed"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(title)
    return _save(fig, path)


def plot_ranks(rows: Sequence[Row], path: Path) -> Path:
    """One small panel per row: mean rank per layer, attention solid, MLP dashed."""
    labels = plot_labels(rows)
    n = max(len(rows), 1)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols + 0.5, 2.5 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    styles = {"attention": ("tab:blue", "-"), "mlp": ("tab:orange", "--")}
    kinds_seen = set()
    for ax, row in zip(axes, rows):
        ax.set_title(labels[id(row)], fontsize=9)
        ranks = layer_ranks(_row_plan(row))
        if not ranks:
            ax.text(0.5, 0.5, "no plan recorded", ha="center", va="center", transform=ax.transAxes, color="0.4")
            continue
        for kind, (layers, means) in sorted(ranks.items()):
            color, ls = styles.get(kind, ("tab:green", ":"))
            kinds_seen.add(kind)
            ax.plot(layers, means, color=color, ls=ls, lw=1.6, drawstyle="steps-mid")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    if not rows:
        _empty(axes[0], "no rows")
    for ax in axes[-ncols:]:
        ax.set_xlabel("layer")
    for i in range(0, len(axes), ncols):
        axes[i].set_ylabel("rank")
    handles = [
        Line2D([], [], color=styles.get(k, ("tab:green", ":"))[0], ls=styles.get(k, ("tab:green", ":"))[1], label=k)
        for k in sorted(kinds_seen)
    ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle("Planned rank per layer (mean over modules of each kind)")
    return _save(fig, path)


def rank_history(run: RunResult) -> tuple[list[int], list[int], list[list[float]]] | None:
    """(steps, layers, total rank [layer][step]) of a run whose metrics rows carry ``ranks``,
    step 0 from its plan.json (the plan before training); None for a static run."""
    moves = [r for r in run.metrics if r.get("type") == "train" and isinstance(r.get("ranks"), dict)]
    if not moves:
        return None
    try:
        start = read_json(run.path / PLAN)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    modules = [m for m in start.get("modules", []) if isinstance(m, dict)] if isinstance(start, dict) else []
    layer_of = {m.get("name"): int(m.get("layer", 0)) for m in modules}
    layers = sorted(set(layer_of.values()))
    snapshots = [(0, {m.get("name"): finite(m.get("rank")) or 0 for m in modules})]
    snapshots += [(int(r.get("step", 0)), r["ranks"]) for r in moves]
    grid = [[sum(rank or 0 for n, rank in ranks.items() if layer_of.get(n) == layer) for _, ranks in snapshots]
            for layer in layers]
    return [s for s, _ in snapshots], layers, grid


def plot_rank_moves(rows: Sequence[Row], path: Path) -> Path:
    """A heatmap per row that moved ranks: layers (y) by rounds (x), colour = total rank."""
    labels = plot_labels(rows)
    found = []
    for row in rows:
        hist = next((h for h in (rank_history(r) for r in row.runs) if h), None)
        if hist:
            found.append((labels[id(row)], hist))
    n = max(len(found), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols + 0.5, 3.2 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if not found:
        _empty(axes[0], "no run moved ranks during training (static plans)")
    for ax, (label, (steps, layers, grid)) in zip(axes, found):
        im = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks(range(len(steps)), [str(s) for s in steps], fontsize=7)
        ax.set_yticks(range(len(layers)), [str(x) for x in layers], fontsize=7)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, label="total rank")
    for ax in axes[len(found):]:
        ax.set_visible(not found and ax is axes[0])
    fig.suptitle("Total rank per layer over training")
    return _save(fig, path)


def plot_pareto(rows: Sequence[Row], path: Path) -> Path:
    """Trainable parameters against mean perplexity, with the Pareto front joined and ringed."""
    labels, colors = plot_labels(rows), _colors(rows)
    kept, points, omitted = pareto_points(rows)
    front = pareto_front(points)
    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.subplots()
    if not points:
        _empty(ax, "no row has a completed run with parameters and perplexity")
    else:
        for row, (x, y) in zip(kept, points):
            std = row.stats["perplexity"].std
            yerr = std if std is not None and math.isfinite(std) else None
            ax.errorbar(x, y, yerr=yerr, fmt="o", color=colors[id(row)], ms=7, capsize=3)
            ax.annotate(labels[id(row)], (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8)
        fx, fy = [points[i][0] for i in front], [points[i][1] for i in front]
        # Staircase: everything above and right of it is dominated by a front point.
        ax.plot(fx, fy, color="k", lw=1.2, drawstyle="steps-post", zorder=1, label="Pareto front")
        ax.plot(fx, fy, "o", mfc="none", mec="k", ms=14, mew=1.5, zorder=3)
        ys = [p[1] for p in points]
        if min(ys) > 0 and max(ys) / min(ys) > 30:
            ax.set_yscale("log")
        ax.set_xlabel("trainable parameters (M)")
        ax.set_ylabel("perplexity (lower is better)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    if omitted:
        names = ", ".join(f"{labels[id(r)]} ({r.status})" for r in omitted)
        fig.text(0.01, -0.01, f"Not shown (no completed run): {names}", fontsize=8, va="top", wrap=True)
    fig.suptitle("Parameters vs perplexity")
    return _save(fig, path)


def _verdict_color(verdict: str) -> str:
    if verdict.startswith("better"):
        return "tab:green"
    return "tab:red" if verdict.startswith("worse") else "0.45"


def _forest_panel(ax, comps: Sequence[dict]) -> None:
    """One horizontal line per comparison, top to bottom in table order, and a line at 0."""
    ax.axvline(0.0, color="k", lw=1.0)
    for y, c in enumerate(reversed(comps)):
        color = _verdict_color(c["verdict"])
        if c["mean_diff"] is None:
            ax.text(0.0, y, " no paired seed", va="center", fontsize=8, color="0.4")
            continue
        if c["ci_low"] is not None and math.isfinite(c["ci_low"]) and math.isfinite(c["ci_high"]):
            ax.plot([c["ci_low"], c["ci_high"]], [y, y], color=color, lw=2.0)
        hollow = c["ci_low"] is None
        ax.plot(c["mean_diff"], y, "o", color=color, mfc="white" if hollow else color, ms=7, mew=1.5)
    ax.set_yticks(range(len(comps)))
    ax.set_yticklabels([f"{c['group']} (n={c['n_pairs']})" for c in reversed(comps)], fontsize=8)
    ax.set_ylim(-0.7, len(comps) - 0.3)
    ax.grid(True, axis="x", alpha=0.3)


def plot_paired_diff(rows: Sequence[Row], comparisons: Sequence[dict], path: Path) -> Path:
    """Forest plot: a row of panels per compared metric, a column per budget."""
    metrics = list(dict.fromkeys(c["metric"] for c in comparisons))
    budgets = [b for b, _ in budget_sections(rows) if any(c["budget_label"] == b for c in comparisons)]
    nrows, ncols = max(len(metrics), 1), max(len(budgets), 1)
    tallest = max((sum(c["metric"] == m and c["budget_label"] == b for c in comparisons)
                   for m in metrics for b in budgets), default=1)
    fig = Figure(figsize=(min(5.5 * ncols + 1.5, 18), (0.45 * tallest + 1.5) * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for i, metric in enumerate(metrics):
        for j, budget in enumerate(budgets):
            comps = [c for c in comparisons if c["metric"] == metric and c["budget_label"] == budget]
            if not comps:
                continue
            ax = axes[i][j]
            ax.set_visible(True)
            _forest_panel(ax, comps)
            where = f"budget {budget}, " if budget is not None else ""
            ax.set_title(f"{comps[0]['metric_label']}: {where}vs {comps[0]['reference']}", fontsize=9)
            ax.set_xlabel(f"{comps[0]['metric_label']} difference (row − reference; < 0 is lower)")
    if not comparisons:
        axes[0][0].set_visible(True)
        _empty(axes[0][0], "no paired comparison: no row has a reference row in its budget")
    fig.suptitle("Paired differences from the reference (95 % CI)")
    return _save(fig, path)


def write_figures(runs: Sequence[RunResult], rows: Sequence[Row], out_dir, comparisons: Sequence[dict] | None = None) -> list[Path]:
    """Draw every figure into ``out_dir/figures/``; returns the paths written.

    The figures draw the runs the rows hold (``aggregate(runs)`` puts every run in one row);
    ``runs`` is part of the signature for symmetry with the other writers. A figure that fails to draw is skipped with a warning so that the table and
    the other figures still get written. ``comparisons`` (from ``compare.paired_comparisons``)
    feed the forest plot; by default they are computed with the default reference.
    """
    fig_dir = Path(out_dir) / FIG_DIR
    if comparisons is None:
        comparisons = paired_comparisons(rows)
    jobs = {
        "train_loss.png": lambda p: plot_curves(rows, p, "train", "loss", "training loss", "Training loss"),
        "eval_loss.png": lambda p: plot_curves(rows, p, eval_curve(runs)[0], "eval_loss", "eval loss",
                                               eval_curve(runs)[1]),
        "grad_norm.png": lambda p: plot_curves(rows, p, "train", "grad_norm", "global gradient norm", "Gradient norm", log="log"),
        "ranks.png": lambda p: plot_ranks(rows, p),
        "rank_moves.png": lambda p: plot_rank_moves(rows, p),
        "params_vs_perplexity.png": lambda p: plot_pareto(rows, p),
        "paired_diff.png": lambda p: plot_paired_diff(rows, comparisons, p),
    }
    written = []
    for spec in FIGURES:
        try:
            written.append(jobs[spec.name](fig_dir / spec.name))
        except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the report
            warnings.warn(f"figure {spec.name} not drawn: {type(exc).__name__}: {exc}", stacklevel=2)
    return written


__all__ = ["FIGURES", "layer_ranks", "mean_curve", "pareto_points", "series", "write_figures"]
