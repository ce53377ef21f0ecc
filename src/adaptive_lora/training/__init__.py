"""One training run, in stages: session, data, plan (and probe), method, fit, evaluate, summary.

``train()`` in ``run.py`` reads as the list of those stages; ``fit.py`` is the loop.
"""

from .config import RunMeta, TrainConfig, load_train_config
from .run import train

__all__ = ["RunMeta", "TrainConfig", "load_train_config", "train"]
