"""Audit: read every adapted module's real rank and scaling back from the model.

PEFT silently ignores a ``rank_pattern`` key that matches nothing and falls back to the default
rank, so a plan is only trusted after the model agrees with it module by module (the idea of
PEFT's own ``test_multirank_2``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..layout.discover import plain_name
from .lora_config import AlphaPolicy, expected_scaling


class AuditError(Exception):
    """The wrapped model does not realise the plan. Names the first modules that differ."""


@dataclass
class AuditReport:
    modules: dict = field(default_factory=dict)  # name -> {"rank": r, "scaling": s}
    mismatches: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def trainable_params(self) -> int:
        return sum(m["params"] for m in self.modules.values())


def lora_layers(model, adapter: str = "default") -> dict:
    """``{plain module name: PEFT LoRA layer}`` of every module that holds ``adapter``: the one
    lookup of adapted modules (audit, GoRA's initialisation, prune-and-expand, the SVD probe)."""
    from peft.tuners.lora import LoraLayer

    return {plain_name(name): module for name, module in model.named_modules()
            if isinstance(module, LoraLayer) and adapter in getattr(module, "r", {})}


def realised_ranks(model, adapter: str = "default") -> dict:
    """{module_name: {"rank", "scaling", "params"}} for every LoRA layer in ``model``."""
    out = {}
    for name, module in lora_layers(model, adapter).items():
        params = sum(p.numel() for p in module.lora_A[adapter].parameters())
        params += sum(p.numel() for p in module.lora_B[adapter].parameters())
        out[name] = {"rank": int(module.r[adapter]), "scaling": float(module.scaling[adapter]), "params": int(params)}
    return out


def audit_model(model, plan, policy: AlphaPolicy | None = None, adapter: str = "default", raise_on_error: bool = True) -> AuditReport:
    """Compare the model's LoRA layers with ``plan``. A planned module without an adapter, an
    adapter the plan did not ask for, a rank or a scaling that differs: each is a mismatch."""
    policy = policy or AlphaPolicy()
    found = realised_ranks(model, adapter)
    report = AuditReport(modules=found)
    planned = plan.adapted
    for name, rank in planned.items():
        got = found.get(name)
        if got is None:
            report.mismatches.append(f"{name}: planned rank {rank}, but it has no adapter")
            continue
        if got["rank"] != rank:
            report.mismatches.append(f"{name}: planned rank {rank}, realised rank {got['rank']}")
        want = expected_scaling(policy, rank)
        if not math.isclose(got["scaling"], want, rel_tol=1e-6):
            report.mismatches.append(f"{name}: planned scaling {want:.6g}, realised {got['scaling']:.6g}")
    for name in found:
        if name not in planned:
            report.mismatches.append(f"{name}: has an adapter (rank {found[name]['rank']}) the plan did not ask for")
    if report.mismatches and raise_on_error:
        more = f" (+{len(report.mismatches) - 3} more)" if len(report.mismatches) > 3 else ""
        raise AuditError("audit failed: " + "; ".join(report.mismatches[:3]) + more)
    return report
