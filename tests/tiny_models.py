"""Tiny random GPT-2 and Llama models built from configs, for tests that must take seconds.

``save_tiny_model`` writes a complete local model folder (config, random weights, a byte-level
tokenizer that covers any text) so the CLI can load it like any other local model.
"""

from __future__ import annotations

from pathlib import Path

import torch

N_LAYERS = 4


def gpt2_config(n_layer: int = N_LAYERS, vocab_size: int = 260):
    from transformers import GPT2Config

    return GPT2Config(n_layer=n_layer, n_embd=32, n_head=2, vocab_size=vocab_size, n_positions=512,
                      bos_token_id=256, eos_token_id=257)


def llama_config(n_layer: int = N_LAYERS, vocab_size: int = 260):
    from transformers import LlamaConfig

    return LlamaConfig(num_hidden_layers=n_layer, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=512,
                       bos_token_id=256, eos_token_id=257, pad_token_id=258, tie_word_embeddings=True)


CONFIGS = {"gpt2": gpt2_config, "llama": llama_config}


def build_model(family: str, seed: int = 0, **kw):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(CONFIGS[family](**kw))


def byte_tokenizer():
    """Byte-level tokenizer: ids 0..255 are bytes, then <s>, </s>, <pad>, <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for tok in ("<s>", "</s>", "<pad>", "<unk>"):
        vocab[tok] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def save_tiny_model(folder: Path, family: str, seed: int = 0, **kw) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model(family, seed=seed, **kw)
    model.save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


def save_config_only(folder: Path, config) -> Path:
    """A model folder with config.json and no weights: enough for planning."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    return folder


def dialogpt_medium_config():
    """DialoGPT-medium's geometry (it is GPT-2 medium): no weights needed to plan it."""
    from transformers import GPT2Config

    return GPT2Config(n_layer=24, n_embd=1024, n_head=16, vocab_size=50257, n_positions=1024)
