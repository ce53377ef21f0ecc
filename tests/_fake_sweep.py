"""Run a sweep with a fake training function; used by the kill test in test_sweep.py.

Usage: python tests/_fake_sweep.py SWEEP_YAML OUT_DIR [--worker] [--heartbeat S] [--stale S]

``--worker`` runs it as one of many ``run --worker`` processes (``run_worker``) instead of a driver;
``--multiprocess`` as one process of a ``torch.distributed.run`` launch (every process trains each
run, the main one alone writes files, as ``train`` does).

Each fake run appends ``start <run_id>`` to ``OUT_DIR/calls.log``, writes ``steps`` lines to
``metrics.jsonl`` (sleeping ``step_s`` seconds after each, both from the run's config), then
writes ``summary.json`` atomically and appends ``done <run_id>``. The log is outside the run
folders, so it survives a run being redone from scratch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from adaptive_lora._io import append_jsonl, atomic_write_json
from adaptive_lora.errors import UserError
from adaptive_lora.experiments import ExecOptions, MultiProcessExecutor, load_sweep, run_sweep, run_worker


def _log(out_dir: Path, line: str) -> None:
    with open(out_dir / "calls.log", "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()


def train_fn(spec, run_dir: Path) -> dict:
    """The fake run; module-level so Ray workers can import it. ``die_once: true`` in the config
    SIGKILLs the process at the middle step of the run's first execution (a marker file beside
    the runs remembers it); ``die_always: true`` on every execution."""
    config, out_dir = spec.config, run_dir.parent
    rank = int(os.environ.get("RANK", "0"))
    _log(out_dir, f"start {spec.run_id} {os.getpid()} {rank}")
    if rank != 0:
        return {}
    steps = int(config.get("steps", 3))
    for step in range(steps):
        append_jsonl(run_dir / "metrics.jsonl", {"type": "train", "step": step, "loss": 1.0})
        time.sleep(float(config.get("step_s", 0.05)))
        if step == steps // 2 and _should_die(config, out_dir / f".died-{spec.run_id}"):
            os.kill(os.getpid(), signal.SIGKILL)
    summary = {
        "status": "completed",
        "run_id": spec.run_id,
        "group": spec.group,
        "seed": config["seed"],
        # Wall-clock time makes a rewritten summary differ from the original.
        "finished_at": time.time(),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    _log(out_dir, f"done {spec.run_id} {os.getpid()}")
    return summary


def _should_die(config: dict, marker: Path) -> bool:
    if config.get("die_always"):
        return True
    if not config.get("die_once") or marker.exists():
        return False
    marker.write_text("died\n")
    return True


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep")
    ap.add_argument("out")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--heartbeat", type=float, default=10.0)
    ap.add_argument("--stale", type=float, default=60.0)
    ap.add_argument("--multiprocess", action="store_true")
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    options = ExecOptions(heartbeat_s=args.heartbeat, stale_after_s=args.stale)

    try:
        if args.multiprocess:
            from adaptive_lora.cli.run_cmd import _broadcast

            executor = MultiProcessExecutor(main=os.environ["RANK"] == "0", broadcast=_broadcast())
            run_sweep(load_sweep(args.sweep), out_dir, train_fn, progress=False, options=options, executor=executor)
            from adaptive_lora.cli.run_cmd import exit_now

            exit_now(0)  # as 'adaptive-lora run' ends a multi-process sweep
        from adaptive_lora.cli.run_cmd import _sigterm_interrupts

        run = run_worker if args.worker else run_sweep
        with _sigterm_interrupts():  # as 'adaptive-lora run' does
            run(load_sweep(args.sweep), out_dir, train_fn, progress=False, options=options)
    except UserError as e:
        print(e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
