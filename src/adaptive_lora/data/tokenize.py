"""Records to token ids and labels.

An example is ``{"input_ids": [...], "labels": [...]}`` of equal length. Labels hold the token id
where the position is *scored* and -100 where it is not (the value ``torch.nn.CrossEntropyLoss``
and transformers ignore):

- ``train_on="response"`` (default): only the reply is scored. For an Alpaca record that is the
  ``output`` and one EOS appended after it (which teaches the model to stop); for a chat record,
  each assistant turn with the template's end-of-turn marker (:mod:`.chat`). The prompt (template,
  instruction, input; system and user turns; the assistant header) is -100, so the loss, eval
  loss and perplexity measure the reply only (see docs/ARCHITECTURE.md, metric definitions);
- ``train_on="all"``: every position is scored except the first one.

The first position is never scored in either mode: a causal LM predicts token t from tokens < t,
so nothing predicts token 0 (transformers drops ``labels[0]`` when it shifts). Masking it here
makes "labels != -100" count exactly the tokens that enter the loss.

**One tokenisation, an exact boundary.** The prompt and the reply are tokenised together, as one
string, exactly as the model reads them at inference time; the boundary is then found from the
character offsets of the tokens. Tokenising them apart would give the reply its own start-of-text
treatment: a tokenizer that adds a prefix space (SentencePiece's ``▁``, byte-level BPE with
``add_prefix_space``) puts a space before the reply that the text does not have, a stray token the
model is trained to produce and never sees at inference. The rule: **a token is scored when it
holds at least one character of the reply**. A token that straddles the boundary (a merge of the
prompt's last characters with the reply's first) is scored, so no reply character is left out of
the loss. Tokenizers without offsets (slow, Python ones) give the same boundary by comparing the
tokens of the text before the boundary with those of the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .chat import render_chat
from .formats import is_chat
from .template import format_prompt

IGNORE_INDEX = -100
TRAIN_ON = ("response", "all")
# Bump when the rule that turns records into ids and labels changes: part of the data cache key.
TOKENIZE_VERSION = 2  # 2: prompt and reply tokenised together, boundary from offsets; chat records
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


# ----------------------------------------------------------------------------- boundaries


def first_token_after(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the first token holding a character at or after ``char`` (its end lies past it).

    Special tokens a tokenizer adds (BOS) have the empty span (0, 0) and never qualify."""
    return next((i for i, (_, end) in enumerate(offsets) if end > char), len(offsets))


