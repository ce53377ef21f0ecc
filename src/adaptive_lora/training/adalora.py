"""AdaLoRA baseline through PEFT's ``AdaLoraConfig``.

AdaLoRA starts every module at ``init_r`` and prunes singular values towards an average of
``target_r`` by importance, so PEFT's own parameter count (taken at ``init_r``) overstates the
final budget. We read the realised rank of each module from its non-zero singular values
(``lora_E``) and count r * (in + out) like any static plan.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..layout.discover import plain_name


def adalora_config(cfg, layout_sel, total_steps: int):
    from peft import AdaLoraConfig

    from ..adapters import uses_fan_in_fan_out

    a = cfg.adalora
    tinit = a.adalora_tinit if a.adalora_tinit is not None else max(0, int(0.1 * total_steps))
    tfinal = a.adalora_tfinal if a.adalora_tfinal is not None else max(1, int(0.2 * total_steps))
    if tinit + tfinal >= total_steps:
        raise UserError(
            f"AdaLoRA needs adalora_tinit + adalora_tfinal ({tinit} + {tfinal}) below the {total_steps} training steps: "
            "train longer or lower them"
        )
    return AdaLoraConfig(
        init_r=a.adalora_init_r,
        target_r=a.adalora_target_r,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=a.adalora_delta_t,
        total_step=total_steps,
        lora_alpha=cfg.lora.lora_alpha,
        lora_dropout=cfg.lora.lora_dropout,
        target_modules=[m.name for m in layout_sel.modules],
        fan_in_fan_out=uses_fan_in_fan_out(layout_sel),
        task_type="CAUSAL_LM",
    )


def orth_regularizer(model, adapter: str = "default") -> torch.Tensor:
    """AdaLoRA's orthogonality penalty on P (A) and Q (B), as PEFT computes it in ``forward``
    when labels are passed. We compute the loss ourselves, so we add it ourselves."""
    total, n = 0.0, 0
    for name, p in model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and adapter in name and p.requires_grad:
            cov = p @ p.T if "lora_A" in name else p.T @ p
            eye = torch.eye(*cov.size(), device=cov.device, dtype=cov.dtype)
            total = total + torch.norm(cov - eye, p="fro")
            n += 1
    return total / max(n, 1)


def realised_adalora_ranks(model, layout_sel, adapter: str = "default") -> dict:
    """{module_name: rank} from the non-zero entries of each module's ``lora_E``."""
    from peft.tuners.adalora import AdaLoraLayer

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, AdaLoraLayer) and adapter in module.lora_E:
            out[plain_name(name)] = int((module.lora_E[adapter].detach() != 0).sum())
    return out
