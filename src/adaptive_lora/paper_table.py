"""The paper's Table 1, as printed, and the setup it was measured on.

Kept as data in one place: the planner compares its computed counts with these claims and the
report prints them beside measured results. We never copy these numbers into our own results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NAN = float("nan")

# DialoGPT-medium (= GPT-2 medium) geometry and the paper's targets.
PAPER_MODEL = "microsoft/DialoGPT-medium"
PAPER_GEOMETRY = {"family": "gpt2", "n_layers": 24, "base_params": 354_823_168}
PAPER_TARGETS = ("c_attn", "c_proj", "c_fc")


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1 (NaN where the paper printed NaN: the run diverged)."""

    label: str  # as printed
    group: str  # our canonical group name
    strategy: str  # our strategy name
    rank: int | None  # the uniform rank of a baseline
    eval_loss: float
    perplexity: float
    params_m: float
    efficiency_pct: float
    train_time_s: float

    @property
    def diverged(self) -> bool:
        return math.isnan(self.eval_loss)


PAPER_TABLE1: tuple[PaperRow, ...] = (
    PaperRow("Baseline Rank 8", "uniform-r8", "uniform", 8, 5.31, 203.3, 3.1, 0.9, 87.5),
    PaperRow("Baseline Rank 16", "uniform-r16", "uniform", 16, 4.90, 134.0, 6.3, 1.7, 81.8),
    PaperRow("Linear Decay", "linear_decay", "linear_decay", None, 5.11, 165.1, 6.3, 1.7, 83.5),
    PaperRow("Attention-Heavy", "attention_heavy", "attention_heavy", None, NAN, NAN, 5.1, 1.4, 90.2),
    PaperRow("Empirical", "empirical", "empirical", None, NAN, NAN, 3.5, 1.0, 88.8),
)


def paper_row(strategy: str, r: int | None = None) -> PaperRow | None:
    """The Table 1 row for one of our plans (a uniform baseline needs its rank)."""
    for row in PAPER_TABLE1:
        if row.strategy == strategy and (row.rank is None or row.rank == r):
            return row
    return None
