"""adaptive-lora: LoRA fine-tuning in which every layer and module gets its own rank.

The package is laid out by stage (see docs/ARCHITECTURE.md):
layout -> strategies -> adapters -> data -> training -> evaluation -> experiments -> reports -> cli.
"""

__version__ = "0.1.0"
