"""Probes of the data-driven strategies: measure the model on the task before planning.

A strategy names its probe in the registry (``Strategy.probe``); this module maps probe names to
measurements and knows no strategy names. Each probe returns plain data for the pure strategy
function (``params.extra``) plus its cost (time, peak memory, batches) for the summary.

Probe batches are drawn with ``data_seed``, not the training seed, so every seed of a sweep
shares one probe. Results are cached in ``plan_cache`` under a key that hashes the whole
resolved config minus the keys each probe declares it cannot depend on (commented below): a
changed field that *can* matter always misses the cache.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import _io
from ..evaluation import scored_loss_sum
from .config import keys_of
from .prepare import scored_predictions

PROBE_VERSION = 2  # bump when a probe's definition changes, so old cache entries are not reused


# Keys no probe reads: the training seed (probes use data_seed), where results and caches go,
# what is evaluated or generated after training, and how the strategy turns the measurement into
# ranks (the allocation runs after the probe, on the cached measurement).
NEVER_READ = ("seed", "plan_cache", "plan_file", "strategy", "r_base", "r_min", "rounding", "custom", "budget",
              "budget_like") + keys_of("eval")


@dataclass
class ProbeContext:
    """What a probe may use: the run's config, session, data, base model and target layout."""

    cfg: object
    session: object
    data: object
    model: object
    layout: object  # the full layout
    sel: object  # the layout restricted to the targets
    out_dir: Path | None

    @property
    def batch_size(self) -> int:
        return self.cfg.probe.probe_batch_size or self.cfg.optim.batch_size


@dataclass(frozen=True)
class Probe:
    fn: Callable  # (ProbeContext) -> (extra: dict, info: dict)
    ignore: tuple  # keys this probe cannot depend on, beyond NEVER_READ


PROBES: dict[str, Probe] = {}


def register_probe(name: str, ignore: tuple):
    def wrap(fn):
        PROBES[name] = Probe(fn, tuple(ignore))
        return fn

    return wrap


def run_probe(name: str, ctx: ProbeContext) -> tuple[dict, dict]:
    """(extra for StrategyParams, info for the summary), from ``plan_cache`` when it holds it."""
    probe = PROBES[name]
    key = ctx.cfg.cache_key(name, NEVER_READ + probe.ignore,
                            {"v": PROBE_VERSION, "amp": ctx.session.precision, "world": ctx.session.world})
    return cached(ctx.cfg.probe.plan_cache, key, lambda: probe.fn(ctx))


def cached(cache_dir, key: str, compute):
    """Return (result, info) from ``cache_dir/key.json`` or compute and store it."""
    path = Path(cache_dir) / f"{key}.json" if cache_dir else None
    if path is not None and path.is_file():
        saved = _io.read_json(path)
        return saved["result"], {**saved["info"], "cached": True, "cache_file": path.name}
    result, info = compute()
    if path is not None:
        _io.atomic_write_json(path, {"result": result, "info": info})
    return result, {**info, "cached": False}


