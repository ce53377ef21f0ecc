"""Run the specs of a sweep into one results folder, resumably, by one or many processes.

Layout of a sweep's results folder::

    <out>/.lock          flock'd while a driver ('run' without --worker) runs; holds its pid
    <out>/sweep.json     the sweep as run: name, source YAML, run ids, time
    <out>/plans/         probe results, one file per input key (computed once, see keylock)
    <out>/base_evals/    step-0 evaluations, one file per input key (computed once)
    <out>/<run_id>/      one folder per run (see docs/ARCHITECTURE.md)
        spec.json        run_id, config, config_hash (written before training starts)
        summary.json     written once at the end: its presence means the run finished
        claim.json       while a process trains it; attempts.jsonl: one line per execution

Resume rule: a run whose ``summary.json`` says ``completed`` or ``diverged`` is finished and is
never touched again (a divergence is a reproducible result, not an accident). Anything else (no
summary: the process was killed; ``failed``: an exception) is executed again from an emptied
folder that keeps only its ``checkpoints/`` (from which ``train`` resumes) and its claim and
attempts log (see :mod:`.claims`).

Who may run: one driver per folder (the flock: a second 'run' is refused), and any number of
``run --worker`` processes, which do not take the flock; every run is claimed by whoever
executes it, so driver and workers never execute a run twice at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .._io import atomic_write_json, read_json
from ..errors import UserError
from ..keylock import Claim
from .claims import FINISHED_STATUSES, STATUSES, ExecOptions, _now, plain as _plain, read_status
from .executors import LocalExecutor, MultiProcessExecutor, Reporter, fmt_time
from .sweep import RunSpec, Sweep

__all__ = ["SweepResult", "run_sweep", "run_worker", "FINISHED_STATUSES", "sweep_lock", "read_status", "run_state"]

LOCK_NAME = ".lock"
# sweep.json is rewritten by the driver and by every worker that starts: one at a time.
_DEFINITION_LOCK = ".sweep.json.lock"


@dataclass
class SweepResult:
    """What a sweep did: runs trained now, runs skipped as finished, status of each."""

    out_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)

    @property
    def counts(self) -> dict[str, int]:
        """Number of runs per status, e.g. ``{"completed": 8, "diverged": 1, "failed": 0}``."""
        out = {s: 0 for s in STATUSES}
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


def _results_folder(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out '{out_dir}' is a file; choose a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create results folder '{out_dir}': {e.strerror or e}") from None
    return out_dir


@contextlib.contextmanager
def _definition_lock(out_dir: Path, options: ExecOptions):
    """Exclusive (claim-file) lock for reading and rewriting sweep.json; waits for its holder."""
    lock = Claim(out_dir / _DEFINITION_LOCK, {"what": "sweep.json"}, options.heartbeat_s, options.stale_after_s)
    while not lock.acquire():
        time.sleep(0.1)
    try:
        yield
    finally:
        lock.release()


def prepare_folder(sweep: Sweep, out_dir: Path, add_to_existing: bool, options: ExecOptions) -> None:
    """Refuse mixed results, then record the sweep's definition in sweep.json."""
    with _definition_lock(out_dir, options):
        _check_finished_runs(sweep.specs, out_dir)
        runs, earlier = _merge_definition(sweep, out_dir, add_to_existing)
        atomic_write_json(out_dir / "sweep.json", {
            "name": sweep.name, "compare_to_paper": sweep.compare_to_paper, "report": sweep.report,
            "source": _plain(sweep.source), "definitions": _plain(earlier), "runs": runs, "time": _now(),
        })


def select(sweep: Sweep, only: str | None) -> list[RunSpec]:
    """The specs to execute: all, or the one named by ``--only``."""
    if only is None:
        return list(sweep.specs)
    chosen = [s for s in sweep.specs if s.run_id == only]
    if not chosen:
        ids = ", ".join(s.run_id for s in sweep.specs[:5]) + (", ..." if len(sweep.specs) > 5 else "")
        raise UserError(f"--only {only}: sweep '{sweep.name}' has no run with that id (its runs: {ids})")
    return chosen


def _process_rank() -> tuple[int, int]:
    """(rank, world size) of this process under ``accelerate launch``/torchrun; (0, 1) alone."""
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    train_fn: Callable,
    progress: bool = True,
    add_to_existing: bool = False,
    executor=None,
    options: ExecOptions | None = None,
    only: str | None = None,
) -> SweepResult:
    """Run every spec of ``sweep`` (or only the run ``only``) into ``out_dir``, skipping finished runs.

    ``train_fn(spec, run_dir)`` trains one run (``spec.config`` is its training config; the
    spec's run id, group, variant and budget label are bookkeeping for the summary), writes
    ``run_dir/summary.json`` atomically and returns the summary. An exception from it marks that
    run ``failed`` (message in its summary, traceback in ``error.log``) and the sweep moves on;
    Ctrl-C stops the sweep, and running the same command again resumes it.

    ``executor`` is where runs execute (default: :class:`LocalExecutor`, in this process, in
    order; :class:`RayExecutor`: Ray tasks); ``options`` the claim and retry settings.

    Raises :class:`UserError` when another driver holds the folder, when a finished run in the
    folder was made with a different config (checked for all runs before training any), or when
    the folder was made by another sweep definition and ``add_to_existing`` is not set.
    """
    out_dir = _results_folder(out_dir)
    options = options or ExecOptions()
    executor = executor or LocalExecutor()
    specs = select(sweep, only)
    rank, world = _process_rank()
    if world > 1 and not isinstance(executor, MultiProcessExecutor):
        raise UserError("under accelerate launch/torchrun, 'run' executes each run with all processes together: "
                        "use the local executor")
    if world > 1 and rank != 0:
        # Followers: no lock, no files; the main process decides and writes.
        result = SweepResult(out_dir=out_dir)
        executor.run(specs, out_dir, train_fn, options, Reporter(result, len(specs), False))
        return result
    with sweep_lock(out_dir):
        return _execute_all(sweep, specs, out_dir, train_fn, progress, add_to_existing, options, executor)


def run_worker(
    sweep: Sweep,
    out_dir: str | Path,
    train_fn: Callable,
    progress: bool = True,
    add_to_existing: bool = False,
    options: ExecOptions | None = None,
    only: str | None = None,
) -> SweepResult:
    """One of many processes sharing ``out_dir``: execute every run that is neither finished nor
    claimed by a live process, in sweep order, then return (runs held by others are left to them).

    Workers do not take the driver's flock (so they can run beside a driver and each other);
    claims keep each run to one process at a time. The report is left to ``adaptive-lora report``.
    """
    out_dir = _results_folder(out_dir)
    options = options or ExecOptions()
    specs = select(sweep, only)
    return _execute_all(sweep, specs, out_dir, train_fn, progress, add_to_existing, options,
                        LocalExecutor(wait_for_others=False))


def _execute_all(sweep, specs, out_dir, train_fn, progress, add_to_existing, options, executor) -> SweepResult:
    prepare_folder(sweep, out_dir, add_to_existing, options)
    result = SweepResult(out_dir=out_dir)
    rep = Reporter(result, len(specs), progress)
    t0 = time.perf_counter()
    executor.run(specs, out_dir, train_fn, options, rep)
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items() if n)
    rep.log(f"sweep '{sweep.name}': {len(result.ran)} ran, {len(result.skipped)} skipped "
            f"({counts}) in {fmt_time(time.perf_counter() - t0)} -> {out_dir}")
    return result
