"""Stage 3, fit: the optimizer loop, with gradient-norm and NaN monitoring at every step.

Batching is decided globally and identically on every process (same seed), and each process
takes a strided share of every micro-batch; so N processes run the same optimizer steps on the
same examples as one process with the same ``batch_size`` and ``grad_accum``.

Loss normalisation: every optimizer step minimises the token-weighted mean cross-entropy of
*all* scored tokens in its ``batch_size * grad_accum`` examples. Each micro-batch's summed loss
is divided by the step's total scored tokens (known in advance), and multiplied by the number
of processes because DDP averages gradients across them.

The loop knows no method by name: LoRA and AdaLoRA differ only in the hooks of their method
object (``extra_loss``, ``after_step``).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch

from ..evaluation import scored_loss_sum
from . import hooks
from .monitor import GradMonitor, GradStats
from .speedups import cache_frozen_casts, fuse_lora_linears, token_budget_microbatches, use_threshold_dropout
from .stabilizers import GradClipper, lr_lambda, param_groups


class Diverged(Exception):
    def __init__(self, step: int, where: str, what: str):
        super().__init__(f"{what} at step {step} in {where}")
        self.step, self.where, self.what = step, where, what


@dataclass
class FitResult:
    status: str = "completed"
    diverged: Diverged | None = None
    steps: int = 0
    train_time: float = 0.0
    tokens: int = 0
    examples: int = 0
    grad_norms: list = field(default_factory=list)
    last_eval: dict | None = None


def planned_steps(optim, n_train: int) -> int:
    """Optimizer steps of a run: epochs x ceil(micro-batches / grad_accum), capped by max_steps."""
    micro_per_epoch = math.ceil(n_train / optim.batch_size)
    total = math.ceil(micro_per_epoch / optim.grad_accum) * optim.epochs
    return min(total, optim.max_steps) if optim.max_steps is not None else total


@dataclass
class _Parts:
    """What one fit builds around the model: optimizer, schedule, monitor, clipper."""

    optimizer: torch.optim.Optimizer
    scheduler: object
    lr_mult: object
    monitor: GradMonitor
    clipper: GradClipper
    trainable: list


def install_speedups(model, o, session) -> None:
    """The speed switches of ``o`` (an OptimConfig) that apply on ``session``'s device, on the
    unwrapped ``model``: what a fit trains with (benchmarks install them through this too)."""
    if o.cast_cache and not session.sharded:  # sharded parameters are flat views: nothing to cache
        cache_frozen_casts(model, session.amp)
    if session.device.type == "cpu":  # on a GPU, torch's fused dropout and PEFT's forward are kept
        if o.fast_dropout:
            use_threshold_dropout(model)
        if o.fused_lora and not session.sharded:  # FSDP must see lora_A / lora_B called to gather them
            fuse_lora_linears(model)


def _build(cfg, session, model, method, layers: dict, total_steps: int):
    """AdamW with one parameter group per learning rate, prepared by accelerate; the monitor."""
    groups = param_groups(model, cfg, method.module_ranks(), layers)
    o = cfg.optim
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups], lr=o.lr,
                                  betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.weight_decay)
    for g, src in zip(optimizer.param_groups, groups):
        g["names"] = src["names"]  # kept for inspection; AdamW ignores unknown keys
    lr_mult = lr_lambda(cfg.stabilize, o.lr_schedule, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_mult)
    model, optimizer = session.acc.prepare(model, optimizer)
    install_speedups(session.acc.unwrap_model(model), o, session)
    s = cfg.stabilize
    parts = _Parts(optimizer, scheduler, lr_mult, GradMonitor(session.acc.unwrap_model(model), layers),
                   GradClipper(s.clip, s.clip_norm, s.clip_factor, s.clip_beta),
                   [p for p in model.parameters() if p.requires_grad])
    return model, parts


def _accumulate(session, data, model, method, chunk: list, step_scored: int) -> float:
    """Forward and backward every micro-batch of one optimizer step; return the summed loss of
    this process's share (before normalisation)."""
    # Summed as a tensor, read once per step: a float() per micro-batch would wait for the
    # device (a GPU) to finish before the next micro-batch could be queued.
    loss_sum_local = torch.zeros((), dtype=torch.float64, device=session.device)
    world = session.world
    for j, mb in enumerate(chunk):
        local, weight = mb[session.rank::world], 1.0
        if not local:  # a short last batch: keep DDP's collective in step
            local, weight = mb[:1], 0.0
        batch = {k: v.to(session.device) for k, v in data.collate([data.train[i] for i in local]).items()}
        last = j == len(chunk) - 1
        sync = contextlib.nullcontext() if last or world == 1 else session.acc.no_sync(model)
        with sync:
            with session.autocast():
                loss_sum, _ = scored_loss_sum(model, batch)
            loss = loss_sum * (weight * world / max(step_scored, 1))
            extra = method.extra_loss(session.acc.unwrap_model(model)) if last else None
            if extra is not None:
                loss = loss + extra
            session.acc.backward(loss)  # DeepSpeed and FSDP run their own backward
        loss_sum_local += loss_sum.detach().double() * weight
    return float(loss_sum_local)


