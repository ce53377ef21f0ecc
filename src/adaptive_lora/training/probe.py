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

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import keylock
from ..adapters.audit import lora_layers
from ..errors import UserError
from ..evaluation import scored_loss_sum
from .config import KEY_GROUP, keys_of
from .prepare import gradient_probe_batches, scored_predictions
from .sketch import OVERSAMPLE, all_reduce_sum, sketch_size, sketched_spectra

PROBE_VERSION = 4  # bump when a probe's definition changes, so old cache entries are not reused


# Keys no probe reads: the training seed (probes use data_seed), where results and caches go,
# what is evaluated or generated after training, and how the strategy turns the measurement into
# ranks (the allocation runs after the probe, on the cached measurement).
NEVER_READ = ("seed", "plan_cache", "plan_file", "strategy", "r_base", "r_min", "rounding", "custom", "budget",
              "budget_like", "spectrum_power",
              "cast_cache", "fast_dropout", "fused_lora", "keep_memory") + keys_of("eval", "prune_expand")
# cast_cache, keep_memory: bit-identical by design (speedups.py); fast_dropout and fused_lora: set up for
# training only
# Settings of one probe only, which the others cannot read.
_SIGNAL_KEYS = ("spectrum_tail", "svd_probe_r")
# How gradient_spectra computes its singular values: no other probe reads them.
_GRADIENT_METHOD_KEYS = ("probe_method", "probe_power_iters")


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
    passes: tuple = ()
    """Probe-group keys handed to the strategy in ``params.extra`` beside the measurement, never
    cached: they say how to turn the measurement into ranks (each is in NEVER_READ)."""
    data_free: bool = False
    """True when the probe reads the weights only (no data, no training): ``plan`` can run it."""


PROBES: dict[str, Probe] = {}


def register_probe(name: str, ignore: tuple, passes: tuple = (), data_free: bool = False):
    def wrap(fn):
        PROBES[name] = Probe(fn, tuple(ignore), tuple(passes), data_free)
        return fn

    return wrap


def run_probe(name: str, ctx: ProbeContext) -> tuple[dict, dict]:
    """(extra for StrategyParams, info for the summary), from ``plan_cache`` when it holds it."""
    probe = PROBES[name]
    key = ctx.cfg.cache_key(name, NEVER_READ + probe.ignore,
                            {"v": PROBE_VERSION, "amp": ctx.session.precision, "world": ctx.session.world})
    extra, info = cached(ctx.cfg.probe.plan_cache, key, lambda: probe.fn(ctx))
    return {**extra, **passed_settings(probe, ctx.cfg)}, info


def passed_settings(probe: Probe, cfg) -> dict:
    return {k: getattr(cfg.probe, k) for k in probe.passes}


def cached(cache_dir, key: str, compute):
    """Return (result, info) from ``cache_dir/key.json`` or compute and store it; processes
    sharing the folder (sweep workers) compute one key once (``keylock.compute_once``)."""
    if not cache_dir:
        result, info = compute()
        return result, {**info, "cached": False}
    path = Path(cache_dir) / f"{key}.json"

    def fresh():
        result, info = compute()
        return {"result": result, "info": info}

    saved, computed = keylock.compute_once(path, fresh)
    if computed:
        return saved["result"], {**saved["info"], "cached": False}
    return saved["result"], {**saved["info"], "cached": True, "cache_file": path.name}


# The gradient probes read the data, the targets, probe_batches/probe_batch_size (or batch_size)
# and the precision; gradient_spectra also r_max (how many singular values are kept) and how it
# computes them (probe_method, probe_power_iters). No trained adapter exists during them (the
# sketch's temporary factors add exactly zero to every output) and no optimizer step is taken.
_GRADIENT_IGNORE = keys_of("lora", "stabilize", "adalora") + _SIGNAL_KEYS + (
    "method", "r", "lr", "epochs", "max_steps", "grad_accum", "weight_decay", "adam_beta1", "adam_beta2",
    "lr_schedule", "group_by_length", "eva_rho", "eva_tau", "eva_examples", "probe_steps")


