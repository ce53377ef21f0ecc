"""The training loop: one readable function on ``accelerate``.

One process on a CPU or a GPU, or several under ``accelerate launch`` / ``torchrun``. Batching
is decided globally and identically on every process (same seed), and each process takes a
strided share of every micro-batch; so N processes run the same optimizer steps on the same
examples as one process with the same ``batch_size`` and ``grad_accum``.

Loss normalisation: every optimizer step minimises the token-weighted mean cross-entropy of
*all* scored tokens in its ``batch_size * grad_accum`` examples. Each micro-batch's summed loss
is divided by the step's total scored tokens (known in advance), and multiplied by the number
of processes because DDP averages gradients across them.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
from pathlib import Path

import torch

from .. import _io
from ..adapters import AlphaPolicy, audit_model, wrap_model
from ..data import PadCollator, length_grouped_batches, load_records, random_batches, split_records, tokenize_records
from ..envinfo import cpu_supports_bf16, hardware, package_versions
from ..evaluation import METRIC_DEFINITIONS, evaluate
from ..evaluation.metrics import scored_loss_sum
from ..layout import layout_from_model, load_model, load_tokenizer
from ..strategies import get_strategy, make_plan
from . import adalora as ada
from .config import TrainConfig
from .monitor import GradMonitor, grad_summary
from .probe import probe_plan_params
from .stabilizers import GradClipper, lr_lambda, param_groups, warmup_steps


class Diverged(Exception):
    def __init__(self, step: int, where: str, what: str):
        super().__init__(f"{what} at step {step} in {where}")
        self.step, self.where, self.what = step, where, what


def _autocast_dtype(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16":
        return torch.bfloat16
    # auto: bf16 where the hardware does it natively (on other CPUs it is emulated and slower)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_supports_bf16() else None


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_plan_file(layout, path: str):
    """Rebuild a saved plan (``plan.json`` of an earlier run) on this layout."""
    from ..errors import UserError
    from ..strategies import Plan, StrategyParams

    try:
        saved = _io.read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"plan_file '{path}' cannot be read ({exc}): give a plan.json written by an earlier run")
    plan_d = saved.get("plan", saved)
    ranks = {m["name"]: int(m["rank"]) for m in plan_d.get("modules", [])}
    missing = [n for n in ranks if n not in layout.by_name()]
    if not ranks or missing:
        raise UserError(f"plan_file '{path}' does not fit this model (e.g. {missing[:1]}): plan it on the same model")
    sel = layout.select(list(ranks))
    return Plan(plan_d.get("strategy", "custom"), sel, ranks, StrategyParams(), notes=(f"reused from {path}",))


def _build_batches(cfg, lengths, epoch):
    if cfg.group_by_length:
        return length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
    return random_batches(len(lengths), cfg.batch_size, cfg.seed, epoch)


def _base_eval_key(cfg: TrainConfig, amp, world: int) -> str:
    fields = ("model", "data", "data_seed", "eval_size", "max_eval", "max_length", "train_on",
              "skip_bad_records", "eval_batch_size")
    return _io.dumps({**{k: getattr(cfg, k) for k in fields}, "amp": str(amp), "world": world})


def train(cfg: TrainConfig, out_dir=None, accelerator=None, base_eval_cache: dict | None = None) -> dict:
    """Run one training; write config, metrics, summary and adapter into ``out_dir``.

    ``base_eval_cache`` (a dict kept by a sweep) reuses the step-0 evaluation between runs that
    share model, eval split and precision: before training every LoRA plan computes exactly the
    base model, so that number cannot differ between strategies or seeds.

    Returns the summary. Raises :class:`~adaptive_lora.errors.UserError` for bad input before
    training; a divergence is a result (status ``diverged``), not an exception.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out = Path(out_dir or cfg.output_dir)
    # accelerate sets up several CPU processes only when told to use the CPU; without this,
    # torchrun on a machine with no GPU would start N independent single-process runs.
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator
    acc = accelerator or Accelerator(cpu=multi_cpu)
    world, rank, main = acc.num_processes, acc.process_index, acc.is_main_process
    device = acc.device
    if device.type == "cpu" and world > 1:
        # N processes on one CPU: give each its share of the cores instead of oversubscribing.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // acc.num_processes))
    if cfg.batch_size % world:
        from ..errors import UserError

        raise UserError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes: change batch_size")
    set_seed(cfg.seed)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        import yaml

        _io.atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        (out / "metrics.jsonl").write_text("")
    t_setup = time.perf_counter()

    # ---- data: the split depends on data_seed only, so every seed sees the same eval set
    loaded = load_records(cfg.data, skip_bad=cfg.skip_bad_records)
    train_recs, eval_recs = split_records(loaded.records, seed=cfg.data_seed, eval_size=cfg.eval_size,
                                          max_train=cfg.max_train, max_eval=cfg.max_eval)
    tokenizer = load_tokenizer(cfg.model)
    train_set = tokenize_records(train_recs, tokenizer, cfg.max_length, cfg.train_on)
    eval_set = tokenize_records(eval_recs, tokenizer, cfg.max_length, cfg.train_on)
    train_ex, eval_ex = train_set.examples, eval_set.examples
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    collate = PadCollator(pad_id)
    lengths = [len(e["input_ids"]) for e in train_ex]
    scored = [sum(1 for t in e["labels"][1:] if t != -100) for e in train_ex]

    # ---- model and plan
    model = load_model(cfg.model)
    model.config.use_cache = False  # the KV cache only costs memory in training
    layout = layout_from_model(model)
    micro_per_epoch = math.ceil(len(train_ex) / cfg.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    policy = AlphaPolicy(cfg.alpha_policy, cfg.lora_alpha, cfg.alpha_ratio)
    amp = _autocast_dtype(cfg, device)
    probe_info = None
    if cfg.method == "adalora":
        from peft import get_peft_model

        sel = layout.select(cfg.targets)
        model = get_peft_model(model, ada.adalora_config(cfg, sel, total_steps))
        plan = None
        ranks = {m.name: cfg.adalora_init_r for m in sel.modules}
        planned_params = sum(m.lora_params(cfg.adalora_init_r) for m in sel.modules)
    else:
        if cfg.plan_file:
            plan = load_plan_file(layout, cfg.plan_file)
        else:
            params = cfg.strategy_params()
            if get_strategy(cfg.strategy).needs_data:
                # Measure the base model on training batches first (or reuse a cached probe).
                model.to(device)
                params, probe_info = probe_plan_params(cfg, model, layout, train_ex, collate, device, amp,
                                                       acc, out)
            plan = make_plan(layout, cfg.strategy, params, targets=cfg.targets,
                             budget=cfg.budget, budget_like=cfg.budget_like)
        model = wrap_model(model, plan, policy, cfg.lora_dropout)  # audits ranks and scalings
        ranks = plan.adapted
        planned_params = plan.trainable_params
        if main:
            _io.atomic_write_json(out / "plan.json", {**plan.to_dict(), "probe": probe_info})
    layers = {m.name: m.layer for m in layout.modules}
    model.to(device)

    groups = param_groups(model, cfg, ranks, layers)
    optimizer = torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "names"} for g in groups],
        lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
    )
    for g, src in zip(optimizer.param_groups, groups):
        g["names"] = src["names"]  # kept for inspection; AdamW ignores unknown keys
    lr_mult = lr_lambda(cfg, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_mult)
    model, optimizer = acc.prepare(model, optimizer)
    monitor = GradMonitor(acc.unwrap_model(model), layers)
    clipper = GradClipper(cfg.clip, cfg.clip_norm, cfg.clip_factor, cfg.clip_beta)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def reduce_sum(*vals):
        if world == 1:
            return vals
        t = torch.tensor([float(v) for v in vals], dtype=torch.float64, device=device)
        t = acc.reduce(t, reduction="sum")
        return tuple(t.tolist())

    def run_eval(step: int) -> dict:
        res = evaluate(model, eval_ex, collate, cfg.eval_batch_size, device, amp, rank, world, reduce_sum)
        res = {"type": "eval", "step": step, **res}
        if main:
            _io.append_jsonl(out / "metrics.jsonl", res)
        return res

    def log(row: dict):
        if main:
            _io.append_jsonl(out / "metrics.jsonl", row)

    # ---- step 0: with B = 0 the wrapped model computes exactly the base model
    key = _base_eval_key(cfg, amp, world)
    if base_eval_cache is not None and key in base_eval_cache:
        base_eval = {**base_eval_cache[key], "cached": True}
        log(base_eval)
    else:
        base_eval = run_eval(0)
        if base_eval_cache is not None:
            base_eval_cache[key] = {k: v for k, v in base_eval.items() if k != "cached"}
    setup_s = time.perf_counter() - t_setup

    status, diverged = "completed", None
    step, train_time, tokens_seen, examples_seen = 0, 0.0, 0, 0
    grad_norms: list[float] = []
    last_eval = base_eval
    pbar = None
    if main and cfg.progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total_steps, desc=cfg.run_id or "train", unit="step", dynamic_ncols=True)
    model.train()
    try:
        for epoch in range(cfg.epochs):
            batches = _build_batches(cfg, lengths, epoch)
            for s0 in range(0, len(batches), cfg.grad_accum):
                if step >= total_steps:
                    break
                chunk = batches[s0:s0 + cfg.grad_accum]
                t0 = time.perf_counter()
                step_scored = sum(scored[i] for b in chunk for i in b)
                step_tokens = sum(lengths[i] for b in chunk for i in b)
                loss_sum_local = 0.0
                for j, mb in enumerate(chunk):
                    local = mb[rank::world]
                    weight = 1.0
                    if not local:  # a short last batch: keep DDP's collective in step
                        local, weight = mb[:1], 0.0
                    batch = {k: v.to(device) for k, v in collate([train_ex[i] for i in local]).items()}
                    sync = j == len(chunk) - 1
                    ctx = contextlib.nullcontext() if sync or world == 1 else acc.no_sync(model)
                    with ctx:
                        with torch.autocast(device_type=device.type, dtype=amp or torch.float32, enabled=amp is not None):
                            loss_sum, _ = scored_loss_sum(model, batch)
                        loss = loss_sum * (weight * world / max(step_scored, 1))
                        if cfg.method == "adalora" and sync:
                            loss = loss + acc.unwrap_model(model).peft_config["default"].orth_reg_weight * \
                                ada.orth_regularizer(model)
                        loss.backward()
                    loss_sum_local += float(loss_sum.detach()) * weight
                (loss_total,) = reduce_sum(loss_sum_local)
                step_loss = loss_total / max(step_scored, 1)
                step += 1
                if cfg.fault_nan_step is not None and step == cfg.fault_nan_step:
                    _poison_one_gradient(monitor)
                stats = monitor.measure()
                if not math.isfinite(step_loss):
                    # Name the first module whose gradient is non-finite too, when one is.
                    raise Diverged(step, stats.first_bad_module or "loss", "non-finite loss")
                if stats.first_bad_module:
                    raise Diverged(step, stats.first_bad_module, "non-finite gradient")
                factor, threshold = clipper.scale(stats.global_norm)
                if factor < 1.0:
                    torch._foreach_mul_([p.grad for p in trainable if p.grad is not None], factor)
                optimizer.step()
                if cfg.method == "adalora":
                    ada.update_and_allocate(model, step)
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                train_time += dt
                tokens_seen += step_tokens
                examples_seen += sum(len(b) for b in chunk)
                grad_norms.append(stats.global_norm)
                log({"type": "train", "step": step, "epoch": round(epoch + (s0 + len(chunk)) / len(batches), 4),
                     "loss": step_loss, "lr": cfg.lr * lr_mult(step - 1),  # the base lr this step used
                     "grad_norm": stats.global_norm, "clip_threshold": threshold, "clip_factor": factor,
                     "tokens": step_tokens, "tokens_per_s": step_tokens / dt, "time_s": round(train_time, 3),
                     "layer_grad_norms": stats.per_layer})
                if pbar:
                    pbar.update(1)
                    pbar.set_postfix(loss=f"{step_loss:.3f}", gnorm=f"{stats.global_norm:.2g}")
                if cfg.loss_spike is not None and step_loss > cfg.loss_spike:
                    raise Diverged(step, "loss", f"loss {step_loss:.1f} above loss_spike {cfg.loss_spike}")
                if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                    last_eval = run_eval(step)
            if step >= total_steps:
                break
    except Diverged as d:
        status, diverged = "diverged", d
        log({"type": "diverged", "step": d.step, "where": d.where, "what": d.what})
    finally:
        if pbar:
            pbar.close()

    final_eval = run_eval(step) if status == "completed" else None
    unwrapped = acc.unwrap_model(model)
    if cfg.method == "adalora":
        sel = layout.select(cfg.targets)
        ranks = ada.realised_adalora_ranks(unwrapped, sel)
        by = layout.by_name()
        realised_params = sum(by[n].lora_params(r) for n, r in ranks.items())
        plan_d = {"strategy": "adalora", "modules": [
            {"name": n, "layer": by[n].layer, "kind": by[n].kind, "rank": r, "params": by[n].lora_params(r)}
            for n, r in ranks.items()]}
    else:
        report = audit_model(unwrapped, plan, policy)
        realised_params = report.trainable_params
        plan_d = {"strategy": plan.strategy, "budget_target": plan.budget_target, "mean_rank": plan.mean_rank,
                  "modules": [{k: m[k] for k in ("name", "layer", "kind", "rank", "params")}
                              for m in plan.modules_table()]}
    acc.wait_for_everyone()
    if main and status == "completed":
        unwrapped.save_pretrained(out / "adapter")
        if cfg.generate_samples:
            _write_samples(unwrapped, tokenizer, eval_recs[: cfg.generate_samples], cfg, device, out / "samples.jsonl")

    base_params = layout.base_params
    summary = {
        "status": status,
        "run_id": cfg.run_id or out.name,
        "group": cfg.group or cfg.run_id or out.name,
        "strategy": "adalora" if cfg.method == "adalora" else plan.strategy,
        "method": cfg.method,
        "seed": cfg.seed,
        "budget_label": cfg.budget_label,
        "variant": cfg.variant,
        "diverged_step": diverged.step if diverged else None,
        "diverged_module": diverged.where if diverged else None,
        "diverged_reason": diverged.what if diverged else None,
        "error": None,  # a failed run gets its summary from the caller (train_cmd / the sweep runner)
        "eval_loss": final_eval["eval_loss"] if final_eval else None,
        "perplexity": final_eval["perplexity"] if final_eval else None,
        "eval_tokens": base_eval["eval_tokens"],
        "last_eval_loss": last_eval["eval_loss"],
        "base_eval_loss": base_eval["eval_loss"],
        "base_perplexity": base_eval["perplexity"],
        "trainable_params": realised_params,
        "planned_params": planned_params,
        "base_params": base_params,
        "total_params": base_params + realised_params,
        "efficiency_pct": 100.0 * realised_params / (base_params + realised_params),
        "train_time_s": train_time,
        "setup_time_s": setup_s,
        "train_tokens": tokens_seen,
        "tokens_per_s": tokens_seen / train_time if train_time > 0 else None,
        "optimizer_steps": step,
        "planned_steps": total_steps,
        "examples_seen": examples_seen,
        "n_train": len(train_ex),
        "n_eval": len(eval_ex),
        "data": {"source": loaded.source, "n_records": len(loaded.records), "n_skipped": loaded.n_skipped,
                 "train_dropped": train_set.n_dropped, "train_truncated": train_set.n_truncated,
                 "eval_dropped": eval_set.n_dropped, "eval_truncated": eval_set.n_truncated},
        "world_size": world,
        "precision": str(amp).replace("torch.", "") if amp else "fp32",
        "warmup_steps": warmup_steps(cfg, total_steps),
        "peak_memory_mb": _peak_memory_mb(device),
        "grad_norm": grad_summary(grad_norms),
        "probe": probe_info,
        "plan": plan_d,
        "config": cfg.to_dict(),
        "versions": package_versions(),
        "hardware": {**hardware(), "device": str(device), "processes": world},
        "metric_definitions": METRIC_DEFINITIONS,
    }
    if main:
        _io.atomic_write_json(out / "summary.json", summary)
    return summary


def _poison_one_gradient(monitor: GradMonitor) -> None:
    """Testing aid (``fault_nan_step``): put a NaN into the gradient of the middle LoRA module."""
    lora = [(m, p) for m, kind, _, p in monitor.params if kind in ("A", "B") and p.grad is not None]
    module, p = lora[len(lora) // 2]
    p.grad.view(-1)[0] = float("nan")


@torch.no_grad()
def _write_samples(model, tokenizer, records, cfg, device, path) -> None:
    from ..data import format_prompt

    model.eval()
    rows = []
    for rec in records:
        prompt = format_prompt(rec)
        ids = tokenizer(prompt, return_tensors="pt").to(device)
        gen = model.generate(**ids, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        text = tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        rows.append({"instruction": rec["instruction"], "input": rec["input"], "reference": rec["output"],
                     "generated": text})
    _io.atomic_write_text(path, "".join(_io.dumps(r) + "\n" for r in rows))
