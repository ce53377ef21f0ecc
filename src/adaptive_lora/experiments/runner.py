"""Run the specs of a sweep one after another, resumably, under a folder lock.

Layout of a sweep's results folder::

    <out>/.lock          flock'd while a sweep runs; holds the pid of the holder
    <out>/sweep.json     the sweep as run: name, source YAML, run ids, time
    <out>/<run_id>/      one folder per run (see docs/ARCHITECTURE.md)
        spec.json        run_id, config, config_hash (written before training starts)
        summary.json     written once at the end: its presence means the run finished

Resume rule: a run whose ``summary.json`` says ``completed`` or ``diverged`` is finished and is
never touched again (a divergence is a reproducible result, not an accident). Anything else (no
summary: the process was killed; ``failed``: an exception) is redone from an empty folder,
because a half-written run cannot be continued faithfully.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from .._io import jsonable, atomic_write_json, atomic_write_text, read_json
from ..errors import UserError
from .sweep import RunSpec, Sweep

__all__ = ["SweepResult", "run_sweep", "FINISHED_STATUSES", "sweep_lock"]

# Statuses of a run that is done for good; "failed" is retried on the next invocation.
FINISHED_STATUSES = ("completed", "diverged")
_STATUSES = ("completed", "diverged", "failed")
LOCK_NAME = ".lock"


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: runs trained now, runs skipped as finished, status of each."""

    out_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)

    @property
    def counts(self) -> dict[str, int]:
        """Number of runs per status, e.g. ``{"completed": 8, "diverged": 1, "failed": 0}``."""
        out = {s: 0 for s in _STATUSES}
        for status in self.statuses.values():
            out[status] = out.get(status, 0) + 1
        return out


# ----------------------------------------------------------------------------- lock


