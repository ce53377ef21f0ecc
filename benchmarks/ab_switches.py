"""Each speed switch measured on its own: one micro-batch's forward + backward, A and B alternated.

    python benchmarks/ab_switches.py                  # SmolLM2, bf16, a micro-batch of 8 Alpaca examples
    python benchmarks/ab_switches.py --threads 1      # one thread: steadier when other work shares the cores

Both variants of a switch run in the same process on the same batch and the same weights,
alternating A, B, A, B ... ``--repeats`` times, so a change in the machine's load hits both alike;
the ratio of their medians is the figure to read, not the absolute times. Switches:

With ``--threads 1`` the clock is the thread's CPU time, not wall time: on a machine that other
work shares, that is the only figure that stays put (it leaves out how well the work spreads over
several threads).

* ``cast_cache``: autocast casting frozen fp32 weights at every call vs one cached bf16 copy;
* ``lora_dropout``: the workload's 0.1 vs 0 (what LoRA dropout's random masks cost);
* ``micro-batch size``: 8 examples vs the step's 32 in one micro-batch (what larger GEMMs gain
  per token; the ``max_tokens`` switch's upper bound).
* ``compile``: eager vs every decoder layer under ``torch.compile`` (inductor, static shapes:
  the micro-batch keeps its shape), with inductor's ``fallback_random`` so dropout draws its
  masks from the eager generator (inductor's own CPU generator made a step slower than eager);
  the first compiled call includes compilation, so read it with ``--repeats`` >= 3 (medians).
  Not a switch of the tool (yet): this measures whether it would pay.
* ``fast_dropout``: torch's dropout (the tool's default) vs threshold masks on bulk random bits;
* ``cpu_attention``: SDPA vs the two-GEMM attention (the tool's default on a CPU);
* ``fused_lora``: PEFT's LoRA forward vs one shared cast and ``addmm`` (the tool's default on a CPU);
* ``lora one node``: the fused LoRA linear through autograd's ~13 nodes vs as one autograd node
  with the same ops. The tool takes the one-node path only where the dropout is off or comes from
  ``fast_dropout``; under torch's dropout (the default) both sides run autograd's path, so this
  A/B measures nothing there;
* ``attention blocks``: the two-GEMM attention over all keys at once vs in causal blocks of
  ``GEMM_ATTENTION_BLOCK`` queries (the tool's default).

The tool's defaults hold while another switch is measured; ``--batch step`` times the four
micro-batches of one optimizer step (the speed workload's second step) instead of one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_DATA, OUT_DIR, WORKLOAD, write_json  # noqa: E402


def _fwd_bwd(model, batch, amp):
    import torch

    from adaptive_lora.evaluation.metrics import scored_loss_sum

    t0 = _clock()
    total = 0.0
    for mb in batch if isinstance(batch, list) else [batch]:  # a step: its micro-batches, accumulated
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            loss, n = scored_loss_sum(model, mb)
        (loss / n).backward()
        total += float(loss.detach())
    grad_sq = sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    return _clock() - t0, (total, grad_sq)


def _clock() -> float:
    """Wall time; with one thread, that thread's CPU time, which other processes on the cores
    barely change (they take turns on the core but do not make this thread's work longer)."""
    import torch

    return time.thread_time() if torch.get_num_threads() == 1 else time.perf_counter()


def _set_dropout(model, p: float):
    for mod in model.modules():
        if hasattr(mod, "lora_dropout"):
            for d in mod.lora_dropout.values():
                d.p = p


def ab(name, model, batches, amp, a, b, repeats: int) -> dict:
    """Alternate ``a()`` / ``b()`` set-ups; time fwd+bwd of each; tokens/s ratio B over A."""
    import torch

    times, values = {"A": [], "B": []}, {"A": [], "B": []}
    for _ in range(repeats):
        for side, setup in (("A", a), ("B", b)):
            batch = setup()
            torch.manual_seed(0)  # the same dropout draws for A and B where shapes allow
            dt, val = _fwd_bwd(model, batches[batch] if isinstance(batch, str) else batches["8"], amp)
            times[side].append(dt)
            values[side].append(val)
    a_med, b_med = statistics.median(times["A"]), statistics.median(times["B"])
    def tokens(batch):
        return sum(int(mb["attention_mask"].sum()) for mb in (batch if isinstance(batch, list) else [batch]))

    ntok = {side: tokens(batches[(a() if side == "A" else b()) or "8"]) for side in "AB"}
    ratio = (ntok["B"] / b_med) / (ntok["A"] / a_med)
    same = values["A"][0] == values["B"][0]  # (loss, sum of squared gradients), exactly
    print(f"{name}: A {a_med:.2f} s, B {b_med:.2f} s (medians of {repeats}) -> B/A tokens/s {ratio:.3f}; "
          f"loss and gradients {'bit-identical' if same else 'differ'} (A {values['A'][0]}, B {values['B'][0]})",
          flush=True)
    return {"A_s": times["A"], "B_s": times["B"], "tokens": ntok, "speedup_B_over_A": ratio,
            "A_loss_gradsq": values["A"], "B_loss_gradsq": values["B"], "bit_identical": same}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--only", default=None, help="comma-separated switch names")
    parser.add_argument("--batch", choices=("8", "step", "first"), default="8",
                        help="one micro-batch of 8 examples, the four micro-batches of the second step, or of the "
                             "first step (which holds the longest examples: 256, 72, 83 and 120 positions)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from adaptive_lora.training import speedups
    from adaptive_lora.training.speedups import cache_frozen_casts, uncache_frozen_casts

    from profile_step import build, ours_cfg

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ours_cfg(argparse.Namespace(precision="bf16", data=args.data, max_train=WORKLOAD["max_train"], set=[]))
    session, data, model, method, _ = build(cfg)
    model.train()
    o = cfg.optim
    all_batches = data.batches(o.batch_size, o.seed, 0, o.group_by_length)
    step = all_batches[1:1 + o.grad_accum]  # not the longest batch
    batches = {"8": data.collate([data.train[i] for i in step[0]]),
               "32": data.collate([data.train[i] for b in step for i in b]),
               "step": [data.collate([data.train[i] for i in b]) for b in step],
               "first": [data.collate([data.train[i] for i in b]) for b in all_batches[:o.grad_accum]]}
    amp = session.amp
    p = cfg.lora.lora_dropout

    def cache(on):
        def f():
            uncache_frozen_casts(model)
            if on:
                cache_frozen_casts(model, amp)
            return args.batch
        return f

    def tool_switch(name, on):
        """The tool's own switches: install or remove, as fit() and load_base() do on a CPU."""
        def f():
            if name == "fast_dropout":
                (speedups.use_threshold_dropout if on else speedups.use_torch_dropout)(model)
            elif name == "fused_lora":
                (speedups.fuse_lora_linears if on else speedups.unfuse_lora_linears)(model)
            else:
                model.set_attn_implementation(speedups.GEMM_ATTENTION if on else "sdpa")
            return args.batch
        return f

    def setting(name, value):
        """A module-level setting of speedups: GEMM_ATTENTION_BLOCK (the two-GEMM attention in one
        block vs causal blocks), LORA_ONE_NODE."""
        def f():
            setattr(speedups, name, value)
            return args.batch
        return f

    def dropout(q):
        def f():
            _set_dropout(model, q)
            return args.batch
        return f

    layers = next(m for n, m in model.named_modules() if n.endswith("layers") and isinstance(m, torch.nn.ModuleList))

    def compiled(on):
        def f():
            import torch._inductor.config as inductor

            inductor.fallback_random = True
            for layer in layers:
                if on and getattr(layer, "_compiled_call_impl", None) is None:
                    layer.compile(dynamic=False)
                elif not on:
                    layer._compiled_call_impl = None
            return args.batch
        return f

    switches = {
        "cast_cache": (cache(False), cache(True)),
        "compile": (compiled(False), compiled(True)),
        "lora_dropout": (dropout(p), dropout(0.0)),
        "micro-batch size": (lambda: "8", lambda: "32"),
        **{name: (tool_switch(name, False), tool_switch(name, True))
           for name in ("fast_dropout", "cpu_attention", "fused_lora")},
        "attention blocks": (setting("GEMM_ATTENTION_BLOCK", 10 ** 9),
                             setting("GEMM_ATTENTION_BLOCK", speedups.GEMM_ATTENTION_BLOCK)),
        "lora one node": (setting("LORA_ONE_NODE", False), setting("LORA_ONE_NODE", True)),
    }
    only = set(args.only.split(",")) if args.only else set(switches)
    block_default = speedups.GEMM_ATTENTION_BLOCK
    tool = cfg.optim  # the tool's own settings hold while another switch is measured
    defaults = [tool_switch(name, getattr(tool, name)) for name in ("fast_dropout", "cpu_attention", "fused_lora")]
    for f in defaults:
        f()
    _fwd_bwd(model, batches["8"], amp)  # warm-up
    out = {"threads": torch.get_num_threads(), "loadavg_before": os.getloadavg()}
    for name, (a, b) in switches.items():
        if name in only:
            out[name] = ab(name, model, batches, amp, a, b, args.repeats)
            speedups.GEMM_ATTENTION_BLOCK = block_default
            speedups.LORA_ONE_NODE = True
            cache(True)()
            dropout(p)()
            compiled(False)()
            for f in defaults:
                f()
    out["loadavg_after"] = os.getloadavg()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_json(OUT_DIR / "ab_switches.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
