"""Stability monitoring: gradient norms per layer (LoRA A and B apart) and NaN/Inf detection.

The transformers Trainer filters NaN losses out of its logs by default, which is how a run can
diverge "silently". Here the raw loss and every gradient are checked at every optimizer step;
the first non-finite one stops the run and names the step and the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .stabilizers import module_of


@dataclass
class GradStats:
    global_norm: float
    per_layer: dict  # {"<layer>": {"A": norm, "B": norm}}
    first_bad_module: str | None  # first module (model order) with a NaN/Inf gradient


class GradMonitor:
    """Collects the LoRA parameters once, in model order, then measures them each step."""

    def __init__(self, model, layers: dict):
        self.params = []  # (module_name, "A"/"B", layer, tensor)
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            mod = module_of(name)
            if mod is None:
                self.params.append((name, "other", -1, p))
            else:
                self.params.append((mod[0], mod[1], layers.get(mod[0], -1), p))

    def measure(self) -> GradStats:
        grads = [p.grad for *_, p in self.params if p.grad is not None]
        if not grads:
            return GradStats(0.0, {}, None)
        # One fused kernel for all norms, then one host sync.
        norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
        norms = torch.stack([n.float() for n in norms]).cpu().tolist()
        per_layer: dict = {}
        total = 0.0
        bad = None
        it = iter(norms)
        for module, matrix, layer, p in self.params:
            if p.grad is None:
                continue
            n = next(it)
            if not math.isfinite(n):
                bad = bad or module
            total += n * n
            if matrix in ("A", "B"):  # other trainable tensors (AdaLoRA's E) count in the total only
                slot = per_layer.setdefault(str(layer), {"A": 0.0, "B": 0.0})
                slot[matrix] += n * n
        per_layer = {k: {m: math.sqrt(v) for m, v in d.items()} for k, d in per_layer.items()}
        return GradStats(math.sqrt(total), per_layer, bad)


def grad_summary(norms: list[float]) -> dict:
    """mean / max / p50 / p95 / last of the finite global grad norms."""
    vals = sorted(v for v in norms if math.isfinite(v))
    if not vals:
        return {"mean": None, "max": None, "p50": None, "p95": None, "last": None, "n": 0}

    def pct(q):
        return vals[min(len(vals) - 1, int(round(q * (len(vals) - 1))))]

    return {"mean": sum(vals) / len(vals), "max": vals[-1], "p50": pct(0.5), "p95": pct(0.95),
            "last": norms[-1] if norms else None, "n": len(vals)}
