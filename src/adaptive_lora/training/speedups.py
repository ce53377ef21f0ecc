"""Throughput switches of the training loop; the first two leave the arithmetic as it was.

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
* :class:`ThresholdDropout` (``fast_dropout``): LoRA dropout whose keep-mask compares 16-bit random
  numbers with a threshold instead of drawing a Bernoulli sample per element from torch's CPU
  generator, which costs ~4 ns per element on one thread and was a quarter of a step on the speed
  workload (``benchmarks/RESULTS.md``). Each element is still kept independently and scaled by
  1 / (1 - p); p is rounded to a multiple of 1/65536 (0.1 becomes 0.10000610). The draws differ
  from torch's, so results move within seed noise; opt-in (the default keeps torch's draws, the
  numbers of PEFT and of earlier versions); CPU only (a GPU's fused dropout is cheap).
* :func:`gemm_attention` (``cpu_attention``): attention as two batched GEMMs and an fp32 softmax
  in causal blocks, registered with transformers (eager's arithmetic; float rounding differs from
  SDPA's); CPU only.
* :func:`fuse_lora_linears` (``fused_lora``): PEFT's LoRA linear with one input cast and the
  adapter added inside the GEMM (float rounding differs from PEFT's), as one autograd node
  (:class:`_LoraLinear`) where the base weight is frozen and the dropout is off or threshold
  masks: the same ops as autograd's path, so under bf16 autocast the same bits; CPU only.
* :func:`keep_freed_memory` (``keep_memory``): glibc returns every freed block above 128 KiB-32 MiB
  to the kernel, so the next micro-batch's activations (and the loss's vocabulary-wide fp32
  buffers) come back as fresh pages, each zeroed by a page fault (~0.75 us per 4 KiB here). The
  speed workload faulted 5.5 M times in one run; keeping freed memory in the process cut that to
  1.6 M and the kernel time from 9.3 to 4.0 CPU seconds. The same numbers; the resident size stays
  at its peak. CPU only, Linux with glibc only, and process-wide (it cannot be undone).
"""

from __future__ import annotations

import ctypes
import platform
import types
import weakref

import numpy as np
import torch
import torch.nn.functional as F


def _cached_linear_forward(self, x):
    dev = x.device.type
    cast = _cached_cast(self, torch.get_autocast_dtype(dev)) if torch.is_autocast_enabled(dev) else None
    if cast is not None:
        return F.linear(x.to(self._cast_dtype), *cast)
    return F.linear(x, self.weight, self.bias)


