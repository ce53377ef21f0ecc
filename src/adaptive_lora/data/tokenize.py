"""Records to token ids and labels.

An example is ``{"input_ids": [...], "labels": [...]}`` of equal length: the prompt tokens
(with whatever BOS the model's tokenizer adds), then the response tokens and one EOS, which
teaches the model to stop. Labels hold the token id where the position is *scored* and -100 where
it is not (the value ``torch.nn.CrossEntropyLoss`` and transformers ignore):

- ``train_on="response"`` (default): prompt positions are -100, so the loss, eval loss and
  perplexity measure the response only (see docs/ARCHITECTURE.md, metric definitions);
- ``train_on="all"``: every position is scored except the first one.

The first position is never scored in either mode: a causal LM predicts token t from tokens < t,
so nothing predicts token 0 (transformers drops ``labels[0]`` when it shifts). Masking it here
makes "labels != -100" count exactly the tokens that enter the loss.

The prompt and the response are tokenised separately and concatenated, rather than tokenising
``prompt + output`` in one go, so the boundary between masked and scored tokens is exact even
where a tokenizer would merge characters across it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .template import format_prompt

IGNORE_INDEX = -100
TRAIN_ON = ("response", "all")
_CHUNK = 1024  # records per batched tokenizer call: fast tokenizers are much quicker in batches


@dataclass
class TokenizedSet:
    """Tokenised examples, and how many records were dropped or truncated on the way.

    ``n_dropped`` counts records with no scored token left after truncation (the prompt alone
    fills ``max_length``); ``n_truncated`` counts kept examples that were cut to ``max_length``.
    """

    examples: list[dict]
    n_dropped: int
    n_truncated: int


def _check_args(tokenizer, max_length: int, train_on: str) -> int:
    """Validate the arguments; return the EOS id."""
    if train_on not in TRAIN_ON:
        raise UserError(f"train_on must be one of {', '.join(map(repr, TRAIN_ON))}, got {train_on!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        # One token of context plus one token to predict is the least that can be trained on.
        raise UserError(f"max_length must be an integer >= 2, got {max_length!r}")
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise UserError(
            "the model's tokenizer has no EOS token, so responses cannot be terminated: "
            "use a model whose tokenizer defines eos_token"
        )
    return eos


def _assemble(prompt_ids: list[int], response_ids: list[int], max_length: int, train_on: str):
    """Concatenate, truncate from the right and label; return (example or None, truncated)."""
    input_ids = list(prompt_ids) + list(response_ids)
    if train_on == "response":
        labels = [IGNORE_INDEX] * len(prompt_ids) + list(response_ids)
    else:
        labels = list(input_ids)
    if labels:
        labels[0] = IGNORE_INDEX  # nothing predicts the first token (see module docstring)
    truncated = len(input_ids) > max_length
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return None, truncated
    return {"input_ids": input_ids, "labels": labels}, truncated


def tokenize_example(record: dict, tokenizer, max_length: int, train_on: str = "response") -> dict | None:
    """Tokenise one record; None when no scored token survives truncation to ``max_length``."""
    eos = _check_args(tokenizer, max_length, train_on)
    prompt_ids = tokenizer(format_prompt(record), add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(record["output"], add_special_tokens=False)["input_ids"] + [eos]
    example, _ = _assemble(prompt_ids, response_ids, max_length, train_on)
    return example


def tokenize_records(records: list[dict], tokenizer, max_length: int, train_on: str = "response") -> TokenizedSet:
    """Tokenise ``records`` (same result as :func:`tokenize_example` on each, in batches).

    Raises a :class:`UserError` when records were given but every one of them was dropped:
    training on nothing is never what the user meant.
    """
    eos = _check_args(tokenizer, max_length, train_on)
    examples: list[dict] = []
    n_dropped = n_truncated = 0
    for start in range(0, len(records), _CHUNK):
        chunk = records[start : start + _CHUNK]
        prompts = tokenizer([format_prompt(r) for r in chunk], add_special_tokens=True)["input_ids"]
        responses = tokenizer([r["output"] for r in chunk], add_special_tokens=False)["input_ids"]
        for prompt_ids, response_ids in zip(prompts, responses):
            example, truncated = _assemble(prompt_ids, list(response_ids) + [eos], max_length, train_on)
            if example is None:
                n_dropped += 1
                continue
            examples.append(example)
            n_truncated += truncated
    if records and not examples:
        raise UserError(
            f"all {len(records)} examples were dropped: their prompts alone fill "
            f"max_length={max_length} tokens; raise max_length"
        )
    return TokenizedSet(examples=examples, n_dropped=n_dropped, n_truncated=n_truncated)


def count_tokens(examples: list[dict]) -> tuple[int, int]:
    """``(tokens, scored tokens)`` of unpadded examples.

    Tokens are all positions (prompt and response; examples carry no padding before collation);
    scored tokens are the positions whose label is not -100. These are the counts behind
    tokens/s and the token-weighted eval loss in docs/ARCHITECTURE.md.
    """
    n_tokens = sum(len(ex["input_ids"]) for ex in examples)
    n_scored = sum(sum(1 for label in ex["labels"] if label != IGNORE_INDEX) for ex in examples)
    return n_tokens, n_scored
