"""The machine's measured matmul peak per dtype, and the FLOP count of a LoRA fine-tune.

    python benchmarks/matmul_peak.py [--dtypes fp32,bf16] [--sizes 1024,2048,4096] [--out FILE.json]

Peak: square matmuls ``C = A @ B`` (n x n by n x n, 2*n^3 FLOPs) with torch on all of torch's
threads, after a warm-up, best of several repeats per size; the peak of a dtype is the best size.
This is what the machine's BLAS (oneDNN/MKL for CPU) actually delivers, not the vendor's
theoretical number, so "% of peak" says how much of the reachable throughput training uses.

Training FLOPs (:func:`lora_train_flops`), the usual approximation for a LoRA fine-tune:

- forward through the base model:           2 * N_base * tokens
- backward through the frozen base weights: 2 * N_base * tokens  (activation gradients only;
  frozen weights need no weight gradient, which saves the other 2 * N_base of full fine-tuning)
- LoRA matrices A and B:                    6 * N_lora * tokens  (forward 2, backward 4)

N_base counts the weights of every matmul (all linear layers, the output head included once even
when it is tied to the embedding; the embedding lookup is not a matmul). Attention-score FLOPs
(Q K^T and the weighted sum of V, about 4 * seq_len * d_model per token per layer forward) are
NOT included: at <= 256 tokens they add about 4 % for SmolLM2-135M, so the estimate is slightly
low. Padding positions are computed by the model too; ``tokens`` decides which work is counted:
non-padding tokens give the useful-work rate, padded batch positions the rate of work done.
"""

from __future__ import annotations

import argparse
import time

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
DEFAULT_SIZES = (1024, 2048, 4096)


def lora_train_flops(base_matmul_params: int, lora_params: int, tokens: int) -> float:
    """Approximate FLOPs to train a LoRA adapter on ``tokens`` tokens (see the module docstring)."""
    return (4.0 * base_matmul_params + 6.0 * lora_params) * tokens


def _best_gflops(n: int, dtype, min_repeats: int, min_seconds: float) -> float:
    import torch

    # Uniform values in [0, 1): no denormals or overflow to slow anything down.
    a = torch.rand(n, n, dtype=dtype)
    b = torch.rand(n, n, dtype=dtype)
    c = torch.empty(n, n, dtype=dtype)
    # Warm-up: the first calls pick kernels and fault in the pages of the output.
    for _ in range(2):
        torch.matmul(a, b, out=c)
    best = float("inf")
    repeats = 0
    start = time.perf_counter()
    # At least `min_repeats` timings, more while the total is short, so small sizes get a fair best.
    while repeats < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
        repeats += 1
    return 2.0 * n**3 / best / 1e9


def measure_peak(dtypes=("fp32", "bf16"), sizes=DEFAULT_SIZES, min_repeats: int = 3, min_seconds: float = 1.0) -> dict:
    """``{"threads": k, "peak_gflops": {dtype: x}, "by_size": {dtype: {n: x}}}``."""
    import torch

    result = {"threads": torch.get_num_threads(), "sizes": list(sizes), "peak_gflops": {}, "by_size": {}}
    for name in dtypes:
        dtype = getattr(torch, DTYPES[name])
        by_size = {str(n): round(_best_gflops(n, dtype, min_repeats, min_seconds), 1) for n in sizes}
        result["by_size"][name] = by_size
        result["peak_gflops"][name] = max(by_size.values())
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="square matrix sizes")
    parser.add_argument("--out", help="write the result as JSON to this file")
    args = parser.parse_args(argv)

    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype(s) {unknown}: use fp32 and/or bf16")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    import json

    from common import hardware, versions, write_json

    result = measure_peak(dtypes, sizes)
    result["hardware"] = hardware()
    result["versions"] = versions()
    for name in dtypes:
        per_size = ", ".join(f"{n}: {g:.1f}" for n, g in result["by_size"][name].items())
        print(f"{name}: peak {result['peak_gflops'][name]:.1f} GFLOP/s ({per_size}) on {result['threads']} threads")
    if args.out:
        write_json(args.out, result)
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
