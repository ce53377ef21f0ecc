"""Test-only hooks into the loop. Users never set these; tests do (with ``monkeypatch``).

``after_backward(step, monitor)`` runs after the backward passes of each optimizer step and
before the gradients are checked: the fault-injection tests put a NaN into one gradient there
to show that a divergence is detected, named and kept. Production code leaves it None.

``after_step(step)`` runs at the end of each optimizer step, after its checkpoint (if one was
due): the checkpoint tests kill the process or raise there, to show that a rerun resumes.

A test that starts other processes (``torch.distributed.run``, or the CLI in a subprocess)
cannot monkeypatch them: it sets ``ADAPTIVE_LORA_TEST_NAN_STEP`` (and optionally
``ADAPTIVE_LORA_TEST_NAN_RANK``, default every process), or ``ADAPTIVE_LORA_TEST_SIGNAL_STEP``
with ``ADAPTIVE_LORA_TEST_SIGNAL`` (``KILL`` or ``TERM``, default ``KILL``), in their
environment instead, read here and nowhere else.
"""

from __future__ import annotations

import os
import signal
from typing import Callable


def poison_one_gradient_at(step: int, rank: int | None = None) -> Callable:
    """A hook that puts a NaN into the gradient of the middle LoRA module at ``step``, on the
    process of global rank ``rank`` only (None: on every process)."""

    def hook(current: int, monitor) -> None:
        if current != step or (rank is not None and int(os.environ.get("RANK", "0")) != rank):
            return
        lora = [p for _m, kind, _l, p in monitor.params if kind in ("A", "B") and p.grad is not None]
        lora[len(lora) // 2].grad.view(-1)[0] = float("nan")

    return hook


def signal_self_after(step: int, signum: int = signal.SIGKILL) -> Callable:
    """A hook that sends ``signum`` to this process once optimizer step ``step`` is done: SIGKILL
    is a crash nothing can clean up after, SIGTERM a cluster's preemption."""

    def hook(current: int) -> None:
        if current == step:
            os.kill(os.getpid(), signum)

    return hook


def raise_after(step: int, exc: BaseException | None = None) -> Callable:
    """A hook that raises ``exc`` (default a RuntimeError) once optimizer step ``step`` is done."""

    def hook(current: int) -> None:
        if current == step:
            raise exc or RuntimeError(f"injected failure after step {step}")

    return hook


def _signal_from_env() -> Callable | None:
    step = os.environ.get("ADAPTIVE_LORA_TEST_SIGNAL_STEP")
    if not step:
        return None
    return signal_self_after(int(step), getattr(signal, "SIG" + os.environ.get("ADAPTIVE_LORA_TEST_SIGNAL", "KILL")))


def _from_env() -> Callable | None:
    step = os.environ.get("ADAPTIVE_LORA_TEST_NAN_STEP")
    if not step:
        return None
    rank = os.environ.get("ADAPTIVE_LORA_TEST_NAN_RANK")
    return poison_one_gradient_at(int(step), int(rank) if rank else None)


# None in production: no variable set, no hook.
after_backward: Callable | None = _from_env()
after_step: Callable | None = _signal_from_env()