def _probe_batches(n_examples: int, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    order = list(range(n_examples))
    random.Random(f"probe/{seed}").shuffle(order)
    order = order[: batch_size * n_batches]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


# The gradient probe reads the data, the targets, probe_batches/probe_batch_size (or batch_size),
# r_max (how many singular values are kept) and the precision. No adapter exists during it and no
# optimizer step is taken.
@register_probe("gradient_spectra", ignore=keys_of("lora", "stabilize", "adalora")
                + ("method", "r", "lr", "epochs", "max_steps", "grad_accum", "weight_decay", "adam_beta1",
                   "adam_beta2", "lr_schedule", "group_by_length", "eva_rho", "eva_tau", "eva_examples",
                   "probe_steps"))
def gradient_spectra(ctx: ProbeContext) -> tuple[dict, dict]:
    """Squared singular values (top ``r_max``) of each target module's weight gradient,
    accumulated over ``probe_batches`` batches of the training split (token-weighted mean loss).

    The base model is used as is (no adapter): its weight gradient is what a LoRA update of
    that module would follow at the start of training.
    """
    t0 = time.perf_counter()
    model, session, examples = ctx.model, ctx.session, ctx.data.train
    targets = {m.name for m in ctx.sel.modules}
    weights = {}
    for p in model.parameters():
        p.requires_grad_(False)
    for name, mod in model.named_modules():
        if name in targets:
            mod.weight.requires_grad_(True)
            weights[name] = mod.weight
    batches = _probe_batches(len(examples), ctx.batch_size, ctx.cfg.probe.probe_batches, ctx.cfg.input.data_seed)
    total_scored = sum(scored_predictions(examples[i]) for b in batches for i in b)
    model.eval()  # no dropout: the probe measures the model, not a noisy copy of it
    for b in batches:
        batch = {k: v.to(session.device) for k, v in ctx.data.collate([examples[i] for i in b]).items()}
        with session.autocast():
            loss, _ = scored_loss_sum(model, batch)
        (loss / max(total_scored, 1)).backward()
    spectra = {}
    for name, w in weights.items():
        s = torch.linalg.svdvals(w.grad.detach().float())[: ctx.cfg.params.r_max]
        spectra[name] = [float(x) ** 2 for x in s]
        w.grad = None
        w.requires_grad_(False)
    info = {"probe": "gradient_spectra", "batches": len(batches), "batch_size": ctx.batch_size,
            "scored_tokens": total_scored, "time_s": time.perf_counter() - t0,
            "peak_memory_mb": session.peak_memory_mb(),
            "measure": "squared singular values of the accumulated weight gradient dL/dW per module"}
    return {"spectra": spectra}, info


# EVA reads the data, the targets, r (its total is r x modules), eva_rho/eva_tau/eva_examples and
# the probe batch size. It runs forward passes of the base model only.
@register_probe("eva_ranks", ignore=keys_of("lora", "stabilize", "adalora")
                + ("method", "r_max", "lr", "epochs", "max_steps", "grad_accum", "weight_decay", "adam_beta1",
                   "adam_beta2", "lr_schedule", "group_by_length", "probe_batches", "probe_steps"))
def eva_ranks(ctx: ProbeContext) -> tuple[dict, dict]:
    """PEFT's EVA rank redistribution: incremental SVD of each module's inputs until the top
    components converge (cosine similarity >= ``eva_tau``), then ranks by explained variance
    within a total of r x modules, each at most rho x r. Only the ranks are kept; LoRA is
    initialised as usual, so the comparison is about where the ranks go."""
    from peft import EvaConfig, LoraConfig
    from peft.tuners.lora.eva import get_eva_state_dict

    from ..adapters import uses_fan_in_fan_out

    t0 = time.perf_counter()
    cfg, session, examples = ctx.cfg, ctx.session, ctx.data.train
    order = list(range(len(examples)))
    random.Random(f"eva/{cfg.input.data_seed}").shuffle(order)
    order = order[: cfg.probe.eva_examples]
    bs = ctx.batch_size
    loader = [{k: v.to(session.device) for k, v in ctx.data.collate([examples[i] for i in order[j:j + bs]]).items()}
              for j in range(0, len(order), bs)]
    config = LoraConfig(r=cfg.params.r, target_modules=[m.name for m in ctx.sel.modules], init_lora_weights="eva",
                        eva_config=EvaConfig(rho=cfg.probe.eva_rho, tau=cfg.probe.eva_tau),
                        fan_in_fan_out=uses_fan_in_fan_out(ctx.sel))
    state = get_eva_state_dict(ctx.model, loader, peft_config=config, show_progress_bar=False)
    ranks = {}
    for name in (m.name for m in ctx.sel.modules):
        comp = state.get(name)
        ranks[name] = int(comp.shape[0]) if comp is not None else 0
    info = {"probe": "eva", "examples": len(order), "batch_size": bs, "rho": cfg.probe.eva_rho,
            "tau": cfg.probe.eva_tau, "time_s": time.perf_counter() - t0, "peak_memory_mb": session.peak_memory_mb(),
            "measure": "ranks from PEFT's EVA explained-variance redistribution of module inputs"}
    return {"ranks": ranks}, info


# The AdaLoRA probe is a short training run: it reads nearly everything. It cannot depend on how
# its final ranks are allocated afterwards (NEVER_READ), on the alpha policies it does not use
# (AdaLoRA scales by lora_alpha), or on the other probes' settings.
@register_probe("adalora_ranks", ignore=("alpha_policy", "alpha_ratio", "r_max", "probe_batches",
                                         "probe_batch_size", "eva_rho", "eva_tau", "eva_examples"))
def adalora_ranks(ctx: ProbeContext) -> tuple[dict, dict]:
    """Final per-module ranks of a short AdaLoRA run on the already-loaded base model.

    AdaLoRA starts at ``max(adalora_init_r, 1.5 r)`` and prunes towards an average of ``r``; its
    schedule is what we borrow. The probe trains with ``data_seed`` as its seed and without
    evaluation, then its adapter is unloaded, leaving the base model as it was.
    """
    from accelerate.utils import set_seed

    from .fit import fit, planned_steps
    from .methods import AdaLoraMethod

    t0 = time.perf_counter()
    cfg = ctx.cfg
    r = cfg.params.r
    pcfg = cfg.replace(method="adalora", adalora_target_r=r, adalora_init_r=max(cfg.adalora.adalora_init_r,
                       int(round(1.5 * r))), max_steps=cfg.probe.probe_steps or cfg.optim.max_steps,
                       seed=cfg.input.data_seed, eval_every=0, progress=False)
    set_seed(pcfg.optim.seed)
    method = AdaLoraMethod()
    total = planned_steps(pcfg.optim, len(ctx.data.train))
    model = method.attach(ctx.model, ctx.sel, pcfg, total)
    layers = {m.name: m.layer for m in ctx.layout.modules}
    model, result = fit(pcfg, ctx.session, ctx.data, model, method, total, log=None, layers=layers)
    ranks = method.realised_ranks(ctx.session.acc.unwrap_model(model), ctx.sel)
    ctx.session.acc.unwrap_model(model).unload()  # the base model's own modules back in place
    ctx.session.acc.free_memory()  # drop accelerate's references to the probe's model and optimizer
    info = {"probe": "adalora", "steps": result.steps, "time_s": time.perf_counter() - t0,
            "peak_memory_mb": ctx.session.peak_memory_mb(), "measure": "final per-module ranks of a short AdaLoRA run"}
    return {"ranks": ranks}, info
