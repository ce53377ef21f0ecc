"""Which modules a model has that LoRA can adapt, found from the config alone."""

from .discover import AdaptableModule, Layout, discover_layout, layout_from_model
from .resolve import load_config, load_model, load_tokenizer, resolve_model

__all__ = [
    "AdaptableModule",
    "Layout",
    "discover_layout",
    "layout_from_model",
    "load_config",
    "load_model",
    "load_tokenizer",
    "resolve_model",
]
