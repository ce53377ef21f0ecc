"""Layout discovery: the adaptable modules of a model, with layer index, kind and shape.

Discovery builds the model on PyTorch's ``meta`` device: every parameter has a shape but no
storage, so a 70B model's layout takes about a second and no RAM. It is generic, not a table of
families:

1. **The blocks**: the decoder's repeated transformer blocks are the longest ``nn.ModuleList``
   under the model's decoder (``model.layers``, ``transformer.h``, ``gpt_neox.layers``,
   ``model.decoder.layers``, ``model.language_model.layers`` ...) whose every entry holds
   weights. Lists under a vision, audio or encoder path are never the blocks, so a
   vision-language model's language model is adapted, not its vision tower.
2. **The modules**: every ``nn.Linear`` (and GPT-2's ``Conv1D``) leaf inside a block. Layers may
   differ (an MoE model with dense layers in between). ``lm_head`` and the embeddings are outside
   the blocks, so they are never adapted, as with PEFT's ``all-linear``.
3. **The kind**, from the names: the innermost container named like attention (``attn``,
   ``attention``) or feed-forward (``mlp``, ``ffn``, ``feed_forward``, ``moe``, ``expert``)
   decides; a leaf outside both is classified by its own name (``q_proj``, ``fc1`` ...), else
   its kind is ``other``.

A fused matrix (Phi-3's ``qkv_proj`` and ``gate_up_proj``, GPT-NeoX's and Falcon's
``query_key_value``, GPT-2's ``c_attn``) is one module with one rank: its adapter costs
r x (in + out), with out the fused width.

Mixture-of-experts: the router (``mlp.gate``, ``router``, ``shared_expert_gate``) is never
adapted. The experts of transformers 5 models are fused 3-D parameters (experts x out x in),
not linear modules; they are listed in ``Layout.skipped`` and refused if named in ``targets``,
and the rest of the model (attention, shared experts, dense layers) is planned as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import UserError


@dataclass(frozen=True)
class AdaptableModule:
    """One module LoRA can wrap."""

    name: str  # full module name, e.g. "transformer.h.3.attn.c_proj"
    layer: int  # 0-based transformer block index
    kind: str  # "attention", "mlp" or "other"
    role: str  # name inside the block, e.g. "attn.c_proj"
    in_features: int
    out_features: int
    fan_in_fan_out: bool = False  # weight stored as (in, out): GPT-2's Conv1D

    @property
    def short(self) -> str:
        """Last name component, e.g. ``c_proj``; what ``--targets`` usually names."""
        return self.role.rsplit(".", 1)[-1]

    @property
    def max_rank(self) -> int:
        """min(in, out): a higher rank adds parameters but no expressiveness to the update."""
        return min(self.in_features, self.out_features)

    def lora_params(self, rank: int) -> int:
        """Parameters of a rank-``rank`` adapter: A is r x in, B is out x r."""
        return rank * (self.in_features + self.out_features)


@dataclass(frozen=True)
class Layout:
    """What a strategy sees: the model's adaptable modules, in model order."""

    model_type: str
    family: str
    n_layers: int
    modules: tuple  # tuple[AdaptableModule, ...]
    base_params: int  # every parameter of the base model, tied weights counted once
    default_targets: tuple = field(default=())  # short names of every module, in model order
    skipped: tuple = field(default=())  # ((name, why), ...): found in the blocks, never adapted

    def by_name(self) -> dict:
        return {m.name: m for m in self.modules}

    @property
    def notes(self) -> tuple:
        """One line per kind of skipped weight (MoE experts, routers), for the plan's notes."""
        groups: dict = {}
        for name, why in self.skipped:
            groups.setdefault(why, set()).add(_role_of(name))
        return tuple(f"not adapted: {why} ({', '.join(sorted(roles))})" for why, roles in groups.items())

    def select(self, targets) -> "Layout":
        """Keep the modules named by ``targets`` (short names like ``c_proj`` or roles like
        ``attn.c_proj``), matched on the end of the module name as PEFT does. ``None`` keeps
        every module of the blocks."""
        if targets is None:
            return self
        targets = tuple(t.strip() for t in targets if t and t.strip())
        if not targets:
            raise UserError("targets is empty: name at least one module, e.g. --targets " + ",".join(self.default_targets))
        keep, unmatched = [], []
        for t in targets:
            hits = [m for m in self.modules if _names(m.name, t)]
            if not hits:
                unmatched.append(t)
            keep.extend(hits)
        if unmatched:
            raise UserError(self._unmatched_message(unmatched))
        chosen = {m.name for m in keep}
        return Layout(self.model_type, self.family, self.n_layers, tuple(m for m in self.modules if m.name in chosen),
                      self.base_params, self.default_targets, self.skipped)

    def _unmatched_message(self, unmatched: list) -> str:
        known = ",".join(self.default_targets)
        for t in unmatched:
            hit = next(((n, why) for n, why in self.skipped if _names(n, t) or _names(n.rsplit(".", 1)[0], t)), None)
            if hit:
                return (f"targets {t} names {hit[1]} ({hit[0]}), which adaptive-lora never adapts: set targets to "
                        f"modules of the blocks ({known}), or leave targets null for all of them")
        return (f"targets {','.join(unmatched)} match no module of this {self.family} model: "
                f"choose from {','.join(sorted({m.short for m in self.modules} | {m.role for m in self.modules}))}")


