"""Eval loss and perplexity, defined once (see METRIC_DEFINITIONS)."""

from .metrics import METRIC_DEFINITIONS, evaluate

__all__ = ["METRIC_DEFINITIONS", "evaluate"]
