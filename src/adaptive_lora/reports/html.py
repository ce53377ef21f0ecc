"""``report.html``: one self-contained, interactive page beside ``results.md``.

The page is a template (``assets/report.html``, ``report.css``, ``report.js``) into which this
module substitutes plotly's own JavaScript (read from the installed ``plotly`` package, so the
page works offline) and ONE JSON payload. Everything user-controlled (run names, groups, errors)
travels inside that JSON and is put into the page by the script as text, never as markup; the
only markup in the payload is the Markdown sections of ``results.md``, converted here with every
piece of text HTML-escaped.

Sections of ``results.md`` the page draws interactively (Table 1, the figures) are replaced; every
other section (paper vs this run, runs, definitions, environment, and whatever is added later)
is shown as written, so the two reports cannot drift apart.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import warnings
from importlib import resources
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from .._io import atomic_write_text, read_json
from .collect import RunResult, finite
from .figures import plot_labels
from .figures import eval_curve, mean_curve, pareto_points, series
from .table import METRICS, RESULTS_MD, TABLE_NOTES, Row, metric_cell, pareto_front, row_label, verdict_cell

REPORT_HTML = "report.html"
ASSETS = Path(__file__).with_name("assets")
# results.md sections (their "## " titles) that the page draws itself.
REPLACED_SECTIONS = ("Table 1", "Figures")
# A run's files the page links to, in this order; only those that exist are linked.
RUN_FILES = ("config.yaml", "plan.json", "metrics.jsonl", "summary.json", "adapter")
# Longest curve kept per run: a long run's thousands of steps are thinned evenly so the page
# stays small and fast; the first and last points are always kept.
MAX_POINTS = 600
# (payload name, metrics.jsonl row type, key) of the curves drawn per strategy.
def _curves(eval_kind: str) -> tuple:
    """(curve name, metrics row type, key) of the three curve plots; the eval curve reads the
    fixed-subset rows when the runs logged them (see ``figures.eval_curve``)."""
    return (("train_loss", "train", "loss"), ("eval_loss", eval_kind, "eval_loss"), ("grad_norm", "train", "grad_norm"))
_PLACEHOLDER = re.compile(r"/\*@(CSS|PLOTLY|APP|DATA)@\*/")


# --------------------------------------------------------------------------- per run


def _keep(n: int) -> list[int]:
    """Indices of at most MAX_POINTS of ``n`` points, evenly spread, first and last included."""
    if n <= MAX_POINTS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)})


def _thin(*columns: list) -> list[list]:
    """The same :func:`_keep` selection applied to parallel lists."""
    idx = _keep(len(columns[0]))
    return [[col[i] for i in idx] for col in columns]


def _link(path: Path, out_dir: Path) -> str:
    """A relative URL: percent-encoded and starting with ``./`` so that a folder named like a
    URL scheme (``javascript:``) stays a path."""
    rel = Path(os.path.relpath(path, out_dir)).as_posix()
    return ("" if rel.startswith("../") else "./") + quote(rel)


def _modules(plan) -> list[dict]:
    modules = plan.get("modules") if isinstance(plan, dict) else None
    return [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []


def _rank_summary(modules: list[dict]) -> dict | None:
    ranks = [r for r in (finite(m.get("rank")) for m in modules) if r is not None]
    if not ranks:
        return None
    return {"min": min(ranks), "mean": sum(ranks) / len(ranks), "max": max(ranks), "modules": len(ranks)}


def _layer_grads(run: RunResult) -> dict | None:
    """Per-layer gradient norm ``sqrt(|A|^2 + |B|^2)`` over steps: ``{steps, layers, z[layer][step]}``."""
    rows = [m for m in run.metrics if m.get("type") == "train" and isinstance(m.get("layer_grad_norms"), dict)
            and finite(m.get("step")) is not None]
    (rows,) = _thin(sorted(rows, key=lambda m: finite(m.get("step"))))
    layers = sorted({str(k) for m in rows for k in m["layer_grad_norms"]},
                    key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    if not rows or not layers:
        return None

    def norm(slot) -> float | None:
        parts = [finite(v) for v in slot.values()] if isinstance(slot, dict) else [finite(slot)]
        return None if None in parts or not parts else math.sqrt(sum(v * v for v in parts))

    z = [[norm(m["layer_grad_norms"].get(k, {})) for m in rows] for k in layers]
    return {"steps": [finite(m.get("step")) for m in rows], "layers": layers, "z": z}


def _run_payload(run: RunResult, row_index: int, out_dir: Path, specs: tuple) -> dict:
    curves = {}
    for name, kind, key in specs:
        curves[name] = dict(zip(("x", "y"), _thin(*series(run, kind, key, positive=(name == "grad_norm")))))
    params = finite(run.get("trainable_params"))
    return {
        "id": run.run_id,
        "row": row_index,
        "seed": run.get("seed", run.hints.get("seed")),
        "status": run.status,
        "diverged_step": finite(run.get("diverged_step")),
        "eval_loss": finite(run.get("eval_loss")),
        "perplexity": finite(run.get("perplexity")),
        "params_m": None if params is None else params / 1e6,
        "ranks": _rank_summary(_modules(run.get("plan"))),
        "links": {name: _link(run.path / name, out_dir) for name in RUN_FILES if (run.path / name).exists()},
        "curves": curves,
        "layer_grads": _layer_grads(run),
    }


# --------------------------------------------------------------------------- per row


def _role(module: dict) -> str:
    """The module's name inside its layer (``self_attn.q_proj``), else its kind."""
    name, layer = str(module.get("name") or ""), finite(module.get("layer"))
    if layer is not None:
        mark = f".{int(layer)}."
        if mark in name:
            return name.split(mark, 1)[1]
    return str(module.get("kind") or "module")


