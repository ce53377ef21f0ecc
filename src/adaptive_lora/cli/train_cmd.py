"""``adaptive-lora train --config FILE.yaml [--set key=value ...]``.

Exit codes: 0 completed, 3 diverged, 2 bad input (nothing written), 1 other failure (the run
folder keeps a ``summary.json`` with status ``failed`` and the traceback in ``error.log``),
5 preempted by SIGTERM (a checkpoint was written; the same command resumes).

A run folder without a finished summary that holds a checkpoint of the same run resumes from it
(a failed attempt's files are removed first, its checkpoints kept).

A folder that holds a finished run (completed or diverged) is never touched without
``--overwrite``; every pre-training check (``cli/checks.py``) passes before anything is written.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from .. import _io
from ..errors import UserError

EXIT_DIVERGED = 3


# Files a run writes; --overwrite removes them (and nothing else) once every check has passed.
RUN_FILES = ("summary.json", "error.log", "config.yaml", "metrics.jsonl", "plan.json", "samples.jsonl", "adapter")


def prepare_folder(cfg, overwrite: bool) -> Path:
    """The run folder, after every pre-training check: a finished run there is refused unless
    ``overwrite``; then the files of an earlier attempt are removed, so none is mixed into this one."""
    import shutil

    from ..experiments.runner import FINISHED_STATUSES, read_status
    from .checks import RunChecks, writable_folder

    out = writable_folder(cfg.output.output_dir, "output folder")
    status, _ = read_status(out)
    if status in FINISHED_STATUSES and not overwrite:
        raise UserError(f"output folder '{out}' holds a finished run ({status}): pass --overwrite to replace it, "
                        "or choose another --out")
    RunChecks(strict=True).check(cfg)
    if status is not None:
        # A finished run's kept checkpoints would resume it at its end: --overwrite starts afresh.
        extra = ("checkpoints",) if status in FINISHED_STATUSES else ()
        for name in RUN_FILES + extra:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    return out


def train_command(args) -> int:
    from ..overrides import parse_overrides
    from ..schema import RunSummary
    from ..training import RunMeta, load_train_config, train

    overrides = parse_overrides(args.overrides)
    if args.out:
        overrides["output_dir"] = args.out
    cfg = load_train_config(args.config, overrides)
    out = prepare_folder(cfg, getattr(args, "overwrite", False))
    meta = RunMeta(run_id=out.name, group=out.name)
    try:
        summary = train(cfg, out, meta)
    except UserError:
        raise
    except Exception as exc:  # a failure during the run: keep what we know, then exit 1
        out.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_text(out / "error.log", traceback.format_exc())
        first = (str(exc).splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first}"
        _io.atomic_write_json(out / "summary.json", RunSummary.failed(error, meta, cfg.to_dict()).to_dict())
        print(f"adaptive-lora: run failed: {error} (traceback in {out / 'error.log'})", file=sys.stderr)
        return 1
    # Every process reaches this line (a divergence is decided on all of them alike): they close
    # their process group together and exit without C++ teardown (see run_cmd.end_process_group).
    from .run_cmd import end_process_group

    return end_process_group(_report(summary, out))


def _report(summary: dict, out: Path) -> int:
    """Print the run's outcome (one process of several reports) and return the exit code."""
    quiet = int(os.environ.get("RANK", "0")) != 0  # under torchrun every process returns; one reports
    if summary["status"] == "diverged":
        if not quiet:
            print(f"diverged at step {summary['diverged_step']} ({summary['diverged_reason']} in "
                  f"{summary['diverged_module']}); logs kept in {out}", file=sys.stderr)
        return EXIT_DIVERGED
    if not quiet:
        d = summary.get("data") or {}
        print(f"completed: eval loss {summary['eval_loss']:.4f} (base {summary['base_eval_loss']:.4f}), perplexity "
              f"{summary['perplexity']:.2f}, {summary['trainable_params']:,} trainable parameters, "
              f"{summary['tokens_per_s']:.1f} tokens/s, {d.get('train_records')} of {d.get('train_available')} "
              f"training records ({d.get('eval_records')} held out); results in {out}")
    return 0
