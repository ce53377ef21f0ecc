"""The paper's strategies (section 3.1) and its baselines and placement variants.

Each function maps every module of ``layout`` to an integer rank (0 = leave it without an
adapter). The adaptive strategies compute a fractional rank from the paper's formula, round it
with ``params.rounding`` and clamp it to [r_min, r_max].
"""

from __future__ import annotations

from .registry import register


@register("uniform", "every module rank r (the paper's baselines: r=8, r=16)", "baseline")
def uniform(layout, params):
    return {m.name: params.r for m in layout.modules}


@register(
    "linear_decay",
    "rank falls linearly over depth: max(r_min, r_base - (r_base - r_min) * i / (L - 1))",
    "paper",
)
def linear_decay(layout, params):
    L = layout.n_layers
    out = {}
    for m in layout.modules:
        frac = m.layer / (L - 1) if L > 1 else 0.0
        raw = max(params.r_min, params.r_base - (params.r_base - params.r_min) * frac)
        out[m.name] = params.clamp(params.to_int(raw))
    return out


@register(
    "attention_heavy",
    "attention modules r_base, feed-forward modules max(r_min, r_base / 2)",
    "paper",
)
def attention_heavy(layout, params):
    attn = params.clamp(params.to_int(params.r_base))
    mlp = params.clamp(params.to_int(max(params.r_min, params.r_base / 2)))
    return {m.name: attn if m.kind == "attention" else mlp for m in layout.modules}


@register(
    "empirical",
    "0.6 r_base for i < 0.3 L, 1.2 r_base for 0.3 L <= i < 0.7 L, r_base for i >= 0.7 L",
    "paper",
)
def empirical(layout, params):
    L = layout.n_layers
    out = {}
    for m in layout.modules:
        i = m.layer
        factor = 0.6 if i < 0.3 * L else (1.2 if i < 0.7 * L else 1.0)
        out[m.name] = params.clamp(params.to_int(params.r_base * factor))
    return out


@register("attention_only", "rank r on attention modules, no adapter on feed-forward modules", "placement")
def attention_only(layout, params):
    return {m.name: params.r if m.kind == "attention" else 0 for m in layout.modules}


@register("mlp_only", "rank r on feed-forward modules, no adapter on attention modules", "placement")
def mlp_only(layout, params):
    return {m.name: params.r if m.kind == "mlp" else 0 for m in layout.modules}