@contextlib.contextmanager
def _costed(ctx: ProbeContext):
    """Yields a dict that holds, on exit, the probe's wall time and peak memory: on a GPU the
    accelerator's own peak during the probe (its counter is reset here, so the run's later
    ``peak_memory_mb`` counts from the probe on; the weights loaded before are still resident
    and counted), and the memory already allocated when it began; on a CPU the process's host
    RSS high-water mark, named as such (Linux cannot say what the probe alone used)."""
    session = getattr(ctx, "session", None)  # None: plan_with_weights (no session), or a test
    cuda = session is not None and session.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(session.device)
        before = torch.cuda.memory_allocated(session.device) / 2**20
    cost, t0 = {}, time.perf_counter()
    yield cost
    cost["time_s"] = time.perf_counter() - t0
    if cuda:
        cost.update(peak_accelerator_mb=torch.cuda.max_memory_allocated(session.device) / 2**20,
                    accelerator_before_mb=before)
    elif session is not None:
        cost["peak_host_rss_mb"] = session.peak_memory_mb()


def _gradient_pass(ctx: ProbeContext):
    """Set up a gradient probe: (target modules by name, ``run_pass``, info).

    The base model is used as is, frozen (no parameter requires a gradient) and in eval mode (no
    dropout: the probe measures the model, not a noisy copy of it, and every pass sees the same
    function). ``run_pass()`` runs forward and backward over this process's share of the
    ``probe_batches`` batches (every world-th, from its rank), the loss of each divided by the
    scored tokens of all batches, so the gradients summed over processes are those of the
    token-weighted mean loss over all of them.
    """
    if getattr(ctx.cfg, "model_load", None) is not None and ctx.cfg.model_load.quantization:
        # A packed 4/8-bit weight has no dense gradient to measure.
        raise UserError("the gradient probes need an unquantized base: plan with quantization null, then reuse "
                        "the plan with plan_file")
    model, session, examples = ctx.model, ctx.session, ctx.data.train
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    batches = gradient_probe_batches(ctx.cfg, len(examples))
    total_scored = sum(scored_predictions(examples[i]) for b in batches for i in b)
    mine = batches[session.rank::session.world]

    def run_pass():
        for b in mine:
            batch = {k: v.to(session.device) for k, v in ctx.data.collate([examples[i] for i in b]).items()}
            with session.autocast():
                loss, _ = scored_loss_sum(model, batch)
            (loss / max(total_scored, 1)).backward()

    targets = {m.name for m in ctx.sel.modules}
    modules = {name: mod for name, mod in model.named_modules() if name in targets}
    info = {"batches": len(batches), "batches_per_process": len(mine), "batch_size": ctx.batch_size,
            "scored_tokens": total_scored}
    return modules, run_pass, info


class _Gradients:
    """The targets' accumulated weight gradients dL/dW, handed out one module at a time by
    ``items()`` as (W, dL/dW) in fp32: each is summed over processes and converted only when
    reached, then released, so at most one fp32 copy exists beside the accumulated gradients."""

    def __init__(self, modules: dict, world: int):
        self.modules, self.reduce = modules, all_reduce_sum(world)

    def items(self):
        for name, mod in self.modules.items():
            g = mod.weight.grad if mod.weight.grad is not None else torch.zeros_like(mod.weight)
            mod.weight.grad = None
            self.reduce([g])
            yield name, (mod.weight.detach().float(), g.float())
            del g


def _weight_gradients(ctx: ProbeContext) -> tuple[_Gradients, dict]:
    """The exact weight gradients of every target module, accumulated over the probe batches
    (``_gradient_pass``), and the pass's info. Holds one full gradient per target at once: the
    memory of the target weights again (the sketch probe avoids it)."""
    modules, run_pass, info = _gradient_pass(ctx)
    for mod in modules.values():
        mod.weight.requires_grad_(True)
    try:
        run_pass()
    finally:
        for mod in modules.values():
            mod.weight.requires_grad_(False)  # the model is left frozen; the gradients stay in .grad until read
    info["gradient_buffers_mb"] = sum(m.weight.numel() * m.weight.element_size() for m in modules.values()) / 2**20
    return _Gradients(modules, ctx.session.world), info


def _sketched_spectra(ctx: ProbeContext) -> tuple[dict, dict]:
    """Top ``r_max`` singular values of each target's weight gradient by the randomized range
    finder of ``training/sketch.py``: 2 + 2 ``probe_power_iters`` passes, no full gradient."""
    modules, run_pass, info = _gradient_pass(ctx)
    dims = {m.name: (m.in_features, m.out_features) for m in ctx.sel.modules}
    r_max, iters = ctx.cfg.params.r_max, ctx.cfg.probe.probe_power_iters
    values = sketched_spectra(modules, dims, run_pass, all_reduce_sum(ctx.session.world), r_max, iters,
                              seed=ctx.cfg.input.data_seed)
    # The gradient buffer of the trainable factor, in the larger of the two kinds of pass.
    info["gradient_buffers_mb"] = sum(max(i, o) * sketch_size(r_max, i, o) * 4 for i, o in dims.values()) / 2**20
    info.update(passes=2 + 2 * iters, oversample=OVERSAMPLE)
    return values, info