def _names(name: str, target: str) -> bool:
    """PEFT's rule: a target names a module if it is the full name or its end after a dot."""
    return name == target or name.endswith("." + target)


def _role_of(name: str) -> str:
    """``model.layers.3.mlp.experts.down_proj`` -> ``mlp.experts.down_proj``."""
    return re.sub(r"^.*?\.\d+\.", "", name, count=1)


# ----------------------------------------------------------------------------- classification

# Container names decide first (GPT-2's c_proj is attention under attn, MLP under mlp); the
# leaf's own name only where no container says (OPT's fc1/fc2 sit directly in the block).
_ATTENTION_PART = re.compile(r"attn|attention")
_MLP_PART = re.compile(r"mlp|ffn|feed_?forward|moe|expert")
_ATTENTION_LEAF = {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "c_attn", "out_proj",
                   "query", "key", "value", "wq", "wk", "wv", "wo", "wqkv", "qkv", "q", "k", "v", "o"}
_MLP_LEAF = {"gate_proj", "up_proj", "down_proj", "gate_up_proj", "fc1", "fc2", "c_fc", "dense_h_to_4h",
             "dense_4h_to_h", "w1", "w2", "w3", "fc_in", "fc_out"}
# An MoE router scores experts per token; adapting it changes which experts run, so never by default.
_ROUTER_LEAF = {"gate", "router", "shared_expert_gate"}
# Lists under these names belong to another tower (vision, audio) or to an encoder.
_NOT_DECODER = re.compile(r"(^|\.)[^.]*(vision|visual|image|audio|speech|encoder)[^.]*(\.|$)")
# PEFT's own sub-modules of a wrapped layer: never adaptable modules themselves.
_LORA_PARTS = {"base_layer", "lora_A", "lora_B", "lora_dropout", "lora_embedding_A", "lora_embedding_B",
               "lora_magnitude_vector"}


def classify(role: str) -> str:
    """``attention``, ``mlp`` or ``other`` from a module's name inside its block."""
    parts = role.lower().split(".")
    for part in reversed(parts[:-1]):
        if _ATTENTION_PART.search(part):
            return "attention"
        if _MLP_PART.search(part):
            return "mlp"
    leaf = role.rsplit(".", 1)[-1]
    if leaf in _ATTENTION_LEAF:
        return "attention"
    if leaf in _MLP_LEAF:
        return "mlp"
    return "other"


def _is_router(role: str, module) -> bool:
    parts = role.split(".")
    return parts[-1] in _ROUTER_LEAF or "router" in parts or "Router" in type(module).__name__


def _shape(module) -> tuple[int, int] | None:
    """(in_features, out_features) for Linear and GPT-2 Conv1D, else None."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if _is_conv1d(module) and hasattr(module, "weight"):
        # transformers' Conv1D stores its weight as (in, out), the transpose of nn.Linear.
        n_in, n_out = module.weight.shape
        return int(n_in), int(n_out)
    return None


def _is_conv1d(module) -> bool:
    return type(module).__name__ == "Conv1D"


_WRAPPER_PREFIXES = ("module.", "base_model.model.", "base_model.")


def plain_name(name: str) -> str:
    """A module or parameter name as the plain model spells it.

    DDP wraps a model as ``module.<name>`` and PEFT as ``base_model.model.<name>``; plans, audits
    and logs all key modules by the plain name, so every wrapped name goes through here.
    """
    for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


# ----------------------------------------------------------------------------- discovery


def _holds_weights(module) -> bool:
    return any(True for _ in module.parameters())


def _decoder_prefix(model, named: list) -> str:
    """Name of the decoder inside ``model`` (``model``, ``model.language_model`` ...), or "" for all."""
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError, ValueError, TypeError):
        return ""
    for name, mod in named:
        if mod is decoder:
            return name
    return ""


def find_blocks(model, named: list) -> tuple[str, object] | None:
    """(name, ModuleList) of the decoder's repeated blocks; None if the model has none."""
    import torch.nn as nn

    prefix = _decoder_prefix(model, named)
    found = []
    for name, mod in named:
        inside = not prefix or name == prefix or name.startswith(prefix + ".")
        if (inside and isinstance(mod, nn.ModuleList) and len(mod) and not _NOT_DECODER.search(name)
                and all(_holds_weights(block) for block in mod)):
            found.append((name, mod))
    # Outermost lists only (an MoE layer's list of experts is not the blocks); then the longest,
    # and of lists as long (per-layer norms kept apart), the one with more linear modules.
    outer = [(n, m) for n, m in found if not any(n.startswith(o + ".") for o, _ in found)]
    return max(outer, key=lambda nm: (len(nm[1]), _n_linear(nm[1])), default=None)