def _cached_cast(mod, dt: torch.dtype):
    """``mod``'s cached (weight, bias) in ``dt``, or None when it has no copy in ``dt`` or its
    weight trains (a weight unfrozen after caching must get its gradient: the module's own path)."""
    if getattr(mod, "_cast_dtype", None) != dt or mod.weight.requires_grad:
        return None
    w = mod.weight
    # A frozen weight changed in place (a merge, a reload) makes the copy stale: re-cast.
    # Not inside a compiled graph: a data pointer there is a guard per module, and every one of
    # a model's linears would recompile it (``compile`` refreshes the copies before each fit).
    if not torch.compiler.is_compiling() and mod._cast_key != (w.data_ptr(), w._version):
        _fill_cache(mod)
    return mod._cast_weight, mod._cast_bias


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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEPT = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of giving it back to the kernel: blocks up to
    1 GiB come from the heap (not from their own mmap), the heap is never trimmed, and it grows
    256 MiB at a time. Returns whether the settings are in force (False off glibc, e.g. macOS).
    Process-wide and once: allocations already made keep where they are."""
    global _KEPT
    if _KEPT:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _KEPT = all(mallopt(k, v) == 1 for k, v in ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1),
                                                 (_M_TOP_PAD, 1 << 28)))
    return _KEPT


def release_freed_memory() -> None:
    """Give the freed memory that :func:`keep_freed_memory` keeps back to the kernel (glibc's
    ``malloc_trim``), e.g. between the runs of a sweep, so that each run's resident-size peak is
    its own. A no-op when the setting is not in force."""
    if _KEPT:
        ctypes.CDLL(None).malloc_trim(0)


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


class ThresholdDropout(torch.nn.Module):
    """Inverted dropout with a keep-mask from bulk 16-bit random numbers (see the module docstring).

    The random bits come from numpy's SFC64, a fast counter-mixing generator, seeded at every call
    by one draw from torch's default generator: ``torch.manual_seed`` and a checkpoint's saved torch
    RNG state still decide every mask, and no other random state exists."""

    LEVELS = 1 << 16

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, p: float) -> None:
        """Settable like ``nn.Dropout.p``; the threshold and the scale follow."""
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self._p = p
        # int16 values below the threshold are dropped; at least one level is always kept
        self.drop_levels = min(round(p * self.LEVELS), self.LEVELS - 1)
        self.scale = self.LEVELS / (self.LEVELS - self.drop_levels)  # 1 / (1 - effective_p): unbiased

    @property
    def effective_p(self) -> float:
        return self.drop_levels / self.LEVELS

    @property
    def active(self) -> bool:
        return self.training and self.drop_levels > 0

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor:
        """A fresh mask shaped and typed like ``x``: 1 where an element is kept, else 0."""
        n = x.numel()
        seed = int(torch.randint(0, 1 << 62, ()))
        raw = np.random.SFC64(seed).random_raw((n + 3) // 4)  # 4 int16 per 64-bit draw
        bits = torch.from_numpy(raw.view(np.int16)[:n]).view(x.shape).to(x.device)
        # ge(..., out=) writes 0/1 straight into x's dtype: a bool mask would cost two slow passes
        # (its conversion, or a mixed-dtype multiply) on a CPU.
        return torch.ge(bits, self.drop_levels - (self.LEVELS >> 1),
                        out=torch.empty(x.shape, dtype=x.dtype, device=x.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active or x.numel() == 0:
            return x
        # (x * keep) * scale rounds once per kept element, as torch's dropout does.
        return torch.mul(x, self.keep_mask(x)).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}, effective_p={self.effective_p:.8f}"


def _lora_dropouts(model):
    """(container, key, module) of every LoRA dropout: PEFT keeps one per adapter in a ModuleDict."""
    for mod in model.modules():
        drops = getattr(mod, "lora_dropout", None)
        if isinstance(drops, torch.nn.ModuleDict):
            for key, d in drops.items():
                yield drops, key, d


def use_threshold_dropout(model) -> int:
    """Replace every LoRA ``nn.Dropout`` with p > 0 by a :class:`ThresholdDropout` of the same p;
    returns how many were replaced."""
    n = 0
    for drops, key, d in list(_lora_dropouts(model)):
        if type(d) is torch.nn.Dropout and d.p > 0:
            new = ThresholdDropout(d.p)
            new.train(d.training)
            drops[key] = new
            n += 1
    return n


def use_torch_dropout(model) -> int:
    """Undo :func:`use_threshold_dropout`."""
    n = 0
    for drops, key, d in list(_lora_dropouts(model)):
        if isinstance(d, ThresholdDropout):
            new = torch.nn.Dropout(d.p)
            new.train(d.training)
            drops[key] = new
            n += 1
    return n


# ----------------------------------------------------------------------------- attention on a CPU

GEMM_ATTENTION = "adaptive_lora_gemm"
# Longer sequences keep SDPA: the GEMMs keep every block's probabilities for the backward pass
# (about batch x heads x T^2 / 2 bf16 values per layer), SDPA's flash kernel only O(T).
GEMM_ATTENTION_MAX_LEN = 512
# Queries per block: a causal block attends only to the keys up to its last query, which skips
# the masked upper triangle's work; 64 was the fastest of 32-128 at 120-256 positions.
GEMM_ATTENTION_BLOCK = 64
# Families whose attention code was checked against SDPA with this function (tests/test_speed_paths.py).
# Others keep SDPA: some models branch on the name "sdpa" itself (Gemma 4's shared key/value layers
# drop queries unless it is "sdpa"; sparse-attention models fold their top-k into the mask only
# for "sdpa" and "eager"), which a new implementation name would silently change.
GEMM_ATTENTION_FAMILIES = frozenset({"llama", "mistral", "mixtral", "qwen2", "phi3", "gpt2", "gpt_neox", "opt"})
# Per-call arguments the two GEMMs do not implement: SDPA's path (or its refusal) instead.
_NOT_COVERED = ("softcap", "s_aux")  # Gemma 2's score soft-capping, gpt-oss's attention sinks


def gemm_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
                   position_bias=None, **kwargs):
    """Attention as two batched GEMMs and an fp32 softmax: transformers' eager arithmetic, with the
    query heads that share a key/value head stacked into one GEMM instead of copying the keys and
    values per head, and, under a causal mask, in blocks of queries that each attend only to the
    keys up to their last position (the keys after it are masked: their weights are exactly 0).
    Registered as an attention implementation with SDPA's masks; whatever it does not cover (a
    GPU, sequences over GEMM_ATTENTION_MAX_LEN, attention dropout, decoding with a cache,
    soft-capping, sinks, position biases, attention weights asked for) goes to SDPA unchanged."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    B, H, T, D = query.shape
    KV, S = key.shape[1], key.shape[2]
    if (query.device.type != "cpu" or S > GEMM_ATTENTION_MAX_LEN or T != S or T == 1 or dropout > 0
            or position_bias is not None or H % KV or value.shape[-1] != D or value.shape[2] != S
            or any(kwargs.get(k) is not None for k in _NOT_COVERED) or kwargs.get("output_attentions")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, position_bias=position_bias, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if attention_mask is not None:
        lower, bias = _mask_plan(attention_mask)
    elif causal:
        lower, bias = True, _attention_bias(torch.ones(T, S, dtype=torch.bool, device=query.device).tril()[None, None])
    else:
        lower, bias = False, None
    # Blocks only when no query may see a later key (a prefix-LM or bidirectional mask may).
    step = GEMM_ATTENTION_BLOCK if lower else T
    scale = D ** -0.5 if scaling is None else scaling
    outs = []
    for i0 in range(0, T, step):
        i1 = min(T, i0 + step)
        keys = i1 if step < T else S
        block_bias = None if bias is None else bias[..., i0:i1, :keys]
        outs.append(_attend(query[:, :, i0:i1], key[:, :, :keys], value[:, :, :keys], block_bias, scale))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)  # (B, H, T, D)
    return out.transpose(1, 2).contiguous(), None


