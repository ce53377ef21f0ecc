"""Stage 1, data: records -> split -> tokenised examples, and what the loop needs about them.

The split depends on ``data_seed`` only, so every seed of a sweep sees the same eval set. The
tokenised splits come from the on-disk cache (``data/cache.py``) when an earlier run, or another
process of this one, tokenised the same records with the same tokenizer and settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..data import IGNORE_INDEX, PadCollator, count_tokens, length_grouped_batches, load_records, random_batches, \
    split_records, tokenize_records
from ..data.cache import cached_tokenize, data_key, tokenizer_fingerprint
from ..data.records import eval_count
from ..layout import load_tokenizer
from ..layout.resolve import cache_root


@dataclass
class TrainData:
    train: list[dict]  # tokenised training examples
    eval: list[dict]  # tokenised held-out examples
    eval_records: list[dict]  # the raw held-out records (for generated samples)
    collate: PadCollator
    tokenizer: object
    lengths: list[int]  # tokens per training example
    scored: list[int]  # scored (loss-bearing) next-token predictions per training example
    counts: dict  # source, format, record/drop/truncation/token counts, for the summary and the report

    def batches(self, batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
        """The micro-batches of one epoch: a function of (seed, epoch) only."""
        if group_by_length:
            return length_grouped_batches(self.lengths, batch_size, seed, epoch)
        return random_batches(len(self.lengths), batch_size, seed, epoch)


def scored_predictions(example: dict) -> int:
    """Next-token predictions of ``example`` that carry loss (label at position t >= 1 not masked)."""
    return sum(1 for t in example["labels"][1:] if t != IGNORE_INDEX)


def data_cache_folder(setting):
    """The ``data_cache`` key as a folder, or None for no cache (``false``)."""
    if setting is False:
        return None
    return setting or cache_root() / "data"


def prepare_data(cfg_input) -> TrainData:
    """Load, split and tokenise the data of ``cfg.input`` (an :class:`InputConfig`)."""
    c = cfg_input
    loaded = load_records(c.data, skip_bad=c.skip_bad_records, data_format=c.data_format)
    train_recs, eval_recs = split_records(loaded.records, seed=c.data_seed, eval_size=c.eval_size,
                                          max_train=c.max_train, max_eval=c.max_eval)
    tokenizer = load_tokenizer(c.model)
    folder, fingerprint = data_cache_folder(c.data_cache), tokenizer_fingerprint(tokenizer)

    def tokenized(records):
        key = data_key(records, fingerprint, c.max_length, c.train_on)
        return cached_tokenize(folder, key, lambda: tokenize_records(records, tokenizer, c.max_length, c.train_on))

    (train_set, train_hit), (eval_set, eval_hit) = tokenized(train_recs), tokenized(eval_recs)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    counts = data_counts(loaded, c, len(train_recs), len(eval_recs), train_set, eval_set)
    counts["cache"] = "off" if folder is None else ("hit" if train_hit and eval_hit else "miss")
    train = train_set.examples
    return TrainData(train, eval_set.examples, eval_recs, PadCollator(pad_id), tokenizer,
                     [len(e["input_ids"]) for e in train], [scored_predictions(e) for e in train], counts)


def data_counts(loaded, c, n_train_records: int, n_eval_records: int, train_set, eval_set) -> dict:
    """What the run used of its data, for ``summary.json``'s ``data`` and the report's data line.

    ``train_available`` is every record left after the eval split; ``train_records`` what the run
    took of them (fewer only when ``max_train`` caps it); ``train_examples`` what survived
    tokenisation (records whose prompt fills ``max_length`` are dropped)."""
    tokens, scored = count_tokens(train_set.examples)
    eval_tokens, eval_scored = count_tokens(eval_set.examples)
    return {"source": loaded.source, "format": loaded.format, "n_records": len(loaded.records),
            "n_skipped": loaded.n_skipped, "train_available": len(loaded.records) - eval_count(len(loaded.records),
                                                                                                c.eval_size),
            "max_train": c.max_train, "train_records": n_train_records, "eval_records": n_eval_records,
            "train_examples": len(train_set.examples), "eval_examples": len(eval_set.examples),
            "train_tokens": tokens, "train_scored_tokens": scored, "eval_tokens": eval_tokens,
            "eval_scored_tokens": eval_scored,
            "train_dropped": train_set.n_dropped, "train_truncated": train_set.n_truncated,
            "eval_dropped": eval_set.n_dropped, "eval_truncated": eval_set.n_truncated}


def probe_batches(n_examples: int, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    """The batches of the gradient probes and of GoRA's initialisation: ``n_batches`` of
    ``batch_size`` training indices, drawn with the data seed only (not the run's seed), so every
    run and strategy on the same data measures the same examples."""
    order = list(range(n_examples))
    random.Random(f"probe/{seed}").shuffle(order)
    order = order[: batch_size * n_batches]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def gradient_probe_batches(cfg, n_train: int) -> list[list[int]]:
    """:func:`probe_batches` as a run's config sets it: ``probe_batches`` x ``probe_batch_size``
    (default the run's ``batch_size``), drawn with ``data_seed``."""
    return probe_batches(n_train, cfg.probe.probe_batch_size or cfg.optim.batch_size, cfg.probe.probe_batches,
                         cfg.input.data_seed)
