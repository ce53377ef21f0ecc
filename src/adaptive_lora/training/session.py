"""The process a run executes in: accelerator, device, precision, and the cross-process sums.

One process on a CPU or a GPU, or several under ``accelerate launch`` / ``torchrun``. Every
stage receives the same :class:`Session`, so no stage asks ``accelerate`` anything on its own.
"""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass

import torch

from ..envinfo import cpu_supports_bf16
from ..errors import UserError


@dataclass
class Session:
    acc: object  # accelerate.Accelerator
    device: torch.device
    world: int
    rank: int
    main: bool
    amp: torch.dtype | None  # autocast dtype, None = fp32

    def autocast(self):
        """Autocast context of the run's precision (a no-op in fp32)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def reduce_sum(self, *vals: float) -> tuple[float, ...]:
        """Sum plain numbers over processes (identity with one process)."""
        if self.world == 1:
            return vals
        t = torch.tensor([float(v) for v in vals], dtype=torch.float64, device=self.device)
        return tuple(self.acc.reduce(t, reduction="sum").tolist())

    @property
    def precision(self) -> str:
        return str(self.amp).replace("torch.", "") if self.amp else "fp32"

    def peak_memory_mb(self) -> float:
        """Peak memory of this process: accelerator memory on a GPU, resident set on a CPU."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``fp32`` -> None, ``bf16`` -> bf16, ``auto`` -> bf16 where the hardware does it natively
    (on other CPUs bf16 is emulated and slower than fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_supports_bf16() else None


def start_session(precision: str, batch_size: int, accelerator=None) -> Session:
    from accelerate import Accelerator

    # accelerate sets up several CPU processes only when told to use the CPU; without this,
    # torchrun on a machine with no GPU would start N independent single-process runs.
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator
    acc = accelerator or Accelerator(cpu=multi_cpu)
    if acc.device.type == "cpu" and acc.num_processes > 1:
        # N processes on one CPU: give each its share of the cores instead of oversubscribing.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // acc.num_processes))
    if batch_size % acc.num_processes:
        raise UserError(f"batch_size {batch_size} is not divisible by the {acc.num_processes} processes: "
                        "change batch_size")
    return Session(acc, acc.device, acc.num_processes, acc.process_index, acc.is_main_process,
                   autocast_dtype(precision, acc.device))
