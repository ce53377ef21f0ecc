"""GoRA's gradient-compressing initialisation of the adapters (``gora_init: true``).

After GoRA (He et al., "GoRA: Gradient-driven Adaptive Low Rank Adaptation", NeurIPS 2025; its
reference code's ``compress`` initialisation). For each adapted module with frozen weight W, the
gradient G = dL/dW accumulated on a few batches is compressed into the adapter so that its first
update already points down the gradient, projected on the row space of A:

    A   as LoRA initialises it (random),
    B   = -(gamma / s) * G A^T (A A^T)^-1,          s = the adapter's scaling (alpha / r ...)
    s*B*A = -gamma * G A^T (A A^T)^-1 A = -gamma * G P_A

What is ours, not theirs:

* G is never materialised. With B = 0 the gradient of B is exactly ``s * G A^T``: one backward
  pass through the adapted model, with gradients on B only, gives everything the formula needs, at
  the adapter's own shapes (out x r), so the initialisation costs what a training micro-batch
  costs and scales like the run itself.
* G is the token-weighted mean gradient over the probe batches (``probe_batches`` x
  ``probe_batch_size``, the batches of the gradient probes), not the mean of per-batch means.
* gamma defaults to 0.02, the reference code's default; B is not rescaled by the learning rate
  (their optional ``scale_by_lr``) and W is left unchanged (their ``reinit_weight`` is off by
  default too), so the model at step 0 differs from the base by ``-gamma * G P_A``.
* The allocation is a separate switch: ``strategy: gora`` plans GoRA's ranks, ``gora_init`` only
  initialises, so either can be compared without the other.

Every process computes the same batches (no reduction is needed, results are identical), and no
random number is drawn: a run's RNG stream is the same with and without this stage.
"""

from __future__ import annotations

import time

import torch

from ..adapters.audit import lora_layers
from ..evaluation import scored_loss_sum
from .prepare import scored_predictions


def compressed_b(grad_b: torch.Tensor, a: torch.Tensor, scaling: float, gamma: float) -> torch.Tensor:
    """B = -(gamma / s) * G A^T (A A^T)^-1, given dL/dB = s * G A^T at B = 0 (``grad_b``)."""
    a = a.double()
    gat = grad_b.double() / scaling  # G A^T
    aat = a @ a.T
    # A A^T is r x r and full rank for a random A with r <= in; solve, do not invert.
    b = -(gamma / scaling) * torch.linalg.solve(aat, gat.T).T  # (A A^T)^-1 symmetric
    return b


def gora_initialise(model, session, data, batches: list[list[int]], gamma: float) -> dict:
    """Set every adapter's B by GoRA's compression of the accumulated gradient; return the cost.

    ``batches``: lists of training-example indices (the gradient probes' batches). The model is
    the PEFT-wrapped one, with B = 0 on every adapter (LoRA's own initialisation).
    """
    t0 = time.perf_counter()
    layers = lora_layers(model)
    trainable = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in layers.values():
        layer.lora_B["default"].weight.requires_grad_(True)
    was_training = model.training
    model.eval()  # no dropout: the initialisation follows the model's gradient, not a noisy copy
    examples = data.train
    total_scored = sum(scored_predictions(examples[i]) for b in batches for i in b)
    for b in batches:
        batch = {k: v.to(session.device) for k, v in data.collate([examples[i] for i in b]).items()}
        with session.autocast():
            loss, _ = scored_loss_sum(model, batch)
        (loss / max(total_scored, 1)).backward()
    with torch.no_grad():
        for layer in layers.values():
            w_b, w_a = layer.lora_B["default"].weight, layer.lora_A["default"].weight
            b = compressed_b(w_b.grad, w_a.detach(), float(layer.scaling["default"]), gamma)
            w_b.copy_(b.to(w_b.dtype))
            w_b.grad = None
    for p, flag in trainable.items():
        p.requires_grad_(flag)
    model.train(was_training)
    return {"gora_init": True, "gamma": gamma, "batches": len(batches), "scored_tokens": total_scored,
            "modules": len(layers), "time_s": round(time.perf_counter() - t0, 3)}