def _rank_grid(modules: list[dict]) -> dict | None:
    """``{layers, roles, z[role][layer]}``: the rank of each module (None where none is adapted)."""
    cells = {}
    for m in modules:
        layer, rank = finite(m.get("layer")), finite(m.get("rank"))
        if layer is not None and rank is not None:
            cells[(_role(m), int(layer))] = rank
    if not cells:
        return None
    roles = list(dict.fromkeys(role for role, _ in cells))  # model order
    layers = sorted({layer for _, layer in cells})
    return {"layers": layers, "roles": roles, "z": [[cells.get((r, i)) for i in layers] for r in roles]}


def _planned_modules(row: Row) -> list[dict]:
    """The plan a run was trained with (its ``plan.json``), else what its summary records."""
    for run in row.runs:
        try:
            modules = _modules(read_json(run.path / "plan.json"))
        except (OSError, ValueError):
            continue
        if modules:
            return modules
    return _recorded_modules(row)


def _recorded_modules(row: Row) -> list[dict]:
    """The realised ranks: the plan a run's ``summary.json`` records after the adapter audit."""
    return next((_modules(r.get("plan")) for r in row.runs if _modules(r.get("plan"))), [])


def _bands(row: Row, kind: str, key: str, positive: bool) -> dict | None:
    """Mean and min..max over the completed seeds of a row, at the steps they all logged."""
    curves = [series(r, kind, key, positive) for r in row.completed]
    curves = [c for c in curves if c[0]]
    if not curves:
        return None
    steps, mean = mean_curve(curves)
    maps = [dict(zip(*c)) for c in curves]
    lo = [min(m[s] for m in maps) for s in steps]
    hi = [max(m[s] for m in maps) for s in steps]
    x, mean, lo, hi = _thin(steps, mean, lo, hi)
    return {"x": x, "mean": mean, "lo": lo, "hi": hi, "n": len(curves)}


def _row_payload(row: Row, label: str, verdict, specs: tuple) -> dict:
    stats = {}
    for m in METRICS:
        s = row.stats.get(m.key)
        stats[m.key] = {"mean": finite(s.mean) if s else None, "std": finite(s.std) if s and s.std is not None else None,
                        "text": metric_cell(row, m)}
    return {
        "label": label,
        "group": row_label(row),
        "budget": row.budget_label,
        "strategy": row.strategy or row.group,
        "status": row.status,
        "statuses": sorted(row.counts),
        "n": row.n,
        "verdict": verdict,
        "stats": stats,
        "curves": {name: _bands(row, kind, key, name == "grad_norm") for name, kind, key in specs},
        "ranks": {"planned": _rank_grid(_planned_modules(row)),
                  "realised": _rank_grid(_recorded_modules(row))},
    }


def _pareto(rows: Sequence[Row]) -> dict:
    """Row indices on the Pareto front of (parameters, mean perplexity), in drawing order."""
    kept, points, _ = pareto_points(rows)
    index = {id(r): i for i, r in enumerate(rows)}
    return {"front": [index[id(kept[i])] for i in pareto_front(points)]}


# --------------------------------------------------------------------------- Markdown


