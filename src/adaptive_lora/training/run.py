"""One training run as a list of named stages.

    session -> data -> base model -> plan (probe if the strategy needs one) -> adapted model
            -> initialised adapters (gora_init) -> checkpoint (resume) -> step-0 eval -> fit -> final eval
            -> save -> summary

Nothing is written into the run folder until the config, the data, the model, the plan and the
wrapped model have all been checked: a bad input aimed at a finished run's folder leaves it as
it was. A folder holding a checkpoint of the same run (``checkpoint.py``) is resumed from it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path


from .. import _io
from ..envinfo import hardware, package_versions
from ..evaluation import evaluate
from ..errors import UserError
from ..layout import discover_layout, layout_from_model, load_config, load_model
from ..schema import RunSummary
from ..strategies import get_strategy, make_plan, plan_from_file
from .config import DISPLAY_ONLY, RunMeta, TrainConfig, keys_of
from .checkpoint import Checkpointer
from .fit import FitResult, fit, planned_steps
from .methods import METHODS
from .monitor import grad_summary
from .prepare import TrainData, prepare_data
from .probe import ProbeContext, run_probe
from .speedups import keep_freed_memory, use_gemm_attention
from .session import Session, base_dtype, check_model_load, start_session
from .stabilizers import warmup_steps


def train(cfg: TrainConfig, out_dir=None, meta: RunMeta | None = None, accelerator=None,
          base_eval_cache: dict | None = None) -> dict:
    """Run one training; write config, plan, metrics, summary and adapter into ``out_dir``.

    ``base_eval_cache`` (a dict a sweep passes to all its runs) reuses the step-0 evaluation
    between runs that share model, eval split and precision: before training every plan computes
    exactly the base model, so that number cannot differ between strategies or seeds.

    Returns the summary as a dict. Raises :class:`~adaptive_lora.errors.UserError` for bad input
    before training; a divergence is a result (status ``diverged``), not an exception.
    """
    from accelerate.utils import set_seed

    out = Path(out_dir or cfg.output.output_dir)
    meta = meta or RunMeta(run_id=out.name, group=out.name)
    session = start_session(cfg.optim.precision, cfg.optim.batch_size, accelerator)
    set_seed(cfg.optim.seed)
    t_setup = time.perf_counter()
    data = prepare_data(cfg.input)
    model, layout = load_base(cfg, session)
    total = planned_steps(cfg.optim, len(data.train))
    method, probe_info = build_method(cfg, session, data, model, layout)
    # Re-seed after planning: the initial adapter weights and dropout masks must not depend on
    # whether a probe ran (it consumes random numbers) or was read from the cache.
    set_seed(cfg.optim.seed)
    model = method.attach(model, layout.select(cfg.plan.targets), cfg, total)
    model = model if cfg.model_load.quantization else model.to(session.device)
    ckpt = Checkpointer(out, cfg, session)
    resumed = ckpt.load()  # the newest checkpoint of this same run, if the folder holds one
    # GoRA's init (gora_init), else None; a resumed run's adapters come from its checkpoint.
    init_info = ckpt.init_info = ckpt.init_info if resumed else method.initialise(model, session, data)
    probe_info = {**(probe_info or {}), "init": init_info} if init_info else probe_info
    files = RunFiles(out, session.main, meta)
    files.start(cfg, method, probe_info, ckpt.metrics_text)
    evaluator = Evaluator(cfg, session, data, files.log, model)
    # After GoRA's init B != 0: step 0 is not the base model (and depends on A, the seed): not shared.
    base_eval = ckpt.base_eval if resumed else evaluator.base(None if init_info else base_eval_cache)
    ckpt.base_eval = base_eval
    setup_s = time.perf_counter() - t_setup
    layers = {m.name: m.layer for m in layout.modules}
    with ckpt.guard():  # SIGTERM: a checkpoint at the next step boundary, then Preempted
        model, result = fit(cfg, session, data, model, method, total, files.log, evaluator.during, layers,
                            desc=meta.run_id or "train", checkpoints=ckpt)
    final_eval = evaluator.full(result.steps) if result.status == "completed" else None
    last = (final_eval or {}).get("eval") or (result.last_eval if (result.last_eval or {}).get("type") == "eval"
                                               else base_eval["eval"])
    unwrapped = session.acc.unwrap_model(model)
    realised = method.realised(unwrapped, layout)
    save_outputs(cfg, session, data, model, out, result)
    summary = summarise(cfg, meta, session, data, layout, method, realised, result,
                        Evals(base_eval, final_eval, last, evaluator.general_info), probe_info, setup_s, total, ckpt)
    files.finish(summary)
    ckpt.finish(summary.status)
    return summary.to_dict()


# ----------------------------------------------------------------------------- stages


def load_base(cfg: TrainConfig, session: Session):
    """The base model with weights, on the run's device, in ``dtype`` (or quantized), ready for
    gradient checkpointing; and its layout, with the parameter count of the unquantized model."""
    m = cfg.model_load
    check_model_load(m, session.device)
    refuse_prequantized(cfg.input.model)
    if cfg.optim.keep_memory and session.device.type == "cpu":
        keep_freed_memory()  # before the weights and every buffer after them (speedups.py)
    dtype = base_dtype(m.dtype, session.device)
    model = load_model(cfg.input.model, dtype, **load_options(m, session.device, dtype))
    model.config.use_cache = False  # the KV cache only costs memory in training
    if cfg.optim.cpu_attention and m.attn_implementation is None and session.device.type == "cpu":
        use_gemm_attention(model)  # an implementation asked for by name is kept
    layout = layout_from_model(model)
    if m.quantization:
        # A packed 4-bit weight reports half its elements: count the model as built on the meta device.
        layout = dataclasses.replace(layout, base_params=meta_base_params(model.config))
    model = prepare_for_training(model, m)
    return (model if m.quantization else model.to(session.device)), layout


def load_options(m, device, dtype) -> dict:
    """``from_pretrained`` options of the ``model_load`` group (None = transformers' default)."""
    opts = {"attn_implementation": m.attn_implementation, "low_cpu_mem_usage": m.low_cpu_mem_usage,
            "trust_remote_code": m.trust_remote_code, "revision": m.revision}
    if m.device_map == "device" and device.type != "cpu":  # on a CPU the weights load there anyway
        opts["device_map"] = {"": device}
    if m.quantization:
        from transformers import BitsAndBytesConfig

        q = m.quantization
        compute = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[q["compute_dtype"]]
        opts["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=q["bits"] == 4, load_in_8bit=q["bits"] == 8, bnb_4bit_quant_type=q["type"],
            bnb_4bit_use_double_quant=q["double_quant"], bnb_4bit_compute_dtype=compute)
    return opts


def refuse_prequantized(spec: str) -> None:
    """A checkpoint saved quantized (GPTQ, AWQ, bitsandbytes ...) would load with packed weights
    that this tool neither counts nor trains correctly: refuse it before loading."""
    qc = getattr(load_config(spec), "quantization_config", None)
    if qc:
        method = (qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", None)) or "unknown"
        method = str(getattr(method, "value", method))
        raise UserError(f"model '{spec}' is a pre-quantized checkpoint ({method}): train from the unquantized model, "
                        "and set quantization: {bits: 4} to quantize it while loading")


def meta_base_params(config) -> int:
    """Parameters of the unquantized model, built on the meta device from ``config``."""
    config = copy.deepcopy(config)
    config.__dict__.pop("quantization_config", None)
    return discover_layout(config).base_params


def prepare_for_training(model, m):
    """Gradient checkpointing (non-reentrant: correct with a frozen base and with LoRA dropout,
    whose random masks are replayed) and, for a quantized base, PEFT's k-bit preparation."""
    kwargs = {"use_reentrant": False}
    if m.quantization:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=m.gradient_checkpointing,
                                               gradient_checkpointing_kwargs=kwargs)
    if m.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        # Only needed if a model's own code ignores use_reentrant: with reentrant checkpoints and
        # no input that requires grad, the adapters inside would get no gradient at all.
        model.enable_input_require_grads()
    return model


def plan_for_run(cfg: TrainConfig, session: Session, data: TrainData, model, layout):
    """The rank plan: from ``plan_file``, or the strategy (after its probe, if it has one)."""
    if cfg.plan.plan_file:
        return plan_from_file(layout, cfg.plan.plan_file), None
    strategy = get_strategy(cfg.plan.strategy)
    params, probe_info = cfg.params, None
    if strategy.probe:
        ctx = ProbeContext(cfg, session, data, model, layout, layout.select(cfg.plan.targets), None)
        extra, probe_info = run_probe(strategy.probe, ctx)
        params = cfg.strategy_params(**extra)
    plan = make_plan(layout, cfg.plan.strategy, params, targets=cfg.plan.targets, budget=cfg.plan.budget,
                     budget_like=cfg.plan.budget_like)
    return plan, probe_info


def build_method(cfg: TrainConfig, session: Session, data: TrainData, model, layout):
    """The method object of ``cfg.plan.method``, with its plan when the method takes one."""
    cls = METHODS[cfg.plan.method]
    plan, probe_info = plan_for_run(cfg, session, data, model, layout) if cls.needs_plan else (None, None)
    return cls.from_config(cfg, plan), probe_info


class RunFiles:
    """The run folder's files, and the experiment trackers of ``report_to`` (fed the same rows as
    metrics.jsonl, after the file: a tracker never holds up or loses the run's own records);
    only the main process writes."""

    def __init__(self, out: Path, main: bool, meta: RunMeta | None = None):
        self.out, self.main, self.meta = out, main, meta or RunMeta()
        self.trackers = None

    def start(self, cfg: TrainConfig, method, probe_info, metrics: str = "") -> None:
        """Write config.yaml and plan.json, and start metrics.jsonl: empty, or with the rows a
        resumed checkpoint had (the rows of later steps, from the interrupted attempt, go)."""
        if not self.main:
            return
        import yaml

        self.out.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_text(self.out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        _io.atomic_write_text(self.out / "metrics.jsonl", metrics)
        plan = getattr(method, "plan", None)
        plan = {**plan.to_dict(), "probe": probe_info} if plan is not None else None
        if plan is not None:
            _io.atomic_write_json(self.out / "plan.json", plan)
        if cfg.output.report_to:
            from .trackers import Trackers

            self.trackers = Trackers(cfg.output.report_to, cfg.output.tracker_strict)
            self.trackers.start(self.out, self.meta.run_id or self.out.name, cfg.to_dict(), plan, self.meta.group)

    def log(self, row: dict) -> None:
        if self.main:
            _io.append_jsonl(self.out / "metrics.jsonl", row)
            if self.trackers is not None:
                self.trackers.log(row)

    def finish(self, summary: RunSummary) -> None:
        if self.main:
            d = summary.to_dict()
            _io.atomic_write_json(self.out / "summary.json", d)
            if self.trackers is not None:
                self.trackers.finish(d)


# Keys that cannot change the step-0 evaluation: with B = 0 (LoRA) or E = 0 (AdaLoRA) the wrapped
# model computes exactly the base model, so nothing about the plan, the adapters or the optimizer
# matters; neither do the seed (no dropout in eval) or what happens after step 0.
_BASE_EVAL_IGNORES = keys_of("plan", "params", "probe", "lora", "stabilize", "adalora", "prune_expand") + (
    "lr", "epochs", "max_steps", "batch_size", "grad_accum", "weight_decay", "adam_beta1", "adam_beta2",
    "lr_schedule", "seed", "group_by_length", "eval_every", "generate_samples", "max_new_tokens",
    "loss_spike", "gradient_checkpointing", "device_map", "low_cpu_mem_usage", "max_tokens",
    "cast_cache", "fast_dropout", "fused_lora", "keep_memory") + DISPLAY_ONLY  # eval has no dropout; cast_cache and keep_memory are exact


class Evaluator:
    """Held-out evaluations, each logged as a metrics row.

    * ``eval``: the full held-out split (step 0, the end, and every ``eval_every`` steps unless
      ``eval_subset`` is set);
    * ``eval_subset``: the first ``eval_subset`` held-out examples, at step 0, every
      ``eval_every`` steps and at the end: cheap points for the learning curves;
    * ``eval_general``: general text never trained on (the forgetting metric), at step 0 and the end.
    """

    def __init__(self, cfg: TrainConfig, session: Session, data: TrainData, log, model):
        from ..data.general_text import general_examples

        self.cfg, self.session, self.data, self.log, self.model = cfg, session, data, log, model
        n = cfg.eval.eval_subset
        self.subset = data.eval[:n] if n else None
        self.general, self.general_info = (None, None)
        if cfg.eval.forgetting:
            self.general, self.general_info = general_examples(data.tokenizer, cfg.eval.forgetting_passages,
                                                               cfg.input.max_length)

    def _rows(self, kind: str, examples: list, step: int, subset: int = 0) -> dict:
        """Evaluate ``examples``; log and return ``{kind: row}`` (plus the subset's row)."""
        s = self.session
        res = evaluate(self.model, examples, self.data.collate, self.cfg.eval.eval_batch_size, s.device, s.amp,
                       s.rank, s.world, s.reduce_sum, subset=subset)
        sub = res.pop("subset", None)
        rows = {kind: {"type": kind, "step": step, **res}}
        if sub is not None:
            rows["eval_subset"] = {"type": "eval_subset", "step": step, **sub}
        for row in rows.values():
            self.log(row)
        return rows

    def during(self, step: int) -> dict:
        """An intermediate point (every ``eval_every`` steps)."""
        if self.subset:
            return self._rows("eval_subset", self.subset, step)["eval_subset"]
        return self._rows("eval", self.data.eval, step)["eval"]

    def full(self, step: int) -> dict:
        """Step 0 or the end: the full split (and the subset, from the same passes) and the
        general text; keyed by row type."""
        rows = self._rows("eval", self.data.eval, step, subset=len(self.subset or ()))
        if self.general:
            rows.update(self._rows("eval_general", self.general, step))
        return rows

    def base(self, cache: dict | None) -> dict:
        """``full(0)``, or the same rows from the sweep's cache (logged with ``cached: true``)."""
        key = self.cfg.cache_key("base_eval", _BASE_EVAL_IGNORES, {"amp": self.session.precision,
                                                                 "world": self.session.world})
        if cache is not None and key in cache:
            rows = {kind: {**row, "cached": True} for kind, row in cache[key].items()}
            for row in rows.values():
                self.log(row)
            return rows
        rows = self.full(0)
        if cache is not None:
            cache[key] = rows
        return rows


@dataclass
class Evals:
    base: dict  # row type -> row, at step 0
    final: dict | None  # row type -> row, at the end (None unless completed)
    last: dict  # the last full-split eval row
    general_info: dict | None

    def summary_fields(self) -> dict:
        final = self.final or {}
        fb, ff = self.base.get("eval_general"), final.get("eval_general")
        return {
            "eval_loss": final["eval"]["eval_loss"] if final else None,
            "perplexity": final["eval"]["perplexity"] if final else None,
            "eval_tokens": self.base["eval"]["eval_tokens"], "last_eval_loss": self.last["eval_loss"],
            "base_eval_loss": self.base["eval"]["eval_loss"], "base_perplexity": self.base["eval"]["perplexity"],
            "eval_subset_loss": final["eval_subset"]["eval_loss"] if "eval_subset" in final else None,
            "forgetting_base_loss": fb["eval_loss"] if fb else None,
            "forgetting_loss": ff["eval_loss"] if ff else None,
            "forgetting_delta": ff["eval_loss"] - fb["eval_loss"] if ff and fb else None,
            "forgetting_set": self.general_info,
        }


def save_outputs(cfg: TrainConfig, session: Session, data: TrainData, model, out: Path, result: FitResult):
    """The adapter (PEFT format) and greedy samples, for a completed run. ``model`` is the model
    as accelerate prepared it: its state dict is gathered by every process (under FSDP or
    DeepSpeed each holds a shard), then the main process writes it."""
    session.acc.wait_for_everyone()
    if result.status != "completed":
        return
    state = session.acc.get_state_dict(model)
    if not session.main:
        return
    unwrapped = session.acc.unwrap_model(model)
    unwrapped.save_pretrained(out / "adapter", state_dict=state)
    if cfg.eval.generate_samples:
        from .samples import write_samples

        write_samples(unwrapped, data.tokenizer, data.eval_records[: cfg.eval.generate_samples],
                      cfg.eval.max_new_tokens, session.device, out / "samples.jsonl")


def summarise(cfg, meta, session, data, layout, method, realised, result: FitResult, evals: Evals, probe_info,
              setup_s: float, total: int, ckpt: Checkpointer | None = None) -> RunSummary:
    d = result.diverged
    trainable = realised.trainable_params
    return RunSummary(
        status=result.status, run_id=meta.run_id, group=meta.group or meta.run_id, strategy=realised.strategy,
        method=cfg.plan.method, seed=cfg.optim.seed, budget_label=meta.budget_label, variant=meta.variant,
        diverged_step=d.step if d else None, diverged_module=d.where if d else None,
        diverged_reason=d.what if d else None,
        **evals.summary_fields(),
        trainable_params=trainable, planned_params=method.planned_params(), base_params=layout.base_params,
        total_params=layout.base_params + trainable,
        efficiency_pct=100.0 * trainable / (layout.base_params + trainable),
        train_time_s=result.train_time, setup_time_s=setup_s, train_tokens=result.tokens,
        checkpoint_time_s=ckpt.time_s if ckpt else None, resumed_from_step=ckpt.resumed_from_step if ckpt else None,
        tokens_per_s=result.tokens / result.train_time if result.train_time > 0 else None,
        optimizer_steps=result.steps, planned_steps=total, examples_seen=result.examples,
        n_train=len(data.train), n_eval=len(data.eval), data=data.counts, world_size=session.world,
        precision=session.precision, warmup_steps=warmup_steps(cfg.stabilize, total),
        peak_memory_mb=session.peak_memory_mb(), grad_norm=grad_summary(result.grad_norms), probe=probe_info,
        plan=realised.to_dict(), config=cfg.to_dict(), versions=package_versions(),
        hardware={**hardware(), "device": str(session.device), "processes": session.world},
    )
