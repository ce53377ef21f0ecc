"""The data stage: Alpaca-format records in, tokenised examples and batches out.

    load_records -> split_records -> tokenize_records -> (length_grouped_|random_)batches -> PadCollator

Depends on no other stage (see docs/ARCHITECTURE.md).
"""

from .collate import PadCollator, length_grouped_batches, random_batches
from .records import DEFAULT_SOURCE, FIELDS, LoadedRecords, default_data_path, load_records, split_records
from .template import PROMPT_NO_INPUT, PROMPT_WITH_INPUT, format_prompt
from .tokenize import IGNORE_INDEX, TRAIN_ON, TokenizedSet, count_tokens, tokenize_example, tokenize_records

__all__ = [
    "DEFAULT_SOURCE",
    "FIELDS",
    "IGNORE_INDEX",
    "PROMPT_NO_INPUT",
    "PROMPT_WITH_INPUT",
    "TRAIN_ON",
    "LoadedRecords",
    "PadCollator",
    "TokenizedSet",
    "count_tokens",
    "default_data_path",
    "format_prompt",
    "length_grouped_batches",
    "load_records",
    "random_batches",
    "split_records",
    "tokenize_example",
    "tokenize_records",
]
