"""Test-only hooks into the loop. Users never set these; tests do (with ``monkeypatch``).

``after_backward(step, monitor)`` runs after the backward passes of each optimizer step and
before the gradients are checked: the fault-injection tests put a NaN into one gradient there
to show that a divergence is detected, named and kept. Production code leaves it None.
"""

from __future__ import annotations

from typing import Callable

after_backward: Callable | None = None


def poison_one_gradient_at(step: int) -> Callable:
    """A hook that puts a NaN into the gradient of the middle LoRA module at ``step``."""

    def hook(current: int, monitor) -> None:
        if current != step:
            return
        lora = [p for _m, kind, _l, p in monitor.params if kind in ("A", "B") and p.grad is not None]
        lora[len(lora) // 2].grad.view(-1)[0] = float("nan")

    return hook
