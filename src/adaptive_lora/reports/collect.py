"""Read a results folder into :class:`RunResult` objects.

This module is the only place in ``reports/`` that touches run folders. It never raises on a
single bad run: a missing ``summary.json`` means the run is unfinished (``incomplete``), an
unreadable one is recorded as ``unreadable`` with the reason, and a torn ``metrics.jsonl`` line is
skipped. Only a results folder that is missing or holds no run at all is a user error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import iter_jsonl, read_json
from ..errors import UserError

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
SWEEP = "sweep.json"
PLAN = "plan.json"

# Files a run folder can hold before it finishes; a subfolder with none of them (e.g. the
# report's own ``figures/``) is not a run unless sweep.json names it.
SPEC = "spec.json"  # the sweep runner's run identity, written before training starts
_RUN_MARKERS = (SUMMARY, METRICS, SPEC, "config.yaml", "adapter")

# Statuses a finished run can report (docs/ARCHITECTURE.md); the two below are ours.
FINISHED = ("completed", "diverged", "failed")
INCOMPLETE = "incomplete"  # no summary.json yet
UNREADABLE = "unreadable"  # summary.json exists but cannot be parsed


@dataclass
class RunResult:
    """One run folder as found on disk."""

    run_id: str
    path: Path
    summary: dict | None
    metrics: list[dict] = field(default_factory=list)
    # Why ``summary`` is None when the file exists (corrupt JSON, not an object, ...).
    problem: str | None = None
    # What sweep.json says about this run when it lists it as an object (group, budget_label).
    hints: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``completed`` / ``diverged`` / ``failed`` from the summary, else ours."""
        if self.summary is None:
            return UNREADABLE if self.problem else INCOMPLETE
        status = self.summary.get("status")
        return str(status) if status else UNREADABLE

    def get(self, key: str, default: Any = None) -> Any:
        """A summary field, or ``default`` when there is no summary."""
        if self.summary is None:
            return default
        return self.summary.get(key, default)


def num(value: Any) -> float | None:
    """A JSON value as a float: numbers, and the strings "nan"/"inf"/"-inf" that ``_io`` writes.

    Returns None for anything that is not a number (None, booleans, other strings, lists).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())  # float() accepts "nan", "inf", "-Infinity", "1e-3"
        except ValueError:
            return None
    return None


def finite(value: Any) -> float | None:
    """Like :func:`num` but None for NaN and infinities."""
    x = num(value)
    return x if x is not None and math.isfinite(x) else None


_SEED_SUFFIX = re.compile(r"[-_.+]?(?:s|seed)[-_=]?\d+$", re.IGNORECASE)


def seedless(run_id: str) -> str:
    """Best guess at a run's group from its id, for runs without a summary.

    ``linear_decay-seed1`` and ``linear_decay_s2`` both give ``linear_decay``.
    """
    stripped = _SEED_SUFFIX.sub("", run_id)
    return stripped or run_id


def _read_summary(path: Path) -> tuple[dict | None, str | None]:
    """(summary, problem); both None when the file does not exist."""
    if not path.exists():
        return None, None
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        return None, f"corrupt {SUMMARY}: {type(exc).__name__}: {exc}"
    if not isinstance(data, dict):
        return None, f"corrupt {SUMMARY}: expected an object, found {type(data).__name__}"
    return data, None


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        return [row for row in iter_jsonl(path) if isinstance(row, dict)]
    except (OSError, UnicodeDecodeError):
        return []


def _read_spec(path: Path) -> dict:
    """group / budget_label / seed from the runner's ``spec.json``, for a run with no summary."""
    try:
        data = read_json(path / SPEC)
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in ("group", "budget_label", "seed", "variant") if k in data}


def read_run(path: Path, run_id: str | None = None, hints: dict | None = None) -> RunResult:
    """One run folder; a folder that does not exist gives an incomplete run (not started)."""
    summary, problem = _read_summary(path / SUMMARY)
    if summary is None and not hints:
        hints = _read_spec(path)
    return RunResult(
        run_id=run_id or path.name,
        path=path,
        summary=summary,
        metrics=_read_metrics(path / METRICS),
        problem=problem,
        hints=dict(hints or {}),
    )


def run_plan(run: RunResult) -> dict | None:
    """The run's plan ``{"modules": [{"name", "rank", ...}]}``: summary.json's ``plan``, else the
    run folder's ``plan.json`` (written before training, so an unfinished run has one too)."""
    plan = run.get("plan")
    if isinstance(plan, dict) and isinstance(plan.get("modules"), list):
        return plan
    try:
        plan = read_json(run.path / PLAN)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return plan if isinstance(plan, dict) and isinstance(plan.get("modules"), list) else None


def read_sweep(results_dir: Path) -> dict:
    """``sweep.json`` as a dict; an empty dict when it is absent or unreadable.

    An unreadable sweep.json must not hide the runs, so it is ignored rather than raised.
    """
    path = results_dir / SWEEP
    if not path.exists():
        return {}
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _listed_runs(sweep: dict) -> list[tuple[str, dict]]:
    """(run_id, hints) for each run sweep.json names, as strings or as objects."""
    out = []
    for entry in sweep.get("runs") or []:
        if isinstance(entry, str):
            out.append((entry, {}))
        elif isinstance(entry, dict):
            rid = entry.get("run_id") or entry.get("id") or entry.get("name")
            if isinstance(rid, str) and rid:
                out.append((rid, entry))
    # A run id is one folder name; anything else would read outside the results folder.
    return [(rid, h) for rid, h in out if Path(rid).name == rid and rid not in (".", "..")]


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and any((path / m).exists() for m in _RUN_MARKERS)


def collect_runs(results_dir) -> list[RunResult]:
    """Every run of a results folder: those sweep.json lists (in its order), then any other run
    subfolder (sorted by name). Raises UserError when the folder is missing or holds no run."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"results folder {results_dir} does not exist: pass the folder a sweep wrote")
    sweep = read_sweep(results_dir)
    runs: list[RunResult] = []
    seen: set[str] = set()
    for rid, hints in _listed_runs(sweep):
        if rid in seen:
            continue
        seen.add(rid)
        runs.append(read_run(results_dir / rid, rid, hints))
    for sub in sorted(results_dir.iterdir()):
        if sub.name not in seen and _is_run_folder(sub):
            seen.add(sub.name)
            runs.append(read_run(sub))
    if not runs:
        raise UserError(
            f"results folder {results_dir} holds no run (no subfolder with {SUMMARY} or {METRICS}): "
            "run a sweep into it first"
        )
    return runs
