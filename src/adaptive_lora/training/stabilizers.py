"""The paper's proposed remedies (its sections 5.1.2, 5.4.1, B.3), each a config switch.

* alpha policies (rsLoRA, rank-proportional alpha) live in ``adapters.lora_config``;
* per-module learning rate scaled by rank, or given per layer, and LoRA+ (a larger lr for B):
  :func:`param_groups`;
* warmup and the schedule: :func:`lr_lambda`;
* fixed and adaptive gradient clipping: :class:`GradClipper`.
"""

from __future__ import annotations

import math

from ..layout.discover import plain_name

def module_of(param_name: str) -> tuple[str, str] | None:
    """``...q_proj.lora_A.default.weight`` -> (``model.layers.0.self_attn.q_proj``, ``A``)."""
    for part in ("lora_A", "lora_B"):
        key = f".{part}."
        if key in param_name:
            return plain_name(param_name.split(key)[0]), part[-1]
    return None


def module_lr(stab, r_base: int, base_lr: float, rank: int, layer: int, matrix: str) -> float:
    """The learning rate of one LoRA matrix under the stabilizer settings ``stab``."""
    lr = base_lr
    if stab.lr_rank_power:
        ref = stab.lr_rank_ref or r_base
        lr *= (ref / rank) ** stab.lr_rank_power  # small ranks get larger steps, large ranks smaller
    if stab.layer_lr is not None:
        if isinstance(stab.layer_lr, list):
            lr *= stab.layer_lr[layer]
        else:
            lr *= stab.layer_lr.get(layer, 1.0)
    if matrix == "B" and stab.loraplus_ratio:
        lr *= stab.loraplus_ratio  # LoRA+: B learns faster than A
    return lr


def param_groups(model, cfg, ranks: dict, layers: dict) -> list[dict]:
    """AdamW parameter groups: one per distinct learning rate, each listing its modules.

    ``ranks``/``layers`` map module names to their rank and layer index. Parameters that are
    trainable but not LoRA matrices (e.g. AdaLoRA's E vectors) use the base lr.
    """
    from ..errors import UserError

    stab, lr0, wd = cfg.stabilize, cfg.optim.lr, cfg.optim.weight_decay
    n_layers = max(layers.values()) + 1
    if isinstance(stab.layer_lr, list) and len(stab.layer_lr) != n_layers:
        raise UserError(f"layer_lr has {len(stab.layer_lr)} entries but the model has {n_layers} layers")
    if isinstance(stab.layer_lr, dict):
        # A layer the model does not have would otherwise be ignored without a word.
        bad = sorted(k for k in stab.layer_lr if not 0 <= k < n_layers)
        if bad:
            raise UserError(f"layer_lr names layer {bad[0]} but the model has layers 0 to {n_layers - 1}")
    groups: dict[float, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mod = module_of(name)
        if mod and mod[0] in ranks:
            lr = module_lr(stab, cfg.params.r_base, lr0, ranks[mod[0]], layers[mod[0]], mod[1])
            label = f"{mod[0]}.{mod[1]}"
        else:
            lr, label = lr0, name
        g = groups.setdefault(lr, {"params": [], "lr": lr, "names": [], "weight_decay": wd})
        g["params"].append(p)
        g["names"].append(label)
    return list(groups.values())


def warmup_steps(stab, total_steps: int) -> int:
    return stab.warmup_steps or int(round(stab.warmup_ratio * total_steps))


def lr_lambda(stab, schedule: str, total_steps: int):
    """Multiplier of each group's lr at optimizer step ``s`` (0-based): linear warmup, then
    ``schedule``: constant, linear decay to 0, or cosine decay to 0."""
    warm = warmup_steps(stab, total_steps)

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total_steps - warm)
        progress = min(max(progress, 0.0), 1.0)
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


class GradClipper:
    """Gradient clipping: ``off``, ``fixed`` (to ``clip_norm``) or ``adaptive``.

    Adaptive clipping caps the global norm at ``clip_factor`` times an exponential moving
    average of past (post-clip) norms: a sudden spike - the paper's "gradient explosion around
    epoch 1.5-2.0" - is cut to a multiple of what the run has been seeing, while a steady drift
    of the norm is followed. The first step only seeds the average.
    """

    def __init__(self, mode: str, clip_norm: float = 1.0, factor: float = 2.0, beta: float = 0.9):
        self.mode, self.clip_norm, self.factor, self.beta = mode, clip_norm, factor, beta
        self.ema: float | None = None

    def threshold(self) -> float | None:
        if self.mode == "fixed":
            return self.clip_norm
        if self.mode == "adaptive" and self.ema is not None:
            return self.factor * self.ema
        return None

    def scale(self, norm: float) -> tuple[float, float | None]:
        """Factor to multiply gradients by (<= 1) and the threshold used."""
        thr = self.threshold()
        factor = 1.0 if thr is None or norm <= thr else thr / (norm + 1e-6)
        if self.mode == "adaptive":
            clipped = norm * factor
            self.ema = clipped if self.ema is None else self.beta * self.ema + (1 - self.beta) * clipped
        return factor, thr
