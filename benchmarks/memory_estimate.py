"""The memory estimate (``training/memory.py``) against a measured peak, on SmolLM2-135M.

    python benchmarks/memory_estimate.py              # fp32 and bf16 autocast, ~2 min on 2 CPU cores
    python benchmarks/memory_estimate.py --steps 1 --precision fp32

Each precision runs in a fresh subprocess: LoRA r=16 on all seven projections, AdamW, a few
optimizer steps of batch 8 x 192 random tokens, every token scored (the estimate's worst case),
through the tool's own loss (chunked cross-entropy). The measured peak is, on a GPU,
``torch.cuda.max_memory_allocated``; on a CPU, the resident set's high-water mark minus the
resident set before the model was loaded (what importing torch and transformers costs is not
training memory). Then the estimate's parts and the ratio measured / estimated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

BATCH, LENGTH, RANK = 8, 192, 16
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def measure(precision: str, steps: int) -> dict:
    """One training of ``steps`` steps in this process; the estimate and the measured peak."""
    import torch
    from peft import LoraConfig, get_peft_model

    from adaptive_lora.evaluation.metrics import scored_loss_sum
    from adaptive_lora.layout import layout_from_model, load_model
    from adaptive_lora.training.memory import estimate_memory
    from adaptive_lora.training.session import reset_peak_memory

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    before = 0 if cuda else _rss_kib("VmRSS") * 1024
    model = load_model("smollm2-135m").to(device)
    model.config.use_cache = False
    layout = layout_from_model(model)
    ranks = {m.name: RANK for m in layout.modules}
    model = get_peft_model(model, LoraConfig(r=RANK, target_modules=TARGETS, lora_dropout=0.0))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    reset_peak_memory(device)
    amp = torch.bfloat16 if precision == "bf16" else None
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(0, model.config.vocab_size, (BATCH, LENGTH), generator=g).to(device)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss, n = scored_loss_sum(model, batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated(device) if cuda else _rss_kib("VmHWM") * 1024 - before
    est = estimate_memory(layout, model.config, ranks, dtype="fp32", autocast=precision if amp else None,
                          batch_size=BATCH, max_length=LENGTH)
    return {"precision": precision, "device": device.type, "measured": peak, "estimate": est}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", choices=["fp32", "bf16"], action="append")
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps (Adam's states exist from the 2nd)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(measure(a.child, a.steps)))
        return 0
    print(f"SmolLM2-135M, LoRA r={RANK} on all projections, batch {BATCH} x {LENGTH}, {a.steps} steps\n")
    print("| precision | device | estimate weights / adapters / activations / logits (MiB) | estimate total "
          "(MiB) | measured peak (MiB) | measured / estimate |")
    print("|---|---|---|---|---|---|")
    for precision in a.precision or ["fp32", "bf16"]:
        out = subprocess.run([sys.executable, __file__, "--child", precision, "--steps", str(a.steps)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        e, mib = r["estimate"], 2**20
        parts = " / ".join(f"{e[k] / mib:.0f}" for k in ("weights", "adapters", "activations", "logits"))
        print(f"| {precision} | {r['device']} | {parts} | {e['total'] / mib:.0f} | {r['measured'] / mib:.0f} | "
              f"{r['measured'] / e['total']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