@register_probe("gradient_spectra", ignore=_GRADIENT_IGNORE)
def gradient_spectra(ctx: ProbeContext) -> tuple[dict, dict]:
    """Squared singular values (top ``r_max``) of each target module's accumulated weight
    gradient: exactly (full gradients and SVDs) or sketched (``probe_method``)."""
    r_max, method = ctx.cfg.params.r_max, ctx.cfg.probe.probe_method
    with _costed(ctx) as cost:
        if method == "exact":
            grads, info = _weight_gradients(ctx)
            values = {name: torch.linalg.svdvals(g)[:r_max].tolist() for name, (_, g) in grads.items()}
        else:
            values, info = _sketched_spectra(ctx)
    spectra = {name: [float(x) ** 2 for x in v] for name, v in values.items()}
    info = {"probe": "gradient_spectra", "method": method, **info, **cost,
            "measure": "squared singular values of the accumulated weight gradient dL/dW per module"}
    return {"spectra": spectra}, info


@register_probe("gora_importance", ignore=_GRADIENT_IGNORE + _GRADIENT_METHOD_KEYS + ("r_max",))
def gora_importance(ctx: ProbeContext) -> tuple[dict, dict]:
    """GoRA's importance of each target module: mean(|W * dL/dW|) over the matrix, the gradient
    accumulated as for ``gradient_spectra`` (``strategies/gora.py`` says what differs from GoRA).

    Always exact: an elementwise product with W needs every entry of dL/dW, which a low-rank
    sketch does not give. The gradients are still read one module at a time (``_Gradients``), so
    beyond the accumulated gradients (the size of the target weights) it holds one fp32 copy."""
    with _costed(ctx) as cost:
        grads, info = _weight_gradients(ctx)
        importance = {name: float((w * g).abs().mean()) for name, (w, g) in grads.items()}
    return {"importance": importance}, {"probe": "gora_importance", **info, **cost,
                                        "measure": "mean |W * dL/dW| per module (GoRA's importance)"}


# The weight-spectrum probe reads the weights only: it depends on the model, the targets and the
# tail fraction, on nothing else (not even the data); the precision is in the key's extra. Every
# other key, present or future, cannot change it.
_WEIGHT_READS = ("model", "targets", "spectrum_tail")
FULL_SVD_UP_TO = 4096  # below this min(in, out) a full svdvals is cheap; above it only the tail is computed


@register_probe("weight_spectra", ignore=tuple(k for k in KEY_GROUP if k not in _WEIGHT_READS and k not in NEVER_READ),
                passes=("spectrum_power",), data_free=True)
def weight_spectra(ctx: ProbeContext) -> tuple[dict, dict]:
    """Heavy-tail exponent alpha (Hill estimate, ``strategies/spectrum.py``) of the eigenvalues of
    W^T W of each target weight, fitted on its largest ``spectrum_tail`` fraction."""
    from ..strategies.spectrum import hill_alpha

    targets = {m.name for m in ctx.sel.modules}
    alphas, tails = {}, {}
    with _costed(ctx) as cost:
        for name, mod in ctx.model.named_modules():
            if name in targets:
                eigs = _tail_eigenvalues(mod.weight, ctx.cfg.probe.spectrum_tail)
                alphas[name], tails[name] = hill_alpha(eigs, len(eigs)), len(eigs)
    info = {"probe": "weight_spectra", "modules": len(alphas), "tail_sizes": sorted(set(tails.values())), **cost,
            "measure": "Hill estimate of the power-law exponent of the eigenvalues of W^T W per module (weights only)"}
    return {"alphas": alphas}, info


def _tail_eigenvalues(weight, tail: float) -> list[float]:
    """The largest ``tail`` fraction (at least 2) of the non-zero eigenvalues of W^T W, descending."""
    w = weight.detach().float()
    n = min(w.shape)
    k = max(2, math.ceil(tail * n))
    if n <= FULL_SVD_UP_TO or 2 * k > n:
        s = torch.linalg.svdvals(w)
    else:
        with torch.random.fork_rng(devices=[]):  # a fixed sketch: the probe is deterministic
            torch.manual_seed(0)
            s = torch.svd_lowrank(w, q=min(n, k + 16), niter=4)[1]
    eigs = (s.double() ** 2).tolist()
    eigs = [x for x in eigs if x > 1e-12 * eigs[0]]  # numerically zero eigenvalues have no tail to fit
    k = min(max(2, math.ceil(tail * len(eigs))), len(eigs)) if len(eigs) >= 2 else 0
    if k < 2:
        raise UserError("weight_spectrum needs weights of rank >= 2: check the model's weights (are they loaded?)")
    return eigs[:k]


