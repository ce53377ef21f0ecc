"""The data stage: records (Alpaca, chat messages, ShareGPT) in, tokenised examples and batches out.

    load_records -> split_records -> tokenize_records (cached: data/cache.py)
                 -> (length_grouped_|random_)batches -> PadCollator

Depends on no other stage (see docs/ARCHITECTURE.md).
"""

from .collate import PadCollator, length_grouped_batches, random_batches
from .chat import chat_prompt, render_chat
from .formats import FIELDS, FORMATS, is_chat
from .records import DEFAULT_SOURCE, LoadedRecords, default_data_path, load_records, split_records
from .template import PROMPT_NO_INPUT, PROMPT_WITH_INPUT, format_prompt
from .tokenize import IGNORE_INDEX, TRAIN_ON, TokenizedSet, count_tokens, tokenize_example, tokenize_records

__all__ = [
    "DEFAULT_SOURCE",
    "FIELDS",
    "FORMATS",
    "IGNORE_INDEX",
    "PROMPT_NO_INPUT",
    "PROMPT_WITH_INPUT",
    "TRAIN_ON",
    "LoadedRecords",
    "PadCollator",
    "TokenizedSet",
    "chat_prompt",
    "count_tokens",
    "default_data_path",
    "format_prompt",
    "is_chat",
    "length_grouped_batches",
    "load_records",
    "random_batches",
    "render_chat",
    "split_records",
    "tokenize_example",
    "tokenize_records",
]
