"""``TrainConfig``: one training run's settings, grouped by concern, flat in YAML.

In code a config is a set of small typed groups (``cfg.input.model``, ``cfg.optim.lr``,
``cfg.lora.lora_alpha``), each validating itself in ``__post_init__``. In YAML and on the
command line (``--set lr=1e-4``) the keys stay flat, as users of LLaMA-Factory and axolotl
expect: every key belongs to exactly one group (:data:`KEY_GROUP`), so ``from_dict`` routes it
and ``to_dict`` flattens back. Unknown keys are refused with a suggestion, so a typo fails
before any training.

Every field carries a one-line doc (``metadata["doc"]``) that states what its default trades
off; ``adaptive-lora train --help`` and the README list them by group. Defaults are the paper's
(section 3.2.2) unless the doc says otherwise. Strategy parameters (``r``, ``r_base`` ...) are
declared once, in :class:`~adaptive_lora.strategies.StrategyParams`, and reused here.

Sweep bookkeeping (run id, group, variant, budget label) is not part of a training config: it
travels beside it as :class:`RunMeta`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..strategies.params import StrategyParams, doc_field as F

PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("constant", "linear", "cosine")
CLIPS = ("off", "fixed", "adaptive")
PROBE_METHODS = ("sketch", "exact")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Checks:
    """Validation helpers shared by the groups: each error names the key and what to change."""

    def _need(self, cond, name, what):
        if not cond:
            raise UserError(f"{name} must be {what}, got {getattr(self, name)!r}")

    def _ints(self, names, low: int, what: str, optional: bool = False):
        for name in names:
            v = getattr(self, name)
            ok = (optional and v is None) or (_is_int(v) and v >= low)
            self._need(ok, name, ("null or " if optional else "") + what)

    def _nums(self, names, ok, what: str, optional: bool = False):
        for name in names:
            v = getattr(self, name)
            self._need((optional and v is None) or (_is_num(v) and ok(v)), name, ("null or " if optional else "") + what)

    def _choice(self, name, choices):
        if getattr(self, name) not in choices:
            raise UserError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")

    def _bools(self, names):
        for name in names:
            self._need(isinstance(getattr(self, name), bool), name, "true or false")


@dataclass
class InputConfig(_Checks):
    """The base model and the data."""

    model: str = F("smollm2-135m", "hub id, local folder, or the alias smollm2-135m (the embedded default)")
    data: str = F("default", "default (embedded set), a local JSON/JSONL file (Alpaca, chat messages or ShareGPT "
                             "records), or a datasets hub id")
    data_format: str = F("auto", "auto (from the file's first record), alpaca, messages or sharegpt; chat formats "
                                 "use the tokenizer's chat template and score assistant turns only")
    eval_size: Any = F(100, "held-out records (a count, or a fraction in (0, 1)); more = steadier eval, "
                            "fewer training records; taken before max_train")
    max_train: Any = F(None, "cap on training records after the split; null = every record left after the eval "
                             "split (the paper capped at 200); the summary and report state the counts used")
    max_eval: Any = F(None, "cap on eval records after the split; null = all of eval_size")
    data_seed: int = F(0, "seed of the shuffle and split, apart from seed: every seed sees the same eval set")
    max_length: int = F(256, "tokens per example; longer examples are truncated (costs time quadratically)")
    train_on: str = F("response", "response: loss on the answer only (prompt masked); all: every token")
    skip_bad_records: bool = F(False, "skip malformed records instead of failing (the count is reported)")
    data_cache: Any = F(None, "folder of tokenised data shared by runs and processes; null = data/ in the cache "
                              "folder (ADAPTIVE_LORA_CACHE, else ~/.cache/adaptive-lora); false = tokenise every time")

    def __post_init__(self):
        for name in ("model", "data"):
            self._need(isinstance(getattr(self, name), str) and getattr(self, name).strip(), name, "a non-empty string")
        self._ints(("max_length",), 8, "an integer >= 8")
        self._ints(("data_seed",), 0, "a non-negative integer")
        self._ints(("max_train", "max_eval"), 1, "a positive integer", optional=True)
        e = self.eval_size
        self._need((_is_int(e) and e >= 1) or (isinstance(e, float) and 0 < e < 1), "eval_size",
                   "a count >= 1 or a fraction in (0, 1)")
        self._choice("train_on", ("response", "all"))
        self._choice("data_format", ("auto", "alpaca", "messages", "sharegpt"))
        self._bools(("skip_bad_records",))
        self._need(self.data_cache is None or self.data_cache is False
                   or (isinstance(self.data_cache, str) and self.data_cache.strip()), "data_cache",
                   "null, false or a folder path")


DTYPES = ("auto", "fp32", "bf16", "fp16")
ATTN_IMPLEMENTATIONS = (None, "eager", "sdpa", "flash_attention_2")
QUANT_DEFAULTS = {"bits": 4, "type": "nf4", "double_quant": True, "compute_dtype": "bf16"}


@dataclass
class ModelConfig(_Checks):
    """How the base model is loaded and run: precision, placement, quantization, checkpointing."""

    dtype: str = F("auto", "dtype of the frozen base weights: auto = bf16 on GPUs that support it, fp32 elsewhere; "
                           "fp32, bf16 or fp16 (fp16 is refused for training: no loss scaler); adapters and "
                           "Adam states stay fp32")
    attn_implementation: Any = F(None, "null = transformers' default; eager, sdpa or flash_attention_2 (needs the "
                                       "flash-attn package and a GPU)")
    device_map: str = F("device", "device: load the weights straight onto this process's device; cpu: load in "
                                  "CPU memory, then move (what FSDP's CPU-efficient loading expects)")
    low_cpu_mem_usage: bool = F(True, "load without a second copy of the weights in CPU memory (transformers >= 5 "
                                      "always does)")
    trust_remote_code: bool = F(False, "run the model repository's own Python code (only for repositories you trust)")
    revision: Any = F(None, "hub branch, tag or commit of the model; null = main")
    gradient_checkpointing: bool = F(False, "recompute each block's activations in the backward pass: activation "
                                            "memory of one block instead of all, ~30 % more time")
    quantization: Any = F(None, "null, or a 4/8-bit base through bitsandbytes (QLoRA; CUDA only), e.g. {bits: 4, "
                                "type: nf4, double_quant: true, compute_dtype: bf16}")

    def __post_init__(self):
        self._choice("dtype", DTYPES)
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise UserError("attn_implementation must be null, eager, sdpa or flash_attention_2, got "
                            f"{self.attn_implementation!r}")
        self._choice("device_map", ("device", "cpu"))
        self._bools(("low_cpu_mem_usage", "trust_remote_code", "gradient_checkpointing"))
        self._need(self.revision is None or (isinstance(self.revision, str) and self.revision.strip()), "revision",
                   "null or a branch, tag or commit")
        self.quantization = resolve_quantization(self.quantization)


def resolve_quantization(q) -> dict | None:
    """Validate the nested ``quantization`` key; fill its defaults, so that {bits: 4} and the full
    spelling hash alike."""
    if q is None:
        return None
    if not isinstance(q, dict):
        raise UserError(f"quantization must be null or a mapping like {{bits: 4, type: nf4}}, got {q!r}")
    unknown = sorted(set(q) - set(QUANT_DEFAULTS))
    if unknown:
        raise UserError(f"quantization has unknown key {unknown[0]!r}: use {', '.join(QUANT_DEFAULTS)}")
    q = {**QUANT_DEFAULTS, **q}
    checks = {"bits": (q["bits"] in (4, 8) and _is_int(q["bits"]), "4 or 8"),
              "type": (q["type"] in ("nf4", "fp4"), "nf4 or fp4"),
              "double_quant": (isinstance(q["double_quant"], bool), "true or false"),
              "compute_dtype": (q["compute_dtype"] in ("bf16", "fp16", "fp32"), "bf16, fp16 or fp32")}
    for key, (ok, what) in checks.items():
        if not ok:
            raise UserError(f"quantization.{key} must be {what}, got {q[key]!r}")
    return q


@dataclass
class PlanConfig(_Checks):
    """Which modules get which rank (the strategy's own parameters are in StrategyParams)."""

    method: str = F("lora", "lora (a static rank plan), adalora (PEFT's AdaLoRA baseline, ranks set in training) or "
                        "prune_expand (the plan's ranks moved between modules during training)")
    strategy: str = F("uniform", "rank-allocation strategy; see 'adaptive-lora strategies'")
    targets: Any = F(None, "module names to adapt (list or comma-separated); null = every linear of the decoder blocks "
                           "(no lm_head, no MoE router): all capacity, most parameters")
    budget: Any = F(None, "rescale the strategy's shape to this many LoRA parameters (e.g. 3.1M)")
    budget_like: Any = F(None, "rescale to another plan's parameter count, e.g. uniform:8 (equal-budget studies)")
    plan_file: Any = F(None, "reuse a saved plan.json instead of running the strategy (no probe)")

    def __post_init__(self):
        from ..training.methods import METHODS

        self._choice("method", tuple(METHODS))
        if isinstance(self.targets, str):
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        self._need(self.targets is None or (isinstance(self.targets, list) and all(isinstance(t, str) for t in self.targets)),
                   "targets", "null, a list of module names, or a comma-separated string")
        if self.budget is not None and self.budget_like is not None:
            raise UserError("budget and budget_like are both set: keep one")
        self._need(self.plan_file is None or isinstance(self.plan_file, str), "plan_file", "null or a file path")


@dataclass
class ProbeConfig(_Checks):
    """Measurements the data-driven strategies take before training (cached, shared by seeds)."""

    probe_batches: int = F(8, "gradient_sensitivity: batches whose weight gradients are accumulated; more = "
                              "steadier spectra, longer probe")
    probe_batch_size: Any = F(None, "examples per probe batch; null = batch_size")
    probe_method: str = F("sketch", "gradient_sensitivity: sketch (top r_max singular values through temporary "
                                    "factors of rank 2 r_max (>= r_max+8): memory ~ (in+out) x 2 r_max per module, "
                                    "2 + 2 x probe_power_iters passes) or exact (full gradients and SVDs: "
                                    "one gradient per target weight, 1 pass)")
    probe_power_iters: int = F(1, "gradient_sensitivity with probe_method sketch: power iterations; each costs 2 "
                                  "more passes and makes the smaller of the top r_max values more accurate")
    eva_rho: float = F(2.0, "eva: a module may get up to eva_rho x r (PEFT's rho); higher = more uneven ranks")
    eva_tau: float = F(0.99, "eva: cosine similarity at which PEFT's incremental SVD counts as converged")
    eva_examples: int = F(64, "eva: training examples the SVD cycles over (PEFT repeats them until convergence)")
    probe_steps: Any = F(None, "adalora_derived, svd_compress: optimizer steps of their short training probe; "
                               "null = the run's own")
    spectrum_tail: float = F(0.5, "weight_spectrum: fraction of each weight's largest eigenvalues the Hill "
                                  "estimator fits (0.5 = from the median up, AlphaPruning's xmin_mid)")
    spectrum_power: float = F(2.5, "weight_spectrum: ranks proportional to alpha ** power "
                                   "(AlphaLoRA's beta 2.5); higher = more uneven, 0 = uniform")
    svd_probe_r: int = F(32, "svd_compress: rank of the uniform LoRA its probe trains; the plan cannot "
                             "measure ranks above it (costs probe time like a run at that rank)")
    plan_cache: Any = F(None, "folder where probe results are kept and reused (a sweep sets <results>/plans)")

    def __post_init__(self):
        self._ints(("probe_batches", "eva_examples"), 1, "a positive integer")
        self._ints(("svd_probe_r",), 2, "an integer >= 2")
        self._ints(("probe_batch_size", "probe_steps"), 1, "a positive integer", optional=True)
        self._choice("probe_method", PROBE_METHODS)
        self._ints(("probe_power_iters",), 0, "a non-negative integer")
        self._nums(("eva_rho",), lambda v: v >= 1, "a number >= 1")
        self._nums(("eva_tau", "spectrum_tail"), lambda v: 0 < v <= 1, "a number in (0, 1]")
        self._nums(("spectrum_power",), lambda v: v >= 0, "a non-negative number")
        self._need(self.plan_cache is None or isinstance(self.plan_cache, str), "plan_cache", "null or a folder path")


@dataclass
class LoraSettings(_Checks):
    """How each adapter scales its update (alpha policy) and its dropout."""

    alpha_policy: str = F("constant", "constant (paper: alpha at every rank, so scaling alpha/r differs per "
                                      "module), proportional (alpha = alpha_ratio * r) or rslora (alpha/sqrt(r))")
    lora_alpha: float = F(32.0, "alpha of the constant and rslora policies (the paper's 32)")
    alpha_ratio: float = F(2.0, "proportional policy: alpha = alpha_ratio * r, the same scaling everywhere")
    lora_dropout: float = F(0.1, "dropout on the adapter input (the paper's 0.1); 0 is faster and deterministic")
    gora_init: bool = F(False, "GoRA's initialisation: B from the accumulated gradient (probe_batches), so "
                               "step 0 already moves down it; costs the probe batches' backward passes")
    gora_init_gamma: float = F(0.02, "gora_init: size of that first move, -gamma * G projected on A (GoRA's "
                                     "code default 0.02); larger = a bigger jump before any optimizer step")

    def __post_init__(self):
        from ..adapters.lora_config import ALPHA_POLICIES

        self._choice("alpha_policy", tuple(ALPHA_POLICIES))
        self._nums(("lora_alpha", "alpha_ratio"), lambda v: v > 0, "a positive number")
        self._nums(("lora_dropout",), lambda v: 0 <= v < 1, "a number in [0, 1)")
        self._nums(("gora_init_gamma",), lambda v: v > 0, "a positive number")
        self._bools(("gora_init",))


@dataclass
class OptimConfig(_Checks):
    """The optimizer, the schedule, batching and precision."""

    lr: float = F(3e-4, "AdamW learning rate (the paper's 3e-4)")
    epochs: int = F(3, "passes over the training records (the paper: 3)")
    max_steps: Any = F(None, "stop after this many optimizer steps; null = all epochs")
    batch_size: int = F(8, "examples per micro-batch, summed over processes (the global micro-batch)")
    grad_accum: int = F(4, "micro-batches per optimizer step (paper: 4, effective batch 32); fewer = more steps")
    weight_decay: float = F(0.0, "AdamW weight decay on the adapters; 0 as in the paper")
    adam_beta1: float = F(0.9, "AdamW beta1")
    adam_beta2: float = F(0.999, "AdamW beta2")
    lr_schedule: str = F("constant", "constant (the paper names none), linear or cosine decay to 0")
    precision: str = F("auto", "auto: bf16 autocast on GPUs and CPUs with native bf16, else fp32; fp32 is "
                               "exact and slower; bf16 forces autocast")
    seed: int = F(0, "seed of adapter initialisation, dropout and batch order")
    group_by_length: bool = F(True, "batch examples of similar length: less padding, same examples per epoch")
    max_tokens: Any = F(None, "re-cut each optimizer step's examples into micro-batches of at most this many padded "
                              "positions (longest first): less padding and larger GEMMs, same examples and loss "
                              "normalisation per step, different dropout draws; null = batch_size examples each")
    cast_cache: bool = F(True, "under bf16 autocast, cast each frozen fp32 base weight to bf16 once instead of at "
                               "every forward: same numbers, ~2 % faster on CPU; +2 bytes of memory per base weight")
    fast_dropout: bool = F(False, "on a CPU, draw LoRA dropout masks as 16-bit thresholds on bulk random bits instead "
                                  "of torch's per-element Bernoulli: the same law (p rounded to 1/65536), other draws, "
                                  "so results move within seed noise (the main job's uniform r16 by 0.003); whole "
                                  "runs 1.2-1.3x faster. false = torch's dropout: the draws of PEFT and of earlier "
                                  "versions. GPUs always use torch's")
    cpu_attention: bool = F(True, "on a CPU, when attn_implementation is null and the model attends through SDPA, "
                                  "sequences of up to 512 positions attend with two GEMMs and an fp32 softmax in "
                                  "causal blocks (transformers' eager arithmetic), 2-4x faster than SDPA's CPU kernel "
                                  "at 120-256 positions; longer ones, and GPUs, keep SDPA")
    fused_lora: bool = F(True, "on a CPU, each LoRA linear casts its input once for the base and the adapter and adds "
                               "the adapter's output inside the GEMM (addmm, scaling folded into B), as one autograd "
                               "node: fewer passes, the same arithmetic up to bf16 rounding; false = PEFT's "
                               "forward. GPUs use PEFT's")
    keep_memory: bool = F(True, "on a CPU under Linux/glibc, keep freed memory in the process for reuse instead of "
                                "returning it to the kernel: no page faults on every micro-batch's fresh buffers "
                                "(whole runs of the speed workload 1.02-1.20x, median 1.08x), the same numbers; "
                                "the resident size stays at its peak. "
                                "Process-wide once set; false = glibc's defaults")

    def __post_init__(self):
        self._ints(("epochs", "batch_size", "grad_accum"), 1, "a positive integer")
        self._ints(("max_steps",), 1, "a positive integer", optional=True)
        self._ints(("seed",), 0, "a non-negative integer")
        self._nums(("lr",), lambda v: v > 0, "a positive number")
        self._nums(("weight_decay",), lambda v: v >= 0, "a non-negative number")
        self._nums(("adam_beta1", "adam_beta2"), lambda v: 0 <= v < 1, "a number in [0, 1)")
        self._choice("lr_schedule", SCHEDULES)
        self._choice("precision", PRECISIONS)
        self._bools(("group_by_length", "cast_cache", "fast_dropout", "cpu_attention", "fused_lora", "keep_memory"))
        self._ints(("max_tokens",), 8, "an integer >= 8", optional=True)


@dataclass
class StabilizerConfig(_Checks):
    """The remedies the paper proposed but did not run; each off by default (the paper's setting)."""

    warmup_steps: int = F(0, "linear lr warmup over this many steps (0 = none, the paper)")
    warmup_ratio: float = F(0.0, "warmup as a fraction of the steps, used when warmup_steps is 0")
    clip: str = F("off", "off (the paper), fixed (to clip_norm) or adaptive (clip_factor x running mean norm)")
    clip_norm: float = F(1.0, "fixed clipping: the global gradient-norm cap")
    clip_factor: float = F(2.0, "adaptive clipping: cap at this multiple of the running mean norm")
    clip_beta: float = F(0.9, "adaptive clipping: EMA coefficient of the running norm; higher = slower to follow")
    lr_rank_power: float = F(0.0, "per-module lr = lr * (lr_rank_ref / r) ** power; 0 disables")
    lr_rank_ref: Any = F(None, "reference rank of lr_rank_power; null = r_base")
    layer_lr: Any = F(None, "per-layer lr multipliers: a list of L numbers or a map {layer: multiplier}")
    loraplus_ratio: Any = F(None, "LoRA+: B matrices train at lr * ratio (e.g. 16); null disables")

    def __post_init__(self):
        self._ints(("warmup_steps",), 0, "a non-negative integer")
        self._ints(("lr_rank_ref",), 1, "a positive integer", optional=True)
        self._nums(("warmup_ratio", "clip_beta"), lambda v: 0 <= v < 1, "a number in [0, 1)")
        self._nums(("clip_norm", "clip_factor"), lambda v: v > 0, "a positive number")
        self._nums(("lr_rank_power",), lambda v: v >= 0, "a non-negative number")
        self._nums(("loraplus_ratio",), lambda v: v > 0, "a positive number", optional=True)
        self._choice("clip", CLIPS)
        if self.layer_lr is not None:
            v = self.layer_lr
            ok = isinstance(v, list) and all(_is_num(x) and x > 0 for x in v)
            ok = ok or (isinstance(v, dict) and all(_is_int(k) and _is_num(x) and x > 0 for k, x in v.items()))
            self._need(ok, "layer_lr", "null, a list of positive multipliers (one per layer) or a map {layer: multiplier}")


@dataclass
class EvalConfig(_Checks):
    """Held-out evaluation and what is logged."""

    eval_every: int = F(0, "evaluate every N optimizer steps (0 = before and after training only); each eval "
                           "costs a pass over the eval set")
    eval_subset: int = F(0, "evaluations between the first and the last (eval_every) use only the first N held-out "
                            "examples, a fixed subset also scored at step 0 and at the end: cheap learning "
                            "curves; 0 = the full eval set every time")
    eval_batch_size: int = F(16, "examples per eval batch; larger is faster until memory runs out")
    forgetting: bool = F(True, "eval loss on general text (Python's own documentation) before and after training: "
                               "how much the model forgot; costs one short eval per run")
    forgetting_passages: int = F(24, "passages of general text for the forgetting metric (~100 tokens each)")
    generate_samples: int = F(0, "greedy-generate this many eval prompts into samples.jsonl at the end")
    max_new_tokens: int = F(64, "tokens generated per sample")
    loss_spike: Any = F(None, "mark the run diverged when the step loss exceeds this (null = only NaN/Inf)")

    def __post_init__(self):
        self._ints(("eval_batch_size", "forgetting_passages"), 1, "a positive integer")
        self._ints(("eval_every", "eval_subset", "generate_samples", "max_new_tokens"), 0, "a non-negative integer")
        self._bools(("forgetting",))
        self._nums(("loss_spike",), lambda v: v > 0, "a positive number", optional=True)


@dataclass
class AdaLoraSettings(_Checks):
    """PEFT's AdaLoRA (method: adalora, and the adalora_derived probe)."""

    adalora_init_r: int = F(12, "rank every module starts at before pruning")
    adalora_target_r: int = F(8, "average rank AdaLoRA prunes towards")
    adalora_tinit: Any = F(None, "steps before pruning starts; null = 10 % of the steps")
    adalora_tfinal: Any = F(None, "final steps with a frozen budget; null = 20 % of the steps")
    adalora_delta_t: int = F(1, "steps between two budget updates")

    def __post_init__(self):
        self._ints(("adalora_init_r", "adalora_target_r", "adalora_delta_t"), 1, "a positive integer")
        self._ints(("adalora_tinit", "adalora_tfinal"), 0, "a non-negative integer", optional=True)
        if self.adalora_target_r > self.adalora_init_r:
            raise UserError("adalora_target_r is larger than adalora_init_r: lower the target or raise init_r")


@dataclass
class PruneExpandSettings(_Checks):
    """method: prune_expand, ranks moved between modules during training (training/prune_expand.py)."""

    pe_capacity: float = F(2.0, "each adapter is allocated at this x its planned rank (at most r_max): the "
                                "most it can grow to; more = more freedom, more adapter and Adam memory")
    pe_interval: int = F(2, "optimizer steps between two rounds of moves; shorter = more moves, noisier scores")
    pe_moves: int = F(16, "ranks grown per round (each paid for by pruning the least important components)")
    pe_warmup: Any = F(None, "steps before the first round (scores need a few steps); null = 20 % of the steps")
    pe_freeze: Any = F(None, "final steps without moves, so grown ranks get trained; null = 20 % of the steps")
    pe_beta: float = F(0.85, "moving average of the importance |w * dL/dw| (AdaLoRA's beta1); higher = smoother")

    def __post_init__(self):
        self._nums(("pe_capacity",), lambda v: v >= 1, "a number >= 1")
        self._ints(("pe_interval", "pe_moves"), 1, "a positive integer")
        self._ints(("pe_warmup", "pe_freeze"), 0, "a non-negative integer", optional=True)
        self._nums(("pe_beta",), lambda v: 0 <= v < 1, "a number in [0, 1)")


@dataclass
class OutputConfig(_Checks):
    """Where results go, what the terminal shows and how often the state is saved (none changes a result)."""

    output_dir: str = F("runs/train", "folder of config.yaml, plan.json, metrics.jsonl, summary.json, adapter/")
    progress: bool = F(True, "show a progress bar (display only)")
    report_to: Any = F(doc="experiment trackers, any of tensorboard, mlflow, wandb, trackio (list or "
                           "comma-separated; each needs its extra, e.g. pip install 'adaptive-lora[mlflow]')",
                       factory=list)
    tracker_strict: bool = F(False, "fail the run when a tracker fails; false = record it in trackers.json and "
                                    "go on (the run's own files never depend on a tracker)")
    checkpoint_every: int = F(50, "save the training state every N optimizer steps (and on SIGTERM) so a rerun "
                                  "resumes there; more often = less lost to a crash, more time writing the "
                                  "adapter and twice its size in optimizer state; 0 = only on SIGTERM")
    keep_checkpoints: bool = F(False, "keep the checkpoints of a finished run (false: removed once summary.json "
                                      "is written; they hold the optimizer state, 3x the adapter's size)")

    def __post_init__(self):
        from .trackers import parse_report_to

        self._need(isinstance(self.output_dir, str) and self.output_dir.strip(), "output_dir", "a non-empty string")
        self._bools(("progress", "tracker_strict", "keep_checkpoints"))
        self._ints(("checkpoint_every",), 0, "a non-negative integer")
        # Checked here, not when training starts: a sweep validates every run before the first one
        # trains, so a missing tracker package fails in seconds, not after hours.
        self.report_to = parse_report_to(self.report_to)


# attribute name on TrainConfig -> group class, in the order the help text lists them
GROUPS: dict[str, type] = {
    "input": InputConfig,
    "model_load": ModelConfig,
    "plan": PlanConfig,
    "params": StrategyParams,
    "probe": ProbeConfig,
    "lora": LoraSettings,
    "optim": OptimConfig,
    "stabilize": StabilizerConfig,
    "eval": EvalConfig,
    "adalora": AdaLoraSettings,
    "prune_expand": PruneExpandSettings,
    "output": OutputConfig,
}


def _user_fields(cls) -> list[dataclasses.Field]:
    names = getattr(cls, "USER_FIELDS", None)
    return [f for f in dataclasses.fields(cls) if names is None or f.name in names]


def keys_of(*groups: str) -> tuple[str, ...]:
    """The flat keys of some groups, e.g. for a cache key's list of keys that cannot matter."""
    return tuple(f.name for g in groups for f in _user_fields(GROUPS[g]))


KEY_GROUP: dict[str, str] = {f.name: g for g, cls in GROUPS.items() for f in _user_fields(cls)}
assert len(KEY_GROUP) == sum(len(_user_fields(c)) for c in GROUPS.values()), "a key is in two groups"

# Keys that change what the terminal shows, where files go or how often the state is saved, never
# a result (data_cache: where tokenised data is kept; a hit is exact, see data/cache.py): left out
# of every config hash, so that e.g. --set progress=false (or adding a tracker to report_to, or
# checkpointing more often) does not make a finished sweep look stale, and a rerun with another
# checkpoint_every still resumes its checkpoint.
DISPLAY_ONLY = ("progress", "output_dir", "report_to", "tracker_strict", "data_cache", "checkpoint_every",
                "keep_checkpoints")


@dataclass
class TrainConfig:
    """A validated training config: one attribute per group (see :data:`GROUPS`)."""

    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    model_load: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    plan: PlanConfig = dataclasses.field(default_factory=PlanConfig)
    params: StrategyParams = dataclasses.field(default_factory=StrategyParams)
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    lora: LoraSettings = dataclasses.field(default_factory=LoraSettings)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    stabilize: StabilizerConfig = dataclasses.field(default_factory=StabilizerConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    adalora: AdaLoraSettings = dataclasses.field(default_factory=AdaLoraSettings)
    prune_expand: PruneExpandSettings = dataclasses.field(default_factory=PruneExpandSettings)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)

    def __post_init__(self):
        from ..strategies import get_strategy

        get_strategy(self.plan.strategy)  # an unknown strategy fails here, with the list

    # ------------------------------------------------------------------ flat <-> grouped
    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        """Flat ``{key: value}`` (YAML, ``--set``) -> a validated config."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(KEY_GROUP))
        if unknown:
            import difflib

            hints = [difflib.get_close_matches(k, list(KEY_GROUP), n=1) for k in unknown]
            hint = "; ".join(f"'{k}' (did you mean '{h[0]}'?)" if h else f"'{k}'" for k, h in zip(unknown, hints))
            raise UserError(f"unknown config key {hint}: 'adaptive-lora train --help' lists the keys")
        per_group: dict[str, dict] = {g: {} for g in GROUPS}
        for key, value in d.items():
            per_group[KEY_GROUP[key]][key] = _coerce_float(GROUPS[KEY_GROUP[key]], key, value)
        return cls(**{g: GROUPS[g](**kw) for g, kw in per_group.items()})

    def to_dict(self) -> dict:
        """Flat ``{key: value}`` of every user key, in group order (what config.yaml holds)."""
        return {f.name: getattr(getattr(self, g), f.name) for g, cls in GROUPS.items() for f in _user_fields(cls)}

    def replace(self, **flat) -> "TrainConfig":
        """A copy with some flat keys changed, validated again."""
        return TrainConfig.from_dict({**self.to_dict(), **flat})

    def strategy_params(self, **extra) -> StrategyParams:
        return dataclasses.replace(self.params, extra=extra) if extra else self.params

    def cache_key(self, kind: str, ignore: tuple[str, ...], extra: dict | None = None) -> str:
        """``kind-<hash>`` of the whole resolved config minus ``ignore`` (keys that cannot change
        the cached value; each caller lists and comments its own) and the display-only keys."""
        blob = {k: v for k, v in self.to_dict().items() if k not in ignore and k not in DISPLAY_ONLY}
        text = json.dumps({"kind": kind, "config": blob, "extra": extra or {}}, sort_keys=True, default=str)
        return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    @staticmethod
    def keys_by_group() -> dict[str, list[tuple[str, Any, str]]]:
        """``{group: [(key, default, doc), ...]}`` for the help text and the README."""
        out = {}
        for g, cls in GROUPS.items():
            rows = []
            for f in _user_fields(cls):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                rows.append((f.name, default, f.metadata.get("doc", "")))
            out[g] = rows
        return out


def _coerce_float(cls, key: str, value):
    """YAML 1.1 reads ``3e-4`` as a string; accept numeric strings for float fields."""
    ftype = {f.name: f.type for f in dataclasses.fields(cls)}.get(key)
    if isinstance(value, str) and ftype in ("float", float):
        try:
            return float(value)
        except ValueError:
            raise UserError(f"{key} must be a number, got {value!r}") from None
    return value


@dataclass(frozen=True)
class RunMeta:
    """Who a run is within a sweep: bookkeeping for reports, never an input of training."""

    run_id: str | None = None
    group: str | None = None
    variant: str | None = None
    budget_label: str | None = None


def load_train_config(path: str | None, overrides: dict | None = None) -> TrainConfig:
    """YAML file (optional) + ``--set`` overrides -> validated config."""
    from ..overrides import apply_overrides, read_yaml_mapping

    base = read_yaml_mapping(path, "config file") if path else {}
    return TrainConfig.from_dict(apply_overrides(base, overrides or {}))
