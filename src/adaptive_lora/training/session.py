"""The process a run executes in: accelerator, device, precision, and the cross-process sums.

One process on a CPU or a GPU, or several under ``accelerate launch`` / ``torchrun``. Every
stage receives the same :class:`Session`, so no stage asks ``accelerate`` anything on its own.
Also the checks of the base model's precision and quantization against the device, which must
fail before any weight is loaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
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

    @property
    def sharded(self) -> bool:
        """True when each process holds only a shard of the parameters and gradients (FSDP,
        DeepSpeed ZeRO): per-process gradient norms are then partial sums."""
        return str(getattr(self.acc, "distributed_type", "")).split(".")[-1] in ("FSDP", "DEEPSPEED")

    def reduce_min(self, *vals: float) -> tuple[float, ...]:
        """Minimum of plain numbers over processes (identity with one process)."""
        if self.world == 1:
            return vals
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in vals], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return tuple(t.tolist())

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
        """Peak memory of this process since the session started: accelerator memory on a GPU,
        resident set on a CPU (since the process started where Linux cannot reset it)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        hwm = _status_kib("VmHWM")
        return (hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start this run's peak-memory count afresh: a sweep runs many runs in one process, and each
    run's ``peak_memory_mb`` must be its own, not the largest so far."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    from .speedups import release_freed_memory

    release_freed_memory()  # memory an earlier run freed and the process kept would count as this run's
    try:  # Linux: writing 5 to clear_refs resets the resident-set high-water mark (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


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


def base_dtype(name: str, device: torch.device) -> torch.dtype:
    """The frozen base weights' dtype: ``auto`` = bf16 on a GPU that supports it, else fp32 (on
    CPUs bf16 weights are emulated and slower, and the tests' exact values assume fp32)."""
    if name == "auto":
        ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def check_model_load(mcfg, device: torch.device) -> None:
    """Refuse, before any weight is loaded, what cannot train on ``device`` (``mcfg`` is the
    config's ``model_load`` group)."""
    if mcfg.dtype == "fp16":
        raise UserError("dtype fp16 cannot train here: fp16 activations overflow without a loss scaler, which this "
                        "loop does not use; use dtype bf16 (GPUs since Ampere) or fp32, or a 4-bit base with "
                        "quantization.compute_dtype fp16")
    q = mcfg.quantization
    if q is None:
        return
    if device.type != "cuda":
        raise UserError(f"quantization ({q['bits']}-bit, bitsandbytes) needs a CUDA GPU and this process runs on "
                        f"{device.type}: remove quantization or run on a GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("quantization needs the bitsandbytes package: pip install 'adaptive-lora[qlora]'")
    if mcfg.device_map != "device":
        raise UserError("quantization loads the base onto the GPU as it quantizes: set device_map: device")


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
    reset_peak_memory(acc.device)
    return Session(acc, acc.device, acc.num_processes, acc.process_index, acc.is_main_process,
                   autocast_dtype(precision, acc.device))
