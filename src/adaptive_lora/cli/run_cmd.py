"""``adaptive-lora run CONFIG.yaml``: a resumable sweep, then the report."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from ..errors import UserError


def preflight(cfg) -> None:
    """Cheap checks of everything a run will read, so a sweep fails before any training."""
    from ..data.records import _looks_like_path
    from ..layout.resolve import resolve_model

    data = cfg.input.data
    resolve_model(cfg.input.model)  # a missing local folder or a malformed id fails here
    if data != "default" and _looks_like_path(data) and not Path(data).expanduser().is_file():
        raise UserError(f"data file '{data}' does not exist: fix the path, or use data: default")
    plan_file = cfg.plan.plan_file
    if plan_file and not Path(plan_file).expanduser().is_file():
        raise UserError(f"plan_file '{plan_file}' does not exist: fix the path")
    custom = cfg.params.custom
    if isinstance(custom, str) and not Path(custom).expanduser().is_file():
        raise UserError(f"custom rank map '{custom}' does not exist: fix the path")


def validate_run_config(config: dict) -> dict:
    from ..training import TrainConfig

    cfg = TrainConfig.from_dict(config)
    preflight(cfg)
    return cfg.to_dict()


def train_run(spec, run_dir: Path, base_eval_cache: dict | None = None) -> dict:
    """Train one run of a sweep into ``run_dir``; ``base_eval_cache`` is the sweep's own dict of
    step-0 evaluations (see ``training.train``)."""
    from ..training import RunMeta, TrainConfig, train

    config = spec.config
    # Probes of data-driven strategies are cached beside the runs, so seeds and resumed sweeps
    # reuse them; neither setting changes a run's result, so neither is part of its config hash.
    cache = config.get("plan_cache") or str(run_dir.parent / "plans")
    cfg = TrainConfig.from_dict({**config, "output_dir": str(run_dir), "plan_cache": cache})
    meta = RunMeta(spec.run_id, spec.group, spec.variant, spec.budget_label)
    return train(cfg, run_dir, meta, base_eval_cache=base_eval_cache)


def plan_sweep(sweep) -> list[tuple]:
    """(spec, plan) for every run, from each model's config alone (meta device, no weights)."""
    from ..layout import discover_layout, load_config
    from ..strategies import get_strategy, make_plan
    from ..training import TrainConfig
    from ..training.methods import METHODS

    layouts: dict = {}
    out = []
    for spec in sweep.specs:
        cfg = TrainConfig.from_dict(spec.config)
        model, p = cfg.input.model, cfg.plan
        if model not in layouts:
            layouts[model] = discover_layout(load_config(model))
        if not METHODS[p.method].needs_plan or get_strategy(p.strategy).needs_data:
            out.append((spec, None))  # ranks are decided during the run (AdaLoRA, or a probe)
            continue
        plan = make_plan(layouts[model], p.strategy, cfg.params, targets=p.targets, budget=p.budget,
                         budget_like=p.budget_like)
        out.append((spec, plan))
    return out


def dry_run(sweep) -> int:
    print(f"sweep {sweep.name}: {len(sweep.specs)} runs (validated; nothing trained)")
    print(f"{'run':<36} {'strategy':<18} {'planned params':>15} {'efficiency %':>13} {'mean rank':>10}")
    for spec, plan in plan_sweep(sweep):
        if plan is None:
            name = spec.config.get("strategy") if spec.config.get("method") != "adalora" else "adalora"
            print(f"{spec.run_id:<36} {name:<18} {'(set in the run)':>15}")
            continue
        print(f"{spec.run_id:<36} {plan.strategy:<18} {plan.trainable_params:>15,} {plan.efficiency_pct:>13.3f} "
              f"{plan.mean_rank:>10.2f}")
    return 0


def run_command(args) -> int:
    from ..experiments import load_sweep, run_sweep
    from ..overrides import parse_overrides
    from ..reports import write_report

    overrides = parse_overrides(args.overrides)
    sweep = load_sweep(args.config, overrides, validate=validate_run_config)
    if getattr(args, "dry_run", False):
        return dry_run(sweep)
    out = Path(args.out or sweep.out)
    base_evals: dict = {}  # step-0 evaluations shared by the runs of this sweep
    result = run_sweep(sweep, out, functools.partial(train_run, base_eval_cache=base_evals))
    if sweep.report:
        paths = write_report(out)
        # Echo the first table of results.md: the answer, without opening a file.
        lines = paths.results_md.read_text(encoding="utf-8").splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        print("\n".join(lines[start:end]))
        print(f"report: {paths.results_md}")
    counts = result.counts
    print(f"sweep {sweep.name}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; results in {out}",
          file=sys.stderr)
    return 0
