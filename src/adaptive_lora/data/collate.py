"""Batches: padding collator and the two batch samplers.

Padding is dynamic (to the longest example of the batch, not to ``max_length``) and on the right,
which is what causal LMs are trained with. Samplers return lists of example indices; both are
pure functions of ``(seed, epoch)``, so a resumed or repeated run sees the same batches in the
same order, whatever else has used the global RNGs.
"""

from __future__ import annotations

import random

import torch

from ..errors import UserError
from .tokenize import IGNORE_INDEX


class PadCollator:
    """Pad a list of examples into ``input_ids``, ``attention_mask`` and ``labels`` tensors.

    Padding positions get ``pad_token_id`` in ``input_ids``, 0 in ``attention_mask`` and -100 in
    ``labels``, so they are neither attended to nor scored. ``pad_to_multiple_of`` rounds the
    padded length up (e.g. to 8 for tensor cores); it never cuts an example.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            # Many causal LM tokenizers have no pad token; the caller should fall back to EOS.
            raise ValueError("pad_token_id is None: use the tokenizer's pad or EOS token id")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of}")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        length = max(len(ex["input_ids"]) for ex in examples)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            length = (length + m - 1) // m * m
        input_ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        for row, ex in enumerate(examples):
            n = len(ex["input_ids"])
            input_ids[row, :n] = torch.tensor(ex["input_ids"], dtype=torch.long)
            attention_mask[row, :n] = 1
            labels[row, :n] = torch.tensor(ex["labels"], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _rng(seed: int, epoch: int) -> random.Random:
    """A private RNG for one (seed, epoch).

    A string seed is hashed with SHA-512 by ``random.Random``: stable across processes and Python
    versions, and distinct for every pair (an integer mix such as seed * K + epoch could collide,
    and ``random.seed`` folds negative integers onto positive ones).
    """
    return random.Random(f"adaptive-lora/batches/{int(seed)}/{int(epoch)}")


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")


def _chunk(indices: list[int], batch_size: int) -> list[list[int]]:
    return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]


def random_batches(n: int, batch_size: int, seed: int, epoch: int, drop_last: bool = False) -> list[list[int]]:
    """Shuffle ``range(n)`` and cut it into batches; every index appears once per epoch.

    With ``drop_last`` a short final batch is dropped.
    """
    _check_batch_size(batch_size)
    order = list(range(n))
    _rng(seed, epoch).shuffle(order)
    batches = _chunk(order, batch_size)
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def length_grouped_batches(
    lengths: list[int],
    batch_size: int,
    seed: int,
    epoch: int,
    drop_last: bool = False,
    megabatch_mult: int = 16,
) -> list[list[int]]:
    """Batches of similar length, in random order (the megabatch scheme of transformers' Trainer).

    Shuffle all indices, cut them into megabatches of ``batch_size * megabatch_mult``, sort each
    megabatch by length (longest first) and cut it into batches; then shuffle the order of the
    batches. Examples of a batch have similar lengths, so little compute goes to padding, while
    which examples meet in a batch and the order of batches stay random.

    The batch holding the longest example comes first, so a configuration that runs out of memory
    does so at step 1 rather than hours in. Every index appears once per epoch; with ``drop_last``
    the one short batch (from the last megabatch) is dropped.
    """
    _check_batch_size(batch_size)
    if isinstance(megabatch_mult, bool) or not isinstance(megabatch_mult, int) or megabatch_mult < 1:
        raise ValueError(f"megabatch_mult must be a positive integer, got {megabatch_mult!r}")
    rng = _rng(seed, epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    megabatch = batch_size * megabatch_mult
    batches: list[list[int]] = []
    for start in range(0, len(order), megabatch):
        # sorted() is stable, so ties keep their shuffled order.
        group = sorted(order[start : start + megabatch], key=lambda i: -lengths[i])
        batches.extend(_chunk(group, batch_size))
    # Megabatches are whole multiples of batch_size, so only the very last batch can be short.
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if not batches:
        return batches
    rng.shuffle(batches)
    longest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]])
    # Swap rather than move to the front: the rest of the order stays as shuffled.
    batches[0], batches[longest] = batches[longest], batches[0]
    return batches
