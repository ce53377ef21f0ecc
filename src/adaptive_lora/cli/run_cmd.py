"""``adaptive-lora run CONFIG.yaml``: a resumable sweep, then the report."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

from ..errors import UserError


def preflight(cfg) -> None:
    """Cheap checks of the paths a run will read (kept for callers; :func:`check_sweep` does all)."""
    from ..layout.resolve import resolve_model

    resolve_model(cfg.input.model)  # a missing local folder or a malformed id fails here
    for what, value in (("plan_file", cfg.plan.plan_file), ("custom rank map", cfg.params.custom)):
        if isinstance(value, str) and not Path(value).expanduser().is_file():
            raise UserError(f"{what} '{value}' does not exist: fix the path")


def validate_run_config(config: dict) -> dict:
    from ..training import TrainConfig

    cfg = TrainConfig.from_dict(config)
    preflight(cfg)
    return cfg.to_dict()


def train_run(spec, run_dir: Path, base_eval_cache=None) -> dict:
    """Train one run of a sweep into ``run_dir``; ``base_eval_cache`` holds the sweep's step-0
    evaluations (see ``training.train``): a dict, or a ``keylock.FileCache`` shared by processes."""
    from ..training import RunMeta, TrainConfig, train

    config = spec.config
    # Probes of data-driven strategies are cached beside the runs, so seeds and resumed sweeps
    # reuse them; neither setting changes a run's result, so neither is part of its config hash.
    cache = config.get("plan_cache") or str(run_dir.parent / "plans")
    cfg = TrainConfig.from_dict({**config, "output_dir": str(run_dir), "plan_cache": cache})
    meta = RunMeta(spec.run_id, spec.group, spec.variant, spec.budget_label)
    try:
        return train(cfg, run_dir, meta, base_eval_cache=base_eval_cache)
    finally:
        # A run that failed before storing the step-0 evaluation it claimed frees it for the others.
        if hasattr(base_eval_cache, "release"):
            base_eval_cache.release()


def plan_sweep(sweep, strict: bool = False, checks=None) -> list[tuple]:
    """(spec, plan) for every run after every pre-training check (see ``cli/checks.py``), from
    each model's config alone (meta device, no weights); plan is None when the run sets its ranks.
    An error names the run."""
    from ..training import TrainConfig
    from .checks import RunChecks

    checks = checks or RunChecks(strict=strict)
    out = []
    for spec in sweep.specs:
        try:
            out.append((spec, checks.check(TrainConfig.from_dict(spec.config))))
        except UserError as e:
            raise UserError(f"run {spec.run_id}: {e}") from None
    return out


def dry_run(sweep, out: Path) -> int:
    from ..experiments.runner import run_state
    from .checks import RunChecks

    checks = RunChecks(strict=False)
    planned = plan_sweep(sweep, checks=checks)
    print(f"sweep {sweep.name}: {len(sweep.specs)} runs, every pre-training check passed (nothing trained); "
          f"results folder {out}")
    print(f"{'run':<36} {'state':<8} {'strategy':<18} {'planned params':>15} {'efficiency %':>13} {'mean rank':>10}")
    for spec, plan in planned:
        state = run_state(spec, out)
        if plan is None:
            name = spec.config.get("strategy") if spec.config.get("method") != "adalora" else "adalora"
            print(f"{spec.run_id:<36} {state:<8} {name:<18} {'(set in the run)':>15}")
            continue
        print(f"{spec.run_id:<36} {state:<8} {plan.strategy:<18} {plan.trainable_params:>15,} "
              f"{plan.efficiency_pct:>13.3f} {plan.mean_rank:>10.2f}")
    for note in checks.notes:
        print(f"note: {note}")
    return 0


# Exit codes of 'run' (README "Exit codes"): 0 every run completed, 3 some diverged (none failed),
# 4 some failed; 2 bad input before any training.
EXIT_DIVERGED, EXIT_FAILED = 3, 4


def sweep_exit(sweep_name: str, statuses: dict, out: Path) -> int:
    """Print one line naming the runs that did not complete; return the sweep's exit code."""
    by: dict = {}
    for run_id, status in statuses.items():
        by.setdefault(status, []).append(run_id)
    parts = [f"{len(by.get('completed', []))} completed"]
    for status in ("diverged", "failed"):
        if by.get(status):
            parts.append(f"{len(by[status])} {status} ({', '.join(by[status])})")
    print(f"sweep {sweep_name}: " + ", ".join(parts) + f"; results in {out}", file=sys.stderr)
    if by.get("failed"):
        return EXIT_FAILED
    return EXIT_DIVERGED if by.get("diverged") else 0


def exec_options(args, sweep):
    """Claim and retry settings: the flags, else the sweep file, else the defaults."""
    from ..experiments import ExecOptions
    from ..keylock import DEFAULT_HEARTBEAT_S, DEFAULT_STALE_AFTER_S

    retries = args.max_retries if getattr(args, "max_retries", None) is not None else sweep.max_retries
    heartbeat = getattr(args, "heartbeat_s", None) or DEFAULT_HEARTBEAT_S
    stale = getattr(args, "stale_after_s", None) or DEFAULT_STALE_AFTER_S
    if getattr(args, "heartbeat_s", None) and not getattr(args, "stale_after_s", None):
        stale = max(stale, 6 * heartbeat)  # keep six missed beats before a takeover
    return ExecOptions(max_retries=1 if retries is None else retries, heartbeat_s=heartbeat, stale_after_s=stale)


