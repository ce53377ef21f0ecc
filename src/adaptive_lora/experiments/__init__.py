"""Sweeps: a YAML of runs expanded into run specs, run one after another, resumable.

``load_sweep`` reads and checks the YAML (and, given a validator, every run's training config)
before anything trains; ``run_sweep`` trains the runs into one results folder under a lock,
skipping runs that already finished, in this process or on Ray (``executors``); ``run_worker`` is
one of many processes pulling runs from the same folder. Each run is claimed by the process that
executes it (``claims``). The training function is passed in, so this stage does not import torch.
"""

from ..overrides import apply_overrides, parse_overrides
from .claims import ExecOptions
from .executors import LocalExecutor, MultiProcessExecutor, RayExecutor
from .runner import SweepResult, run_sweep, run_worker
from .sweep import RunSpec, Sweep, config_hash, load_sweep

__all__ = [
    "ExecOptions",
    "LocalExecutor",
    "MultiProcessExecutor",
    "RayExecutor",
    "RunSpec",
    "Sweep",
    "SweepResult",
    "apply_overrides",
    "config_hash",
    "load_sweep",
    "parse_overrides",
    "run_sweep",
    "run_worker",
]
