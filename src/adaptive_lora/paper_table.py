"""The paper's Table 1, as printed, and the setup it was measured on.

Kept as data in one place: the planner compares its computed counts with these claims and the
report prints them beside measured results. We never copy these numbers into our own results.
"""

from __future__ import annotations

import math

# DialoGPT-medium (= GPT-2 medium) geometry and the paper's targets.
PAPER_MODEL = "microsoft/DialoGPT-medium"
PAPER_GEOMETRY = {"family": "gpt2", "n_layers": 24, "base_params": 354_823_168}
PAPER_TARGETS = ("c_attn", "c_proj", "c_fc")

NaN = math.nan
# strategy key -> (label, eval loss, perplexity, params (M), efficiency (%), training time (s))
PAPER_TABLE1 = {
    "uniform-r8": ("Baseline Rank 8", 5.31, 203.3, 3.1, 0.9, 87.5),
    "uniform-r16": ("Baseline Rank 16", 4.90, 134.0, 6.3, 1.7, 81.8),
    "linear_decay": ("Linear Decay", 5.11, 165.1, 6.3, 1.7, 83.5),
    "attention_heavy": ("Attention-Heavy", NaN, NaN, 5.1, 1.4, 90.2),
    "empirical": ("Empirical", NaN, NaN, 3.5, 1.0, 88.8),
}


def paper_key(strategy: str, r: int | None = None) -> str | None:
    """Map one of our plans onto a Table 1 row (uniform needs its rank)."""
    if strategy == "uniform":
        return f"uniform-r{r}" if f"uniform-r{r}" in PAPER_TABLE1 else None
    return strategy if strategy in PAPER_TABLE1 else None
