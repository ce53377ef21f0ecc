"""Eval loss and perplexity (their definitions: ``adaptive_lora.schema.METRIC_DEFINITIONS``)."""

from .metrics import evaluate, scored_loss_sum

__all__ = ["evaluate", "scored_loss_sum"]
