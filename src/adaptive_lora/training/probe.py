"""Probes for the data-driven strategies: measure the model on the task before training.

Each probe returns plain data (spectra or ranks) for a pure strategy function, plus its cost
(time, peak memory, batches), which goes into the run's summary. Probe batches are drawn with
``data_seed``, not the training seed, so every seed of a sweep shares one probe and its cached
result (``plan_cache``): the plan differs between strategies, never between seeds.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import time
from pathlib import Path

import torch

from .. import _io
from ..evaluation.metrics import scored_loss_sum

PROBE_VERSION = 1  # bump when a probe's definition changes, so old cache entries are not reused


def probe_key(cfg, kind: str, extra: dict) -> str:
    """Cache key: everything the probe's result depends on, nothing it does not (not the seed)."""
    fields = {k: getattr(cfg, k) for k in ("model", "data", "data_seed", "eval_size", "max_train", "max_length",
                                           "train_on", "targets", "skip_bad_records")}
    blob = json.dumps({"v": PROBE_VERSION, "kind": kind, **fields, **extra}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


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


def _probe_batches(examples, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    order = list(range(len(examples)))
    random.Random(f"probe/{seed}").shuffle(order)
    order = order[: batch_size * n_batches]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gradient_spectra(model, layout_sel, examples, collate, batch_size: int, n_batches: int, seed: int,
                     device, amp, max_rank: int) -> tuple[dict, dict]:
    """Squared singular values (top ``max_rank``) of each target module's weight gradient,
    accumulated over ``n_batches`` batches of the training split (token-weighted mean loss).

    The base model is used as is (no adapter): its weight gradient is what a LoRA update of
    that module would follow at the start of training.
    """
    t0 = time.perf_counter()
    targets = {m.name for m in layout_sel.modules}
    weights = {}
    for p in model.parameters():
        p.requires_grad_(False)
    for name, mod in model.named_modules():
        if name in targets:
            mod.weight.requires_grad_(True)
            weights[name] = mod.weight
    batches = _probe_batches(examples, batch_size, n_batches, seed)
    total_scored = sum(sum(1 for t in examples[i]["labels"][1:] if t != -100) for b in batches for i in b)
    was_training = model.training
    model.eval()  # no dropout: the probe measures the model, not a noisy copy of it
    for b in batches:
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in b]).items()}
        with torch.autocast(device_type=device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss, _ = scored_loss_sum(model, batch)
        (loss / max(total_scored, 1)).backward()
    spectra = {}
    for name, w in weights.items():
        g = w.grad.detach().float()
        s = torch.linalg.svdvals(g)[:max_rank]
        spectra[name] = [float(x) ** 2 for x in s]
        w.grad = None
        w.requires_grad_(False)
    model.train(was_training)
    info = {"probe": "gradient_spectra", "batches": len(batches), "batch_size": batch_size,
            "scored_tokens": total_scored, "time_s": time.perf_counter() - t0, "peak_memory_mb": _rss_mb(),
            "measure": "squared singular values of the accumulated weight gradient dL/dW per module"}
    return spectra, info


def eva_ranks(model, layout_sel, examples, collate, batch_size: int, r: int, rho: float, tau: float,
              seed: int, device, n_examples: int) -> tuple[dict, dict]:
    """PEFT's EVA rank redistribution: incremental SVD of each module's inputs until the top
    components converge (cosine similarity >= ``tau``), then ranks by explained variance within
    a total of r x modules, each at most rho x r. Only the ranks are kept; LoRA is initialised as
    usual, so the comparison is about where the ranks go."""
    from peft import EvaConfig, LoraConfig
    from peft.tuners.lora.eva import get_eva_state_dict

    t0 = time.perf_counter()
    order = list(range(len(examples)))
    random.Random(f"eva/{seed}").shuffle(order)
    order = order[:n_examples]
    loader = [{k: v.to(device) for k, v in collate([examples[i] for i in order[j:j + batch_size]]).items()}
              for j in range(0, len(order), batch_size)]
    config = LoraConfig(r=r, target_modules=[m.name for m in layout_sel.modules], init_lora_weights="eva",
                        eva_config=EvaConfig(rho=rho, tau=tau), fan_in_fan_out=layout_sel.family == "gpt2")
    state = get_eva_state_dict(model, loader, peft_config=config, show_progress_bar=False)
    ranks = {}
    for name in (m.name for m in layout_sel.modules):
        comp = state.get(name)
        ranks[name] = int(comp.shape[0]) if comp is not None else 0
    info = {"probe": "eva", "examples": len(order), "batch_size": batch_size, "rho": rho, "tau": tau,
            "time_s": time.perf_counter() - t0, "peak_memory_mb": _rss_mb(),
            "measure": "ranks from PEFT's EVA explained-variance redistribution of module inputs"}
    return ranks, info


def probe_plan_params(cfg, model, layout, train_ex, collate, device, amp, accelerator, out_dir: Path):
    """Run (or reuse from ``cfg.plan_cache``) the probe that ``cfg.strategy`` needs and return
    the ``StrategyParams`` holding its result, plus the probe's cost for the summary."""
    from dataclasses import replace

    params = cfg.strategy_params()
    sel = layout.select(cfg.targets)
    bs = cfg.probe_batch_size or cfg.batch_size
    if cfg.strategy == "gradient_sensitivity":
        key = probe_key(cfg, "grad", {"batches": cfg.probe_batches, "bs": bs, "r_max": cfg.r_max,
                                      "amp": str(amp)})
        spectra, info = cached(cfg.plan_cache, key, lambda: gradient_spectra(
            model, sel, train_ex, collate, bs, cfg.probe_batches, cfg.data_seed, device, amp, cfg.r_max))
        extra = {"spectra": spectra}
    elif cfg.strategy == "eva":
        key = probe_key(cfg, "eva", {"r": cfg.r, "rho": cfg.eva_rho, "tau": cfg.eva_tau,
                                     "n": cfg.eva_examples, "bs": bs})
        ranks, info = cached(cfg.plan_cache, key, lambda: eva_ranks(
            model, sel, train_ex, collate, bs, cfg.r, cfg.eva_rho, cfg.eva_tau, cfg.data_seed, device,
            cfg.eva_examples))
        extra = {"ranks": ranks}
    elif cfg.strategy == "adalora_derived":
        steps = cfg.probe_steps

        def run_adalora():
            from .loop import train

            t0 = time.perf_counter()
            # AdaLoRA starts at adalora_init_r and prunes towards an average of r; its schedule is
            # what we borrow, so the probe run trains with data_seed as its seed.
            probe_cfg = replace(cfg, method="adalora", adalora_target_r=cfg.r,
                                adalora_init_r=max(cfg.adalora_init_r, int(round(1.5 * cfg.r))),
                                max_steps=steps, eval_every=0, generate_samples=0, seed=cfg.data_seed,
                                output_dir=str(out_dir / "probe"), progress=False, strategy="uniform",
                                run_id=f"{cfg.run_id or 'run'}-probe", budget=None, budget_like=None)
            summary = train(probe_cfg, out_dir / "probe", accelerator=accelerator)
            ranks = {m["name"]: m["rank"] for m in summary["plan"]["modules"]}
            return ranks, {"probe": "adalora", "steps": summary["optimizer_steps"],
                           "time_s": time.perf_counter() - t0, "peak_memory_mb": _rss_mb(),
                           "measure": "final per-module ranks of a short AdaLoRA run"}

        key = probe_key(cfg, "adalora", {"r": cfg.r, "steps": steps, "init_r": cfg.adalora_init_r,
                                         "epochs": cfg.epochs, "bs": cfg.batch_size, "acc": cfg.grad_accum,
                                         "lr": cfg.lr})
        ranks, info = cached(cfg.plan_cache, key, run_adalora)
        extra = {"ranks": ranks}
    else:  # pragma: no cover - registry and this dispatch are kept in step by the tests
        raise AssertionError(f"no probe for {cfg.strategy}")
    return replace(params, extra=extra), info
