"""Layout discovery: the adaptable modules of a model, with layer index, kind and shape.

Discovery builds the model on PyTorch's ``meta`` device: every parameter has a shape but no
storage, so a 7B model's layout takes seconds and no RAM. Two families are mapped:

* GPT-2 (DialoGPT is GPT-2): ``transformer.h.{i}.attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``,
  ``mlp.c_proj``. These are ``Conv1D`` layers whose weight is stored as (in, out).
* Llama (SmolLM2, Llama, Mistral, Qwen2 ...): ``model.layers.{i}.self_attn.{q,k,v,o}_proj`` and
  ``mlp.{gate,up,down}_proj`` (``nn.Linear``, weight stored as (out, in)).
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
    kind: str  # "attention" or "mlp"
    role: str  # name inside the block, e.g. "attn.c_proj"
    in_features: int
    out_features: int

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
class Family:
    name: str
    block_prefix: str  # regex with one group: the layer index
    roles: dict  # role inside a block -> kind
    default_targets: tuple


FAMILIES = (
    Family(
        "gpt2",
        r"^transformer\.h\.(\d+)\.",
        {"attn.c_attn": "attention", "attn.c_proj": "attention", "mlp.c_fc": "mlp", "mlp.c_proj": "mlp"},
        # The paper's targets. mlp.c_proj is included: PEFT's suffix match on "c_proj" hits it too.
        ("c_attn", "c_proj", "c_fc"),
    ),
    Family(
        "llama",
        r"^model\.layers\.(\d+)\.",
        {
            "self_attn.q_proj": "attention",
            "self_attn.k_proj": "attention",
            "self_attn.v_proj": "attention",
            "self_attn.o_proj": "attention",
            "mlp.gate_proj": "mlp",
            "mlp.up_proj": "mlp",
            "mlp.down_proj": "mlp",
        },
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    ),
)


@dataclass(frozen=True)
class Layout:
    """What a strategy sees: the model's adaptable modules, in model order."""

    model_type: str
    family: str
    n_layers: int
    modules: tuple  # tuple[AdaptableModule, ...]
    base_params: int  # every parameter of the base model, tied weights counted once
    default_targets: tuple = field(default=())

    def by_name(self) -> dict:
        return {m.name: m for m in self.modules}

    def select(self, targets) -> "Layout":
        """Keep the modules named by ``targets`` (short names like ``c_proj`` or roles like
        ``attn.c_proj``), matched on the end of the module name as PEFT does."""
        if targets is None:
            targets = self.default_targets
        targets = tuple(t.strip() for t in targets if t and t.strip())
        if not targets:
            raise UserError("targets is empty: name at least one module, e.g. --targets " + ",".join(self.default_targets))
        keep, unmatched = [], []
        for t in targets:
            hits = [m for m in self.modules if m.name == t or m.name.endswith("." + t)]
            if not hits:
                unmatched.append(t)
            keep.extend(hits)
        if unmatched:
            known = sorted({m.short for m in self.modules} | {m.role for m in self.modules})
            raise UserError(
                f"targets {','.join(unmatched)} match no module of this {self.family} model: "
                f"choose from {','.join(known)}"
            )
        chosen = {m.name for m in keep}
        return Layout(
            self.model_type,
            self.family,
            self.n_layers,
            tuple(m for m in self.modules if m.name in chosen),
            self.base_params,
            self.default_targets,
        )


def _shape(module) -> tuple[int, int] | None:
    """(in_features, out_features) for Linear and GPT-2 Conv1D, else None."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):
        # transformers' Conv1D stores its weight as (in, out), the transpose of nn.Linear.
        n_in, n_out = module.weight.shape
        return int(n_in), int(n_out)
    return None


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


def layout_from_model(model, model_type: str | None = None) -> Layout:
    """Map an instantiated model (meta or real) onto a known family."""
    named = [(plain_name(n), m) for n, m in model.named_modules()]
    model_type = model_type or getattr(getattr(model, "config", None), "model_type", "unknown")
    for fam in FAMILIES:
        block = re.compile(fam.block_prefix)
        found = []
        for name, mod in named:
            hit = block.match(name)
            if not hit:
                continue
            role = name[hit.end():]
            if role in fam.roles:
                base = getattr(mod, "base_layer", mod)  # a PEFT LoRA layer wraps the original
                shape = _shape(base)
                if shape is None:
                    continue
                found.append(AdaptableModule(name, int(hit.group(1)), fam.roles[role], role, *shape))
        if found:
            n_layers = max(m.layer for m in found) + 1
            per_layer = {i: {m.role for m in found if m.layer == i} for i in range(n_layers)}
            if all(roles == set(fam.roles) for roles in per_layer.values()):
                seen, base_params = set(), 0
                for p in model.parameters():
                    if id(p) not in seen and not getattr(p, "_is_lora", False):
                        seen.add(id(p))
                        base_params += p.numel()
                return Layout(model_type, fam.name, n_layers, tuple(found), base_params, fam.default_targets)
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in named if _shape(m) is not None})
    raise UserError(
        f"cannot map model type '{model_type}' onto a GPT-2 or Llama layout; its linear modules are "
        f"{','.join(leaves) or 'none'}: use a GPT-2- or Llama-family model"
    )


def discover_layout(config) -> Layout:
    """Layout from a ``PretrainedConfig`` alone: the model is built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    n_layers = getattr(config, "num_hidden_layers", None)
    if isinstance(n_layers, int) and not isinstance(n_layers, bool) and n_layers < 1:
        raise UserError(f"the model config has {n_layers} layers (num_hidden_layers): a model needs at least one "
                        "transformer block to adapt; fix config.json")
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise UserError(
            f"cannot build a causal LM from config type '{getattr(config, 'model_type', '?')}' "
            f"({str(exc).splitlines()[0]}): use a GPT-2- or Llama-family model"
        )
    return layout_from_model(model, config.model_type)
