"""Wrap a base model per plan, then audit it: the only path from a plan to a PEFT model."""

from __future__ import annotations

from .audit import audit_model
from .lora_config import AlphaPolicy, build_lora_config


def wrap_model(model, plan, policy: AlphaPolicy | None = None, dropout: float = 0.1, audit: bool = True):
    """``get_peft_model`` per plan, then audit the realised ranks and scalings."""
    from peft import get_peft_model

    policy = policy or AlphaPolicy()
    peft_model = get_peft_model(model, build_lora_config(plan, policy, dropout))
    if audit:
        audit_model(peft_model, plan, policy)
    return peft_model