def global_stats(session, monitor, stats: GradStats) -> GradStats:
    """The step's gradient statistics, the same on every process, so that every process stops
    at the same step (a process that stopped alone would leave the others waiting forever in the
    next collective).

    * the first non-finite module: the earliest in model order over all processes (a minimum);
    * norms: under FSDP or DeepSpeed each process holds a shard, so the squares are summed over
      processes; under DDP every process already holds the all-reduced gradients."""
    if session.world == 1:
        return stats
    names = [m for m, *_ in monitor.params]
    (bad,) = session.reduce_min(names.index(stats.first_bad_module) if stats.first_bad_module else len(names))
    first_bad = names[int(bad)] if bad < len(names) else None
    if not session.sharded:
        return GradStats(stats.global_norm, stats.per_layer, first_bad)
    layers = sorted({str(layer) for *_, layer, _p in monitor.params if layer >= 0}, key=int)
    local = [stats.global_norm ** 2] + [stats.per_layer.get(k, {}).get(m, 0.0) ** 2 for k in layers for m in "AB"]
    total, *per = session.reduce_sum(*local)
    per_layer = {k: {"A": math.sqrt(per[2 * i]), "B": math.sqrt(per[2 * i + 1])} for i, k in enumerate(layers)}
    return GradStats(math.sqrt(total), per_layer, first_bad)


def _check_finite(step: int, step_loss: float, stats) -> None:
    if not math.isfinite(step_loss):
        # Name the first module whose gradient is non-finite too, when one is.
        raise Diverged(step, stats.first_bad_module or "loss", "non-finite loss")
    if stats.first_bad_module:
        raise Diverged(step, stats.first_bad_module, "non-finite gradient")


def _apply(parts: _Parts, stats) -> tuple[float, float | None]:
    """Clip (per the clipper), then take the optimizer and scheduler step."""
    factor, threshold = parts.clipper.scale(stats.global_norm)
    if factor < 1.0:
        torch._foreach_mul_([p.grad for p in parts.trainable if p.grad is not None], factor)
    parts.optimizer.step()
    return factor, threshold


