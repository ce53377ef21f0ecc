"""``adaptive-lora plan``: the per-module table, totals, a rank-per-layer bar chart."""

from __future__ import annotations

import json

from ..adapters.lora_config import AlphaPolicy, expected_scaling
from ..layout import discover_layout, load_config
from ..strategies import StrategyParams, get_strategy, make_plan
from ..strategies.paper_check import paper_notes


def _params_from_args(args) -> StrategyParams:
    kw = {}
    for field in ("r", "r_base", "r_min", "r_max", "rounding", "custom"):
        value = getattr(args, field, None)
        if value is not None:
            kw[field] = value
    return StrategyParams(**kw)


def build_plan_from_args(args):
    params = _params_from_args(args)
    policy = AlphaPolicy(args.alpha_policy, args.lora_alpha)
    targets = args.targets.split(",") if args.targets is not None else None  # "" is refused, not the default
    if get_strategy(args.strategy).probe is not None:
        # A probe that reads weights only (weight_spectrum) runs here on the loaded model; one that
        # needs training data is refused with a pointer to 'train'.
        from ..training.probe import plan_with_weights

        plan = plan_with_weights(args.model, args.strategy, params, targets=targets, budget=args.budget,
                                 budget_like=args.budget_like)
        return plan, policy
    config = load_config(args.model)
    layout = discover_layout(config)
    plan = make_plan(layout, args.strategy, params, targets=targets, budget=args.budget, budget_like=args.budget_like)
    return plan, policy


def _bar(value: float, top: float, width: int = 40) -> str:
    n = 0 if top <= 0 else round(width * value / top)
    return "#" * n


def memory_estimate(args, plan) -> dict | None:
    """``--memory``: peak training memory of one process for the plan (bytes by part), or None."""
    if not getattr(args, "memory", False):
        return None
    from ..errors import UserError
    from ..training.config import resolve_quantization
    from ..training.memory import estimate_memory

    if args.batch_size < 1 or args.max_length < 1:
        raise UserError("--batch-size and --max-length must be positive integers")
    quant = resolve_quantization({"bits": args.bits}) if args.bits else None
    text_config = load_config(args.model).get_text_config(decoder=True)  # a vision-language model's language model
    return estimate_memory(plan.layout, text_config, plan.adapted, dtype=args.dtype,
                           autocast=None if args.dtype == "fp32" else "bf16", quantization=quant,
                           batch_size=args.batch_size, max_length=args.max_length,
                           gradient_checkpointing=args.gradient_checkpointing)


def plan_command(args) -> int:
    plan, policy = build_plan_from_args(args)
    notes = list(plan.notes) + list(plan.layout.notes) + paper_notes(plan)  # e.g. MoE experts skipped
    memory = memory_estimate(args, plan)
    if args.json:
        out = plan.to_dict()
        out["model"] = args.model
        out["alpha_policy"] = policy.name
        out["modules"] = {m["name"]: m["rank"] for m in out["modules"] if m["rank"] > 0}
        out["module_table"] = plan.modules_table()
        out["notes"] = notes
        out["memory_bytes"] = memory
        print(json.dumps(out, indent=2))
        return 0
    lay = plan.layout
    print(f"model {args.model}: {lay.family} family ({lay.model_type}), {lay.n_layers} layers, "
          f"{lay.base_params:,} base parameters")
    print(f"strategy {plan.strategy}: {plan.params.to_dict()}; alpha policy {policy.name}")
    if plan.budget_target is not None:
        print(f"budget: target {plan.budget_target:,} ({plan.budget_source}), achieved {plan.trainable_params:,} "
              f"({plan.trainable_params - plan.budget_target:+,})")
    print()
    print(f"{'layer':>5}  {'module':<18} {'kind':<9} {'rank':>4} {'scaling':>8} {'params':>12}")
    for row in plan.modules_table():
        scaling = f"{expected_scaling(policy, row['rank']):.3g}" if row["rank"] else "-"
        print(f"{row['layer']:>5}  {row['role']:<18} {row['kind']:<9} {row['rank']:>4} {scaling:>8} {row['params']:>12,}")
    print()
    print(f"trainable parameters {plan.trainable_params:,}   total {plan.total_params:,}   "
          f"efficiency {plan.efficiency_pct:.3f} %   mean rank {plan.mean_rank:.2f} over {len(plan.adapted)} modules")
    print()
    print("mean rank per layer")
    rows = plan.per_layer()
    top = max((r["mean_rank"] for r in rows), default=0)
    for r in rows:
        print(f"  L{r['layer']:02d} {r['mean_rank']:6.2f} |{_bar(r['mean_rank'], top)}")
    if memory is not None:
        from ..training.memory import format_estimate

        print()
        print(f"peak training memory of one process (estimate; batch {args.batch_size} x {args.max_length} tokens, "
              f"{'%d-bit' % args.bits if args.bits else args.dtype} base"
              f"{', gradient checkpointing' if args.gradient_checkpointing else ''}):")
        print("  " + format_estimate(memory))
    for note in notes:
        print()
        print("note: " + note)
    return 0
