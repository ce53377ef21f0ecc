"""What a micro-batch costs regardless of its tokens: forward + backward of 8 rows cut short.

    python benchmarks/fixed_cost.py                   # 8 rows x 8, 16, 32, 64, 128 positions
    python benchmarks/fixed_cost.py --lengths 8,96    # other lengths

The speed workload's model and adapters (SmolLM2-135M, uniform r16 on 7 projections, bf16
autocast) with the tool's CPU switches on, as ``fit`` installs them. Each length's micro-batch is
the workload's first 8 training examples cut to that many positions (or padded to it, where an
example is shorter), the last 3 positions of each row scored. If time grew in proportion to the tokens, the times would extrapolate to ~0 at 0
positions; the intercept of a line through them is the cost every micro-batch pays whatever its
size: per-op dispatch, autograd's bookkeeping, reading every frozen weight once forward and once
backward, the Python of the model and the adapters. Prints the best of ``--repeats`` per length
(other work on the machine only adds time) and writes ``benchmarks/out/fixed_cost.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_DATA, OUT_DIR, WORKLOAD, hardware, versions, write_json  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="8,16,32,64,128", help="comma-separated positions per row")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from adaptive_lora.evaluation.metrics import scored_loss_sum
    from adaptive_lora.training.fit import install_speedups

    from profile_step import build, ours_cfg

    cfg = ours_cfg(argparse.Namespace(precision="bf16", data=args.data, max_train=WORKLOAD["max_train"], set=[]))
    session, data, model, _method, _ = build(cfg)
    model.train()
    install_speedups(model, cfg.optim, session)  # what fit() installs
    rows = [data.train[i] for i in range(8)]

    def batch(n: int) -> dict:
        cut = []
        for e in rows:
            ids = e["input_ids"][:n]  # an example shorter than n keeps its length (and is padded)
            cut.append({"input_ids": ids, "labels": [-100] * (len(ids) - 3) + ids[-3:]})
        return data.collate(cut)

    def fwd_bwd(b: dict) -> float:
        t0 = time.perf_counter()
        with session.autocast():
            loss, n = scored_loss_sum(model, b)
        (loss / n).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    lengths = [int(x) for x in args.lengths.split(",")]
    fwd_bwd(batch(lengths[0]))  # warm-up
    best = {}
    for n in lengths:
        b = batch(n)
        best[n] = min(fwd_bwd(b) for _ in range(args.repeats))
        print(f"8 rows x {n:4d} positions: {best[n] * 1000:7.1f} ms", flush=True)
    if len(lengths) >= 2:  # least-squares line through (tokens, time): its intercept is the fixed cost
        xs, ys = [8 * n for n in lengths], [best[n] for n in lengths]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        intercept = my - slope * mx
        print(f"line through them: {intercept * 1000:.1f} ms + {slope * 1e6:.1f} us per token "
              f"(attention makes the true curve bend up with length)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_json(OUT_DIR / "fixed_cost.json", {"best_s": best, "repeats": args.repeats, "attention":
                                             model.config._attn_implementation, "hardware": hardware(),
                                             "versions": versions(), "torch_threads": torch.get_num_threads(),
                                             "loadavg": os.getloadavg()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
