"""Shared test fixtures. Everything here is built offline, in memory, in milliseconds."""

from __future__ import annotations

import re

import pytest

# Words of the Alpaca template and of the test records; anything else maps to <unk>.
_CORPUS = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request. ### Instruction: Input: "
    "Response: hello world the quick brown fox jumps over lazy dog say add two numbers 1 2 3 4 5 "
    "answer is a b c d e f g h"
)
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
# The pre-tokenizer below (tokenizers' Whitespace) splits text exactly like this regex.
WORD_RE = re.compile(r"\w+|[^\w\s]+")


def build_tiny_tokenizer():
    """A word-level ``PreTrainedTokenizerFast``: ids 0..3 are <pad> <unk> <s> </s>.

    It splits on whitespace and punctuation (so token counts can be worked out by hand with
    ``WORD_RE``) and, like Llama's tokenizers, prepends BOS ``<s>`` when
    ``add_special_tokens=True``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in WORD_RE.findall(_CORPUS):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos = vocab["<s>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """See :func:`build_tiny_tokenizer`."""
    return build_tiny_tokenizer()