def make_executor(args):
    """The executor the flags ask for; a one-line error for flags that do not fit it."""
    import os

    from ..experiments import LocalExecutor, MultiProcessExecutor, RayExecutor

    kind = getattr(args, "executor", "local") or "local"
    ray_flags = [f for f, v in (("--ray-address", getattr(args, "ray_address", None)),
                                ("--gpus-per-run", getattr(args, "gpus_per_run", None)),
                                ("--max-concurrent", getattr(args, "max_concurrent", None))) if v is not None]
    if kind != "ray" and ray_flags:
        raise UserError(f"{', '.join(ray_flags)} only apply to --executor ray")
    if getattr(args, "worker", False) and kind == "ray":
        raise UserError("--worker executes runs in this process: leave out --executor ray (or drop --worker)")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        if kind == "ray" or getattr(args, "worker", False):
            raise UserError("under accelerate launch/torchrun use the local executor without --worker")
        return MultiProcessExecutor(main=int(os.environ.get("RANK", "0") or 0) == 0, broadcast=_broadcast())
    if kind == "ray":
        from ..experiments.executors import _ray

        _ray()  # the install hint now, before any work
        return RayExecutor(address=args.ray_address, gpus_per_run=args.gpus_per_run,
                           cpus_per_run=args.cpus_per_run, max_concurrent=args.max_concurrent)
    return LocalExecutor()


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (Slurm's preemption and time limit, 'kill') stops a sweep like Ctrl-C: the run in
    progress releases its claim and is logged as interrupted, so a preempted run resumes later
    without counting as a crash against max_retries. The previous handler comes back after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _broadcast():
    """``obj -> obj`` sent from the main process to all (the run decisions of a multi-process run)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    # As training.session does: without cpu=True, processes on a machine with no GPU would not
    # form a group. The group joined here is the one train()'s Accelerator then reuses.
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    PartialState(cpu=not has_accelerator)

    def send(obj):
        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    return send


def run_command(args) -> int:
    from ..experiments import MultiProcessExecutor, load_sweep
    from ..overrides import parse_overrides
    from .checks import writable_folder

    overrides = parse_overrides(args.overrides)
    executor = make_executor(args)  # flag errors before the sweep's checks load anything
    sweep = load_sweep(args.config, overrides, validate=validate_run_config)
    out = writable_folder(args.out or sweep.out, "results folder")
    if getattr(args, "dry_run", False):
        return dry_run(sweep, out)
    options = exec_options(args, sweep)
    with _sigterm_interrupts():
        rc = _run_sweep(args, sweep, out, executor, options)
    if isinstance(executor, MultiProcessExecutor):
        exit_now(rc)
    return rc


def end_process_group(rc: int) -> int:
    """After a run that ended normally under ``torchrun``/``accelerate launch``: one last barrier,
    close the process group, then :func:`exit_now`, so that a run that succeeded is not reported
    as a crash by the launcher. Outside a group of several processes: returns ``rc``."""
    import torch.distributed as dist

    from ..experiments.executors import close_process_group

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return rc
    close_process_group()
    exit_now(rc)
    return rc  # not reached


def exit_now(rc: int) -> None:
    """End a process of a multi-process sweep (everything written, the group closed) without
    running C++ static destructors: gloo's and the TCP store's threads can otherwise abort the
    process at exit ("terminate called without an active exception", exit -6) after a sweep that
    succeeded."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _run_sweep(args, sweep, out: Path, executor, options) -> int:
    from ..experiments import run_sweep, run_worker
    from ..keylock import FileCache
    from ..reports import write_report

    plan_sweep(sweep, strict=True)  # every run's inputs, before the first one trains
    # Step-0 evaluations shared by the runs of this sweep, in any process: computed once per key.
    base_evals = FileCache(out / "base_evals", heartbeat_s=options.heartbeat_s, stale_after_s=options.stale_after_s)
    train_fn = functools.partial(train_run, base_eval_cache=base_evals)
    common = dict(add_to_existing=getattr(args, "add_to_existing", False), options=options,
                  only=getattr(args, "only", None))
    if getattr(args, "worker", False):
        result = run_worker(sweep, out, train_fn, **common)
        print(f"worker done; when every worker has finished: adaptive-lora report {out}", file=sys.stderr)
        return sweep_exit(sweep.name, result.statuses, out)
    result = run_sweep(sweep, out, train_fn, executor=executor, **common)
    if sweep.report and getattr(executor, "main", True):
        _print_report(write_report(out))
    return sweep_exit(sweep.name, result.statuses, out)


def _print_report(paths) -> None:
    # Echo the first table of results.md: the answer, without opening a file.
    lines = paths.results_md.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    print("\n".join(lines[start:end]))
    print(f"report: {paths.results_md}")
