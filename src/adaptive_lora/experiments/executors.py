"""Where the runs of a sweep execute: one after another in this process, or as Ray tasks.

Both executors call the same :func:`claims.execute` for each run, so a run is claimed, logged in
``attempts.jsonl`` and retried the same way whatever executes it. A run claimed by another live
process (a ``run --worker``, a second driver's task) is left to it: the driver waits for its
summary, taking the run over if the claim goes stale; a worker moves on.

Ray (``pip install adaptive-lora[ray]``) is imported only by :class:`RayExecutor`.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .claims import (CLAIM_NAME, FINISHED_STATUSES, ExecOptions, Outcome, crashed_attempts, died_reason, execute,
                     mark_failed, read_status)
from .sweep import RunSpec

__all__ = ["LocalExecutor", "RayExecutor", "Reporter", "RAY_INSTALL_HINT"]

RAY_INSTALL_HINT = "--executor ray needs Ray: pip install 'adaptive-lora[ray]' (or pip install 'ray>=2.9')"
# How often a driver looks again at runs that another process holds.
_WAIT_POLL_S = 1.0


def fmt_time(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min"


@dataclass
class Reporter:
    """Progress lines and the tally of a sweep: ``result`` is the runner's SweepResult."""

    result: object
    total: int
    progress: bool = True

    def log(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    def tag(self, i: int, spec: RunSpec) -> str:
        return f"[run {i}/{self.total}] {spec.run_id}"

    def record(self, i: int, spec: RunSpec, outcome: Outcome, seconds: float | None = None) -> None:
        (self.result.ran if outcome.ran else self.result.skipped).append(spec.run_id)
        self.result.statuses[spec.run_id] = outcome.status
        if not outcome.ran and outcome.status in FINISHED_STATUSES and seconds is None:
            self.log(f"{self.tag(i, spec)} skipped ({outcome.status})")
            return
        line = f"{self.tag(i, spec)} {outcome.status}" + (f" ({fmt_time(seconds)})" if seconds is not None else "")
        if outcome.status == "failed" and outcome.error:
            line += f": {outcome.error}"
        self.log(line)


# ----------------------------------------------------------------------------- local


@dataclass
class LocalExecutor:
    """Runs in this process, in sweep order. ``wait_for_others``: a driver waits for runs that
    other processes hold (and takes them over if their claim goes stale); a worker does not."""

    wait_for_others: bool = True

    def run(self, specs: list[RunSpec], out_dir: Path, train_fn: Callable, options: ExecOptions,
            rep: Reporter) -> None:
        held: list[tuple[int, RunSpec]] = []
        for i, spec in enumerate(specs, start=1):
            if not self._one(i, spec, out_dir, train_fn, options, rep):
                held.append((i, spec))
                rep.log(f"{rep.tag(i, spec)} claimed by {_holder(out_dir, spec)}; "
                        + ("waiting for it at the end" if self.wait_for_others else "left to it"))
        while held and self.wait_for_others:
            time.sleep(_WAIT_POLL_S)
            held = [(i, s) for i, s in held if self._still_held(out_dir, s, options)
                    or not self._one(i, s, out_dir, train_fn, options, rep)]

    @staticmethod
    def _still_held(out_dir: Path, spec: RunSpec, options: ExecOptions) -> bool:
        from ..keylock import is_held

        status, _ = read_status(out_dir / spec.run_id)
        return status is None and is_held(out_dir / spec.run_id / CLAIM_NAME, options.stale_after_s)

    @staticmethod
    def _one(i: int, spec: RunSpec, out_dir: Path, train_fn: Callable, options: ExecOptions, rep: Reporter) -> bool:
        """Execute one run; False when another process holds it."""
        status, _ = read_status(out_dir / spec.run_id)
        if status in FINISHED_STATUSES:
            rep.record(i, spec, Outcome(status))
            return True
        rep.log(f"{rep.tag(i, spec)} ...")  # the trainer prints its own progress while the run goes
        t0 = time.perf_counter()
        try:
            outcome = execute(spec, out_dir, train_fn, options)
        except KeyboardInterrupt:
            rep.log(f"{rep.tag(i, spec)} interrupted; run the same command again to resume")
            raise
        if outcome.status is None:
            return False
        rep.record(i, spec, outcome, time.perf_counter() - t0 if outcome.ran else None)
        gc.collect()  # drop the previous run's model and optimiser before building the next one
        return True


def _holder(out_dir: Path, spec: RunSpec) -> str:
    from ..keylock import claim_info

    info = claim_info(out_dir / spec.run_id / CLAIM_NAME) or {}
    return f"worker {info.get('worker', '?')} on {info.get('host', '?')}"


# ----------------------------------------------------------------------------- ray


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError(RAY_INSTALL_HINT) from None
    return ray


def _ray_task(spec: RunSpec, out_dir: str, train_fn: Callable, options: ExecOptions) -> Outcome:
    """The body of one Ray task: the same claimed execution as the local executor, in a fresh
    worker process (``max_calls=1``), so the run's memory, GPU memory included, is freed at its end."""
    return execute(spec, Path(out_dir), train_fn, options)


@dataclass
class RayExecutor:
    """One Ray task per pending run, at most ``max_concurrent`` at a time (None: as many as the
    cluster's resources allow). Retries are ours, not Ray's (``max_retries=0`` on the task), so
    the limit and the reason written into a failed run are the sweep's own."""

    address: str | None = None  # None: start a local Ray instance; "auto": join a running cluster
    gpus_per_run: float | None = None  # None: 1 when the cluster has a GPU, else 0
    cpus_per_run: float = 1.0
    max_concurrent: int | None = None
    runtime_env: dict | None = None

    def __post_init__(self):
        if (self.gpus_per_run or 0) < 0 or self.cpus_per_run <= 0:
            raise UserError("--gpus-per-run must be >= 0 and --cpus-per-run > 0 (fractions are allowed, e.g. 0.5)")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UserError("--max-concurrent must be at least 1")

    def _connect(self, ray) -> bool:
        """Initialise Ray unless it already is; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        env = dict(self.runtime_env or {})
        # Workers must import the same adaptive_lora as the driver: a source checkout goes on their
        # PYTHONPATH (an installed copy is found by their own interpreter; its site-packages folder
        # must not shadow theirs).
        pkg_root = Path(__file__).resolve().parents[2]
        paths = [str(pkg_root)] if pkg_root.name not in ("site-packages", "dist-packages") else []
        paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env_vars = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **env.get("env_vars", {})}
        kwargs = {"include_dashboard": False, "log_to_driver": True, "runtime_env": {**env, "env_vars": env_vars}}
        ray.init(address=self.address, **kwargs)
        return True

    def run(self, specs: list[RunSpec], out_dir: Path, train_fn: Callable, options: ExecOptions,
            rep: Reporter) -> None:
        ray = _ray()
        started = self._connect(ray)
        inflight: dict = {}
        try:
            self._run(ray, specs, out_dir, train_fn, options, rep, inflight)
        except KeyboardInterrupt:
            self._interrupted(ray, inflight, out_dir, rep)
            raise
        finally:
            if started:
                ray.shutdown()

    @staticmethod
    def _interrupted(ray, inflight: dict, out_dir: Path, rep: Reporter) -> None:
        """Ctrl-C (or SIGTERM) of the driver: stop the tasks and close their attempts as
        interrupted, so a stopped sweep does not count against any run's max_retries."""
        from .._io import append_jsonl
        from .claims import ATTEMPTS_NAME

        for ref, (spec, _t0, worker) in inflight.items():
            ray.cancel(ref, force=True)
            run_dir = out_dir / spec.run_id
            if (run_dir / ATTEMPTS_NAME).is_file():
                append_jsonl(run_dir / ATTEMPTS_NAME, {"event": "interrupted", "worker": worker})
            claim = run_dir / CLAIM_NAME
            from ..keylock import claim_info

            if (claim_info(claim) or {}).get("worker") == worker:
                claim.unlink(missing_ok=True)
            rep.log(f"{spec.run_id} interrupted; run the same command again to resume")

    def _run(self, ray, specs, out_dir, train_fn, options, rep, inflight: dict) -> None:
        gpus = self.gpus_per_run
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=gpus, max_retries=0, max_calls=1)(_ray_task)
        index = {s.run_id: i for i, s in enumerate(specs, start=1)}
        queue = self._unpark(list(specs), out_dir, index, rep)  # finished runs recorded, the rest queued
        cap = self.max_concurrent or len(queue) or 1
        # inflight: object ref -> (spec, start time, submitted attempt's worker id)
        crashes: dict[str, list[str]] = {}
        parked: list[RunSpec] = []  # held by a process outside this sweep (a worker): not submitted
        announced: set[str] = set()
        while queue or inflight or parked:
            if not queue and not inflight:
                time.sleep(_WAIT_POLL_S)
                queue, parked = self._unpark(parked, out_dir, index, rep), []
            while queue and len(inflight) < cap:
                spec = queue.pop(0)
                if LocalExecutor._still_held(out_dir, spec, options):
                    if spec.run_id not in announced:
                        announced.add(spec.run_id)
                        rep.log(f"{rep.tag(index[spec.run_id], spec)} claimed by {_holder(out_dir, spec)}; waiting")
                    parked.append(spec)
                    continue
                worker = f"ray:{options.worker_id}:{spec.run_id}:{len(crashes.get(spec.run_id, [])) + 1}"
                opts = ExecOptions(options.max_retries, options.heartbeat_s, options.stale_after_s, worker)
                rep.log(f"{rep.tag(index[spec.run_id], spec)} submitted")
                inflight[task.remote(spec, str(out_dir), train_fn, opts)] = (spec, time.perf_counter(), worker)
            if not inflight:
                continue
            done, _ = ray.wait(list(inflight), num_returns=1)
            spec, t0, worker = inflight.pop(done[0])
            i = index[spec.run_id]
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as e:
                again = self._crashed(spec, out_dir, worker, e, crashes, options, rep, i)
                if again:
                    queue.insert(0, spec)
                continue
            if outcome.status is None:  # claimed by another process between our look and the task's
                parked.append(spec)
                continue
            rep.record(i, spec, outcome, time.perf_counter() - t0 if outcome.ran else None)
            queue += self._unpark(parked, out_dir, index, rep)
            parked = []

    @staticmethod
    def _unpark(parked: list[RunSpec], out_dir: Path, index: dict, rep: Reporter) -> list[RunSpec]:
        """Record the parked runs their holder finished; return the others, to look at again."""
        again = []
        for spec in parked:
            status, _ = read_status(out_dir / spec.run_id)
            if status in FINISHED_STATUSES:
                rep.record(index[spec.run_id], spec, Outcome(status))
            else:
                again.append(spec)
        return again

    @staticmethod
    def _crashed(spec, out_dir, worker, exc, crashes, options, rep, i) -> bool:
        """A task's process died: free its claim, then retry or give up. True: retry."""
        from ..keylock import claim_info

        reason = " ".join(str(exc).split())[:300]
        crashes.setdefault(spec.run_id, []).append(reason)
        claim = out_dir / spec.run_id / CLAIM_NAME
        if (claim_info(claim) or {}).get("worker") == worker:
            claim.unlink(missing_ok=True)  # its holder is dead: Ray said so, no need to wait for staleness
        n = len(crashes[spec.run_id])
        if n <= options.max_retries:
            rep.log(f"{rep.tag(i, spec)} worker died ({type(exc).__name__}); retry {n} of {options.max_retries}")
            return True
        run_dir = out_dir / spec.run_id
        msg = died_reason(crashed_attempts(run_dir) or [{"worker": worker}], options.max_retries,
                          f"Ray: {type(exc).__name__}")
        mark_failed(spec, run_dir, msg)
        rep.record(i, spec, Outcome("failed", error=msg))
        return False