def fit(cfg, session, data, model, method, total_steps: int, log=None, evaluate=None, layers: dict | None = None,
        desc: str = "train", checkpoints=None):
    """Train ``model`` for ``total_steps`` optimizer steps. ``log(row)`` receives a row per step
    (None: nothing is logged); ``evaluate(step)`` runs every ``eval_every`` steps.
    ``checkpoints`` (a :class:`~.checkpoint.Checkpointer`; None: none kept) puts a loaded
    checkpoint's state back before the first step and is called after every step.
    A divergence ends the loop and is returned as status ``diverged``, not raised."""
    from .checkpoint import Disabled

    ckpt = checkpoints or Disabled()
    model, parts = _build(cfg, session, model, method, layers or {}, total_steps)
    res = FitResult()
    start_epoch, start_batch = ckpt.restore(model, parts, method, res)  # (0, 0) unless resumed
    pbar = _progress(cfg, session, total_steps, desc, res.steps)
    model.train()
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            batches = data.batches(cfg.optim.batch_size, cfg.optim.seed, epoch, cfg.optim.group_by_length)
            for s0 in range(start_batch if epoch == start_epoch else 0, len(batches), cfg.optim.grad_accum):
                if res.steps >= total_steps:
                    break
                chunk = batches[s0:s0 + cfg.optim.grad_accum]
                row = _one_step(cfg, session, data, model, method, parts, chunk, res,
                                round(epoch + (s0 + len(chunk)) / len(batches), 4))
                if log:
                    log(row)
                if pbar:
                    pbar.update(1)
                    pbar.set_postfix(loss=f"{row['loss']:.3f}", gnorm=f"{row['grad_norm']:.2g}")
                spike = cfg.eval.loss_spike
                if spike is not None and row["loss"] > spike:
                    raise Diverged(res.steps, "loss", f"loss {row['loss']:.1f} above loss_spike {spike}")
                every = cfg.eval.eval_every
                if evaluate and every and res.steps % every == 0 and res.steps < total_steps:
                    res.last_eval = evaluate(res.steps)
                ckpt.step_done(model, parts, method, res, epoch, s0 + cfg.optim.grad_accum)
                if hooks.after_step is not None:
                    hooks.after_step(res.steps)  # test-only fault injection (a kill, an exception)
            if res.steps >= total_steps:
                break
    except Diverged as d:
        res.status, res.diverged = "diverged", d
        if log:
            log({"type": "diverged", "step": d.step, "where": d.where, "what": d.what})
    finally:
        if pbar:
            pbar.close()
    return model, res


def _one_step(cfg, session, data, model, method, parts: _Parts, chunk: list, res: FitResult, epoch: float) -> dict:
    """One optimizer step over the micro-batches in ``chunk``; updates ``res``, returns the log row."""
    t0 = time.perf_counter()
    chunk = token_budget_microbatches(chunk, data.lengths, cfg.optim.max_tokens, session.world)
    step_scored = sum(data.scored[i] for b in chunk for i in b)
    step_tokens = sum(data.lengths[i] for b in chunk for i in b)
    (loss_total,) = session.reduce_sum(_accumulate(session, data, model, method, chunk, step_scored))
    step_loss = loss_total / max(step_scored, 1)
    res.steps += 1
    if hooks.after_backward is not None:
        hooks.after_backward(res.steps, parts.monitor)  # test-only fault injection
    stats = global_stats(session, parts.monitor, parts.monitor.measure())
    _check_finite(res.steps, step_loss, stats)
    factor, threshold = _apply(parts, stats)
    changed = method.after_step(session.acc.unwrap_model(model), res.steps, parts.optimizer)
    parts.scheduler.step()
    parts.optimizer.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    res.train_time += dt
    res.tokens += step_tokens
    res.examples += sum(len(b) for b in chunk)
    res.grad_norms.append(stats.global_norm)
    return {"type": "train", "step": res.steps, "epoch": epoch, "loss": step_loss,
            "lr": cfg.optim.lr * parts.lr_mult(res.steps - 1),  # the base lr this step used
            "grad_norm": stats.global_norm, "clip_threshold": threshold, "clip_factor": factor,
            "tokens": step_tokens, "tokens_per_s": step_tokens / dt, "time_s": round(res.train_time, 3),
            "layer_grad_norms": stats.per_layer, **(changed or {})}


def _progress(cfg, session, total_steps: int, desc: str, done: int = 0):
    if not (session.main and cfg.output.progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total_steps, initial=done, desc=desc, unit="step", dynamic_ncols=True)
