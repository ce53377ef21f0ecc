"""How much accelerator memory one training process needs, estimated before anything is loaded.

A pure function of the layout (built on the meta device: every adaptable module's in/out
features, the base parameter count), the model config (hidden size, vocabulary) and the run's
settings. The parts, in bytes:

* ``weights``: the frozen base. In its dtype; with ``quantization``, the block linears (the
  layout's modules) at 4 or 8 bits plus their bitsandbytes scales, and everything else
  (embeddings, norms, an untied head) in fp32, because PEFT's k-bit preparation upcasts it.
* ``adapters``: the trainable parameters, their gradients and AdamW's two moments, all fp32:
  16 bytes per parameter.
* ``activations``: what autograd keeps for the backward pass, per token and layer:
  attention 5h + 3kv (norm input and output, q, k, v, rotated q and k, attention output), MLP
  2h + 4I (norm input and output, gate, activation, up, product), and each adapter's input
  and rank-r output; the scores of eager attention (2 x heads x T^2 per example); with bf16
  autocast over fp32 weights, the bf16 copy of each frozen weight a matmul keeps. With gradient
  checkpointing, one hidden state per layer plus one layer's worth recomputed.
* ``logits``: the output logits and their gradient for every position, plus the fp32 chunk of
  the chunked cross-entropy (``evaluation.metrics.CHUNK`` positions).

Not counted: the CUDA context and the allocator's fragmentation (often 0.5-2 GiB on a GPU), and
the transient buffers of the kernels; ``benchmarks/memory_estimate.py`` compares the estimate
with a measured peak.
"""

from __future__ import annotations

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_LOSS_CHUNK = 1024  # evaluation.metrics.CHUNK (not imported: this module stays torch-free)


def _cfg(config, *names, default=None):
    for n in names:
        v = config.get(n) if isinstance(config, dict) else getattr(config, n, None)
        if v is not None:
            return v
    return default


def _quantized_bytes(layout, quantization: dict) -> float:
    """Bytes of the block linears at 4 or 8 bits, with bitsandbytes' scales."""
    linear = sum(m.in_features * m.out_features for m in layout.modules)
    if quantization["bits"] == 8:  # int8 weights and one fp32 scale per output row
        return linear + 4 * sum(m.out_features for m in layout.modules)
    # 4-bit: half a byte per weight and one absmax per block of 64 (fp32, or 8 bits with a
    # second-level fp32 constant per 256 blocks under double quantization).
    per_block = 1 + 4 / 256 if quantization.get("double_quant", True) else 4
    return linear * (0.5 + per_block / 64)


def _weights(layout, dtype: str, quantization: dict | None) -> float:
    if not quantization:
        return layout.base_params * BYTES[dtype]
    rest = layout.base_params - sum(m.in_features * m.out_features for m in layout.modules)
    return _quantized_bytes(layout, quantization) + 4 * rest


def _layer_elements(layout, config, ranks: dict) -> float:
    """Elements autograd keeps per token for one (average) layer."""
    h = _cfg(config, "hidden_size", "n_embd")
    heads = _cfg(config, "num_attention_heads", "n_head")
    kv = h * _cfg(config, "num_key_value_heads", default=heads) // heads
    inter = _cfg(config, "intermediate_size", "n_inner", default=None) or 4 * h
    adapters = sum(m.in_features + ranks.get(m.name, 0) for m in layout.modules if m.name in ranks)
    return 5 * h + 3 * kv + 2 * h + 4 * inter + adapters / layout.n_layers


def _activations(layout, config, ranks, act: int, tokens: int, batch: int, length: int, checkpointing: bool,
                 eager: bool, weight_copies: float) -> float:
    """Activation bytes of the forward pass that the backward pass needs (see the module doc)."""
    per_layer = _layer_elements(layout, config, ranks) * tokens * act
    if eager:
        per_layer += 2 * batch * _cfg(config, "num_attention_heads", "n_head") * length ** 2 * act
    h = _cfg(config, "hidden_size", "n_embd")
    if checkpointing:  # layer inputs kept; one layer (and its weight copies) recomputed at a time
        return layout.n_layers * h * tokens * act + per_layer + weight_copies / layout.n_layers
    return layout.n_layers * per_layer + weight_copies


def estimate_memory(layout, config, ranks: dict, *, dtype: str = "fp32", autocast: str | None = None,
                    quantization: dict | None = None, batch_size: int = 8, max_length: int = 256,
                    gradient_checkpointing: bool = False, attn_implementation: str | None = None,
                    shards: int = 1) -> dict:
    """Peak training memory of one process, by part, in bytes (module doc).

    ``ranks``: ``{module name: rank}`` of the adapted modules (a plan's ``adapted``);
    ``dtype``: the base weights' (fp32, bf16, fp16); ``autocast``: None or bf16/fp16;
    ``batch_size``: examples per micro-batch of this process, each ``max_length`` tokens (the
    worst case: no example shorter); ``shards``: processes that share the weights and adapter
    states (FSDP, DeepSpeed ZeRO-3), 1 otherwise."""
    tokens = batch_size * max_length
    act = 2 if autocast or dtype != "fp32" else 4
    copies = 2 * sum(m.in_features * m.out_features for m in layout.modules) \
        if autocast and dtype == "fp32" and not quantization else 0
    trainable = sum(m.lora_params(ranks[m.name]) for m in layout.modules if m.name in ranks)
    vocab = _cfg(config, "vocab_size")
    parts = {
        "weights": _weights(layout, dtype, quantization) / shards,
        "adapters": 16 * trainable / shards,
        "activations": _activations(layout, config, ranks, act, tokens, batch_size, max_length,
                                    gradient_checkpointing, attn_implementation == "eager", copies),
        "logits": 2 * tokens * vocab * act + 3 * min(tokens, _LOSS_CHUNK) * vocab * 4,
    }
    parts = {k: int(round(v)) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def format_estimate(parts: dict) -> str:
    """``weights 15.0 GiB, adapters ..., total ...``: one line for the terminal."""
    return ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in parts.items())
