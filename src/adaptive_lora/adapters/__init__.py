"""From a plan to a PEFT model: the one place that builds ``LoraConfig``, and the audit."""

from .audit import AuditError, AuditReport, audit_model
from .lora_config import ALPHA_POLICIES, AlphaPolicy, build_lora_config, expected_scaling, uses_fan_in_fan_out
from .wrap import wrap_model

__all__ = [
    "ALPHA_POLICIES",
    "AlphaPolicy",
    "AuditError",
    "AuditReport",
    "audit_model",
    "build_lora_config",
    "expected_scaling",
    "uses_fan_in_fan_out",
    "wrap_model",
]
