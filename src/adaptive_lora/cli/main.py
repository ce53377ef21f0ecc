"""``adaptive-lora``: each sub-command maps explicitly onto one function.

Exit codes (README "Exit codes"): 0 success; 2 bad input, one line on stderr, nothing written;
3 ``train``: the run diverged, ``run``: some run diverged and none failed; 4 ``run``: some run
failed; 1 anything else (``train``: the run failed, ``summary.json`` says so; otherwise a bug,
the traceback is kept); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import Preempted, UserError


class _Parser(argparse.ArgumentParser):
    """argparse with the house rule for bad input: one line on stderr, exit code 2."""

    def error(self, message):
        self.exit(2, f"adaptive-lora: error: {message} (see '{self.prog} --help')\n")


def _train_epilog() -> str:
    """The config keys by group with their one-line docs (TrainConfig.keys_by_group)."""
    import json

    from ..training.config import TrainConfig

    lines = ["config keys (YAML or --set KEY=VALUE), by group:"]
    for group, rows in TrainConfig.keys_by_group().items():
        lines.append(f"  {group}:")
        lines += [f"    {key} = {json.dumps(default, default=str)}: {doc}" for key, default, doc in rows]
    return "\n".join(lines)


def _add_plan(sub):
    p = sub.add_parser("plan", help="plan per-module ranks for a model and print the table and budget")
    p.add_argument("--model", default="smollm2-135m", help="hub id, local folder, or the alias smollm2-135m")
    p.add_argument("--strategy", default="uniform", help="see 'adaptive-lora strategies'")
    p.add_argument("--r", type=int, default=None, help="rank of uniform and placement strategies (default 8)")
    p.add_argument("--r-base", type=int, default=None, help="reference rank of the adaptive strategies (16)")
    p.add_argument("--r-min", type=int, default=None, help="lower clamp of the adaptive strategies (4)")
    p.add_argument("--r-max", type=int, default=None, help="upper clamp of the adaptive strategies (32)")
    p.add_argument("--rounding", default=None, help="floor (the paper), round or ceil")
    p.add_argument("--custom", default=None, help="for --strategy custom: a YAML/JSON rank map file")
    p.add_argument("--targets", default=None, help="comma-separated module names (default: every linear of the decoder blocks)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", default=None, help="scale the strategy to this many LoRA parameters (e.g. 3.1M)")
    g.add_argument("--budget-like", default=None, help="scale to the budget of another plan, e.g. uniform:8")
    p.add_argument("--alpha-policy", default="constant", help="constant (the paper), proportional or rslora")
    p.add_argument("--lora-alpha", type=float, default=32.0, help="alpha of the constant and rslora policies")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    m = p.add_argument_group("memory estimate (--memory): peak training memory of one process, from the layout")
    m.add_argument("--memory", action="store_true", help="also estimate peak training memory (weights, adapters "
                   "and AdamW states, activations, logits)")
    m.add_argument("--dtype", default="bf16", choices=("fp32", "bf16"), help="base weights' dtype (default bf16)")
    m.add_argument("--bits", type=int, default=None, choices=(4, 8), help="a 4-bit (nf4) or 8-bit base (QLoRA)")
    m.add_argument("--batch-size", type=int, default=8, help="examples per micro-batch of one process (8)")
    m.add_argument("--max-length", type=int, default=256, help="tokens per example, the worst case (256)")
    m.add_argument("--gradient-checkpointing", action="store_true", help="activations of one block at a time")
    p.set_defaults(func=_run_plan)


def _run_plan(args) -> int:
    from .plan_cmd import plan_command

    return plan_command(args)


def _add_strategies(sub):
    p = sub.add_parser("strategies", help="list the rank-allocation strategies")
    p.set_defaults(func=_run_strategies)


def _run_strategies(args) -> int:
    from ..strategies import STRATEGIES
    from ..training.probe import PROBES

    def needs(s) -> str:
        if s.probe is None:
            return "layout only"
        return "weights, no data" if PROBES[s.probe].data_free else "needs data"

    width = max(len(n) for n in STRATEGIES)
    for s in STRATEGIES.values():
        print(f"{s.name:<{width}}  [{s.family}; {needs(s)}] {s.description}")
    from ..training.methods import METHODS

    print("\nmethods (config key 'method'; a strategy plans the ranks a method starts from):")
    for name, cls in METHODS.items():
        print(f"{name:<{width}}  {' '.join((cls.__doc__ or '').split())}")
    return 0


def _add_train(sub, key_help: bool = True):
    # The key list imports the training stage (torch): built only when train's help can be shown.
    p = sub.add_parser("train", help="train one adapter from a YAML config into an output folder",
                       epilog=_train_epilog() if key_help else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML file of training-config fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set lr=1e-4")
    p.add_argument("--out", default=None, help="output folder (overrides output_dir)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in the output folder (otherwise it is never touched)")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .train_cmd import train_command

    return train_command(args)


def _add_run(sub):
    p = sub.add_parser("run", help="run a sweep of trainings from a YAML file (resumable) and write the report")
    p.add_argument("config", help="sweep YAML, e.g. configs/default.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training field for every run (repeatable)")
    p.add_argument("--out", default=None, help="results folder (default: the sweep's 'out')")
    p.add_argument("--dry-run", action="store_true",
                   help="run every pre-training check of every run and print its state and planned parameters, "
                        "without loading weights or training")
    p.add_argument("--add-to-existing", action="store_true",
                   help="add runs of this sweep to a results folder made by a different sweep definition")
    p.add_argument("--only", default=None, metavar="RUN_ID", help="execute only this run of the sweep")
    e = p.add_argument_group("where runs execute (README \"Sweeps on many GPUs\")")
    e.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: one run after another in this process (default); ray: one Ray task per run")
    e.add_argument("--worker", action="store_true",
                   help="be one of many processes sharing the results folder: execute the runs nobody has "
                        "claimed, then exit (no report; start one per GPU with CUDA_VISIBLE_DEVICES)")
    e.add_argument("--ray-address", default=None,
                   help="Ray cluster to join ('auto': the one started with 'ray start'); default: a local instance")
    e.add_argument("--gpus-per-run", type=float, default=None,
                   help="GPUs of one Ray task, fractions allowed (default: 1 when the cluster has GPUs, else 0)")
    e.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs of one Ray task (default 1)")
    e.add_argument("--max-concurrent", type=int, default=None,
                   help="at most this many runs at once on Ray (default: as many as the resources allow)")
    e.add_argument("--max-retries", type=int, default=None,
                   help="executions of a run after one whose process died, before it is marked failed "
                        "(default: the sweep's max_retries, else 1)")
    e.add_argument("--heartbeat-s", type=float, default=None,
                   help="seconds between touches of a run's claim file (default 10)")
    e.add_argument("--stale-after-s", type=float, default=None,
                   help="a claim not touched for this long belongs to a dead process and is taken over (default 60)")
    p.set_defaults(func=_run_run)


def _run_run(args) -> int:
    from .run_cmd import run_command

    return run_command(args)


def _add_report(sub):
    p = sub.add_parser("report", help="write results.md/.csv and figures for a results folder")
    p.add_argument("results_dir")
    p.add_argument("--out", default=None, help="where to write (default: the results folder)")
    p.add_argument("--reference", default=None,
                   help="run name or strategy the paired comparisons use as reference (default: the sweep's, else uniform)")
    p.add_argument("--delta", default=None,
                   help="eval-loss difference the 'seeds needed' figure targets (default: the sweep's, else 0.01)")
    p.set_defaults(func=_run_report)


def _report_args(args) -> tuple:
    """(reference, delta) of 'report', checked; the results folder and --out checked too."""
    import math
    from pathlib import Path

    from .checks import writable_folder

    results = Path(args.results_dir)
    if results.is_file():
        raise UserError(f"'{results}' is a file, not a results folder: give the folder a sweep wrote (a sweep file "
                        f"runs with 'adaptive-lora run {results}')")
    writable_folder(args.out or results, "report folder --out" if args.out else "results folder")
    reference = args.reference
    if reference is not None and not reference.strip():
        raise UserError("--reference is empty: give a run name or strategy, e.g. --reference uniform")
    delta = args.delta
    if delta is not None:
        try:
            delta = float(delta)
        except ValueError:
            raise UserError(f"--delta {args.delta!r} is not a number: give an eval-loss difference, e.g. 0.01") from None
        if not math.isfinite(delta) or delta <= 0:
            raise UserError(f"--delta must be a positive number (an eval-loss difference, e.g. 0.01), got {args.delta}")
    return reference, delta


def _run_report(args) -> int:
    from ..reports import write_report

    reference, delta = _report_args(args)
    paths = write_report(args.results_dir, args.out, reference=reference, delta=delta)
    print(f"wrote {paths.results_md}")
    return 0


def build_parser(key_help: bool = True) -> argparse.ArgumentParser:
    """The parser; ``key_help=False`` leaves the config-key list out of 'train --help'."""
    parser = _Parser(
        prog="adaptive-lora",
        description="LoRA fine-tuning with a rank per layer and module: plan, train, compare.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_plan, _add_strategies, lambda s: _add_train(s, key_help), _add_run, _add_report):
        add(sub)
    return parser


def _quiet_libraries() -> None:
    """Keep the terminal for our own output: no per-tensor loading bars or library nags."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")


def main(argv=None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(key_help="train" in words and bool({"-h", "--help"} & set(words)))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line): a return code in-process too
        return exc.code if isinstance(exc.code, int) else 2
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"adaptive-lora: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except Preempted as exc:  # SIGTERM: a checkpoint was written first
        print(f"adaptive-lora: {exc}", file=sys.stderr)
        return Preempted.exit_code
    except KeyboardInterrupt:
        print("adaptive-lora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
