"""One run of a sweep, executed under a claim so that it never runs twice at once.

Files a run folder gains for this (beside those of docs/ARCHITECTURE.md)::

    <run_id>/claim.json       exists while a process trains the run: host, pid, worker, attempt,
                              claimed_at; touched every heartbeat_s (see ``keylock.Claim``)
    <run_id>/attempts.jsonl   one {"event": "start", ...} line per execution and one closing line
                              ({"event": "end", "status": ...}, "interrupted" or "gave_up");
                              a start with no closing line is an execution whose process died

The claim, not the sweep lock, is what makes a run exclusive: a driver, its Ray tasks and any
number of ``run --worker`` processes can share a folder, each run executing in one of them.
A claim left by a dead process is taken over: at once when the holder was a process of this
machine that no longer exists, otherwise once its heartbeat is ``stale_after_s`` old.

Retries: a run whose earlier executions died (starts without a closing line) is executed again,
resuming from its ``checkpoints/`` when ``train`` left one, up to ``max_retries`` times; then it
is marked ``failed`` with the reason and the sweep goes on. An exception from the training
function is a result (``failed``), not a crash, and is not retried within a sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .._io import append_jsonl, atomic_write_json, atomic_write_text, iter_jsonl, jsonable, read_json
from ..errors import UserError
from ..keylock import DEFAULT_HEARTBEAT_S, DEFAULT_STALE_AFTER_S, Claim
from ..schema import STATUSES
from .sweep import RunSpec

__all__ = ["ExecOptions", "Outcome", "execute", "read_status", "FINISHED_STATUSES", "STATUSES", "crashed_attempts",
           "mark_failed", "CLAIM_NAME", "ATTEMPTS_NAME", "KEEP_ON_RETRY"]

# Statuses of a run that is done for good; "failed" is retried on the next invocation.
FINISHED_STATUSES = ("completed", "diverged")
CLAIM_NAME = "claim.json"
ATTEMPTS_NAME = "attempts.jsonl"
# What survives the clearing of an unfinished run besides the claim and the log of executions:
# the mid-run checkpoints a resumed ``train`` continues from (only when the config is the same).
KEEP_ON_RETRY = ("checkpoints",)


@dataclass(frozen=True)
class ExecOptions:
    """How runs are claimed and retried (sweep-level settings, not part of any run's config)."""

    max_retries: int = 1  # executions after the first whose process died; 1: one crash is forgiven
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def __post_init__(self):
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise UserError(f"max_retries must be a non-negative integer, got {self.max_retries!r}")
        if not 0 < self.heartbeat_s < self.stale_after_s:
            raise UserError(f"the heartbeat ({self.heartbeat_s} s) must be positive and shorter than the stale "
                            f"limit ({self.stale_after_s} s)")


@dataclass(frozen=True)
class Outcome:
    """``status`` of the run after :func:`execute`; ``ran``: it trained in this call. ``status`` is
    None when another live process holds the run's claim."""

    status: str | None
    ran: bool = False
    error: str | None = None


# ----------------------------------------------------------------------------- folder helpers


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plain(obj: Any) -> Any:
    """A JSON-safe copy: NaN/Inf as strings (like every result file), other odd values as str()."""
    return json.loads(json.dumps(jsonable(obj), default=str))


def read_status(run_dir: Path) -> tuple[str | None, dict | None]:
    """``(status, summary)`` of a run folder; ``(None, None)`` when there is no usable summary."""
    path = Path(run_dir) / "summary.json"
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


def _stored_hash(run_dir: Path) -> str | None:
    try:
        stored = read_json(run_dir / "spec.json")
    except (OSError, ValueError):
        return None
    return stored.get("config_hash") if isinstance(stored, dict) else None


def clear_run_dir(run_dir: Path, config_hash: str) -> None:
    """Empty ``run_dir`` for a new execution; keep :data:`KEEP_ON_RETRY` when the folder was made
    with this very config (checkpoints of another config must not be resumed)."""
    if run_dir.is_symlink() or run_dir.is_file():
        run_dir.unlink()
    same = run_dir.is_dir() and _stored_hash(run_dir) == config_hash
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            if p.name in (CLAIM_NAME, ATTEMPTS_NAME) or p.name.startswith(CLAIM_NAME + ".") or (
                    same and p.name in KEEP_ON_RETRY):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)  # already one line, written for users
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _failed_summary(spec: RunSpec, error: str, train_time_s: float) -> dict:
    """The summary of a run that did not finish (the one schema, status failed)."""
    from ..schema import RunSummary

    return plain(RunSummary.failed(error, spec, spec.config, train_time_s=round(train_time_s, 3)).to_dict())


def _write_spec(spec: RunSpec, run_dir: Path) -> None:
    atomic_write_json(run_dir / "spec.json", {
        "run_id": spec.run_id, "group": spec.group, "seed": spec.seed, "budget_label": spec.budget_label,
        "variant": spec.variant, "config": plain(spec.config), "config_hash": spec.config_hash,
    })


def _reset_cuda_peak() -> None:
    # A process that trains several runs would otherwise report the largest run's peak for all
    # that follow. torch is only looked up, never imported: this stage must not need it.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


# ----------------------------------------------------------------------------- attempts


def _attempts(run_dir: Path) -> list[dict]:
    path = run_dir / ATTEMPTS_NAME
    return list(iter_jsonl(path)) if path.is_file() else []


