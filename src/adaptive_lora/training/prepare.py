"""Stage 1, data: records -> split -> tokenised examples, and what the loop needs about them.

The split depends on ``data_seed`` only, so every seed of a sweep sees the same eval set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..data import IGNORE_INDEX, PadCollator, length_grouped_batches, load_records, random_batches, split_records, \
    tokenize_records
from ..layout import load_tokenizer


@dataclass
class TrainData:
    train: list[dict]  # tokenised training examples
    eval: list[dict]  # tokenised held-out examples
    eval_records: list[dict]  # the raw held-out records (for generated samples)
    collate: PadCollator
    tokenizer: object
    lengths: list[int]  # tokens per training example
    scored: list[int]  # scored (loss-bearing) next-token predictions per training example
    counts: dict  # source and record/drop/truncation counts, for the summary

    def batches(self, batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
        """The micro-batches of one epoch: a function of (seed, epoch) only."""
        if group_by_length:
            return length_grouped_batches(self.lengths, batch_size, seed, epoch)
        return random_batches(len(self.lengths), batch_size, seed, epoch)


def scored_predictions(example: dict) -> int:
    """Next-token predictions of ``example`` that carry loss (label at position t >= 1 not masked)."""
    return sum(1 for t in example["labels"][1:] if t != IGNORE_INDEX)


def prepare_data(cfg_input) -> TrainData:
    """Load, split and tokenise the data of ``cfg.input`` (an :class:`InputConfig`)."""
    c = cfg_input
    loaded = load_records(c.data, skip_bad=c.skip_bad_records)
    train_recs, eval_recs = split_records(loaded.records, seed=c.data_seed, eval_size=c.eval_size,
                                          max_train=c.max_train, max_eval=c.max_eval)
    tokenizer = load_tokenizer(c.model)
    train_set = tokenize_records(train_recs, tokenizer, c.max_length, c.train_on)
    eval_set = tokenize_records(eval_recs, tokenizer, c.max_length, c.train_on)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    counts = {"source": loaded.source, "n_records": len(loaded.records), "n_skipped": loaded.n_skipped,
              "train_dropped": train_set.n_dropped, "train_truncated": train_set.n_truncated,
              "eval_dropped": eval_set.n_dropped, "eval_truncated": eval_set.n_truncated}
    train = train_set.examples
    return TrainData(train, eval_set.examples, eval_recs, PadCollator(pad_id), tokenizer,
                     [len(e["input_ids"]) for e in train], [scored_predictions(e) for e in train], counts)


def probe_batches(n_examples: int, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    """The batches of the gradient probes and of GoRA's initialisation: ``n_batches`` of
    ``batch_size`` training indices, drawn with the data seed only (not the run's seed), so every
    run and strategy on the same data measures the same examples."""
    order = list(range(n_examples))
    random.Random(f"probe/{seed}").shuffle(order)
    order = order[: batch_size * n_batches]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
