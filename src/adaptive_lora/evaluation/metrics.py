"""Eval loss and perplexity.

Eval loss is the token-weighted mean cross-entropy over every scored token of the held-out
split: the sum of per-token losses divided by the number of scored tokens. It is *not* a mean
of per-batch means, which would weight a short batch like a long one. Perplexity is exp(eval
loss), so the paper's 4.90 corresponds to 134.0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data import IGNORE_INDEX


# Scored positions whose logits are turned into fp32 at once: the loss never holds an fp32 copy of
# all logits (with a 128k vocabulary, 8 x 256 positions would be 1 GiB), only CHUNK x vocab.
CHUNK = 1024


def scored_loss_sum(model, batch: dict, per_row: bool = False):
    """Forward ``batch`` and return the summed cross-entropy over its scored tokens and their count.

    Only positions that predict a scored token need logits. The output projection (vocabulary x
    hidden per position; ~20 % of SmolLM2's forward FLOPs) runs on exactly those positions: the
    model keeps the last ``T - first`` positions (``logits_to_keep``; batches are right-padded, so
    that drops every row's prompt up to the earliest scored one), and a pre-hook on the output
    head picks the scored positions among them, so the head sees an ``(N, hidden)`` matrix of the
    N scored positions and returns ``(N, vocabulary)`` logits; padding and the longer prompts of
    other rows never reach it. Models without a plain output head keep the gather after the head.
    ``per_row``: the sum and count of each example instead of the batch's (see token_loss_sum).
    """
    labels = batch["labels"]
    T = labels.shape[1]
    mask = labels[:, 1:] != IGNORE_INDEX  # position t predicts the label at t + 1
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: each example's positions in order
    first = int(cols.min()) if len(cols) else T - 1
    keep = T - first  # >= 1; logits_to_keep=0 would mean "all"
    head = _output_head(model)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "logits_to_keep": keep}
    if head is None:
        # logits[:, j] sits at position first + j and predicts the label at first + j + 1.
        return token_loss_sum(model(**inputs).logits, labels[:, first:], per_row)
    def scored_only(_module, args):
        if args[0].shape[1] != keep:  # the model did not honour logits_to_keep: the indices would be wrong
            raise RuntimeError(f"output head got {args[0].shape[1]} positions, expected {keep} (logits_to_keep); "
                               "a bug to report")
        return (args[0][rows, cols - first],) + args[1:]

    handle = head.register_forward_pre_hook(scored_only)
    try:
        logits = model(**inputs).logits  # (N, vocabulary): the scored positions only
    finally:
        handle.remove()
    if logits.dim() != 2 or logits.shape[0] != len(rows):  # a model that reshapes its head's output
        raise RuntimeError(f"output head returned logits of shape {tuple(logits.shape)} for {len(rows)} scored "
                           "positions; the model post-processes its head's output (a bug to report)")
    return _totals(token_losses(logits, labels[:, 1:][rows, cols]), rows, mask, per_row)


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor, per_row: bool = False, chunk: int = CHUNK):
    """Sum of next-token cross-entropies of full ``(batch, T, vocabulary)`` logits over the scored
    positions of ``labels`` (batch x T), in fp32, and their count; with ``per_row``, a tensor of
    per-example sums and a list of per-example counts."""
    mask = labels[:, 1:] != IGNORE_INDEX
    rows, cols = mask.nonzero(as_tuple=True)
    return _totals(token_losses(logits[rows, cols], labels[:, 1:][rows, cols], chunk), rows, mask, per_row)


def _totals(losses: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor, per_row: bool):
    if per_row:
        sums = torch.zeros(mask.shape[0], dtype=torch.float32, device=losses.device).index_add(0, rows, losses)
        return sums, mask.sum(dim=1).tolist()
    return losses.sum(), int(mask.sum())


def _output_head(model):
    """The model's output projection (``get_output_embeddings``) under DDP's and PEFT's wrappers,
    or None when there is no such module."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP, DeepSpeed
        model = model.module
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if isinstance(head, torch.nn.Module) else None


def token_losses(logits: torch.Tensor, targets: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """Next-token cross-entropy, in fp32, of each row of ``logits`` (N x vocabulary) against
    ``targets`` (N). Rows are taken ``chunk`` at a time, so the fp32 logits (and their softmax in
    the backward pass) exist for one chunk at a time; each chunk's loss is checkpointed, so its
    fp32 copy is recomputed in the backward pass instead of kept."""
    if len(targets) == 0:
        return logits.new_zeros(0, dtype=torch.float32)
    return torch.cat([_chunk_loss(lg, t) for lg, t in zip(logits.split(chunk), targets.split(chunk))])


def _chunk_loss(logits, targets):
    def ce(lg):
        return F.cross_entropy(lg.float(), targets, reduction="none")

    if not logits.requires_grad:
        return ce(logits)
    from torch.utils.checkpoint import checkpoint

    return checkpoint(ce, logits, use_reentrant=False)


def _result(total: float, count: int) -> dict:
    loss = total / count if count else math.nan
    return {"eval_loss": loss, "perplexity": math.inf if loss > 700 else math.exp(loss), "eval_tokens": int(count)}


@torch.inference_mode()  # no_grad, and no version counters or view tracking either
def evaluate(model, examples, collator, batch_size: int, device, autocast_dtype=None,
             rank: int = 0, world: int = 1, reduce_fn=None, subset: int = 0) -> dict:
    """Eval loss over ``examples``. With several processes each takes a strided share and
    ``reduce_fn`` sums (loss, tokens) across them, so the result equals a one-process eval.

    ``subset`` > 0: also the loss over ``examples[:subset]`` (under ``"subset"``), from the same
    forward passes, by summing per-example losses.
    """
    was_training = model.training
    model.eval()
    # Longest first: similar lengths share a batch (less padding) and memory peaks at once.
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))[rank::world]
    total, count, sub_total, sub_count = 0.0, 0, 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collator([examples[i] for i in idx]).items()}
        with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            loss, n = scored_loss_sum(model, batch, per_row=subset > 0)
        if subset > 0:
            for i, row_loss, row_n in zip(idx, loss.tolist(), n):
                total, count = total + row_loss, count + row_n
                if i < subset:
                    sub_total, sub_count = sub_total + row_loss, sub_count + row_n
        else:
            total, count = total + float(loss), count + n
    if reduce_fn is not None:
        total, count, sub_total, sub_count = reduce_fn(total, count, sub_total, sub_count)
    if was_training:
        model.train()
    out = _result(total, count)
    if subset > 0:
        out["subset"] = _result(sub_total, sub_count)
    return out
