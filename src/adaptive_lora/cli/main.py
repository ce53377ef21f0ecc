"""``adaptive-lora``: each sub-command maps explicitly onto one function.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 3 a training run
diverged, 1 anything else (a bug: the traceback is kept).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError


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
    p.add_argument("--targets", default=None, help="comma-separated module names (default: the family's)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", default=None, help="scale the strategy to this many LoRA parameters (e.g. 3.1M)")
    g.add_argument("--budget-like", default=None, help="scale to the budget of another plan, e.g. uniform:8")
    p.add_argument("--alpha-policy", default="constant", help="constant (the paper), proportional or rslora")
    p.add_argument("--lora-alpha", type=float, default=32.0, help="alpha of the constant and rslora policies")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=_run_plan)


def _run_plan(args) -> int:
    from .plan_cmd import plan_command

    return plan_command(args)


def _add_strategies(sub):
    p = sub.add_parser("strategies", help="list the rank-allocation strategies")
    p.set_defaults(func=_run_strategies)


def _run_strategies(args) -> int:
    from ..strategies import STRATEGIES

    width = max(len(n) for n in STRATEGIES)
    for s in STRATEGIES.values():
        print(f"{s.name:<{width}}  [{s.family}] {s.description}")
    return 0


def _add_train(sub):
    p = sub.add_parser("train", help="train one adapter from a YAML config into an output folder")
    p.add_argument("--config", default=None, help="YAML file of training-config fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set lr=1e-4")
    p.add_argument("--out", default=None, help="output folder (overrides output_dir)")
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
                   help="validate every run and print its planned parameters, without loading weights or training")
    p.set_defaults(func=_run_run)


def _run_run(args) -> int:
    from .run_cmd import run_command

    return run_command(args)


def _add_report(sub):
    p = sub.add_parser("report", help="write results.md/.csv and figures for a results folder")
    p.add_argument("results_dir")
    p.add_argument("--out", default=None, help="where to write (default: the results folder)")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from ..reports import write_report

    paths = write_report(args.results_dir, args.out)
    print(f"wrote {paths.results_md}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adaptive-lora",
        description="LoRA fine-tuning with a rank per layer and module: plan, train, compare.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_plan, _add_strategies, _add_train, _add_run, _add_report):
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
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"adaptive-lora: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("adaptive-lora: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