def _attend(q, k, v, bias, scale: float):
    """softmax(q k^T * scale + bias) v for one block of queries, grouped heads stacked."""
    B, H, T, D = q.shape
    KV, S = k.shape[1], k.shape[2]
    G = H // KV  # query heads per key/value head: head h reads key/value head h // G (repeat_kv's order)
    raw = torch.matmul(q.reshape(B, KV, G * T, D), k.transpose(-1, -2)).view(B, KV, G, T, S)
    scores = raw.float() * scale if bias is None else torch.add(bias, raw.float(), alpha=scale)
    probs = scores.softmax(dim=-1).to(raw.dtype)  # the GEMM's dtype: bf16 under autocast
    return torch.matmul(probs.view(B, KV, G * T, S), v).view(B, H, T, D)


# (weak reference to the last mask, lower-triangular?, its additive bias): transformers builds one
# mask per forward and hands it to every layer, so its check and bias are computed once, not per layer.
_MASK_MEMO: list = [None, False, None]


def _mask_plan(mask) -> tuple[bool, torch.Tensor]:
    """Whether ``mask`` lets no query see a later key, and its additive bias; once per mask object."""
    ref, lower, bias = _MASK_MEMO
    if ref is None or ref() is not mask:
        lower = mask.dtype == torch.bool and not bool(mask.triu(1).any())
        bias = _attention_bias(mask)
        _MASK_MEMO[:] = [weakref.ref(mask), lower, bias]
    return lower, bias


