"""One training run: config, loop, monitoring, stabilizers, AdaLoRA."""

from .config import TrainConfig, load_train_config
from .loop import train

__all__ = ["TrainConfig", "load_train_config", "train"]
