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


# Standalone GFLOP/s of each GEMM shape measured so far in this process, by (m, k, n, dtype).
_SHAPE_CACHE: dict = {}


def gemm_gflops(m: int, k: int, n: int, dtype_name: str, min_seconds: float = 0.05) -> float:
    """Best GFLOP/s of one (m x k) @ (k x n) matmul on all of torch's threads, after warm-up."""
    import torch

    key = (m, k, n, dtype_name)
    if key not in _SHAPE_CACHE:
        dtype = getattr(torch, DTYPES[dtype_name])
        a, b = torch.rand(m, k, dtype=dtype), torch.rand(k, n, dtype=dtype)
        c = torch.empty(m, n, dtype=dtype)
        for _ in range(2):
            torch.matmul(a, b, out=c)
        best, repeats, start = float("inf"), 0, time.perf_counter()
        while repeats < 3 or time.perf_counter() - start < min_seconds:
            t0 = time.perf_counter()
            torch.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
            repeats += 1
        _SHAPE_CACHE[key] = 2.0 * m * k * n / best / 1e9
    return _SHAPE_CACHE[key]


def shape_matched_peak(gemms, dtype_name: str) -> dict:
    """The roofline of a given mix of GEMMs: ``gemms`` is a list of ``(m, k, n, count)``; each
    distinct shape is timed standalone (:func:`gemm_gflops`) and the result is the FLOP-weighted
    harmonic mean, i.e. total FLOPs / the time the mix would take if every GEMM ran as fast as
    it does alone. That is the best a training step with exactly these matmuls can reach, which
    a square 2048^3 peak overstates for the small, skinny shapes of a 135M model."""
    flops = sum(2.0 * m * k * n * c for m, k, n, c in gemms)
    seconds = sum(2.0 * m * k * n * c / (gemm_gflops(m, k, n, dtype_name) * 1e9) for m, k, n, c in gemms)
    return {"gflops": flops / seconds / 1e9 if seconds else 0.0, "flops": flops, "shapes": len({g[:3] for g in gemms})}


def lora_step_gemms(linears: list, r: int, targets: list, micro_tokens: list[int], head_tokens: list[int]) -> list:
    """The GEMMs of LoRA training steps, as ``(m, k, n, count)``: for each micro-batch of
    ``micro_tokens[i]`` positions and each linear ``(name, in, out)``: the forward ``x W^T`` and the
    input gradient of the backward (frozen weights: no weight gradient); for adapted linears the
    four LoRA GEMMs of the forward and backward's input path and the two weight gradients; the
    output head (``name`` lm_head) on ``head_tokens[i]`` kept positions. Attention scores are left
    out, as in :func:`lora_train_flops`."""
    out = []
    for m, mh in zip(micro_tokens, head_tokens):
        for name, k, n in linears:
            rows = mh if name.endswith("lm_head") else m
            out += [(rows, k, n, 1), (rows, n, k, 1)]
            if name.rsplit(".", 1)[-1] in targets:
                out += [(m, k, r, 1), (m, r, n, 1), (m, n, r, 1), (m, r, k, 1), (r, m, k, 1), (n, m, r, 1)]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="square matrix sizes")
    parser.add_argument("--shapes", help="JSON list of [m, k, n, count] GEMMs: also their shape-matched peak "
                                         "(in each of --shape-dtypes)")
    parser.add_argument("--shape-dtypes", default="bf16", help="dtypes of the shape-matched peak (default bf16)")
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
    if args.shapes:
        with open(args.shapes, encoding="utf-8") as f:
            gemms = [tuple(g) for g in json.load(f)]
        shape_dtypes = [d.strip() for d in args.shape_dtypes.split(",") if d.strip() in DTYPES]
        result["shape_matched"] = {d: shape_matched_peak(gemms, d) for d in shape_dtypes}
        for d in shape_dtypes:
            print(f"{d}: shape-matched peak {result['shape_matched'][d]['gflops']:.1f} GFLOP/s over "
                  f"{result['shape_matched'][d]['shapes']} GEMM shapes")
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
