"""The one place that turns a :class:`~adaptive_lora.strategies.Plan` into a ``peft.LoraConfig``.

PEFT matches ``target_modules`` entries on the end of a module name and ``rank_pattern`` /
``alpha_pattern`` keys as regular expressions, also on the end of the name: a key ``c_proj``
hits both ``attn.c_proj`` and ``mlp.c_proj``, ``h.1.`` would hit ``h.11.``, and a key that
matches nothing is ignored without a word. So every key here is a module's *full* name,
``re.escape``d, and :func:`~adaptive_lora.adapters.audit_model` reads the realised ranks back.

Alpha policies (LoRA scales its update by ``scaling = alpha / r``):

* ``constant`` - the paper: alpha = ``lora_alpha`` (32) everywhere, so scaling = 32 / r differs per
  module: a rank-4 module's update is scaled 4x more than a rank-16 one's.
* ``proportional`` - alpha = ``alpha_ratio`` * r, so scaling = ``alpha_ratio`` is the same everywhere.
* ``rslora`` - rank-stabilised LoRA: scaling = ``lora_alpha`` / sqrt(r).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import UserError

ALPHA_POLICIES = {
    "constant": "alpha = lora_alpha everywhere (the paper); scaling alpha/r varies with rank",
    "proportional": "alpha = alpha_ratio * r; scaling is alpha_ratio for every module",
    "rslora": "rank-stabilised: scaling = lora_alpha / sqrt(r)",
}


@dataclass(frozen=True)
class AlphaPolicy:
    name: str = "constant"
    lora_alpha: float = 32.0
    alpha_ratio: float = 2.0  # only for "proportional": 2.0 gives the paper's 32/16 at r=16

    def __post_init__(self):
        if self.name not in ALPHA_POLICIES:
            raise UserError(f"alpha_policy '{self.name}' is unknown: use one of {', '.join(ALPHA_POLICIES)}")
        if not (isinstance(self.lora_alpha, (int, float)) and self.lora_alpha > 0):
            raise UserError(f"lora_alpha must be a positive number, got {self.lora_alpha!r}")
        if not (isinstance(self.alpha_ratio, (int, float)) and self.alpha_ratio > 0):
            raise UserError(f"alpha_ratio must be a positive number, got {self.alpha_ratio!r}")

    def alpha(self, rank: int) -> float:
        return self.alpha_ratio * rank if self.name == "proportional" else float(self.lora_alpha)


def expected_scaling(policy: AlphaPolicy, rank: int) -> float:
    """What PEFT's ``scaling[adapter]`` must hold for a module of ``rank`` under ``policy``."""
    alpha = policy.alpha(rank)
    return alpha / math.sqrt(rank) if policy.name == "rslora" else alpha / rank


def uses_fan_in_fan_out(layout) -> bool:
    """GPT-2's Conv1D stores weights as (in, out); PEFT must be told, or it warns and guesses.
    Decided here once for every LoRA and AdaLoRA config and probe, from the modules themselves
    (discovery refuses a model whose blocks mix Conv1D and Linear)."""
    return any(m.fan_in_fan_out for m in layout.modules)


def _key(name: str) -> str:
    return re.escape(name)


def build_lora_config(plan, policy: AlphaPolicy | None = None, dropout: float = 0.1, **extra):
    """One ``LoraConfig`` for the whole plan; modules with rank 0 are simply not targeted."""
    from peft import LoraConfig

    policy = policy or AlphaPolicy()
    adapted = plan.adapted
    if not adapted:
        raise UserError("the plan adapts no module: check the strategy and targets")
    if not (0.0 <= float(dropout) < 1.0):
        raise UserError(f"lora_dropout must be in [0, 1), got {dropout!r}")
    # The default r/alpha are the most common rank's; every module is still listed explicitly in
    # rank_pattern/alpha_pattern, so the default never decides anything on its own.
    counts: dict[int, int] = {}
    for r in adapted.values():
        counts[r] = counts.get(r, 0) + 1
    default_r = max(counts, key=lambda r: (counts[r], r))
    return LoraConfig(
        r=default_r,
        lora_alpha=policy.alpha(default_r),
        lora_dropout=float(dropout),
        target_modules=list(adapted),  # full names: PEFT accepts an exact name match
        rank_pattern={_key(n): r for n, r in adapted.items()},
        alpha_pattern={_key(n): policy.alpha(r) for n, r in adapted.items()},
        use_rslora=policy.name == "rslora",
        bias="none",
        task_type="CAUSAL_LM",
        fan_in_fan_out=uses_fan_in_fan_out(plan.layout),
        **extra,
    )
