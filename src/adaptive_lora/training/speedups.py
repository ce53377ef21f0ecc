"""Throughput switches of the training loop that leave the arithmetic as it was.

* :func:`cache_frozen_casts` (``cast_cache``): under bf16 autocast every ``nn.Linear`` casts its
  fp32 weight to bf16 at every call, because autocast caches casts only of weights that require a
  gradient. A frozen base is re-cast at every micro-batch: 134 M weights read in fp32 and written
  in bf16 per forward for SmolLM2-135M. Casting each frozen weight once and reusing the copy gives
  bit-identical results (the same round-to-nearest-even cast, the same bf16 GEMM); it saved ~2 %
  of a micro-batch's forward and backward on the speed workload (CPU, 8 examples), more where a
  micro-batch has few tokens per weight.
* :func:`token_budget_microbatches` (``max_tokens``): re-cut one optimizer step's examples into
  micro-batches of at most ``max_tokens`` padded positions. The step still covers the same
  examples and the loss is still normalised by the step's scored tokens, so the gradient is the
  same sum, grouped differently (float rounding apart; LoRA dropout masks differ because they are
  drawn per tensor shape).
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


def _cached_linear_forward(self, x):
    dev = x.device.type
    # A weight unfrozen after caching must get its gradient: then the module's own path.
    if (torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == self._cast_dtype
            and not self.weight.requires_grad):
        w = self.weight
        # A frozen weight changed in place (a merge, a reload) makes the copy stale: re-cast.
        # Not inside a compiled graph: a data pointer there is a guard per module, and every one of
        # a model's linears would recompile it (``compile`` refreshes the copies before each fit).
        if not torch.compiler.is_compiling() and self._cast_key != (w.data_ptr(), w._version):
            _fill_cache(self)
        return F.linear(x.to(self._cast_dtype), self._cast_weight, self._cast_bias)
    return F.linear(x, self.weight, self.bias)


def _fill_cache(mod) -> None:
    dt = mod._cast_dtype
    # Never an inference tensor, even when first needed inside an inference-mode evaluation:
    # training would then refuse to save the copy for its backward pass.
    with torch.inference_mode(False), torch.no_grad():
        mod._cast_weight = mod.weight.detach().to(dt)
        mod._cast_bias = None if mod.bias is None else mod.bias.detach().to(dt)
    mod._cast_key = (mod.weight.data_ptr(), mod.weight._version)


def cache_frozen_casts(model, dtype: torch.dtype | None) -> int:
    """Give every plain, frozen, floating ``nn.Linear`` of ``model`` whose weight is not already in
    ``dtype`` a cached ``dtype`` copy, used whenever autocast to ``dtype`` is on (outside autocast
    the module computes as before). Returns how many modules were changed; 0 for ``dtype`` None.

    Only exact ``nn.Linear`` instances: quantized layers and PEFT's LoRA layers (whose base layer,
    a plain Linear, is reached on its own) keep their own forward. The copies are plain attributes,
    not buffers, so state dicts and saved adapters do not see them."""
    if dtype is None:
        return 0
    n = 0
    for mod in model.modules():
        w = getattr(mod, "weight", None)
        if type(mod) is not torch.nn.Linear or w is None or w.requires_grad or not w.is_floating_point():
            continue
        if w.dtype == dtype or (mod.bias is not None and mod.bias.requires_grad):
            continue
        mod._cast_dtype = dtype
        _fill_cache(mod)
        mod.forward = types.MethodType(_cached_linear_forward, mod)
        n += 1
    return n


def token_budget_microbatches(step_examples: list[list[int]], lengths: list[int], max_tokens: int | None,
                              world: int = 1) -> list[list[int]]:
    """One optimizer step's micro-batches re-cut so that each pads to at most ``max_tokens``
    positions (examples x the longest one), in the order of the longest first: examples of similar
    length share a micro-batch, so short ones are not padded to a long one's length, and a
    micro-batch of short examples holds more of them (larger, faster GEMMs). An example longer
    than the budget gets a micro-batch of its own. ``None`` keeps ``step_examples`` as they are.

    Each micro-batch holds a multiple of ``world`` examples where it can, so every process gets a
    share (a process with none runs a zero-weighted example to keep its collectives in step)."""
    if not max_tokens:
        return step_examples
    order = sorted((i for b in step_examples for i in b), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) + 1) * longest > max_tokens and len(cur) % world == 0:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def uncache_frozen_casts(model) -> int:
    """Undo :func:`cache_frozen_casts`: drop the copies, restore the modules' own forward."""
    n = 0
    for mod in model.modules():
        if "_cast_dtype" in mod.__dict__:
            for attr in ("forward", "_cast_dtype", "_cast_weight", "_cast_bias", "_cast_key"):
                mod.__dict__.pop(attr, None)
            n += 1
    return n