# ----------------------------------------------------------------------------- accelerate launch


@dataclass
class MultiProcessExecutor:
    """The processes of one ``accelerate launch ... run`` train each run together, in sweep order.

    Only the main process looks at the folder and claims runs; its decision for each run (train,
    skip as finished, leave to another holder) is sent to the others with ``broadcast(obj) -> obj``
    (e.g. accelerate's ``broadcast_object_list``), so every process enters the same trainings.
    """

    main: bool
    broadcast: Callable[[object], object]

    def run(self, specs: list[RunSpec], out_dir: Path, train_fn: Callable, options: ExecOptions,
            rep: Reporter) -> None:
        from ..keylock import Claim
        from .claims import _attempt, train_in_follower

        for i, spec in enumerate(specs, start=1):
            run_dir = out_dir / spec.run_id
            decision, claim = None, None
            if self.main:
                decision, claim = self._decide(spec, run_dir, options, Claim)
            decision = self.broadcast(decision)
            what, status = decision
            if what != "train":
                if claim is not None:
                    claim.release()
                if what == "held":
                    rep.log(f"{rep.tag(i, spec)} claimed by {_holder(out_dir, spec)}; left to it")
                else:
                    rep.record(i, spec, Outcome(status))
                continue
            if not self.main:
                train_in_follower(spec, run_dir, train_fn)
                continue
            rep.log(f"{rep.tag(i, spec)} ...")
            t0 = time.perf_counter()
            try:
                outcome = _attempt(spec, run_dir, train_fn, options, claim)
            finally:
                claim.release()
            rep.record(i, spec, outcome, time.perf_counter() - t0)
        self._leave_together()

    def _leave_together(self) -> None:
        """One last collective, then close the group: a process that exits while its group is open
        can abort a peer still inside it ("terminate called without an active exception")."""
        self.broadcast(None)
        close_process_group()

    @staticmethod
    def _decide(spec, run_dir, options, claim_cls):
        status, _ = read_status(run_dir)
        if status in FINISHED_STATUSES:
            return ("skip", status), None
        run_dir.mkdir(parents=True, exist_ok=True)
        claim = claim_cls(run_dir / CLAIM_NAME, {"run_id": spec.run_id, "worker": options.worker_id},
                          options.heartbeat_s, options.stale_after_s)
        if not claim.acquire():
            return ("held", None), None
        crashes = crashed_attempts(run_dir)
        if len(crashes) > options.max_retries:
            mark_failed(spec, run_dir, died_reason(crashes, options.max_retries))
            return ("skip", "failed"), claim
        return ("train", None), claim


def close_process_group() -> bool:
    """Leave the ``torch.distributed`` group together (a barrier), then destroy it; False when no
    group is open. A process that exits while its group is open can abort a peer still inside it
    ("terminate called without an active exception")."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.barrier()
    dist.destroy_process_group()
    return True