def _encode(tokenizer, texts: list[str], special: bool, cuts: list[list[int]]) -> list[tuple[list[int], list[int]]]:
    """``(ids, [first_token_after(c) for c in cuts[i]])`` for each text, in one batched call when
    the tokenizer gives offsets."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(texts, add_special_tokens=special, return_offsets_mapping=True)
        return [(list(ids), [first_token_after(offs, c) for c in cs])
                for ids, offs, cs in zip(enc["input_ids"], enc["offset_mapping"], cuts)]
    out = []
    for text, cs in zip(texts, cuts):
        ids = tokenizer(text, add_special_tokens=special)["input_ids"]
        out.append((list(ids), [_common_prefix(tokenizer(text[:c], add_special_tokens=special)["input_ids"], ids)
                                for c in cs]))
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading ids ``a`` and ``b`` share: where the tokens of a text prefix stop matching
    the whole text's, the first token that holds a character past the prefix begins."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ----------------------------------------------------------------------------- records -> scored masks


def _alpaca_chunk(records: list[dict], tokenizer, eos: int) -> list[tuple[list[int], list[bool]]]:
    """Prompt + output as one string (with the tokenizer's BOS), then EOS; the output scored."""
    prompts = [format_prompt(r) for r in records]
    texts = [p + r["output"] for p, r in zip(prompts, records)]
    out = []
    for ids, (start,) in _encode(tokenizer, texts, True, [[len(p)] for p in prompts]):
        out.append((ids + [eos], [False] * start + [True] * (len(ids) - start) + [True]))
    return out


def _chat_chunk(records: list[dict], tokenizer) -> list[tuple[list[int], list[bool]]]:
    """The rendered conversation (the template writes any BOS itself); assistant turns scored."""
    rendered = [render_chat(tokenizer, r["messages"]) for r in records]
    # Token span of a turn [s, e): from the first token holding character s to the one holding e - 1.
    cuts = [[c for s, e in spans if e > s for c in (s, e - 1)] for _, spans in rendered]
    out = []
    for ids, bounds in _encode(tokenizer, [text for text, _ in rendered], False, cuts):
        scored = [False] * len(ids)
        for first, last in zip(bounds[::2], bounds[1::2]):
            for i in range(first, min(last + 1, len(ids))):
                scored[i] = True
        out.append((ids, scored))
    return out


def _scored_pairs(records: list[dict], tokenizer, eos: int) -> list[tuple[list[int], list[bool]]]:
    """(ids, scored mask) per record; batched when the records are of one kind (as a file's are)."""
    kinds = {is_chat(r) for r in records}
    if len(kinds) > 1:
        return [_scored_pairs([r], tokenizer, eos)[0] for r in records]
    return _chat_chunk(records, tokenizer) if kinds == {True} else _alpaca_chunk(records, tokenizer, eos)


def _assemble(ids: list[int], scored: list[bool], max_length: int, train_on: str):
    """Label, truncate from the right; return (example or None, truncated)."""
    labels = list(ids) if train_on == "all" else [t if s else IGNORE_INDEX for t, s in zip(ids, scored)]
    if labels:
        labels[0] = IGNORE_INDEX  # nothing predicts the first token (see module docstring)
    truncated = len(ids) > max_length
    input_ids, labels = list(ids[:max_length]), labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return None, truncated
    return {"input_ids": input_ids, "labels": labels}, truncated


def _tokenize(records: list[dict], tokenizer, max_length: int, train_on: str):
    """``[(example or None, truncated)]`` for ``records``, in batches of one kind of record."""
    eos = _check_args(tokenizer, max_length, train_on)
    results = []
    for start in range(0, len(records), _CHUNK):
        pairs = _scored_pairs(records[start : start + _CHUNK], tokenizer, eos)
        results.extend(_assemble(ids, scored, max_length, train_on) for ids, scored in pairs)
    return results


def tokenize_example(record: dict, tokenizer, max_length: int, train_on: str = "response") -> dict | None:
    """Tokenise one record; None when no scored token survives truncation to ``max_length``."""
    return _tokenize([record], tokenizer, max_length, train_on)[0][0]


def tokenize_records(records: list[dict], tokenizer, max_length: int, train_on: str = "response") -> TokenizedSet:
    """Tokenise ``records`` (same result as :func:`tokenize_example` on each, in batches).

    Raises a :class:`UserError` when records were given but every one of them was dropped:
    training on nothing is never what the user meant.
    """
    results = _tokenize(records, tokenizer, max_length, train_on)
    examples = [ex for ex, _ in results if ex is not None]
    n_truncated = sum(truncated for ex, truncated in results if ex is not None)
    if records and not examples:
        raise UserError(
            f"all {len(records)} examples were dropped: their prompts alone fill "
            f"max_length={max_length} tokens; raise max_length"
        )
    return TokenizedSet(examples=examples, n_dropped=len(results) - len(examples), n_truncated=n_truncated)


def count_tokens(examples: list[dict]) -> tuple[int, int]:
    """``(tokens, scored tokens)`` of unpadded examples.

    Tokens are all positions (prompt and response; examples carry no padding before collation);
    scored tokens are the positions whose label is not -100. These are the counts behind
    tokens/s and the token-weighted eval loss in docs/ARCHITECTURE.md.
    """
    n_tokens = sum(len(ex["input_ids"]) for ex in examples)
    n_scored = sum(sum(1 for label in ex["labels"] if label != IGNORE_INDEX) for ex in examples)
    return n_tokens, n_scored
