"""Shared fixtures of the training tests: tiny GPT-2 and Llama folders and a small Alpaca file.

The model folders are built once per session (random weights from a fixed seed, the byte-level
tokenizer of ``tiny_models``). The Alpaca prompt template alone is ~170 byte-tokens, so configs
use ``max_length: 320``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from tiny_models import save_tiny_model

FAMILIES = ("gpt2", "llama")
N_RECORDS = 48
EVAL_SIZE = 8
WORDS = ("red", "blue", "green", "cat", "dog", "sun", "moon", "tree")


def alpaca_records(n: int = N_RECORDS, seed: int = 0) -> list[dict]:
    """Short, varied records of three kinds: sums, repeated words and spelled words."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        word = rng.choice(WORDS)
        if i % 3 == 0:
            out.append({"instruction": "Add the numbers.", "input": f"{a} {b}", "output": str(a + b)})
        elif i % 3 == 1:
            out.append({"instruction": "Repeat the word.", "input": word, "output": f"{word} {word}"})
        else:
            out.append({"instruction": f"Spell {word}.", "input": "", "output": " ".join(word)})
    return out


@pytest.fixture(scope="session")
def train_env(tmp_path_factory) -> dict:
    """``{"gpt2": folder, "llama": folder, "data": alpaca.json}``, built once per session."""
    base = tmp_path_factory.mktemp("train_env")
    env = {family: save_tiny_model(base / family, family) for family in FAMILIES}
    env["data"] = base / "alpaca.json"
    env["data"].write_text(json.dumps(alpaca_records()), encoding="utf-8")
    return env


def train_config(env: dict, family: str, **overrides) -> dict:
    """A config dict for a run of a few seconds: 40 train / 8 eval records, rank 4, fp32."""
    cfg = {
        "model": str(env[family]), "data": str(env["data"]), "eval_size": EVAL_SIZE, "max_train": None,
        "max_length": 320, "r": 4, "lr": 3e-3, "epochs": 1, "batch_size": 4, "grad_accum": 2,
        "lora_dropout": 0.0, "precision": "fp32", "seed": 0, "progress": False,
    }
    cfg.update(overrides)
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]


def train_lines(run_dir: Path) -> list[dict]:
    return [row for row in read_metrics(run_dir) if row["type"] == "train"]


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())