# EVA reads the data, the targets, r (its total is r x modules), eva_rho/eva_tau/eva_examples and
# the probe batch size. It runs forward passes of the base model only.
@register_probe("eva_ranks", ignore=keys_of("lora", "stabilize", "adalora")
                + ("method", "r_max", "lr", "epochs", "max_steps", "grad_accum", "weight_decay", "adam_beta1",
                   "adam_beta2", "lr_schedule", "group_by_length", "probe_batches", "probe_steps") + _SIGNAL_KEYS
                + _GRADIENT_METHOD_KEYS)
def eva_ranks(ctx: ProbeContext) -> tuple[dict, dict]:
    """PEFT's EVA rank redistribution: incremental SVD of each module's inputs until the top
    components converge (cosine similarity >= ``eva_tau``), then ranks by explained variance
    within a total of r x modules, each at most rho x r. Only the ranks are kept; LoRA is
    initialised as usual, so the comparison is about where the ranks go.

    The forward passes run under the run's autocast, as training will (bf16 activations when the
    run is bf16: less memory, the inputs the adapters will see). PEFT's incremental PCA runs
    inside the same forward hooks, so its matrix products are autocast too; its QR and SVD run
    in fp32 (autocast's fp32 list), and its statistics are accumulated in fp32/fp64."""
    from peft import EvaConfig, LoraConfig
    from peft.tuners.lora.eva import get_eva_state_dict

    from ..adapters import uses_fan_in_fan_out

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
    with _costed(ctx) as cost, session.autocast():
        state = get_eva_state_dict(ctx.model, loader, peft_config=config, show_progress_bar=False)
    ranks = {}
    for name in (m.name for m in ctx.sel.modules):
        comp = state.get(name)
        ranks[name] = int(comp.shape[0]) if comp is not None else 0
    info = {"probe": "eva", "examples": len(order), "batch_size": bs, "rho": cfg.probe.eva_rho,
            "tau": cfg.probe.eva_tau, "precision": session.precision, **cost,
            "measure": "ranks from PEFT's EVA explained-variance redistribution of module inputs"}
    return {"ranks": ranks}, info


# The AdaLoRA probe is a short training run: it reads nearly everything. It cannot depend on how
# its final ranks are allocated afterwards (NEVER_READ), on the alpha policies it does not use
# (AdaLoRA scales by lora_alpha), or on the other probes' settings.
@register_probe("adalora_ranks", ignore=("alpha_policy", "alpha_ratio", "r_max", "probe_batches",
                                         "probe_batch_size", "eva_rho", "eva_tau", "eva_examples") + _SIGNAL_KEYS
                + _GRADIENT_METHOD_KEYS)
def adalora_ranks(ctx: ProbeContext) -> tuple[dict, dict]:
    """Final per-module ranks of a short AdaLoRA run on the already-loaded base model.

    AdaLoRA starts at ``max(adalora_init_r, 1.5 r)`` and prunes towards an average of ``r``; its
    schedule is what we borrow. The probe trains with ``data_seed`` as its seed and without
    evaluation, then its adapter is unloaded, leaving the base model as it was.
    """
    from .methods import AdaLoraMethod

    cfg = ctx.cfg
    r = cfg.params.r
    pcfg = _probe_config(cfg, method="adalora", adalora_target_r=r,
                         adalora_init_r=max(cfg.adalora.adalora_init_r, int(round(1.5 * r))))
    method = AdaLoraMethod()
    with _costed(ctx) as cost:
        ranks, result = _train_briefly(ctx, pcfg, method, lambda model: method.realised_ranks(model, ctx.sel))
    info = {"probe": "adalora", "steps": result.steps, **cost,
            "measure": "final per-module ranks of a short AdaLoRA run"}
    return {"ranks": ranks}, info


def _probe_config(cfg, **flat):
    """The run's config for a training probe: ``probe_steps`` steps (or the run's), ``data_seed`` as
    the seed (every seed of a sweep shares the probe), no evaluation, no progress bar."""
    return cfg.replace(max_steps=cfg.probe.probe_steps or cfg.optim.max_steps, seed=cfg.input.data_seed,
                       eval_every=0, progress=False, **flat)


