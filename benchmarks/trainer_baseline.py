"""The reference side of the speed benchmark: LoRA fine-tuning as a new user would write it.

    python benchmarks/trainer_baseline.py [--precision fp32|bf16] [--max-train N] [--data FILE] [--out FILE.json]

Plain PEFT + transformers ``Trainer``, no tuning: SmolLM2-135M-Instruct, LoRA r=16 on all seven
projections, Alpaca prompt template, max length 256 with the prompt masked out of the loss,
``DataCollatorForSeq2Seq``, batch 8, gradient accumulation 4, one epoch, constant lr 3e-4.

Measured: the wall time of ``trainer.train()`` only (model loading, tokenising and evaluation are
outside it), tokens = non-padding tokens of the training examples (prompt and response, once per
epoch), tokens/s = tokens / wall time. Afterwards the token-weighted eval loss on the 50 held-out
records. The only additions to the script a user would write are measurement: a timer, a token
count, and a wrapper around the collator that counts padded batch positions (for the "work done"
GFLOP/s); the wrapper calls the collator unchanged and costs microseconds per batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run from anywhere

from common import (  # noqa: E402
    DEFAULT_DATA,
    WORKLOAD,
    count_matmul_params,
    hardware,
    load_json_records,
    model_folder,
    split_records,
    token_weighted_eval_loss,
    versions,
    write_json,
)

# The Stanford Alpaca prompt template, with and without an input field.
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


def tokenize(record: dict, tokenizer, max_length: int) -> dict:
    """One record -> input_ids / attention_mask / labels, loss on the response only.

    Prompt and response are tokenised separately and concatenated, so the mask boundary is exact
    (tokenising the joined text could merge tokens across the boundary). The response ends with
    EOS so the model learns to stop. Truncation keeps the start, as the tokenizer would.
    """
    template = PROMPT_WITH_INPUT if record["input"].strip() else PROMPT_NO_INPUT
    prompt = template.format(instruction=record["instruction"], input=record["input"])
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(record["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


class CountingCollator:
    """Calls the real collator and counts the padded positions it hands to the model."""

    def __init__(self, collate):
        self.collate = collate
        self.padded_positions = 0
        self.batches = 0

    def __call__(self, features):
        batch = self.collate(features)
        self.padded_positions += int(batch["input_ids"].numel())
        self.batches += 1
        return batch


def run(precision: str, data_path: str, max_train: int | None, output_dir: str) -> dict:
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    transformers.set_seed(WORKLOAD["seed"])
    folder = model_folder()

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # fp32 weights in both precisions: with bf16=True the Trainer autocasts the compute to bf16
    # and keeps fp32 master weights, which is what a user gets from the flag.
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    lora_config = LoraConfig(
        r=WORKLOAD["r"],
        lora_alpha=WORKLOAD["lora_alpha"],
        lora_dropout=WORKLOAD["lora_dropout"],
        target_modules=WORKLOAD["targets"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora_config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    records = load_json_records(data_path)
    train_records, eval_records = split_records(
        records, seed=WORKLOAD["seed"], eval_size=WORKLOAD["eval_size"], max_train=max_train
    )
    train_examples = [tokenize(r, tokenizer, WORKLOAD["max_length"]) for r in train_records]
    eval_examples = [tokenize(r, tokenizer, WORKLOAD["max_length"]) for r in eval_records]
    # A token: a non-padding position of a training sequence, prompt and response, once per epoch.
    train_tokens = sum(len(e["input_ids"]) for e in train_examples) * WORKLOAD["epochs"]

    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    counting = CountingCollator(collator)
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=WORKLOAD["batch_size"],
        gradient_accumulation_steps=WORKLOAD["grad_accum"],
        num_train_epochs=WORKLOAD["epochs"],
        learning_rate=WORKLOAD["lr"],
        lr_scheduler_type=WORKLOAD["lr_schedule"],
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=WORKLOAD["seed"],
        dataloader_num_workers=0,
        bf16=(precision == "bf16"),
        use_cpu=True,
    )
    # A plain list is a valid map-style dataset for the Trainer; it avoids the optional
    # `datasets` dependency and changes nothing in what is trained.
    trainer = Trainer(model=model, args=args, train_dataset=train_examples, data_collator=counting)

    # Other processes on the cores slow training down a lot (the OpenMP threads wait for each
    # other), so record how busy the machine was and how much CPU this process got meanwhile.
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    output = trainer.train()
    wall_s = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0

    eval_loss, eval_tokens = token_weighted_eval_loss(
        trainer.model, eval_examples, collator, batch_size=WORKLOAD["batch_size"]
    )
    counts = count_matmul_params(folder, WORKLOAD["targets"], WORKLOAD["r"])
    train_losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]

    return {
        "side": "plain",
        "precision": precision,
        "train_examples": len(train_examples),
        "eval_examples": len(eval_examples),
        "tokens": train_tokens,
        "padded_positions": counting.padded_positions,
        "batches": counting.batches,
        "wall_s": wall_s,
        "train_runtime_s": output.metrics.get("train_runtime"),
        "tokens_per_s": train_tokens / wall_s,
        "eval_loss": eval_loss,
        "eval_tokens": eval_tokens,
        "optimizer_steps": trainer.state.global_step,
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "trainable_params": trainable,
        **counts,
        "torch_threads": torch.get_num_threads(),
        "loadavg_1min_before": load_before,
        # CPU seconds of this process per wall second per thread: near 1 on a quiet machine.
        "cpu_utilisation": cpu_s / (wall_s * torch.get_num_threads()),
        "versions": versions(),
        "hardware": hardware(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Alpaca-format JSON list (default: %(default)s)")
    parser.add_argument("--max-train", type=int, default=WORKLOAD["max_train"], help="training records (default 200)")
    parser.add_argument("--out", help="write the result as JSON to this file")
    parser.add_argument("--output-dir", default=None, help="Trainer output_dir (nothing is saved there)")
    args = parser.parse_args(argv)
    if args.max_train < 1:
        parser.error("--max-train must be at least 1")
    if not Path(args.data).is_file():
        parser.error(f"data file '{args.data}' does not exist: pass --data")

    from common import OUT_DIR

    output_dir = args.output_dir or str(OUT_DIR / f"trainer-{args.precision}")
    result = run(args.precision, args.data, args.max_train, output_dir)
    print(
        f"plain {result['precision']}: {result['tokens']} tokens in {result['wall_s']:.1f} s "
        f"(Trainer train_runtime {result['train_runtime_s']:.1f} s) = {result['tokens_per_s']:.1f} tokens/s, "
        f"{result['optimizer_steps']} optimizer steps, eval loss {result['eval_loss']:.4f} "
        f"over {result['eval_tokens']} scored tokens, {result['torch_threads']} torch threads "
        f"(CPU utilisation {result['cpu_utilisation']:.0%}, load before {result['loadavg_1min_before']:.2f})"
    )
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
