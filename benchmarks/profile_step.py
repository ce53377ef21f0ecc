"""Where the time of one optimizer step goes: a torch.profiler breakdown of `adaptive-lora train`.

    python benchmarks/profile_step.py                      # the speed workload, bf16, 2 steps profiled
    python benchmarks/profile_step.py --quick              # 64 records, 1 step profiled (development)
    python benchmarks/profile_step.py --set lora_dropout=0 # any config key, as with `train --set`

It builds the run exactly as ``adaptive-lora train`` does (same data, plan, adapters, optimizer,
monitor), runs ``--warmup`` optimizer steps unprofiled (kernel selection, Adam's lazy state), then
profiles ``--steps`` steps and sorts every profiled op's *self* time into the categories below.
On a CPU the profiler times each op on the calling thread, which waits for the op's intra-op
threads, so self times add up to wall time and the shares are shares of the step.

Categories (``fwd`` = forward, ``bwd`` = the autograd engine's backward):

* base GEMM: matmuls with the frozen weights (q/k/v/o/gate/up/down); in bwd only the input
  gradient (frozen weights have no weight gradient);
* LoRA GEMM: matmuls with a rank-sized dimension (A and B, forward, input and weight gradients);
* head GEMM: the output projection (a dimension of the vocabulary size), on the kept positions;
* attention: scaled-dot-product attention and its backward; with ``cpu_attention``, the batched
  GEMMs (bmm: only attention multiplies batches of matrices) and the softmax;
* loss: log-softmax / NLL / the gather of scored positions;
* dropout: LoRA dropout masks and their application;
* casts: dtype conversions (autocast casting fp32 weights and activations to bf16 per op);
* norms/activations: RMSNorm, SiLU, rotary embedding, residual adds and other element-wise ops;
* views/dispatch: shape-only ops (view, transpose, t, expand ...) and composite ops' own time;
* optimizer: AdamW's step and zero_grad; monitoring: the per-step gradient-norm measurement;
* collate: padding the micro-batch into tensors;
* Python (outside ops): step wall time not inside any profiled op (the loop, PEFT's module code,
  hooks).

Besides the table it measures the GEMMs the profile saw, one shape at a time, standalone, on all
of torch's threads (``matmul_peak.shape_matched_peak``): the FLOP-weighted "roofline" of exactly
these shapes, which is what the step's GEMMs could reach at best, and how far each GEMM category
is from it. Results: ``benchmarks/out/profile_step.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_DATA, MODEL_ALIAS, OUT_DIR, WORKLOAD, hardware, versions, write_json  # noqa: E402
from matmul_peak import shape_matched_peak  # noqa: E402

VIEW_OPS = {"aten::view", "aten::t", "aten::transpose", "aten::expand", "aten::reshape", "aten::as_strided",
            "aten::unsqueeze", "aten::squeeze", "aten::slice", "aten::select", "aten::permute", "aten::detach",
            "aten::_unsafe_view", "aten::alias", "aten::empty", "aten::empty_like", "aten::empty_strided",
            "aten::linear", "aten::matmul", "aten::contiguous", "aten::lift_fresh", "aten::resolve_conj",
            "aten::resolve_neg", "aten::split", "aten::chunk", "aten::narrow", "aten::unbind", "aten::result_type",
            "detach", "aten::_reshape_alias", "aten::flatten", "aten::numpy_T", "aten::split_with_sizes",
            "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense", "aten::dropout", "aten::scalar_tensor"}
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
LOSS_OPS = ("log_softmax", "nll_loss", "cross_entropy", "index", "nonzero", "gather", "index_add", "logsumexp")
CATEGORIES = ("base GEMM", "LoRA GEMM", "head GEMM", "attention", "loss", "dropout", "casts", "norms/activations",
              "views/dispatch")
OTHER = ("optimizer", "monitoring", "collate", "Python (outside ops)")


def ours_cfg(args):
    from adaptive_lora.overrides import apply_overrides, parse_overrides
    from adaptive_lora.training.config import TrainConfig

    from speed import ours_config  # the benchmark's own workload, one definition

    d = ours_config(args.precision, Path(args.data).resolve(), args.max_train, OUT_DIR / "profile-run")
    d["progress"] = False
    d["forgetting"] = False
    d = apply_overrides(d, parse_overrides(args.set))
    return TrainConfig.from_dict(d)


def build(cfg):
    """Session, data, model and method exactly as ``training.run.train`` builds them."""
    from accelerate.utils import set_seed

    from adaptive_lora.training.fit import planned_steps
    from adaptive_lora.training.prepare import prepare_data
    from adaptive_lora.training.run import build_method, load_base
    from adaptive_lora.training.session import start_session

    session = start_session(cfg.optim.precision, cfg.optim.batch_size)
    set_seed(cfg.optim.seed)
    data = prepare_data(cfg.input)
    model, layout = load_base(cfg, session)
    method, _ = build_method(cfg, session, data, model, layout)
    set_seed(cfg.optim.seed)
    model = method.attach(model, layout.select(cfg.plan.targets), cfg, planned_steps(cfg.optim, len(data.train)))
    return session, data, model.to(session.device), method, {m.name: m.layer for m in layout.modules}


def label(obj, attr: str, name: str):
    """Wrap ``obj.attr`` in a profiler range ``name`` (only in this script; nothing in the tool)."""
    import torch

    fn = getattr(obj, attr)

    def wrapped(*a, **kw):
        with torch.profiler.record_function(name):
            return fn(*a, **kw)

    setattr(obj, attr, wrapped)


def profile(cfg, session, data, model, method, layers, warmup: int, steps: int):
    import torch

    from adaptive_lora.training import fit as fit_mod
    from adaptive_lora.training.monitor import GradMonitor

    label(GradMonitor, "measure", "#monitoring")
    label(data, "collate", "#collate")
    sched = torch.profiler.schedule(wait=0, warmup=warmup, active=steps, repeat=1)
    rows = []
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], schedule=sched,
                                  record_shapes=True)

    def log(row):
        if row.get("type") == "train":
            rows.append(row)
            prof.step()

    with prof:
        fit_mod.fit(cfg, session, data, model, method, warmup + steps, log, None, layers, desc="profile")
    return prof, rows[warmup:]


def _ancestors(ev):
    p = ev.cpu_parent
    while p is not None:
        yield p.name
        p = p.cpu_parent


def _gemm_dims(ev):
    shapes = [s for s in (ev.input_shapes or []) if s]
    if ev.name == "aten::mm" and len(shapes) >= 2:
        (m, k), (_, n) = shapes[0], shapes[1]
        return 1, m, k, n
    if ev.name == "aten::addmm" and len(shapes) >= 3:
        (m, k), (_, n) = shapes[1], shapes[2]
        return 1, m, k, n
    if ev.name in ("aten::bmm", "aten::baddbmm") and len(shapes) >= 2:
        a, b = shapes[-2], shapes[-1]
        return a[0], a[1], a[2], b[2]
    return None


def classify(ev, rank_dims: set, vocab: int) -> tuple[str, str | None]:
    """(category, phase) of one event; phase None for events outside forward/backward."""
    anc = list(_ancestors(ev))
    if any(a.startswith("Optimizer.") for a in anc) or ev.name.startswith("Optimizer."):
        return "optimizer", None
    if ev.name == "#monitoring" or "#monitoring" in anc:
        return "monitoring", None
    if ev.name == "#collate" or "#collate" in anc:
        return "collate", None
    if ev.name.startswith("ProfilerStep"):
        return "Python (outside ops)", None
    phase = "bwd" if any(a.startswith("autograd::engine::evaluate_function") for a in anc) \
        or ev.name.startswith("autograd::engine") else "fwd"
    n = ev.name
    if n.startswith("autograd::engine") or n.startswith("#") or not n.startswith("aten::"):
        return "views/dispatch", phase
    if n in GEMM_OPS:
        dims = _gemm_dims(ev)
        if dims and dims[0] > 1:  # a batch of matrices: the two-GEMM attention's scores and output
            return "attention", phase
        if dims and vocab in dims[1:]:
            return "head GEMM", phase
        if dims and rank_dims & set(dims[1:]):
            return "LoRA GEMM", phase
        return "base GEMM", phase
    if "attention" in n or "flash" in n or n in ("aten::_softmax", "aten::_softmax_backward_data"):
        return "attention", phase
    if any(k in n for k in LOSS_OPS):
        return "loss", phase
    if "bernoulli" in n or "dropout" in n:
        return "dropout", phase
    if n in ("aten::to", "aten::_to_copy", "aten::copy_", "aten::_autocast_to_reduced_precision", "aten::type_as"):
        return "casts", phase
    if n in VIEW_OPS:
        return "views/dispatch", phase
    return "norms/activations", phase


def breakdown(prof, rows, rank_dims: set, vocab: int, dtype) -> dict:
    """Self time per (category, phase), GEMM FLOPs and shapes, over the profiled steps."""
    events = [e for e in prof.events() if e.device_type.name == "CPU"]
    wall_us = sum(e.cpu_time_total for e in events if e.name.startswith("ProfilerStep"))
    times: dict = defaultdict(float)
    gemm_flops: dict = defaultdict(float)
    shapes: dict = defaultdict(int)
    for ev in events:
        cat, phase = classify(ev, rank_dims, vocab)
        key = f"{cat} {phase}" if phase else cat
        times[key] += ev.self_cpu_time_total
        if cat.endswith("GEMM"):
            dims = _gemm_dims(ev)
            if dims:
                b, m, k, n = dims
                gemm_flops[key] += 2.0 * b * m * k * n
                shapes[(key, b, m, k, n)] += 1
    return {"wall_us": wall_us, "self_us": dict(times), "gemm_flops": dict(gemm_flops), "shapes": shapes}


def roofline(shapes: dict, dtype_name: str) -> dict:
    """The standalone GFLOP/s of each GEMM shape the step ran; per category, the FLOP-weighted peak."""
    per_cat: dict = defaultdict(list)
    for (key, b, m, k, n), count in shapes.items():
        per_cat[key].append((b * m, k, n, count))  # a bmm of b slices ~ b times the rows (attention only)
    out = {}
    for key, gemms in per_cat.items():
        out[key] = shape_matched_peak(gemms, dtype_name)
    everything = [g for gs in per_cat.values() for g in gs]
    out["all"] = shape_matched_peak(everything, dtype_name)
    return out


def table(b: dict, peaks: dict, rows: list, cfg) -> str:
    wall = b["wall_us"]
    steps = len(rows)
    tokens = sum(r["tokens"] for r in rows)
    inside = sum(b["self_us"].values()) - b["self_us"].get("Python (outside ops)", 0.0)
    self_us = dict(b["self_us"])
    self_us["Python (outside ops)"] = max(0.0, wall - inside)
    lines = [
        f"Profiled {steps} optimizer step(s) of {cfg.optim.batch_size} x {cfg.optim.grad_accum} examples, "
        f"{tokens} tokens, {wall / 1e6:.2f} s wall ({tokens / (wall / 1e6):.0f} tokens/s under the profiler), "
        f"precision {cfg.optim.precision}, lora_dropout {cfg.lora.lora_dropout}.",
        "",
        "| category | ms/step | % of step | GEMM GFLOP/s achieved | shape-matched peak GFLOP/s | % of that peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    keys = [f"{c} {p}" for p in ("fwd", "bwd") for c in CATEGORIES] + list(OTHER)
    for key in keys:
        us = self_us.get(key, 0.0)
        if us <= 0:
            continue
        flops = b["gemm_flops"].get(key)
        ach = f"{flops / (us / 1e6) / 1e9:.0f}" if flops else ""
        pk = peaks.get(key, {}).get("gflops") if flops else None
        pct = f"{100 * flops / (us / 1e6) / 1e9 / pk:.0f}" if pk else ""
        lines.append(f"| {key} | {us / 1e3 / steps:.0f} | {100 * us / wall:.1f} | {ach} | "
                     f"{f'{pk:.0f}' if pk else ''} | {pct} |")
    gemm_us = sum(v for k, v in self_us.items() if "GEMM" in k)
    gemm_fl = sum(b["gemm_flops"].values())
    lines += ["", f"All GEMMs: {100 * gemm_us / wall:.1f} % of the step, {gemm_fl / (gemm_us / 1e6) / 1e9:.0f} "
                  f"GFLOP/s while in a GEMM; their shape-matched peak {peaks['all']['gflops']:.0f} GFLOP/s. "
                  f"Executed GEMM FLOPs over the whole step: {gemm_fl / (wall / 1e6) / 1e9:.0f} GFLOP/s = "
                  f"{100 * gemm_fl / (wall / 1e6) / 1e9 / peaks['all']['gflops']:.0f} % of the shape-matched peak."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--max-train", type=int, default=WORKLOAD["max_train"])
    parser.add_argument("--warmup", type=int, default=1, help="unprofiled optimizer steps first")
    parser.add_argument("--steps", type=int, default=2, help="profiled optimizer steps")
    parser.add_argument("--quick", action="store_true", help="64 records, 1 warm-up and 1 profiled step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out-dir", default=str(OUT_DIR))
    args = parser.parse_args(argv)
    if args.quick:
        args.max_train, args.warmup, args.steps = 64, 1, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    cfg = ours_cfg(args)
    session, data, model, method, layers = build(cfg)
    vocab = model.get_output_embeddings().weight.shape[0]
    rank_dims = {r for r in method.module_ranks().values()} if hasattr(method, "module_ranks") else set()
    t0 = time.perf_counter()
    prof, rows = profile(cfg, session, data, model, method, layers, args.warmup, args.steps)
    print(f"trained and profiled in {time.perf_counter() - t0:.0f} s; measuring the GEMM shapes standalone")
    b = breakdown(prof, rows, rank_dims, vocab, session.amp)
    peaks = roofline(b["shapes"], args.precision)
    text = "# Profile of one optimizer step\n\n" + table(b, peaks, rows, cfg) + "\n"
    print(text)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile_step.md").write_text(text, encoding="utf-8")
    write_json(out / "profile_step.json", {
        "config": cfg.to_dict(), "wall_us": b["wall_us"], "self_us": b["self_us"], "gemm_flops": b["gemm_flops"],
        "peaks": peaks, "steps": rows, "hardware": hardware(), "versions": versions(),
        "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg(), "model": MODEL_ALIAS})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