def _n_linear(module) -> int:
    return sum(_shape(m) is not None for m in module.modules())


def _block_weights(prefix: str, index: int, block) -> tuple[list, list]:
    """(adaptable modules, skipped (name, why)) of one block."""
    modules, skipped = [], []
    for role, mod in block.named_modules():
        parts = set(role.split("."))
        if not role or parts & _LORA_PARTS:
            continue
        name = plain_name(f"{prefix}.{index}.{role}")
        base = getattr(mod, "base_layer", mod)  # a PEFT LoRA layer wraps the original
        shape = _shape(base)
        if _is_router(role, base) and (shape is not None or _holds_direct(base)):
            skipped.append((name, "the MoE router"))
            continue
        if shape is not None:
            modules.append(AdaptableModule(name, index, classify(role), role, *shape, _is_conv1d(base)))
            continue
        for pname, p in base.named_parameters(recurse=False):
            if p.dim() == 3:  # (experts, ., .): fused MoE experts, not a linear module
                skipped.append((f"{name}.{pname}", "MoE experts, a fused 3-D parameter"))
    return modules, skipped


def _holds_direct(module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _count_base(model) -> int:
    """Every parameter of the base model, tied weights once; a wrapped model's adapters excluded."""
    seen, total = set(), 0
    for name, p in model.named_parameters():
        if id(p) not in seen and not set(name.split(".")) & _LORA_PARTS - {"base_layer"}:
            seen.add(id(p))
            total += p.numel()
    return total


def layout_from_model(model, model_type: str | None = None) -> Layout:
    """The layout of an instantiated model (meta or real, plain or wrapped by PEFT)."""
    named = [(plain_name(n), m) for n, m in model.named_modules()]
    named = [(n, m) for n, m in named if not set(n.split(".")) & _LORA_PARTS]
    model_type = model_type or getattr(getattr(model, "config", None), "model_type", "unknown")
    blocks = find_blocks(model, named)
    modules, skipped = [], []
    if blocks is not None:
        for i, block in enumerate(blocks[1]):
            mods, skip = _block_weights(blocks[0], i, block)
            modules += mods
            skipped += skip
    if not modules:
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in named if _shape(m) is not None})
        raise UserError(
            f"cannot find the decoder blocks of model type '{model_type}' (a list of layers holding linear "
            f"modules); its linear modules are {','.join(leaves) or 'none'}: use a decoder-only causal LM"
        )
    if len({m.fan_in_fan_out for m in modules}) > 1:
        raise UserError(f"model type '{model_type}' mixes Conv1D and Linear modules in its blocks, which one LoRA "
                        "config cannot adapt: set targets to modules of one type")
    shorts = tuple(dict.fromkeys(m.short for m in modules))
    return Layout(model_type, model_type, len(blocks[1]), tuple(modules), _count_base(model), shorts, tuple(skipped))


def model_class(config):
    """AutoModelForCausalLM, or AutoModelForImageTextToText for a vision-language model whose
    config the causal-LM class does not take (LLaVA, Qwen2-VL ...): its language model is what
    discovery adapts, and it trains on text alone."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as causal
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as image_text

    model_type = getattr(config, "model_type", None)
    if model_type not in causal and model_type in image_text:
        return AutoModelForImageTextToText
    return AutoModelForCausalLM


def discover_layout(config) -> Layout:
    """Layout from a ``PretrainedConfig`` alone: the model is built on the meta device."""
    n_layers = getattr(config, "num_hidden_layers", None)
    if isinstance(n_layers, int) and not isinstance(n_layers, bool) and n_layers < 1:
        raise UserError(f"the model config has {n_layers} layers (num_hidden_layers): a model needs at least one "
                        "transformer block to adapt; fix config.json")
    import torch

    try:
        with torch.device("meta"):
            model = model_class(config).from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise UserError(
            f"cannot build a causal LM from config type '{getattr(config, 'model_type', '?')}' "
            f"({str(exc).splitlines()[0]}): use a decoder-only causal LM or a vision-language model"
        )
    return layout_from_model(model, config.model_type)
