"""Hand-made run folders for the report tests: what the sweep runner writes, without training.

Shapes follow DialoGPT-medium (GPT-2 medium: 24 layers, d_model 1024, MLP 4096), the paper's
model, so planned parameter counts are the real ones: uniform r=16 plans 6,291,456.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from adaptive_lora._io import append_jsonl, atomic_write_json

N_LAYERS = 24
BASE_PARAMS = 354_823_168
# role -> (kind, in_features, out_features), GPT-2 Conv1D layout
GPT2_MEDIUM = {
    "attn.c_attn": ("attention", 1024, 3072),
    "attn.c_proj": ("attention", 1024, 1024),
    "mlp.c_fc": ("mlp", 1024, 4096),
    "mlp.c_proj": ("mlp", 4096, 1024),
}

RankFn = Callable[[int, str], int]  # (layer, kind) -> rank


def uniform(r: int) -> RankFn:
    return lambda layer, kind: r


def linear_decay(r_base: int = 16, r_min: int = 4, n_layers: int = N_LAYERS) -> RankFn:
    """The paper's formula, rounded to the nearest integer."""
    return lambda layer, kind: max(r_min, round(r_base - (r_base - r_min) * layer / (n_layers - 1)))


def attention_heavy(r_base: int = 16, r_min: int = 4) -> RankFn:
    return lambda layer, kind: r_base if kind == "attention" else max(r_min, r_base // 2)


def make_plan(strategy: str, rank_fn: RankFn, n_layers: int = N_LAYERS) -> dict:
    modules = []
    for layer in range(n_layers):
        for role, (kind, n_in, n_out) in GPT2_MEDIUM.items():
            rank = rank_fn(layer, kind)
            modules.append({
                "name": f"transformer.h.{layer}.{role}", "layer": layer, "kind": kind,
                "rank": rank, "params": rank * (n_in + n_out),
            })
    return {"strategy": strategy, "modules": modules}


def make_run(
    root: Path,
    group: str,
    seed: int,
    *,
    status: str = "completed",
    eval_loss: float | str | None = 2.0,
    strategy: str | None = None,
    rank_fn: RankFn | None = None,
    r: int = 16,
    budget_label: str | None = None,
    variant: str | None = None,
    diverged_step: int | None = None,
    error: str | None = None,
    steps: int = 12,
    train_time_s: float = 60.0,
    model: str = "microsoft/DialoGPT-medium",
    metrics: bool = True,
    run_id: str | None = None,
    alpha_policy: str = "constant",
    lora_alpha: float = 32.0,
    forgetting_delta: float | None = None,
) -> Path:
    """Write ``root/<run_id>/summary.json`` and ``metrics.jsonl`` as a finished run would."""
    run_id = run_id or f"{group}-seed{seed}"
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    strategy = strategy or group.split("+")[0].split("-")[0]
    plan = make_plan(strategy, rank_fn or uniform(r))
    trainable = sum(m["params"] for m in plan["modules"])
    last = diverged_step if status == "diverged" else steps
    if metrics:
        path = run_dir / "metrics.jsonl"
        append_jsonl(path, {"type": "eval", "step": 0, "eval_loss": 3.2, "perplexity": math.exp(3.2), "eval_tokens": 900})
        for step in range(1, (last or steps) + 1):
            blown = status == "diverged" and step == last
            loss = float("nan") if blown else 3.0 - 0.8 * step / steps + 0.02 * seed
            grad = float("inf") if blown else 1.5 / step + 0.1
            append_jsonl(path, {"type": "train", "step": step, "epoch": step / steps, "loss": loss, "lr": 3e-4,
                                "grad_norm": grad, "tokens": 512 * step, "tokens_per_s": 900.0, "time_s": 5.0 * step})
            if status == "completed" and step in (steps // 2, steps):
                ev = eval_loss if step == steps and isinstance(eval_loss, float) else 2.6
                append_jsonl(path, {"type": "eval", "step": step, "eval_loss": ev, "perplexity": math.exp(ev), "eval_tokens": 900})
    ev = eval_loss if isinstance(eval_loss, float) else None
    summary = {
        "status": status, "run_id": run_id, "group": group, "strategy": strategy, "seed": seed,
        "budget_label": budget_label, "variant": variant,
        "diverged_step": diverged_step if status == "diverged" else None,
        "diverged_module": "transformer.h.5.attn.c_attn" if status == "diverged" else None,
        "error": error,
        "eval_loss": eval_loss, "perplexity": math.exp(ev) if ev is not None else eval_loss,
        "base_eval_loss": 3.2, "base_perplexity": math.exp(3.2),
        "trainable_params": trainable, "planned_params": trainable, "total_params": BASE_PARAMS + trainable,
        "efficiency_pct": 100.0 * trainable / (BASE_PARAMS + trainable),
        "train_time_s": train_time_s, "tokens_per_s": 900.0, "train_tokens": 512 * steps,
        "optimizer_steps": last, "peak_memory_mb": 1234.0,
        "grad_norm": {"mean": 0.5, "max": 1.6, "p50": 0.4, "p95": 1.2, "last": 0.2},
        "plan": plan,
        "config": {"model": model, "r": r, "strategy": strategy, "seed": seed,
                   "alpha_policy": alpha_policy, "lora_alpha": lora_alpha},
        "versions": {"python": "3.11.7", "torch": "2.5.1", "transformers": "4.56.0", "peft": "0.17.0"},
        "hardware": {"cpu": "Test CPU", "cpu_count": 2, "gpus": []},
        "metric_definitions": {"eval loss": "token-weighted mean cross-entropy over scored tokens.",
                               "perplexity": "exp(eval loss)."},
    }
    if forgetting_delta is not None:  # training records it only when it measures forgetting
        summary["forgetting_delta"] = forgetting_delta
    atomic_write_json(run_dir / "summary.json", summary)
    return run_dir


def make_incomplete(root: Path, run_id: str, steps: int = 3) -> Path:
    """A run that started (config and a few metric lines) but wrote no summary."""
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text("r: 8\n", encoding="utf-8")
    for step in range(1, steps + 1):
        append_jsonl(run_dir / "metrics.jsonl", {"type": "train", "step": step, "loss": 3.0 - 0.1 * step, "grad_norm": 1.0})
    return run_dir


def make_corrupt(root: Path, run_id: str) -> Path:
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text('{"status": "completed", "eval_loss": 2.', encoding="utf-8")
    return run_dir


def write_sweep(root: Path, run_ids: list[str], *, name: str = "test-sweep", compare_to_paper: bool = False) -> None:
    (Path(root) / "sweep.json").write_text(
        json.dumps({"name": name, "compare_to_paper": compare_to_paper, "runs": run_ids}), encoding="utf-8"
    )
