"""The sketched gradient probe against the exact one on SmolLM2: same ranks? what time, memory?

    python benchmarks/probe_scaling.py                          # exact, sketch with 0, 1, 2 power iterations
    python benchmarks/probe_scaling.py --methods exact sketch:1  # a subset
    python benchmarks/probe_scaling.py --set probe_batches=2     # any config key, e.g. a quick smoke run

The probe sees what ``configs/default.yaml`` gives every run (its ``defaults``: the embedded data,
split and length; the config defaults for everything else, so ``probe_batches`` 8 of
``batch_size`` 8 and ``r_max`` 32), with ``strategy: gradient_sensitivity``. Each method runs in
a fresh subprocess, one after the other (one model in memory at a time; no process inherits
another's allocator or peak), which loads the model and data as ``adaptive-lora train`` does and
runs the gradient probe, then plans the budgets of uniform r=8 and r=16.

Printed (and written to ``benchmarks/out/probe_scaling.json`` / ``.md``): for each method and
budget, the modules whose rank equals the exact probe's, the largest and summed |rank
difference|, the trainable parameters against the budget; the largest relative error of the
singular values sigma_1 and sigma_{r_max} over the modules; the probe's wall time, its peak
memory (the accelerator's on a GPU; on a CPU the process's host RSS high-water mark, model and
data included) and the gradient buffers it holds across the batches.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
BUDGETS = ("uniform:8", "uniform:16")
DEFAULT_METHODS = ("exact", "sketch:0", "sketch:1", "sketch:2")


def run_config(config: Path, sets: list[str]) -> dict:
    """The flat training config of one run of ``config`` (its ``defaults``) with the gradient probe."""
    import yaml

    flat = dict(yaml.safe_load(config.read_text()).get("defaults") or {})
    flat["strategy"] = "gradient_sensitivity"
    for s in sets:
        key, value = s.split("=", 1)
        flat[key] = yaml.safe_load(value)
    return flat


def probe_once(flat: dict, method: str) -> dict:
    """In this process: load as ``train`` does, run the gradient probe with ``method``, plan."""
    from adaptive_lora.strategies import make_plan
    from adaptive_lora.training import TrainConfig
    from adaptive_lora.training.prepare import prepare_data
    from adaptive_lora.training.probe import ProbeContext, gradient_spectra
    from adaptive_lora.training.run import load_base
    from adaptive_lora.training.session import start_session

    name, _, iters = method.partition(":")
    cfg = TrainConfig.from_dict({**flat, "probe_method": name, **({"probe_power_iters": int(iters)} if iters else {})})
    session = start_session(cfg.optim.precision, cfg.optim.batch_size)
    data = prepare_data(cfg.input)
    model, layout = load_base(cfg, session)
    sel = layout.select(cfg.plan.targets)
    extra, info = gradient_spectra(ProbeContext(cfg, session, data, model, layout, sel, None))
    plans = {}
    for like in BUDGETS:
        plan = make_plan(layout, "gradient_sensitivity", cfg.strategy_params(**extra), targets=cfg.plan.targets,
                         budget_like=like)
        plans[like] = {"ranks": plan.ranks, "trainable": plan.trainable_params, "budget": plan.budget_target}
    return {"method": method, "config": flat, "precision": session.precision, "device": str(session.device),
            "spectra": extra["spectra"], "info": info, "plans": plans}


def compare(exact: dict, other: dict) -> dict:
    """Rank agreement per budget and singular-value errors of ``other`` against ``exact``."""
    out = {}
    for like, plan in other["plans"].items():
        ref = exact["plans"][like]["ranks"]
        diff = [abs(plan["ranks"][n] - ref[n]) for n in ref]
        out[like] = {"equal": sum(d == 0 for d in diff), "modules": len(diff), "max_diff": max(diff),
                     "sum_diff": sum(diff), "trainable": plan["trainable"], "budget": plan["budget"]}
    first, last = [], []
    for n, ref in exact["spectra"].items():
        s = other["spectra"][n]
        first.append(abs(s[0] ** 0.5 - ref[0] ** 0.5) / ref[0] ** 0.5)
        last.append(abs(s[-1] ** 0.5 - ref[-1] ** 0.5) / ref[-1] ** 0.5)
    out["sigma_1_max_rel_err"], out["sigma_last_max_rel_err"] = max(first), max(last)
    return out


def markdown(results: list[dict], comparisons: dict) -> str:
    mem_key = next(k for k in ("peak_accelerator_mb", "peak_host_rss_mb") if k in results[0]["info"])
    lines = [f"| method | passes | time (s) | {mem_key} | gradient buffers (MB) | max rel. err sigma_1 / "
             f"sigma_r_max | " + " | ".join(f"{b}: equal ranks, max / sum abs diff, trainable of budget"
                                           for b in BUDGETS) + " |",
             "|---" * (6 + len(BUDGETS)) + "|"]
    for r in results:
        info, c = r["info"], comparisons.get(r["method"])
        err = f"{c['sigma_1_max_rel_err']:.2e} / {c['sigma_last_max_rel_err']:.2e}" if c else "(reference)"
        cells = [f"{c[b]['equal']}/{c[b]['modules']}, {c[b]['max_diff']} / {c[b]['sum_diff']}, "
                 f"{c[b]['trainable']:,} of {c[b]['budget']:,}" if c else
                 f"{r['plans'][b]['trainable']:,} of {r['plans'][b]['budget']:,}" for b in BUDGETS]
        lines.append(f"| {r['method']} | {info.get('passes', 1)} | {info['time_s']:.1f} | {info[mem_key]:.0f} | "
                     f"{info['gradient_buffers_mb']:.1f} | {err} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "default.yaml")
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                    help="exact, or sketch:<power iterations>; the first must be exact (the reference)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="key=value over the config's defaults")
    ap.add_argument("--reuse-exact", type=Path, help="a probe_scaling.json of an earlier run with the same config: "
                    "take its exact result instead of probing again (the slow part on a CPU)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one method, JSON on stdout
    args = ap.parse_args(argv)
    flat = run_config(args.config, args.sets)
    if args.one:
        print("RESULT " + json.dumps(probe_once(flat, args.one)))
        return 0
    if args.methods[0] != "exact":
        ap.error("the first method must be exact: the others are compared with it")
    results = []
    if args.reuse_exact:
        results.append(json.loads(args.reuse_exact.read_text())["results"][0])
        assert results[0]["method"] == "exact" and results[0]["config"] == flat, "not the same config"
    for method in args.methods[len(results):]:
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--config", str(args.config), "--one", method,
               *[x for s in args.sets for x in ("--set", s)]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-3000:])
            return proc.returncode
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT "):]))
        print(f"{method}: probe {results[-1]['info']['time_s']:.1f} s (process {time.perf_counter() - t0:.0f} s)",
              flush=True)
    comparisons = {r["method"]: compare(results[0], r) for r in results[1:]}
    table = markdown(results, comparisons)
    head = (f"device {results[0]['device']}, precision {results[0]['precision']}, "
            f"{results[0]['info']['batches']} probe batches of {results[0]['info']['batch_size']}, "
            f"{results[0]['info']['scored_tokens']} scored tokens")
    print(head + "\n\n" + table)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "probe_scaling.json").write_text(json.dumps({"results": results, "comparisons": comparisons}))
    (OUT_DIR / "probe_scaling.md").write_text(head + "\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
