"""Test-only hooks into the loop. Users never set these; tests do (with ``monkeypatch``).

``after_backward(step, monitor)`` runs after the backward passes of each optimizer step and
before the gradients are checked: the fault-injection tests put a NaN into one gradient there
to show that a divergence is detected, named and kept. Production code leaves it None.

A test that starts several processes (``torch.distributed.run``) cannot monkeypatch them: it
sets ``ADAPTIVE_LORA_TEST_NAN_STEP`` (and optionally ``ADAPTIVE_LORA_TEST_NAN_RANK``, default
every process) in their environment instead, read here and nowhere else.
"""

from __future__ import annotations

import os
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


def _from_env() -> Callable | None:
    step = os.environ.get("ADAPTIVE_LORA_TEST_NAN_STEP")
    if not step:
        return None
    rank = os.environ.get("ADAPTIVE_LORA_TEST_NAN_RANK")
    return poison_one_gradient_at(int(step), int(rank) if rank else None)


# None in production: no variable set, no hook.
after_backward: Callable | None = _from_env()