def _attention_bias(mask) -> torch.Tensor:
    """The additive fp32 mask, shaped to broadcast over (batch, kv head, group, T, S): 0 where a
    position may attend, the most negative float where not (a fully masked row then averages
    uniformly instead of giving NaN, as in transformers' eager masks)."""
    if mask.dtype == torch.bool:
        bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        bias.masked_fill_(~mask, torch.finfo(torch.float32).min)
    else:  # an additive float mask
        bias = mask.float()
    return bias.unsqueeze(2)  # (batch | 1, heads | 1, 1, T, S)


def use_gemm_attention(model) -> bool:
    """Switch a model of GEMM_ATTENTION_FAMILIES that attends through SDPA to
    :func:`gemm_attention`; returns whether it did (False for other implementations, which were
    chosen on purpose, for other families, and for models whose attention does not go through
    transformers' attention registry)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa" \
            or getattr(model.config, "model_type", None) not in GEMM_ATTENTION_FAMILIES:
        return False
    AttentionInterface.register(GEMM_ATTENTION, gemm_attention)
    AttentionMaskInterface.register(GEMM_ATTENTION, sdpa_mask)
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if not callable(can_set) or not can_set():
        return False
    model.set_attn_implementation(GEMM_ATTENTION)
    return model.config._attn_implementation == GEMM_ATTENTION


# ----------------------------------------------------------------------------- the LoRA linear in fewer passes

def _fused_lora_forward(self, x, *args, **kwargs):
    """PEFT's ``result + lora_B(lora_A(dropout(x))) * scaling`` with fewer passes over the
    activations: under autocast the input is cast once and shared by the base GEMM and the adapter
    (whose dropout then runs on that bf16 copy: one rounding more on kept elements), and
    ``lora_B``'s product is added into the base output by the GEMM itself (``addmm``), with the
    scaling folded into B (a rank x out matrix) instead of multiplying the output. Anything else
    (several or disabled adapters, merged weights, DoRA and other variants, per-call arguments)
    takes PEFT's own forward."""
    active = self.active_adapters
    if args or kwargs or self.disable_adapters or self.merged or len(active) != 1:
        return type(self).forward(self, x, *args, **kwargs)
    name = active[0]
    if name not in self.lora_A or name in self.lora_variant or getattr(self, "lora_bias", {}).get(name, False):
        return type(self).forward(self, x, *args, **kwargs)
    dev = x.device.type
    drop = self.lora_dropout[name]
    one_node = _one_node_weights(self, x, drop)
    if one_node is not None:
        return _LoraLinear.apply(x, *one_node, self.lora_A[name].weight, self.lora_B[name].weight, self.scaling[name],
                                 drop if getattr(drop, "active", False) else None)
    if torch.is_autocast_enabled(dev):
        if x.dtype != torch.get_autocast_dtype(dev):
            x = x.to(torch.get_autocast_dtype(dev))
    elif x.dtype != self.lora_A[name].weight.dtype:  # e.g. a bf16 base with fp32 adapters: PEFT casts
        return type(self).forward(self, x)
    result = self.base_layer(x)
    h = F.linear(self.lora_dropout[name](x), self.lora_A[name].weight)
    b = self.lora_B[name].weight * self.scaling[name]
    out = torch.addmm(result.reshape(-1, result.shape[-1]), h.reshape(-1, h.shape[-1]), b.t())
    return out.view(result.shape)


# The fused LoRA linear as one autograd node (:class:`_LoraLinear`) where it can be; False keeps the
# fused forward's autograd path (benchmarks/ab_switches.py measures one against the other).
LORA_ONE_NODE = True


