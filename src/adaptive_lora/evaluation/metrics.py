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


def scored_loss_sum(model, batch: dict, per_row: bool = False):
    """Forward ``batch`` and return the summed cross-entropy over its scored tokens and their count.

    Only positions that predict a scored token need logits: with loss on responses only, the
    prompt's positions are skipped (``logits_to_keep``), which saves the output projection
    (vocabulary x hidden per token; ~20 % of SmolLM2's forward FLOPs) and its fp32 copy on them.
    Batches are right-padded, so the positions kept are the last ``T - first`` of the sequence.
    ``per_row``: the sum and count of each example instead of the batch's (see token_loss_sum).
    """
    labels = batch["labels"]
    T = labels.shape[1]
    predicts_scored = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero()
    first = int(predicts_scored[0]) if len(predicts_scored) else T - 1
    keep = T - first  # >= 1; logits_to_keep=0 would mean "all"
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    # logits[:, j] sits at position first + j and predicts the label at first + j + 1.
    return token_loss_sum(logits, labels[:, first:], per_row)


# Scored positions whose logits are turned into fp32 at once: the loss never holds an fp32 copy of
# all logits (with a 128k vocabulary, 8 x 256 positions would be 1 GiB), only CHUNK x vocab.
CHUNK = 1024


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor, per_row: bool = False, chunk: int = CHUNK):
    """Sum of next-token cross-entropies over scored positions, in fp32, and their count; with
    ``per_row``, a tensor of per-example sums and a list of per-example counts.

    Only scored positions are gathered, ``chunk`` at a time, so the fp32 logits (and their
    softmax in the backward pass) exist for one chunk at a time; each chunk's loss is
    checkpointed, so its fp32 copy is recomputed in the backward pass instead of kept."""
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: each example's positions in order
    targets = shift_labels[rows, cols]
    parts = [_chunk_loss(logits, rows[i:i + chunk], cols[i:i + chunk], targets[i:i + chunk])
             for i in range(0, len(rows), chunk)]
    losses = torch.cat(parts) if parts else logits.new_zeros(0, dtype=torch.float32)
    if per_row:
        sums = torch.zeros(labels.shape[0], dtype=torch.float32, device=logits.device).index_add(0, rows, losses)
        return sums, mask.sum(dim=1).tolist()
    return losses.sum(), int(mask.sum())


def _chunk_loss(logits, rows, cols, targets):
    def ce(lg):
        return F.cross_entropy(lg[rows, cols].float(), targets, reduction="none")

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