def _train_briefly(ctx: ProbeContext, pcfg, method, read):
    """Train ``method`` on the loaded base model with ``pcfg`` through ``fit()``, return
    (``read(unwrapped model)``, fit result), then unload the adapter: the base model's own
    modules are back in place, as they were."""
    from accelerate.utils import set_seed

    from .fit import fit, planned_steps

    set_seed(pcfg.optim.seed)
    total = planned_steps(pcfg.optim, len(ctx.data.train))
    model = method.attach(ctx.model, ctx.sel, pcfg, total)
    layers = {m.name: m.layer for m in ctx.layout.modules}
    model, result = fit(pcfg, ctx.session, ctx.data, model, method, total, log=None, layers=layers)
    unwrapped = ctx.session.acc.unwrap_model(model)
    out = read(unwrapped)
    unwrapped.unload()
    ctx.session.acc.free_memory()  # drop accelerate's references to the probe's model and optimizer
    return out, result


# The SVD probe trains plain LoRA at svd_probe_r: it reads nearly everything. It cannot depend on
# the run's own rank r or the method (it trains uniform LoRA at svd_probe_r whatever they are),
# on r_max (the allocation afterwards), on AdaLoRA's settings or on the other probes' settings.
@register_probe("lora_update_spectra", ignore=keys_of("adalora") + (
    "method", "r", "r_max", "probe_batches", "probe_batch_size", "eva_rho", "eva_tau", "eva_examples",
    "spectrum_tail") + _GRADIENT_METHOD_KEYS)
def lora_update_spectra(ctx: ProbeContext) -> tuple[dict, dict]:
    """Squared singular values of each module's learned update scaling * B A after a short uniform
    LoRA run at rank ``svd_probe_r`` (capped at min(in, out)) on the loaded base model."""
    from ..strategies import Plan
    from .methods import LoraMethod

    top = ctx.cfg.probe.svd_probe_r
    pcfg = _probe_config(ctx.cfg, method="lora")
    plan = Plan("uniform", ctx.sel, {m.name: min(top, m.max_rank) for m in ctx.sel.modules}, pcfg.params)
    method = LoraMethod.from_config(pcfg, plan)
    with _costed(ctx) as cost:
        spectra, result = _train_briefly(ctx, pcfg, method, lambda model: _update_spectra(model, ctx.sel))
    info = {"probe": "lora_update_spectra", "rank": top, "steps": result.steps, **cost,
            "measure": "squared singular values of scaling * B A per module after a short uniform LoRA run"}
    return {"spectra": spectra}, info


def _update_spectra(model, sel) -> dict:
    """sigma^2 of scaling * B A for every module of ``sel``, from the R x R core of the two QR
    factorisations (B = Q1 R1, A^T = Q2 R2, so B A = Q1 (R1 R2^T) Q2^T): no out x in product."""
    targets = {m.name for m in sel.modules}
    out = {}
    for name, mod in lora_layers(model).items():
        if name in targets:
            a = mod.lora_A["default"].weight.detach().float()
            b = mod.lora_B["default"].weight.detach().float() * float(mod.scaling["default"])
            core = torch.linalg.qr(b)[1] @ torch.linalg.qr(a.T)[1].T
            out[name] = [float(x) ** 2 for x in torch.linalg.svdvals(core)]
    return out


def plan_with_weights(model: str, strategy: str, params=None, targets=None, budget=None, budget_like=None,
                      **settings):
    """The plan of a strategy whose probe reads weights only (``weight_spectrum``), from a model
    loaded with its weights: what ``adaptive-lora plan`` needs, no data and no training.
    ``settings`` are probe-group keys (e.g. ``spectrum_tail=0.5``, ``spectrum_power=2.5``)."""
    from ..layout import layout_from_model, load_model
    from ..strategies import get_strategy, make_plan
    from .config import TrainConfig

    st = get_strategy(strategy)
    if st.probe is None or not PROBES[st.probe].data_free:
        raise UserError(f"strategy '{strategy}' measures the model on training data: plan it with "
                        f"'adaptive-lora train' (its plan.json), not 'plan'")
    cfg = TrainConfig.from_dict(settings)
    base = load_model(model)
    layout = layout_from_model(base)
    probe = PROBES[st.probe]
    extra, _ = probe.fn(ProbeContext(cfg, None, None, base, layout, layout.select(targets), None))
    params = params or cfg.params
    params = dataclasses.replace(params, extra={**params.extra, **extra, **passed_settings(probe, cfg)})
    return make_plan(layout, strategy, params, targets=targets, budget=budget, budget_like=budget_like)