def _one_node_weights(layer, x, drop):
    """(compute dtype, frozen base weight, bias) in that dtype when ``layer`` can run as one
    :class:`_LoraLinear` node: the base weight is frozen and already in the compute dtype (the
    cast cache's copy under autocast, else the weight itself), and the dropout is off or a
    :class:`ThresholdDropout` (torch's own dropout keeps PEFT's modules). Else None."""
    base = layer.base_layer
    w = base.weight
    if not LORA_ONE_NODE or w.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    if not (isinstance(drop, (ThresholdDropout, torch.nn.Identity)) or not drop.training
            or (isinstance(drop, torch.nn.Dropout) and drop.p == 0)):
        return None
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        if w.dtype == dt:
            return dt, w, base.bias
        cast = None if torch.compiler.is_compiling() else _cached_cast(base, dt)
        return None if cast is None else (dt, *cast)
    if x.dtype != w.dtype or layer.lora_A[layer.active_adapters[0]].weight.dtype != w.dtype:
        return None
    return w.dtype, w, base.bias


class _LoraLinear(torch.autograd.Function):
    """``base(x) + (drop(x) @ A.T) @ (B * scaling).T`` as one autograd node, with the ops (and so
    the rounding) of :func:`_fused_lora_forward`'s autograd path: the same GEMMs in the same
    orientation, the dropout mask's multiply and scale, and the adapter's gradient added into the
    base's in one ``addcmul``. One node instead of ~13 (casts, views, multiplies, GEMMs) and one
    pass fewer over the input's gradient; on the speed workload that gained only ~1 %
    (``benchmarks/RESULTS.md``): autograd's per-node cost was small.

    ``x`` comes in its own dtype (fp32 from the residual stream under autocast) and is cast to
    ``dt`` here, as autocast would; ``a`` and ``b`` are the adapter's parameters, cast the same way."""

    @staticmethod
    def forward(ctx, x, dt, w, bias, a, b, scaling, drop):
        xc = x if x.dtype == dt else x.to(dt)
        x2 = xc.reshape(-1, xc.shape[-1])
        base = F.linear(x2, w, bias)
        if drop is not None:
            mask = drop.keep_mask(x2)
            d = torch.mul(x2, mask).mul_(drop.scale)
        else:
            mask, d = None, x2
        a_c = a.to(dt)
        h = torch.mm(d, a_c.t())
        b_c = (b * scaling).to(dt)
        out = torch.addmm(base, h, b_c.t())
        ctx.save_for_backward(w, a_c, b_c, d, h, mask)
        ctx.meta = (x.dtype, x.shape, scaling, None if drop is None else drop.scale, a.dtype, b.dtype)
        return out.view(*xc.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        w, a_c, b_c, d, h, mask = ctx.saved_tensors
        x_dtype, x_shape, scaling, scale, a_dtype, b_dtype = ctx.meta
        need_x, need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[4], ctx.needs_input_grad[5]
        g = grad.reshape(-1, grad.shape[-1])
        if g.dtype != h.dtype:
            g = g.to(h.dtype)
        grad_b = torch.mm(g.t(), h).to(b_dtype).mul_(scaling) if need_b else None
        gx = grad_a = None
        if need_x or need_a:
            gh = torch.mm(g, b_c)
            grad_a = torch.mm(gh.t(), d).to(a_dtype) if need_a else None
            if need_x:
                gd = torch.mm(gh, a_c)
                gx = torch.mm(g, w)
                if mask is None:
                    gx.add_(gd)
                else:
                    gx.addcmul_(gd.mul_(scale), mask)  # the mask is 0/1: the product is exact
                gx = gx.view(x_shape).to(x_dtype)
        return gx, None, None, None, grad_a, grad_b, None, None


def fuse_lora_linears(model) -> int:
    """Give every PEFT LoRA ``Linear`` over a plain ``nn.Linear`` (not quantized, no bias on the
    adapter) the :func:`_fused_lora_forward`; returns how many modules were changed."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    n = 0
    for mod in model.modules():
        if type(mod) is LoraLinear and type(mod.base_layer) is torch.nn.Linear and "forward" not in mod.__dict__:
            mod.forward = types.MethodType(_fused_lora_forward, mod)
            n += 1
    return n


def unfuse_lora_linears(model) -> int:
    """Undo :func:`fuse_lora_linears`."""
    n = 0
    for mod in model.modules():
        f = mod.__dict__.get("forward")
        if getattr(f, "__func__", None) is _fused_lora_forward:
            del mod.__dict__["forward"]
            n += 1
    return n
