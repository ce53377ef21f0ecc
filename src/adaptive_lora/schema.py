"""The result files' one schema: the run summary and the metric definitions (no torch here).

Every writer of ``summary.json`` (a finished or diverged run, a run that failed in training, a
run the sweep runner saw fail) builds a :class:`RunSummary`; every reader goes through
:func:`read_summary`. A plan has one format too: :meth:`adaptive_lora.strategies.Plan.to_dict`,
used by ``plan.json``, the summary's ``plan`` (the realised ranks) and ``plan_file``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2  # 2: schema_version added, one writer; the keys of version 1 kept their meaning

STATUSES = ("completed", "diverged", "failed")

# The definitions every summary and every report carries. README "Metric definitions" says the same.
METRIC_DEFINITIONS = {
    "token": "a non-padding token position of a tokenised example (prompt and response)",
    "scored_token": "a token whose label is not -100 (default: the reply only, an Alpaca output with its EOS or a "
                    "chat record's assistant turns; prompt tokens are masked)",
    "eval_loss": "token-weighted mean cross-entropy over all scored tokens of the held-out split "
                 "(sum of per-token losses / number of scored tokens; not a mean of per-batch means)",
    "perplexity": "exp(eval_loss)",
    "tokens_per_s": "non-padding tokens of training sequences (prompt and response), counted once per epoch, "
                    "divided by training wall time without evaluation",
    "trainable_params": "sum over adapted modules of r * (in_features + out_features)",
    "efficiency_pct": "trainable / (base + trainable) * 100",
    "eval_subset_loss": "eval_loss on a fixed subset (the first eval_subset held-out examples), the points of the "
                        "learning curves between step 0 and the end",
    "forgetting_delta": "token-weighted mean cross-entropy on general text never trained on (every token scored; "
                        "the first prose paragraphs of Python's own documentation topics) after training minus "
                        "before; positive = the model got worse on general text (forgot), lower is better",
}


@dataclass
class RunSummary:
    """``summary.json``: what one run did. Absent values are None, never missing keys."""

    status: str
    run_id: str | None = None
    group: str | None = None
    strategy: str | None = None
    method: str | None = None
    seed: int | None = None
    budget_label: str | None = None
    variant: str | None = None
    diverged_step: int | None = None
    diverged_module: str | None = None
    diverged_reason: str | None = None
    error: str | None = None  # one line, for status failed
    eval_loss: float | None = None
    perplexity: float | None = None
    eval_tokens: int | None = None
    last_eval_loss: float | None = None
    eval_subset_loss: float | None = None  # final eval on the fixed learning-curve subset, when used
    forgetting_base_loss: float | None = None  # general-text loss of the base model
    forgetting_loss: float | None = None  # general-text loss after training
    forgetting_delta: float | None = None  # forgetting_loss - forgetting_base_loss
    forgetting_set: dict | None = None  # source, Python version, passages, hash of the text
    base_eval_loss: float | None = None
    base_perplexity: float | None = None
    trainable_params: int | None = None
    planned_params: int | None = None
    base_params: int | None = None
    total_params: int | None = None
    efficiency_pct: float | None = None
    train_time_s: float | None = None
    setup_time_s: float | None = None
    checkpoint_time_s: float | None = None  # writing and restoring mid-run checkpoints (not in train_time_s)
    resumed_from_step: int | None = None  # the checkpoint's step this run continued from; None = from step 0
    train_tokens: int | None = None
    tokens_per_s: float | None = None
    optimizer_steps: int | None = None
    planned_steps: int | None = None
    examples_seen: int | None = None
    n_train: int | None = None
    n_eval: int | None = None
    data: dict | None = None
    world_size: int | None = None
    precision: str | None = None
    warmup_steps: int | None = None
    peak_memory_mb: float | None = None
    grad_norm: dict | None = None
    probe: dict | None = None
    plan: dict | None = None  # the realised plan, in Plan.to_dict() format
    config: dict | None = None  # the resolved flat training config
    versions: dict | None = None
    hardware: dict | None = None
    metric_definitions: dict = field(default_factory=lambda: dict(METRIC_DEFINITIONS))
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")  # a bug, not user input

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def failed(cls, error: str, meta=None, config: dict | None = None, **known: Any) -> "RunSummary":
        """The summary of a run that raised: its identity, config and the one-line error."""
        from .envinfo import package_versions

        config = config or {}
        ident = _meta_fields(meta)
        return cls(status="failed", error=error, strategy=config.get("strategy"), method=config.get("method"),
                   seed=config.get("seed"), config=config, versions=package_versions(), **ident, **known)


def _meta_fields(meta) -> dict:
    if meta is None:
        return {}
    return {k: getattr(meta, k) for k in ("run_id", "group", "variant", "budget_label")}


SUMMARY_KEYS = tuple(f.name for f in dataclasses.fields(RunSummary))


def read_summary(d: Any) -> RunSummary | None:
    """A parsed ``summary.json`` -> :class:`RunSummary`, or None when it is not one.

    Unknown keys are dropped (a newer writer's additions); missing keys read as None.
    """
    if not isinstance(d, dict) or d.get("status") not in STATUSES:
        return None
    return RunSummary(**{k: v for k, v in d.items() if k in SUMMARY_KEYS})
