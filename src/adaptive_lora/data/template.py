"""The Stanford Alpaca prompt template.

The two strings are the ones of the Alpaca repository (``train.py``), byte for byte: results are
only comparable with the paper's if the model sees the same prompt. The response follows the
prompt directly, with no separator, and ends with the tokenizer's EOS token (added in
:mod:`adaptive_lora.data.tokenize`, not here, because it is a token, not text).
"""

from __future__ import annotations

PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def format_prompt(record: dict) -> str:
    """The prompt for ``record``: the with-input template when its ``input`` is not blank.

    A whitespace-only input counts as no input, so the model never sees an empty
    ``### Input:`` section.
    """
    instruction = record["instruction"]
    inp = record.get("input") or ""
    if inp.strip():
        # str.format substitutes only the template's own placeholders; braces inside the
        # instruction or input are copied as they are.
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=inp)
    return PROMPT_NO_INPUT.format(instruction=instruction)