def crashed_attempts(run_dir: Path) -> list[dict]:
    """The start lines after the last closing line: executions whose process died."""
    out: list[dict] = []
    for row in _attempts(run_dir):
        out = out + [row] if row.get("event") == "start" else []
    return out


def mark_failed(spec: RunSpec, run_dir: Path, reason: str) -> None:
    """Give up on a run: a failed summary with ``reason``, and a closing line in attempts.jsonl."""
    if _stored_hash(run_dir) != spec.config_hash:
        _write_spec(spec, run_dir)
    atomic_write_json(run_dir / "summary.json", _failed_summary(spec, reason, 0.0))
    append_jsonl(run_dir / ATTEMPTS_NAME, {"event": "gave_up", "reason": reason, "time": _now()})


def died_reason(crashes: list[dict], max_retries: int, detail: str = "") -> str:
    last = crashes[-1] if crashes else {}
    n = len(crashes)
    return (f"its process died {n} time{'s' if n != 1 else ''} (last: worker {last.get('worker')} on "
            f"{last.get('host')}{'; ' + detail if detail else ''}) and max_retries is {max_retries}: fix the "
            "cause (e.g. memory) and run the sweep again, or raise --max-retries")


# ----------------------------------------------------------------------------- execution


def train_in(spec: RunSpec, run_dir: Path, train_fn: Callable) -> str:
    """Train one run into a cleared folder; return its final status. Exceptions become ``failed``."""
    clear_run_dir(run_dir, spec.config_hash)
    _write_spec(spec, run_dir)
    t0 = time.perf_counter()
    try:
        returned = train_fn(spec, run_dir)
    except Exception as e:  # KeyboardInterrupt/SystemExit stop the sweep: they are not failures
        # The sweep goes on, so the traceback would scroll away: keep it next to the summary.
        atomic_write_text(run_dir / "error.log", traceback.format_exc())
        atomic_write_json(run_dir / "summary.json", _failed_summary(spec, one_line(e), time.perf_counter() - t0))
        return "failed"
    status, _ = read_status(run_dir)
    if status is not None:
        return status
    # The training function must write summary.json itself. If it only returned one, keep that
    # (so the run is not redone next time); otherwise record the contract breach.
    if isinstance(returned, dict) and returned.get("status") in STATUSES:
        atomic_write_json(run_dir / "summary.json", plain(returned))
        return returned["status"]
    atomic_write_json(run_dir / "summary.json", _failed_summary(
        spec, "the training function returned without writing summary.json", time.perf_counter() - t0))
    return "failed"


def execute(spec: RunSpec, out_dir: Path, train_fn: Callable, options: ExecOptions) -> Outcome:
    """Claim ``spec``'s run, train it unless it finished meanwhile or its process died too often
    (then mark it failed), release the claim. ``Outcome(None)``: another live process holds it."""
    run_dir = Path(out_dir) / spec.run_id
    status, _ = read_status(run_dir)
    if status in FINISHED_STATUSES:
        return Outcome(status)
    run_dir.mkdir(parents=True, exist_ok=True)
    claim = Claim(run_dir / CLAIM_NAME, {"run_id": spec.run_id, "worker": options.worker_id},
                  options.heartbeat_s, options.stale_after_s)
    if not claim.acquire():
        return Outcome(None)
    try:
        status, _ = read_status(run_dir)
        if status in FINISHED_STATUSES:  # finished by another process between our look and our claim
            return Outcome(status)
        crashes = crashed_attempts(run_dir)
        if len(crashes) > options.max_retries:
            reason = died_reason(crashes, options.max_retries)
            mark_failed(spec, run_dir, reason)
            return Outcome("failed", error=reason)
        return _attempt(spec, run_dir, train_fn, options, claim)
    finally:
        claim.release()


def _attempt(spec: RunSpec, run_dir: Path, train_fn: Callable, options: ExecOptions, claim: Claim) -> Outcome:
    start = {"event": "start", "attempt": sum(1 for r in _attempts(run_dir) if r.get("event") == "start") + 1,
             "worker": options.worker_id, "host": socket.gethostname(), "pid": os.getpid(), "started": _now()}
    if claim.took_over:
        start["took_over_from"] = {k: claim.took_over.get(k) for k in ("worker", "host", "pid")}
    append_jsonl(run_dir / ATTEMPTS_NAME, start)
    _reset_cuda_peak()
    try:
        status = train_in(spec, run_dir, train_fn)
    except BaseException:
        # Ctrl-C or SystemExit: not a crash to count against max_retries.
        append_jsonl(run_dir / ATTEMPTS_NAME, {"event": "interrupted", "attempt": start["attempt"], "time": _now()})
        raise
    append_jsonl(run_dir / ATTEMPTS_NAME, {"event": "end", "attempt": start["attempt"], "status": status,
                                           "time": _now()})
    error = (read_status(run_dir)[1] or {}).get("error") if status == "failed" else None
    return Outcome(status, ran=True, error=error)


def train_in_follower(spec: RunSpec, run_dir: Path, train_fn: Callable) -> str:
    """A non-main process of a multi-process launch: train (the main process writes the files)."""
    try:
        train_fn(spec, run_dir)
    except Exception:
        return "failed"
    return read_status(run_dir)[0] or "failed"
