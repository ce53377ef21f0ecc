"""The two CPU kernels behind ``fast_dropout`` and ``cpu_attention``, timed against torch's own.

    python benchmarks/kernels.py                       # SmolLM2-135M's shapes, bf16, all threads
    python benchmarks/kernels.py --lengths 72,256      # other sequence lengths

* dropout: one LoRA input of the speed workload's size (960 positions x 576 features, bf16),
  ``F.dropout(x, 0.1)`` against :class:`ThresholdDropout` (the mask's random bits alone too);
* attention, forward and backward of one layer (8 sequences, 9 query heads over 3 key/value heads
  of 64, bf16, a causal mask with padding): SDPA (transformers' path, what the model used before)
  against :func:`gemm_attention` in one block and in causal blocks of ``GEMM_ATTENTION_BLOCK``.

Each figure is the best of ``--repeats`` timings after a warm-up, in microseconds (dropout) or
milliseconds (attention). Results: ``benchmarks/out/kernels.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR, hardware, versions, write_json  # noqa: E402


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def dropout_figures(repeats: int) -> dict:
    import numpy as np
    import torch

    from adaptive_lora.training.speedups import ThresholdDropout

    x = torch.randn(960, 576, dtype=torch.bfloat16)
    d = ThresholdDropout(0.1).train()
    out = {
        "torch F.dropout": best(lambda: torch.nn.functional.dropout(x, 0.1, True), repeats),
        "ThresholdDropout": best(lambda: d(x), repeats),
        "its random bits alone": best(lambda: np.random.SFC64(1).random_raw((x.numel() + 3) // 4), repeats),
    }
    return {k: v * 1e6 for k, v in out.items()}


def attention_figures(lengths: list[int], repeats: int) -> dict:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from adaptive_lora.training import speedups

    module = types.SimpleNamespace(is_causal=True, num_key_value_groups=3)
    block = speedups.GEMM_ATTENTION_BLOCK
    out = {}
    for T in lengths:
        g = torch.Generator().manual_seed(0)
        q = torch.randn(8, 9, T, 64, generator=g).bfloat16().requires_grad_()
        k = torch.randn(8, 3, T, 64, generator=g).bfloat16().requires_grad_()
        v = torch.randn(8, 3, T, 64, generator=g).bfloat16().requires_grad_()
        lengths_in_batch = torch.tensor([T, T - 5, T - 20, T // 2, T // 2, T // 3, T // 3, T // 4])
        mask = torch.ones(T, T, dtype=torch.bool).tril() & (torch.arange(T) < lengths_in_batch.view(8, 1, 1, 1))

        def run(fn):
            def f():
                o, _ = fn(module, q, k, v, mask)
                o.float().sum().backward()
            return f

        def gemm_in(block_size):
            def fn(*a):
                speedups.GEMM_ATTENTION_BLOCK = block_size
                return speedups.gemm_attention(*a)
            return fn

        out[T] = {"sdpa": best(run(sdpa_attention_forward), repeats) * 1e3,
                  "gemm, one block": best(run(gemm_in(10 ** 9)), repeats) * 1e3,
                  f"gemm, blocks of {block}": best(run(gemm_in(block)), repeats) * 1e3}
        speedups.GEMM_ATTENTION_BLOCK = block
        print(f"attention at {T:4d} positions: " + ", ".join(f"{k} {v:.2f} ms" for k, v in out[T].items()), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="72,120,170,207,256")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    import torch

    drop = dropout_figures(args.repeats * 5)
    print("dropout of a 960 x 576 bf16 input: " + ", ".join(f"{k} {v:.0f} us" for k, v in drop.items()), flush=True)
    attn = attention_figures([int(n) for n in args.lengths.split(",")], args.repeats)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_json(OUT_DIR / "kernels.json", {"dropout_us": drop, "attention_ms": attn, "hardware": hardware(),
                                          "versions": versions(), "torch_threads": torch.get_num_threads(),
                                          "loadavg": os.getloadavg()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
