"""Sweeps: a YAML of runs expanded into run specs, run one after another, resumable.

``load_sweep`` reads and checks the YAML (and, given a validator, every run's training config)
before anything trains; ``run_sweep`` trains the runs into one results folder under a lock,
skipping runs that already finished. The training function is passed in, so this stage does not
import torch.
"""

from ..overrides import apply_overrides, parse_overrides
from .runner import SweepResult, run_sweep
from .sweep import RunSpec, Sweep, config_hash, load_sweep

__all__ = [
    "RunSpec",
    "Sweep",
    "SweepResult",
    "apply_overrides",
    "config_hash",
    "load_sweep",
    "parse_overrides",
    "run_sweep",
]
