"""``adaptive-lora train --config FILE.yaml [--set key=value ...]``.

Exit codes: 0 completed, 3 diverged, 2 bad input, 1 other failure (the run folder keeps a
``summary.json`` with status ``failed`` and the traceback in ``error.log``).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from .. import _io
from ..errors import UserError

EXIT_DIVERGED = 3


def train_command(args) -> int:
    from ..overrides import parse_overrides
    from ..schema import RunSummary
    from ..training import RunMeta, load_train_config, train

    overrides = parse_overrides(args.overrides)
    if args.out:
        overrides["output_dir"] = args.out
    cfg = load_train_config(args.config, overrides)
    out = Path(cfg.output.output_dir)
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
    quiet = int(os.environ.get("RANK", "0")) != 0  # under torchrun every process returns; one reports
    if summary["status"] == "diverged":
        if not quiet:
            print(f"diverged at step {summary['diverged_step']} ({summary['diverged_reason']} in "
                  f"{summary['diverged_module']}); logs kept in {out}", file=sys.stderr)
        return EXIT_DIVERGED
    if not quiet:
        print(f"completed: eval loss {summary['eval_loss']:.4f} (base {summary['base_eval_loss']:.4f}), perplexity "
              f"{summary['perplexity']:.2f}, {summary['trainable_params']:,} trainable parameters, "
              f"{summary['tokens_per_s']:.1f} tokens/s; results in {out}")
    return 0