_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    """Escaped text with ``code``, **bold** and *italic*; nothing else is markup."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        code, bold, em = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{_inline(bold)}</strong>")
        else:
            out.append(f"<em>{_inline(em)}</em>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _table(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(line.strip().strip("|"))]

    align = ["num" if c.endswith(":") else "" for c in cells(lines[1])] if len(lines) > 1 else []
    head = "".join(f"<th>{_inline(c)}</th>" for c in cells(lines[0]))
    body = []
    for line in lines[2:]:
        tds = (f'<td class="{align[i] if i < len(align) else ""}">{_inline(c)}</td>' for i, c in enumerate(cells(line)))
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f'<div class="scroll"><table class="md"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _block(lines: list[str]) -> str:
    first = lines[0]
    if first.startswith("#"):
        level = min(len(first) - len(first.lstrip("#")) + 1, 6)  # "## x" sits under the page's h2
        return f"<h{level}>{_inline(first.lstrip('#').strip())}</h{level}>"
    if first.startswith("|"):
        return _table(lines)
    if first.startswith("- "):
        items, current = [], []
        for line in lines:
            if line.startswith("- ") and current:
                items.append(" ".join(current))
                current = []
            current.append(line[2:] if line.startswith("- ") else line.strip())
        items.append(" ".join(current))
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>"
    return f"<p>{_inline(' '.join(l.strip() for l in lines))}</p>"


def _blocks(text: str) -> list[list[str]]:
    """Lines grouped into blocks: blank lines end one, a heading is one on its own, and a table
    directly after text (or text after a table) starts a new one."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            blocks.append([])
        elif line.startswith("#"):
            blocks += [[line], []]
        elif blocks[-1] and line.startswith("|") != blocks[-1][0].startswith("|"):
            blocks.append([line])
        else:
            blocks[-1].append(line)
    return [b for b in blocks if b]


def markdown_html(text: str) -> str:
    """The Markdown results.md is written in (headings, paragraphs, pipe tables, bullet lists,
    code spans, bold, italics) as HTML in which every piece of text is escaped."""
    return "\n".join(_block(b) for b in _blocks(text))


def md_sections(markdown: str) -> tuple[str, list[dict]]:
    """(intro HTML, [{"title", "html"}]) of results.md, without the sections the page draws."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    intro = re.sub(r"^# .*$", "", parts[0], count=1, flags=re.MULTILINE)
    sections = [{"title": t.strip(), "html": markdown_html(body)}
                for t, body in zip(parts[1::2], parts[2::2]) if t.strip() not in REPLACED_SECTIONS]
    return markdown_html(intro), sections


# --------------------------------------------------------------------------- page


def build_payload(
    runs: Sequence[RunResult], rows: Sequence[Row], out_dir: Path, markdown: str, comparisons: Sequence[dict] = ()
) -> dict:
    """Everything the page shows, as one JSON-ready dict (numbers finite or None). Rows get the
    verdict cell of results.md's table when there are paired ``comparisons``, else none."""
    labels = plot_labels(rows)
    row_of = {id(run): i for i, row in enumerate(rows) for run in row.runs}
    intro, sections = md_sections(markdown)
    title = next((line[2:].strip() for line in markdown.splitlines() if line.startswith("# ")), "Results")
    eval_kind, eval_title = eval_curve(runs)
    specs = _curves(eval_kind)
    return {
        "eval_title": eval_title,
        "title": title,
        "intro": intro,
        "columns": [{"key": m.key, "header": m.header} for m in METRICS],
        "notes": [_inline(n) for n in TABLE_NOTES],
        "rows": [_row_payload(r, labels[id(r)], verdict_cell(r, comparisons) if comparisons else None, specs)
                 for r in rows],
        "runs": [_run_payload(run, row_of[id(run)], out_dir, specs) for run in runs if id(run) in row_of],
        "pareto": _pareto(rows),
        "sections": sections,
    }


def _plotly_js() -> str | None:
    try:
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def _script_safe(js: str) -> str:
    """Inline JavaScript that cannot close its own <script> element."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)


def render_page(payload: dict, plotly_js: str) -> str:
    """The template with the stylesheet, the scripts and the payload put in, in one pass (so
    that nothing substituted is itself searched for placeholders)."""
    # <, > and & as \u escapes: valid JSON that cannot end the script element or open a comment.
    data = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts = {
        "CSS": (ASSETS / "report.css").read_text(encoding="utf-8"),
        "PLOTLY": _script_safe(plotly_js),
        "APP": _script_safe((ASSETS / "report.js").read_text(encoding="utf-8")),
        "DATA": data,
    }
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], (ASSETS / REPORT_HTML).read_text(encoding="utf-8"))


def write_html_report(
    runs: Sequence[RunResult], rows: Sequence[Row], out_dir, comparisons: Sequence[dict] = ()
) -> Path | None:
    """Write ``out_dir/report.html`` from the runs, their Table 1 rows, the paired
    ``comparisons`` (``compare.paired_comparisons``) and the ``results.md`` already written
    there. Returns None (with a warning) when plotly is not installed, so that a missing piece
    never costs the Markdown report."""
    out_dir = Path(out_dir)
    plotly_js = _plotly_js()
    if plotly_js is None:
        warnings.warn("report.html not written: the plotly package is not installed (pip install plotly)", stacklevel=2)
        return None
    md_path = out_dir / RESULTS_MD
    markdown = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
    path = out_dir / REPORT_HTML
    atomic_write_text(path, render_page(build_payload(runs, rows, out_dir, markdown, comparisons), plotly_js))
    return path


__all__ = ["REPORT_HTML", "build_payload", "markdown_html", "md_sections", "render_page", "write_html_report"]
