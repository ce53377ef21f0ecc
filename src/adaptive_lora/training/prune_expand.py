"""Dynamic rank allocation during training (``method: prune_expand``).

After ElaLoRA (Chang et al., 2025: prune *and* expand ranks during fine-tuning) and the paper's
"progressive allocation" (its section 5.4.1): training starts from a strategy's plan, and every
``pe_interval`` optimizer steps, between a warm-up and a final freeze, rank components move from
where they matter least to the modules where they matter most.

How, and what is ours:

* Each module's adapter is built once at a *capacity* (``pe_capacity`` x its planned rank, at most
  ``r_max`` and min(in, out)); its first ``r`` components are active, the others are held at
  exactly zero (row i of A and column i of B). A zero component gets no gradient (dL/dA_i is
  proportional to B_i, dL/dB_i to A_i x) and Adam's state for it is zeroed, so it stays zero with
  no mask in the forward pass: the model computes exactly a LoRA of the active ranks.
* Importance of component i: an exponential moving average (``pe_beta``) of
  (sum |A_i * dL/dA_i| + sum |B_i * dL/dB_i|) / (in + out), the first-order sensitivity AdaLoRA and
  ElaLoRA use (without AdaLoRA's uncertainty term), per parameter, since the budget is counted in
  parameters and a wide module's component costs more. A module's importance is the mean over its
  active components: the value of one more rank there, per parameter.
* A move prunes the globally least important active component (of a module above ``r_min``)
  and grows the most important module below its capacity: the grown component gets a fresh
  random A row (LoRA's own Kaiming-uniform bound 1/sqrt(in), from a generator seeded by the run's
  seed and the step, so no global random number is drawn) and a zero B column, so the model
  function does not jump. Its importance starts at its module's lowest (the marginal rank is
  worth at most the least useful one already there, so the next move may pick another module
  rather than pile every rank onto one), and it cannot be pruned before one round has passed.
* The budget is counted as in the plan, r * (in + out). A pruned component frees its module's
  width; the freed parameters are spent on the receiver when they cover its width, and carried
  otherwise, so the active parameters never exceed the planned budget and fall short of it by
  less than one component of the widest module (``credit`` in the log).
* The adapter's scaling must not depend on a rank that changes: only ``alpha_policy:
  proportional`` (the same alpha/r everywhere) is accepted.
* Memory: the adapters and their Adam states are allocated at capacity (e.g. 2x the planned
  parameters); the model's compute is the same as a LoRA of the capacity ranks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch

from ..adapters.audit import lora_layers


@dataclass
class Slot:
    """One adapted module: its PEFT layer, the width of one rank component, capacity and masks."""

    name: str
    layer: object
    width: int  # in + out: the parameters of one rank component
    cap: int
    active: torch.Tensor  # bool (cap,)
    score: torch.Tensor  # float64 (cap,), the smoothed importance of each component
    born: dict = None  # component -> step it was grown at (protected from pruning for a round)

    @property
    def a(self):
        return self.layer.lora_A["default"].weight

    @property
    def b(self):
        return self.layer.lora_B["default"].weight

    @property
    def rank(self) -> int:
        return int(self.active.sum())

    def importance(self) -> float:
        """Mean smoothed importance of the active components (0 with none)."""
        return float(self.score[self.active].mean()) if self.rank else 0.0


@dataclass(frozen=True)
class Schedule:
    """When moves happen: after ``warmup`` steps, every ``interval``, not in the last ``freeze``."""

    warmup: int
    interval: int
    freeze: int
    total: int

    @classmethod
    def of(cls, settings, total: int) -> "Schedule":
        warmup = settings.pe_warmup if settings.pe_warmup is not None else math.ceil(0.2 * total)
        freeze = settings.pe_freeze if settings.pe_freeze is not None else math.ceil(0.2 * total)
        return cls(warmup, settings.pe_interval, freeze, total)

    def due(self, step: int) -> bool:
        return self.warmup < step <= self.total - self.freeze and (step - self.warmup) % self.interval == 0


def capacity(rank: int, factor: float, max_rank: int, r_max: int) -> int:
    """The most rank a module planned at ``rank`` can grow to."""
    return max(rank, min(max_rank, r_max, math.ceil(rank * factor)))


def zero_components(slot: Slot, idx: list[int], optimizer) -> None:
    """Set components ``idx`` (rows of A, columns of B) and their Adam moments to zero."""
    with torch.no_grad():
        slot.a[idx] = 0
        slot.b[:, idx] = 0
        for p, rows in ((slot.a, True), (slot.b, False)):
            state = optimizer.state.get(p, {}) if optimizer is not None else {}
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    if rows:
                        state[key][idx] = 0
                    else:
                        state[key][:, idx] = 0


class RankMover:
    """The schedule, the importance scores and the moves of one run."""

    def __init__(self, slots: list[Slot], schedule: Schedule, moves: int, beta: float, r_min: int, seed: int):
        self.slots, self.schedule, self.moves, self.beta = slots, schedule, moves, beta
        self.r_min, self.seed = r_min, seed
        self.budget = sum(s.rank * s.width for s in slots)
        self.credit = 0  # freed parameters not yet spent on a receiver

    def ranks(self) -> dict:
        return {s.name: s.rank for s in self.slots}

    def active_params(self) -> int:
        return sum(s.rank * s.width for s in self.slots)

    @torch.no_grad()
    def observe(self) -> None:
        """Fold this step's |w * dL/dw| per component into the moving average."""
        for s in self.slots:
            if s.a.grad is None or s.b.grad is None:
                continue
            now = ((s.a * s.a.grad).abs().sum(dim=1).double() + (s.b * s.b.grad).abs().sum(dim=0).double()) / s.width
            s.score.mul_(self.beta).add_((1 - self.beta) * now.cpu())

    def step(self, step: int, optimizer) -> dict | None:
        """Observe, and move ranks when the schedule says so; the log entry of a move, else None."""
        self.observe()
        if not self.schedule.due(step):
            return None
        moved = 0
        for _ in range(self.moves):
            receiver = self._receiver()
            if receiver is None or not self._fund(receiver, step, optimizer):
                break
            self._grow(receiver, step, optimizer)
            moved += 1
        return {"ranks": self.ranks(), "moved": moved, "active_params": self.active_params(), "credit": self.credit}

    def _receiver(self):
        growable = [s for s in self.slots if s.rank < s.cap]
        return max(growable, key=lambda s: s.importance(), default=None)

    def _fund(self, receiver: Slot, step: int, optimizer) -> bool:
        """Prune the least important components elsewhere until the credit covers ``receiver``."""
        while self.credit < receiver.width:
            donor = self._donor(receiver, step)
            if donor is None:
                return False
            slot, i, score = donor
            if score >= receiver.importance():
                return False  # nothing left that matters less than what it would buy
            slot.active[i] = False
            slot.score[i] = 0.0
            zero_components(slot, [i], optimizer)
            self.credit += slot.width
        return True

    def _donor(self, exclude: Slot, step: int):
        best = None
        for s in self.slots:
            if s is exclude or s.rank <= self.r_min:
                continue
            young = [i for i, t in (s.born or {}).items() if step - t < self.schedule.interval]
            prunable = s.active.clone()
            prunable[young] = False
            scores = torch.where(prunable, s.score, torch.full_like(s.score, math.inf))
            i = int(torch.argmin(scores))
            if math.isinf(float(scores[i])):
                continue
            if best is None or scores[i] < best[2]:
                best = (s, i, float(scores[i]))
        return best

    @torch.no_grad()
    def _grow(self, slot: Slot, step: int, optimizer) -> None:
        i = int(torch.nonzero(~slot.active)[0])
        lowest = float(slot.score[slot.active].min()) if slot.rank else 0.0
        digest = hashlib.sha256(f"{self.seed}/{step}/{slot.name}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))
        bound = 1.0 / math.sqrt(slot.a.shape[1])
        zero_components(slot, [i], optimizer)
        row = (torch.rand(slot.a.shape[1], generator=gen, dtype=torch.float64) * 2 - 1) * bound
        slot.a[i] = row.to(slot.a.dtype).to(slot.a.device)
        slot.active[i] = True
        slot.score[i] = lowest
        slot.born = {**(slot.born or {}), i: step}
        self.credit -= slot.width


def build_slots(model, plan, caps: dict) -> list[Slot]:
    """A :class:`Slot` per adapted module, the components past its planned rank zeroed."""
    by = plan.layout.by_name()
    layers = lora_layers(model)
    slots = []
    for name, rank in plan.adapted.items():
        layer = layers[name]
        cap = caps[name]
        active = torch.arange(cap) < rank
        slot = Slot(name, layer, by[name].in_features + by[name].out_features, cap, active,
                    torch.zeros(cap, dtype=torch.float64))
        zero_components(slot, list(range(rank, cap)), None)
        slots.append(slot)
    return slots
