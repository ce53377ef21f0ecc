"""``TrainConfig``: every field of one training run, validated in ``__post_init__``.

Defaults are the paper's (section 3.2.2) unless a comment says otherwise. Each error names the
field and says what to change. ``from_dict`` refuses unknown keys, so a typo in a YAML file
fails before any training.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("constant", "linear", "cosine")
CLIPS = ("off", "fixed", "adaptive")
METHODS = ("lora", "adalora")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class TrainConfig:
    # ---- model and data
    model: str = "smollm2-135m"
    """Hub id, local folder, or the alias ``smollm2-135m``."""
    data: str = "default"
    """``default`` (the embedded set), a local Alpaca JSON/JSONL path, or a datasets hub id."""
    eval_size: Any = 100
    """Held-out records: a count, or a fraction in (0, 1). Taken before ``max_train``."""
    max_train: Any = 200
    """Training examples after the split (the paper used 200); null = all the rest."""
    max_eval: Any = None
    data_seed: int = 0
    """Seed of the shuffle and split; separate from ``seed`` so every seed sees the same eval set."""
    max_length: int = 256
    train_on: str = "response"
    """``response``: loss on the answer only (prompt tokens masked); ``all``: every token."""
    skip_bad_records: bool = False

    # ---- rank plan
    method: str = "lora"
    """``lora`` (a static plan) or ``adalora`` (PEFT's AdaLoRA baseline)."""
    strategy: str = "uniform"
    r: int = 8
    r_base: int = 16
    r_min: int = 4
    r_max: int = 32
    rounding: str = "floor"
    custom: Any = None
    targets: Any = None
    """Module names to adapt; null = the family's (GPT-2: c_attn,c_proj,c_fc; Llama: all seven)."""
    budget: Any = None
    budget_like: Any = None
    budget_label: Any = None
    plan_file: Any = None
    """A saved plan (``plan.json``) to reuse instead of running the strategy."""

    # ---- probes of the data-driven strategies (gradient_sensitivity, eva, adalora_derived)
    probe_batches: int = 8
    """gradient_sensitivity: batches of training data whose weight gradients are accumulated."""
    probe_batch_size: Any = None
    """Examples per probe batch; null = batch_size."""
    eva_rho: float = 2.0
    """eva: a module may get up to eva_rho x r (PEFT's rho)."""
    eva_tau: float = 0.99
    """eva: cosine-similarity threshold at which PEFT's incremental SVD counts as converged."""
    eva_examples: int = 64
    """eva: training examples the SVD cycles over (PEFT repeats them until convergence)."""
    probe_steps: Any = None
    """adalora_derived: optimizer steps of the AdaLoRA run; null = the run's own step count."""
    plan_cache: Any = None
    """Folder where probe results are kept and reused (a sweep sets <results>/plans)."""

    # ---- LoRA
    alpha_policy: str = "constant"
    """``constant`` (paper: alpha 32 for all ranks), ``proportional`` (alpha = alpha_ratio * r) or ``rslora``."""
    lora_alpha: float = 32.0
    alpha_ratio: float = 2.0
    lora_dropout: float = 0.1

    # ---- optimisation
    lr: float = 3e-4
    epochs: int = 3
    max_steps: Any = None
    """Stop after this many optimizer steps (null = run all epochs)."""
    batch_size: int = 8
    """Examples per micro-batch, summed over processes (the global micro-batch)."""
    grad_accum: int = 4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    clip: str = "off"
    """``off`` (the paper), ``fixed`` (to ``clip_norm``) or ``adaptive`` (to ``clip_factor`` x running mean)."""
    clip_norm: float = 1.0
    clip_factor: float = 2.0
    clip_beta: float = 0.9
    """EMA coefficient of the running grad-norm statistic for adaptive clipping."""
    lr_rank_power: float = 0.0
    """Per-module lr = lr * (lr_rank_ref / r) ** power; 0 disables."""
    lr_rank_ref: Any = None
    """Reference rank for ``lr_rank_power``; null = r_base."""
    layer_lr: Any = None
    """Per-layer lr multipliers: a list of L numbers or a map {layer: multiplier}."""
    loraplus_ratio: Any = None
    """LoRA+: the B matrices train with lr * ratio (e.g. 16); null disables."""
    precision: str = "auto"
    """``auto``: bf16 autocast on GPUs and on CPUs with native bf16, else fp32."""
    seed: int = 0
    group_by_length: bool = True
    """Batch examples of similar length: less padding, same examples per epoch."""

    # ---- evaluation and logging
    eval_every: int = 0
    """Evaluate every N optimizer steps (0 = only before and after training)."""
    eval_batch_size: int = 16
    generate_samples: int = 0
    """Greedy-generate this many eval prompts into samples.jsonl at the end."""
    max_new_tokens: int = 64
    loss_spike: Any = None
    """Mark the run diverged when the step loss exceeds this (null = only NaN/Inf)."""
    progress: bool = True

    # ---- AdaLoRA (method: adalora)
    adalora_init_r: int = 12
    adalora_target_r: int = 8
    adalora_tinit: Any = None
    """Steps before pruning starts; null = 10 % of the steps."""
    adalora_tfinal: Any = None
    """Final steps with a frozen budget; null = 20 % of the steps."""
    adalora_delta_t: int = 1

    # ---- bookkeeping (set by the sweep runner)
    output_dir: str = "runs/train"
    run_id: Any = None
    group: Any = None
    variant: Any = None
    fault_nan_step: Any = None
    """Testing aid: poison the gradient of one LoRA module at this optimizer step."""

    # ------------------------------------------------------------------ validation
    def __post_init__(self):
        def need(cond, name, what):
            if not cond:
                raise UserError(f"{name} must be {what}, got {getattr(self, name)!r}")

        for name in ("model", "data", "output_dir"):
            need(isinstance(getattr(self, name), str) and getattr(self, name).strip(), name, "a non-empty string")
        for name in ("max_length", "epochs", "batch_size", "grad_accum", "eval_batch_size", "r", "r_base",
                     "r_min", "r_max", "adalora_init_r", "adalora_target_r", "adalora_delta_t"):
            need(_is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "a positive integer")
        for name in ("seed", "data_seed", "warmup_steps", "eval_every", "generate_samples", "max_new_tokens"):
            need(_is_int(getattr(self, name)) and getattr(self, name) >= 0, name, "a non-negative integer")
        need(_is_int(self.probe_batches) and self.probe_batches >= 1, "probe_batches", "a positive integer")
        need(_is_int(self.eva_examples) and self.eva_examples >= 1, "eva_examples", "a positive integer")
        need(_is_num(self.eva_rho) and self.eva_rho >= 1, "eva_rho", "a number >= 1")
        need(_is_num(self.eva_tau) and 0 < self.eva_tau <= 1, "eva_tau", "a number in (0, 1]")
        for name in ("probe_batch_size", "probe_steps"):
            v = getattr(self, name)
            need(v is None or (_is_int(v) and v >= 1), name, "null or a positive integer")
        need(self.plan_cache is None or isinstance(self.plan_cache, str), "plan_cache", "null or a folder path")
        for name in ("max_train", "max_eval", "max_steps", "fault_nan_step"):
            v = getattr(self, name)
            need(v is None or (_is_int(v) and v >= 1), name, "null or a positive integer")
        for name in ("adalora_tinit", "adalora_tfinal"):
            v = getattr(self, name)
            need(v is None or (_is_int(v) and v >= 0), name, "null or a non-negative integer")
        need(self.max_length >= 8, "max_length", "at least 8")
        e = self.eval_size
        need((_is_int(e) and e >= 1) or (isinstance(e, float) and 0 < e < 1), "eval_size", "a count >= 1 or a fraction in (0, 1)")
        for name in ("lr", "lora_alpha", "alpha_ratio", "clip_norm", "clip_factor"):
            need(_is_num(getattr(self, name)) and getattr(self, name) > 0, name, "a positive number")
        for name in ("weight_decay", "lr_rank_power"):
            need(_is_num(getattr(self, name)) and getattr(self, name) >= 0, name, "a non-negative number")
        need(_is_num(self.lora_dropout) and 0 <= self.lora_dropout < 1, "lora_dropout", "a number in [0, 1)")
        need(_is_num(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, "warmup_ratio", "a number in [0, 1)")
        for name in ("adam_beta1", "adam_beta2", "clip_beta"):
            need(_is_num(getattr(self, name)) and 0 <= getattr(self, name) < 1, name, "a number in [0, 1)")
        need(self.loraplus_ratio is None or (_is_num(self.loraplus_ratio) and self.loraplus_ratio > 0),
             "loraplus_ratio", "null or a positive number")
        need(self.loss_spike is None or (_is_num(self.loss_spike) and self.loss_spike > 0), "loss_spike",
             "null or a positive number")
        need(self.lr_rank_ref is None or (_is_int(self.lr_rank_ref) and self.lr_rank_ref >= 1), "lr_rank_ref",
             "null or a positive integer")
        for name, choices in (("precision", PRECISIONS), ("lr_schedule", SCHEDULES), ("clip", CLIPS),
                              ("method", METHODS), ("train_on", ("response", "all"))):
            if getattr(self, name) not in choices:
                raise UserError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        for name in ("skip_bad_records", "group_by_length", "progress"):
            need(isinstance(getattr(self, name), bool), name, "true or false")
        if isinstance(self.targets, str):
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        need(self.targets is None or (isinstance(self.targets, list) and all(isinstance(t, str) for t in self.targets)),
             "targets", "null, a list of module names, or a comma-separated string")
        if self.budget is not None and self.budget_like is not None:
            raise UserError("budget and budget_like are both set: keep one")
        if self.layer_lr is not None:
            ok = isinstance(self.layer_lr, list) and all(_is_num(v) and v > 0 for v in self.layer_lr)
            ok = ok or (isinstance(self.layer_lr, dict) and all(_is_int(k) and _is_num(v) and v > 0
                                                                for k, v in self.layer_lr.items()))
            need(ok, "layer_lr", "null, a list of positive multipliers (one per layer) or a map {layer: multiplier}")
        if self.method == "adalora" and self.adalora_target_r > self.adalora_init_r:
            raise UserError("adalora_target_r is larger than adalora_init_r: lower the target or raise init_r")
        # Strategy parameters are checked by the strategies package itself (one place).
        self.strategy_params()

    # ------------------------------------------------------------------ helpers
    def strategy_params(self):
        from ..strategies import StrategyParams, get_strategy

        get_strategy(self.strategy)
        return StrategyParams(r=self.r, r_base=self.r_base, r_min=self.r_min, r_max=self.r_max,
                              rounding=self.rounding, custom=self.custom)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.field_names()))
        if unknown:
            import difflib

            hints = [difflib.get_close_matches(k, cls.field_names(), n=1) for k in unknown]
            hint = "; ".join(f"'{k}' (did you mean '{h[0]}'?)" if h else f"'{k}'" for k, h in zip(unknown, hints))
            raise UserError(f"unknown config key {hint}: see the fields of TrainConfig in the docs")
        # YAML reads 3e-4 as a string; accept numeric strings for float fields.
        for f in dataclasses.fields(cls):
            if f.name in d and isinstance(d[f.name], str) and f.type in ("float", float):
                try:
                    d[f.name] = float(d[f.name])
                except ValueError:
                    raise UserError(f"{f.name} must be a number, got {d[f.name]!r}") from None
        # Ints written as 1.0 in YAML stay floats: that is a user error, caught by validation.
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_train_config(path: str | None, overrides: dict | None = None) -> TrainConfig:
    """YAML file (optional) + ``--set`` overrides -> validated config."""
    from ..experiments.overrides import apply_overrides, yaml_load

    base: dict = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                base = yaml_load(f.read()) or {}
        except FileNotFoundError:
            raise UserError(f"config file '{path}' does not exist: give a YAML file") from None
        except Exception as exc:  # yaml errors
            raise UserError(f"config file '{path}' is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(base, dict):
            raise UserError(f"config file '{path}' must hold a mapping of field: value")
    return TrainConfig.from_dict(apply_overrides(base, overrides or {}))