class sweep_lock:
    """Exclusive ``flock`` on ``<out_dir>/.lock`` for the lifetime of the ``with`` block.

    flock (not a pid file) because the kernel drops it when the holder dies, even on SIGKILL or
    a power cut of the process: a stale lock file can never block the next run. The pid written
    into the file is only there to make the refusal message useful.
    """

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK_NAME
        self._f = None

    def __enter__(self) -> "sweep_lock":
        # "a+" and not "w": opening with truncation before holding the lock would erase the pid
        # of the process that holds it.
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                f.close()
                raise
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise UserError(
                f"results folder '{self.path.parent}' is in use by another 'adaptive-lora run' "
                f"(pid {pid}); wait for it to finish or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._f = f
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            # Closing releases the flock. The file itself stays: unlinking it would let a
            # waiting process lock the old inode while a new one locks a fresh file.
            self._f.close()
            self._f = None


# ----------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(obj: Any) -> Any:
    """A JSON-safe copy: NaN/Inf as strings (like every result file), other odd values as str()."""
    return json.loads(json.dumps(jsonable(obj), default=str))


def read_status(run_dir: Path) -> tuple[str | None, dict | None]:
    """``(status, summary)`` of a run folder; ``(None, None)`` when there is no usable summary."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None, None
    try:
        summary = read_json(path)
    except (OSError, ValueError):
        return None, None  # unreadable: treat like an interrupted run
    if not isinstance(summary, dict):
        return None, None
    status = summary.get("status")
    return (status if isinstance(status, str) else None), summary


def _flatten(d: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(d, dict) and d:
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, d


def _config_diff(old: Any, new: dict, limit: int = 3) -> str:
    """``"lr: 0.0001 -> 0.0002, r: 8 -> 16"``: the first few dotted keys whose values differ."""
    if not isinstance(old, dict):
        return ""
    a, b = dict(_flatten(_plain(old))), dict(_flatten(_plain(new)))
    missing = object()
    diffs = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            fa = "(unset)" if va is missing else json.dumps(va)
            fb = "(unset)" if vb is missing else json.dumps(vb)
            diffs.append(f"{key}: {fa} -> {fb}")
    if not diffs:
        return ""
    more = f", and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def _check_finished_runs(specs: list[RunSpec], out_dir: Path) -> None:
    """Refuse to mix results: a finished run must have been made with this run's config.

    Checked for every run before any training, so that a sweep edited between invocations fails
    at once instead of after hours of training the runs that come first.
    """
    bad: list[tuple[RunSpec, str]] = []
    for spec in specs:
        run_dir = out_dir / spec.run_id
        status, _ = read_status(run_dir)
        if status not in FINISHED_STATUSES:
            continue
        try:
            stored = read_json(run_dir / "spec.json")
        except (OSError, ValueError):
            stored = None
        if not isinstance(stored, dict) or "config_hash" not in stored:
            bad.append((spec, "it has no readable spec.json, so its config cannot be checked"))
        elif stored["config_hash"] != spec.config_hash:
            diff = _config_diff(stored.get("config"), spec.config)
            bad.append((spec, diff))
    if not bad:
        return
    spec, detail = bad[0]
    n = len(bad) - 1
    others = f" (and {n} other run{'s' if n > 1 else ''})" if n else ""
    detail = f" ({detail})" if detail else ""
    raise UserError(
        f"run {spec.run_id}{others} in '{out_dir}' was finished with a different config{detail}; "
        "use another --out or delete that run folder"
    )


def run_state(spec: RunSpec, out_dir: Path) -> str:
    """What a sweep would do with ``spec`` in ``out_dir``: ``done`` (finished with this config, kept),
    ``stale`` (finished with another config: refused), ``failed`` (redone) or ``pending``."""
    run_dir = Path(out_dir) / spec.run_id
    status, _ = read_status(run_dir)
    if status not in FINISHED_STATUSES:
        return "failed" if status == "failed" else "pending"
    try:
        stored = read_json(run_dir / "spec.json")
    except (OSError, ValueError):
        stored = None
    same = isinstance(stored, dict) and stored.get("config_hash") == spec.config_hash
    return "done" if same else "stale"


def _runs_entry(s: RunSpec) -> dict:
    return {"run_id": s.run_id, "group": s.group, "seed": s.seed, "budget_label": s.budget_label,
            "variant": s.variant, "config_hash": s.config_hash}


def _merge_definition(sweep: Sweep, out_dir: Path, add_to_existing: bool) -> tuple[list, list]:
    """(runs, earlier definitions) for sweep.json. A folder made by another sweep definition gets
    new or changed runs only with ``add_to_existing``; otherwise a one-line refusal."""
    try:
        old = read_json(out_dir / "sweep.json")
    except (OSError, ValueError):
        old = None
    new_runs = [_runs_entry(s) for s in sweep.specs]
    if not isinstance(old, dict) or not isinstance(old.get("runs"), list):
        return new_runs, []
    known = {r.get("run_id"): r.get("config_hash") for r in old["runs"] if isinstance(r, dict)}
    # A new run id, or a changed config of a run that has not failed (fixing a failed run's config
    # and redoing it is a repair, not a new definition).
    added = [r["run_id"] for r in new_runs if r["run_id"] not in known or (
        known[r["run_id"]] != r["config_hash"] and read_status(out_dir / r["run_id"])[0] != "failed")]
    renamed = old.get("name") != sweep.name
    if (added or renamed) and not add_to_existing:
        what = f"adds or changes run{'s' if len(added) > 1 else ''} {', '.join(added[:3])}" + \
            (f" and {len(added) - 3} more" if len(added) > 3 else "") if added else f"is named '{sweep.name}'"
        raise UserError(f"results folder '{out_dir}' was made by sweep '{old.get('name')}' and this sweep {what}: "
                        "pass --add-to-existing to add them to it, or choose another --out")
    ids = {r["run_id"] for r in new_runs}
    kept = [r for r in old["runs"] if isinstance(r, dict) and r.get("run_id") not in ids]
    earlier = list(old.get("definitions") or []) + ([old.get("source")] if added or renamed else [])
    return kept + new_runs, earlier


def _clear(run_dir: Path) -> None:
    """Empty ``run_dir`` (an interrupted or failed run starts again from nothing)."""
    if run_dir.is_symlink() or run_dir.is_file():
        run_dir.unlink()
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)  # already one line, written for users
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _failed_summary(spec: RunSpec, error: str, train_time_s: float) -> dict:
    """The summary of a run whose training function raised (the one schema, status failed)."""
    from ..schema import RunSummary

    return _plain(RunSummary.failed(error, spec, spec.config, train_time_s=round(train_time_s, 3)).to_dict())


def _log(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _fmt_time(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min"


# ----------------------------------------------------------------------------- the sweep


def _run_one(spec: RunSpec, run_dir: Path, train_fn: Callable[[dict, Path], dict]) -> str:
    """Train one run from an empty folder; return its final status. Exceptions become ``failed``."""
    _clear(run_dir)
    atomic_write_json(
        run_dir / "spec.json",
        {
            "run_id": spec.run_id,
            "group": spec.group,
            "seed": spec.seed,
            "budget_label": spec.budget_label,
            "variant": spec.variant,
            "config": _plain(spec.config),
            "config_hash": spec.config_hash,
        },
    )
    t0 = time.perf_counter()
    try:
        returned = train_fn(spec, run_dir)
    except Exception as e:  # KeyboardInterrupt/SystemExit stop the sweep: they are not failures
        # The sweep goes on, so the traceback would scroll away: keep it next to the summary.
        atomic_write_text(run_dir / "error.log", traceback.format_exc())
        atomic_write_json(
            run_dir / "summary.json", _failed_summary(spec, _one_line(e), time.perf_counter() - t0)
        )
        return "failed"
    status, _ = read_status(run_dir)
    if status is None:
        # The training function must write summary.json itself. If it only returned one, keep
        # that (so the run is not redone next time); otherwise record the contract breach.
        if isinstance(returned, dict) and returned.get("status") in _STATUSES:
            atomic_write_json(run_dir / "summary.json", _plain(returned))
            status = returned["status"]
        else:
            status = "failed"
            atomic_write_json(
                run_dir / "summary.json",
                _failed_summary(
                    spec,
                    "the training function returned without writing summary.json",
                    time.perf_counter() - t0,
                ),
            )
    return status


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    train_fn: Callable[[dict, Path], dict],
    progress: bool = True,
    add_to_existing: bool = False,
) -> SweepResult:
    """Run every spec of ``sweep`` into ``out_dir``, skipping runs that already finished.

    ``train_fn(spec, run_dir)`` trains one run (``spec.config`` is its training config; the
    spec's run id, group, variant and budget label are bookkeeping for the summary), writes ``run_dir/summary.json`` atomically
    and returns the summary. An exception from it marks that run ``failed`` (with the message in
    its summary and the traceback in ``error.log``) and the sweep moves on; Ctrl-C stops the
    sweep, and running the same command again resumes it.

    Raises :class:`UserError` when another process holds the folder, when a finished run in
    the folder was made with a different config (checked for all runs before training any), or
    when the folder was made by another sweep definition and ``add_to_existing`` is not set.
    ``sweep.json`` lists the runs of every definition the folder holds and, under
    ``definitions``, the earlier sweep files.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out '{out_dir}' is a file; choose a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create results folder '{out_dir}': {e.strerror or e}") from None

    result = SweepResult(out_dir=out_dir)
    total = len(sweep.specs)
    with sweep_lock(out_dir):
        _check_finished_runs(sweep.specs, out_dir)
        runs, earlier = _merge_definition(sweep, out_dir, add_to_existing)
        atomic_write_json(
            out_dir / "sweep.json",
            {
                "name": sweep.name,
                "compare_to_paper": sweep.compare_to_paper,
                "report": sweep.report,
                "source": _plain(sweep.source),
                "definitions": _plain(earlier),
                "runs": runs,
                "time": _now(),
            },
        )
        sweep_t0 = time.perf_counter()
        for i, spec in enumerate(sweep.specs, start=1):
            tag = f"[run {i}/{total}] {spec.run_id}"
            run_dir = out_dir / spec.run_id
            status, _ = read_status(run_dir)
            if status in FINISHED_STATUSES:
                result.skipped.append(spec.run_id)
                result.statuses[spec.run_id] = status
                _log(progress, f"{tag} skipped ({status})")
                continue
            # A start line of its own: the trainer prints its own progress while the run goes.
            _log(progress, f"{tag} ...")
            t0 = time.perf_counter()
            try:
                status = _run_one(spec, run_dir, train_fn)
            except KeyboardInterrupt:
                _log(progress, f"{tag} interrupted; run the same command again to resume")
                raise
            result.ran.append(spec.run_id)
            result.statuses[spec.run_id] = status
            line = f"{tag} {status} ({_fmt_time(time.perf_counter() - t0)})"
            if status == "failed":
                s = read_status(run_dir)[1] or {}
                line += f": {s.get('error')}"
            _log(progress, line)
            # Drop the previous run's model and optimiser before building the next one.
            gc.collect()
        counts = ", ".join(f"{n} {s}" for s, n in result.counts.items() if n)
        _log(
            progress,
            f"sweep '{sweep.name}': {len(result.ran)} ran, {len(result.skipped)} skipped "
            f"({counts}) in {_fmt_time(time.perf_counter() - sweep_t0)} -> {out_dir}",
        )
    return result
