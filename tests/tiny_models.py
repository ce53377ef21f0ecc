"""Tiny random models of every tested decoder family, built from configs, for tests that must
take seconds: GPT-2 and Llama (``CONFIGS``), and Qwen2, Mistral, Gemma 2, Phi-3, GPT-NeoX,
Falcon, OPT and Mixtral (``FAMILY_CONFIGS``, which holds all of them).

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

# The other families share one geometry where they can: hidden 32, 4 heads (2 for K/V where the
# family has grouped K/V), MLP 64, and the byte tokenizer's vocabulary and special ids.
_TOKENS = {"vocab_size": 260, "bos_token_id": 256, "eos_token_id": 257, "pad_token_id": 258}
_DECODER = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 512, "tie_word_embeddings": True, **_TOKENS}


def _family_config(cls_name: str, **kw):
    def make(n_layer: int = N_LAYERS, vocab_size: int = 260):
        import transformers

        return getattr(transformers, cls_name)(num_hidden_layers=n_layer, **{**kw, "vocab_size": vocab_size})

    return make


FAMILY_CONFIGS = {
    **CONFIGS,
    "qwen2": _family_config("Qwen2Config", **_DECODER),
    "mistral": _family_config("MistralConfig", **_DECODER),
    "gemma2": _family_config("Gemma2Config", **_DECODER, head_dim=8),  # Gemma's default head_dim is 256
    "phi3": _family_config("Phi3Config", **_DECODER),
    "gpt_neox": _family_config("GPTNeoXConfig", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                               max_position_embeddings=512, **_TOKENS),
    # Falcon-7B's layout: one fused query_key_value with a single K/V head (multi-query).
    "falcon": _family_config("FalconConfig", hidden_size=32, num_attention_heads=4, multi_query=True,
                             parallel_attn=True, bias=False, **_TOKENS),
    "opt": _family_config("OPTConfig", hidden_size=32, ffn_dim=64, num_attention_heads=4, word_embed_proj_dim=32,
                          max_position_embeddings=512, **_TOKENS),
    "mixtral": _family_config("MixtralConfig", **_DECODER, num_local_experts=4, num_experts_per_tok=2),
    "llava": lambda n_layer=N_LAYERS, vocab_size=260: llava_config(n_layer, vocab_size),
}


def llava_config(n_layer: int = N_LAYERS, vocab_size: int = 260):
    """A vision-language model: a one-layer CLIP vision tower and the tiny Llama as language
    model. The image token is <unk> (259), which the byte tokenizer never produces."""
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=28, patch_size=14)
    return LlavaConfig(vision_config=vision.to_dict(), text_config=llama_config(n_layer, vocab_size).to_dict(),
                       image_token_index=259, tie_word_embeddings=True)


def build_model(family: str, seed: int = 0, **kw):
    from adaptive_lora.layout.discover import model_class

    torch.manual_seed(seed)
    config = FAMILY_CONFIGS[family](**kw)
    return model_class(config).from_config(config)


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
