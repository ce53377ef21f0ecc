"""Speed benchmark: `adaptive-lora train` against a plain PEFT + Trainer script, in one run.

    python benchmarks/speed.py                      # the benchmark: plain fp32, plain bf16, ours bf16 (200 records)
    python benchmarks/speed.py --quick              # a development run: 48 records, same three runs
    python benchmarks/speed.py --precisions fp32,bf16   # both precisions on both sides (four runs)
    python benchmarks/speed.py --skip-ours          # only the matmul peaks and the plain script

Steps, each training run in a fresh subprocess so no run warms another's caches or allocator:

1. the machine's matmul peak per dtype (``matmul_peak.py``): square matmuls, and the
   *shape-matched* peak of the GEMMs our tool's training runs on this workload (every micro-batch's
   forward and input-gradient GEMMs of every linear, the LoRA GEMMs, the output head on the scored
   positions; each shape timed alone, FLOP-weighted);
2. the plain Trainer script (``trainer_baseline.py``) in fp32 (the eval-loss reference) and bf16;
3. our tool, ``adaptive-lora train --config <YAML written to benchmarks/out/>``, in bf16;
   skipped with a message when the command is missing or fails.

Then a Markdown table (tokens, wall time, tokens/s, achieved GFLOP/s, % of the square matmul peak
and of the shape-matched roofline, executed GFLOP/s, eval loss) and the targets: ours bf16 >= 2.5x
plain bf16, our eval loss within 1 % of plain fp32's, our achieved GFLOP/s >= half the
shape-matched bf16 roofline. Results: ``benchmarks/out/speed.json`` and ``benchmarks/out/speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_DATA,
    MODEL_ALIAS,
    OUT_DIR,
    REPO_ROOT,
    WORKLOAD,
    count_matmul_params,
    hardware,
    model_folder,
    versions,
    write_json,
)
from matmul_peak import lora_train_flops  # noqa: E402

TARGET_SPEEDUP = 2.5
TARGET_EVAL_DIFF_PCT = 1.0
TARGET_ROOFLINE_PCT = 50.0
# Average cores used by other processes during a run above which its numbers are flagged.
BUSY_THRESHOLD = 0.25
PRECISIONS = ("fp32", "bf16")
# The default runs: ours in bf16 against the plain script in bf16 (speed) and fp32 (eval-loss reference).
DEFAULT_RUNS = (("plain", "fp32"), ("plain", "bf16"), ("ours", "bf16"))
QUICK_MAX_TRAIN = 48


# ---------------------------------------------------------------------------------------------
# Our tool. Everything that depends on its command line and config format is in this section.
# ---------------------------------------------------------------------------------------------


def ours_config(precision: str, data: Path, max_train: int, output_dir: Path) -> dict:
    """The training config for ``adaptive-lora train``: the same workload as the plain script."""
    return {
        "model": MODEL_ALIAS,
        "data": str(data),
        "eval_size": WORKLOAD["eval_size"],
        "max_train": max_train,
        "max_length": WORKLOAD["max_length"],
        "strategy": "uniform",
        "r": WORKLOAD["r"],
        "targets": list(WORKLOAD["targets"]),
        "lora_alpha": WORKLOAD["lora_alpha"],
        "lora_dropout": WORKLOAD["lora_dropout"],
        "lr": WORKLOAD["lr"],
        "epochs": WORKLOAD["epochs"],
        "batch_size": WORKLOAD["batch_size"],
        "grad_accum": WORKLOAD["grad_accum"],
        "lr_schedule": WORKLOAD["lr_schedule"],
        "precision": precision,
        "seed": WORKLOAD["seed"],
        "eval_every": 0,  # no evaluation inside the timed training
        "output_dir": str(output_dir),
    }


def ours_command(config_path: Path, overrides: list[str]) -> list[str] | None:
    """The command line, or None when ``adaptive-lora`` is not installed."""
    # Prefer the script next to this interpreter (the project's virtual environment).
    exe = Path(sys.executable).with_name("adaptive-lora")
    program = str(exe) if exe.is_file() else shutil.which("adaptive-lora")
    if program is None:
        return None
    cmd = [program, "train", "--config", str(config_path)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def read_ours_summary(output_dir: Path) -> dict:
    """Map ``<output_dir>/summary.json`` onto the fields of a result row."""
    summary = json.loads((output_dir / "summary.json").read_text(encoding="utf-8"))
    status = summary.get("status", "completed")
    if status != "completed":
        raise RuntimeError(f"run ended with status '{status}': {summary.get('error')}")
    return {
        "tokens": summary["train_tokens"],
        "wall_s": summary["train_time_s"],
        "tokens_per_s": summary["tokens_per_s"],
        "eval_loss": summary.get("eval_loss"),
        "optimizer_steps": summary.get("optimizer_steps"),
        "padded_positions": summary.get("padded_positions"),  # not in the summary yet: None
    }


def run_ours(precision: str, args, out_dir: Path) -> dict | None:
    import yaml

    run_dir = out_dir / f"ours-{precision}"
    # A leftover run folder could make the tool resume or refuse; each benchmark starts clean.
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config_path = out_dir / f"ours-{precision}.yaml"
    config = ours_config(precision, Path(args.data).resolve(), args.max_train, run_dir)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    cmd = ours_command(config_path, args.ours_set)
    if cmd is None:
        print(f"  skipped ours {precision}: the `adaptive-lora` command is not installed")
        return None
    log = out_dir / f"ours-{precision}.log"
    rc, stats = _run_logged(cmd, log, args.timeout)
    if rc != 0:
        print(f"  skipped ours {precision}: `adaptive-lora train` exited with {rc}; see {_rel(log)}")
        print(f"    last line: {_last_line(log)}")
        return None
    try:
        row = read_ours_summary(run_dir)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"  skipped ours {precision}: no usable {_rel(run_dir / 'summary.json')} ({exc})")
        return None
    return {"side": "ours", "precision": precision, **row, **stats}


def ours_microbatches(args, out_dir: Path) -> list[tuple[int, int]]:
    """(padded positions, output-head positions) of every micro-batch our tool trains on: its own
    data pipeline and batching (length grouping, ``max_tokens`` when set through --ours-set)."""
    from adaptive_lora.overrides import apply_overrides, parse_overrides
    from adaptive_lora.training.config import TrainConfig
    from adaptive_lora.training.prepare import prepare_data
    from adaptive_lora.training.speedups import token_budget_microbatches

    flat = ours_config("bf16", Path(args.data).resolve(), args.max_train, out_dir / "unused")
    cfg = TrainConfig.from_dict(apply_overrides(flat, parse_overrides(args.ours_set)))
    data, o = prepare_data(cfg.input), cfg.optim
    out = []
    for epoch in range(o.epochs):
        batches = data.batches(o.batch_size, o.seed, epoch, o.group_by_length)
        for s0 in range(0, len(batches), o.grad_accum):
            for mb in token_budget_microbatches(batches[s0:s0 + o.grad_accum], data.lengths, o.max_tokens):
                # the output head runs on the scored positions only (scored_loss_sum)
                out.append((len(mb) * max(data.lengths[i] for i in mb), sum(data.scored[i] for i in mb)))
    return out


def gemm_mix(folder: str, micro: list[tuple[int, int]], round_to: int = 32) -> tuple[list, float]:
    """The GEMMs of our training run as ``[m, k, n, count]`` (m rounded up to ``round_to``, so
    that micro-batches of nearly equal size share one timed shape), and their exact FLOPs."""
    import collections

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from matmul_peak import lora_step_gemms

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    linears = [(n, m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    args = (linears, WORKLOAD["r"], WORKLOAD["targets"])
    exact = lora_step_gemms(*args, [m for m, _ in micro], [h for _, h in micro])
    up = [(-(-m // round_to) * round_to, -(-h // round_to) * round_to) for m, h in micro]
    counts = collections.Counter((m, k, n) for m, k, n, _ in lora_step_gemms(*args, *map(list, zip(*up))))
    return [[m, k, n, c] for (m, k, n), c in sorted(counts.items())], sum(2.0 * m * k * n for m, k, n, _ in exact)


# ---------------------------------------------------------------------------------------------
# Plain script and matmul peak
# ---------------------------------------------------------------------------------------------


def run_plain(precision: str, args, out_dir: Path) -> dict | None:
    result_path = out_dir / f"plain-{precision}.json"
    result_path.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(BENCH_DIR / "trainer_baseline.py"),
        "--precision", precision,
        "--max-train", str(args.max_train),
        "--data", str(args.data),
        "--out", str(result_path),
        "--output-dir", str(out_dir / f"trainer-{precision}"),
    ]
    log = out_dir / f"plain-{precision}.log"
    rc, stats = _run_logged(cmd, log, args.timeout)
    if rc != 0 or not result_path.is_file():
        print(f"  plain {precision} failed (exit {rc}); see {_rel(log)}")
        print(f"    last line: {_last_line(log)}")
        return None
    return {**json.loads(result_path.read_text(encoding="utf-8")), **stats}


def run_peak(out_dir: Path, timeout: float | None, shapes: list | None = None, shape_dtypes=("bf16",)) -> dict:
    path = out_dir / "matmul_peak.json"
    cmd = [sys.executable, str(BENCH_DIR / "matmul_peak.py"), "--dtypes", ",".join(PRECISIONS), "--out", str(path)]
    if shapes:
        write_json(out_dir / "gemm_shapes.json", shapes)
        cmd += ["--shapes", str(out_dir / "gemm_shapes.json"), "--shape-dtypes", ",".join(shape_dtypes)]
    log = out_dir / "matmul_peak.log"
    rc, stats = _run_logged(cmd, log, timeout)
    if rc != 0:
        raise SystemExit(f"matmul peak failed (exit {rc}); see {_rel(log)}")
    return {**json.loads(path.read_text(encoding="utf-8")), **stats}


def _run_logged(cmd: list[str], log: Path, timeout: float | None) -> tuple[int, dict]:
    """Run ``cmd`` from the repo root with its output in ``log``.

    Returns the exit code and how busy the machine was meanwhile: ``other_load`` is the CPU time
    that processes other than ``cmd`` used (plus time the hypervisor stole), in cores, averaged
    over the run. Training on 2 cores slows down far more than in proportion when anything else
    runs (the OpenMP threads wait for each other), so a run with other load is not a valid number.
    """
    env = dict(os.environ)
    # Never reach for a model hub: the model is a local folder and the data a local file.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    shown = " ".join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))
    print(f"  running {shown}  (log: {_rel(log)})", flush=True)
    busy0, child0, t0 = _machine_busy_s(), _children_cpu_s(), time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            f.write(f"\n[speed.py] killed after {timeout} s\n")
            rc = 124
        except OSError as exc:
            f.write(f"\n[speed.py] could not start: {exc}\n")
            rc = 127
    wall = time.perf_counter() - t0
    stats = {"run_s": wall}
    if busy0 is not None:
        other = (_machine_busy_s() - busy0) - (_children_cpu_s() - child0)
        stats["other_load"] = max(0.0, other / wall)
    print(f"    done in {wall:.0f} s (exit {rc})", flush=True)
    return rc, stats


def _machine_busy_s() -> float | None:
    """CPU seconds all processes of the machine have used since boot, steal included (Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    values = [int(v) for v in fields[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _last_line(path: Path) -> str:
    lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    return lines[-1].strip()[:300] if lines else "(empty log)"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def add_flops(row: dict, counts: dict, peak: dict, matched: dict, executed_ours: float | None) -> dict:
    """GFLOP/s achieved (model FLOPs of the non-padding tokens: useful work, the same formula on
    both sides), its share of the square peak and of the shape-matched roofline, and GFLOP/s
    executed (the GEMM FLOPs the run actually computed: padded positions included; for our tool
    the output head only on the positions it keeps, for the plain script on every position)."""
    n_base, n_lora = counts["base_matmul_params"], counts["lora_params"]
    row["gflops"] = lora_train_flops(n_base, n_lora, row["tokens"]) / row["wall_s"] / 1e9
    row["pct_of_peak"] = 100.0 * row["gflops"] / peak[row["precision"]]
    # The roofline is of our run's GEMMs: the plain script's differ (more padding, the full head).
    if row["side"] == "ours" and row["precision"] in matched:
        row["pct_of_roofline"] = 100.0 * row["gflops"] / matched[row["precision"]]
    executed = executed_ours if row["side"] == "ours" else None
    if row.get("padded_positions"):
        executed = lora_train_flops(n_base, n_lora, row["padded_positions"])
    if executed:
        row["gflops_executed"] = executed / row["wall_s"] / 1e9
        if row["side"] == "ours" and row["precision"] in matched:
            row["pct_executed_of_roofline"] = 100.0 * row["gflops_executed"] / matched[row["precision"]]
    return row


def _pick(rows: list[dict], side: str, precision: str) -> dict | None:
    return next((r for r in rows if r["side"] == side and r["precision"] == precision), None)


def compare(rows: list[dict]) -> dict:
    """The issue's three targets, each on the runs it names: ours bf16 / plain bf16 tokens/s;
    ours bf16 eval loss against plain fp32's (full precision, the standard recipe); ours bf16
    achieved GFLOP/s against the shape-matched bf16 roofline. A run that is missing falls back to
    the closest one there is (best tokens/s, the other precision), and the result says which."""
    out = {"target_speedup": TARGET_SPEEDUP, "target_eval_diff_pct": TARGET_EVAL_DIFF_PCT,
           "target_roofline_pct": TARGET_ROOFLINE_PCT}
    plain = [r for r in rows if r["side"] == "plain"]
    ours = [r for r in rows if r["side"] == "ours"]
    if not plain or not ours:
        return out
    o = _pick(rows, "ours", "bf16") or max(ours, key=lambda r: r["tokens_per_s"])
    p = _pick(rows, "plain", o["precision"]) or max(plain, key=lambda r: r["tokens_per_s"])
    out["speedup"] = o["tokens_per_s"] / p["tokens_per_s"]
    out["speedup_of"] = f"ours {o['precision']} / plain {p['precision']}"
    out["speedup_met"] = out["speedup"] >= TARGET_SPEEDUP
    ref = _pick(rows, "plain", "fp32") or p
    if o.get("eval_loss") is not None and ref.get("eval_loss") is not None:
        out["eval_diff_pct"] = 100.0 * (o["eval_loss"] - ref["eval_loss"]) / ref["eval_loss"]
        out["eval_diff_of"] = f"ours {o['precision']} vs plain {ref['precision']}"
        out["eval_diff_met"] = abs(out["eval_diff_pct"]) <= TARGET_EVAL_DIFF_PCT
    if o.get("pct_of_roofline") is not None:
        out["roofline_pct"] = o["pct_of_roofline"]
        out["roofline_of"] = f"ours {o['precision']}"
        out["roofline_met"] = o["pct_of_roofline"] >= TARGET_ROOFLINE_PCT
    token_counts = {r["tokens"] for r in rows}
    if len(token_counts) > 1:
        out["warning"] = (
            f"the sides count different training tokens ({sorted(token_counts)}): tokenisation or "
            "template differ, so tokens/s are not directly comparable"
        )
    return out


def markdown(result: dict) -> str:
    hw, peak, cmp_ = result["hardware"], result["matmul_peak"]["peak_gflops"], result["comparison"]
    lines = [
        "# Speed benchmark",
        "",
        f"Machine: {hw.get('cpu', '?')}, {hw.get('cpu_count')} cores, torch threads {hw.get('torch_threads')}, "
        f"bf16 in hardware: {'yes' if hw.get('cpu_bf16') else 'no'}. "
        f"Matmul peak (square): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s; "
        "shape-matched roofline of our run's GEMMs: "
        + ", ".join(f"{d} {v['gflops']:.0f} GFLOP/s" for d, v in result["matmul_peak"].get("shape_matched", {}).items())
        + ".",
        f"Workload: {MODEL_ALIAS}, LoRA r={WORKLOAD['r']} on {len(WORKLOAD['targets'])} projections, "
        f"{result['max_train']} training records, max length {WORKLOAD['max_length']}, "
        f"batch {WORKLOAD['batch_size']} x accumulation {WORKLOAD['grad_accum']}, {WORKLOAD['epochs']} epoch.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        "Our tool's extra settings: " + (", ".join(result.get("ours_set") or []) or "none (its defaults)") + ".",
        "",
        "| side | precision | tokens | wall s | tokens/s | GFLOP/s achieved | % of square peak | "
        "% of shape-matched roofline | GFLOP/s executed | eval loss | other load (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"

    for r in result["rows"]:
        lines.append(
            f"| {r['side']} | {r['precision']} | {r['tokens']} | {r['wall_s']:.1f} | {r['tokens_per_s']:.1f} | "
            f"{r['gflops']:.1f} | {r['pct_of_peak']:.1f} | {fmt(r.get('pct_of_roofline'), '.1f')} | "
            f"{fmt(r.get('gflops_executed'), '.1f')} | {fmt(r.get('eval_loss'), '.4f')} | "
            f"{fmt(r.get('other_load'), '.2f')} |"
        )
    lines.append("")
    busy = [f"{r['side']} {r['precision']}" for r in result["rows"] if r.get("other_load", 0.0) > BUSY_THRESHOLD]
    if result["matmul_peak"].get("other_load", 0.0) > BUSY_THRESHOLD:
        busy.insert(0, "matmul peak")
    if busy:
        lines.append(
            f"- **Machine busy**: other processes used more than {BUSY_THRESHOLD} cores on average during "
            f"{', '.join(busy)}; those numbers are not valid. Rerun on a quiet machine."
        )
    if "speedup" in cmp_:
        lines.append(
            f"- Speed-up ({cmp_['speedup_of']}): **{cmp_['speedup']:.2f}x** "
            f"(target >= {TARGET_SPEEDUP}x: {'met' if cmp_['speedup_met'] else 'NOT met'})"
        )
    if "eval_diff_pct" in cmp_:
        lines.append(
            f"- Eval loss difference ({cmp_['eval_diff_of']}): **{cmp_['eval_diff_pct']:+.2f} %** "
            f"(target within {TARGET_EVAL_DIFF_PCT} %: {'met' if cmp_['eval_diff_met'] else 'NOT met'})"
        )
    if "roofline_pct" in cmp_:
        lines.append(
            f"- Achieved GFLOP/s / shape-matched roofline ({cmp_['roofline_of']}): **{cmp_['roofline_pct']:.1f} %** "
            f"(target >= {TARGET_ROOFLINE_PCT:.0f} %: {'met' if cmp_['roofline_met'] else 'NOT met'})"
        )
    if "speedup" not in cmp_:
        lines.append("- No comparison: one of the sides did not run.")
    if "warning" in cmp_:
        lines.append(f"- Warning: {cmp_['warning']}.")
    lines += [
        "",
        "tokens: non-padding tokens of the training sequences (prompt and response), once per epoch; "
        "wall s: training only, without model loading or evaluation. GFLOP/s achieved: "
        "(4 N_base + 6 N_lora) x tokens / wall, attention scores not counted (model FLOPs: the output "
        "head counted at every token, as the formula has it). GFLOP/s executed: the GEMM FLOPs the run "
        "computed (padded positions included; the output head only where the run computes it: every "
        "position for the plain script, the scored positions only for ours). Shape-matched "
        "roofline: our run's GEMMs, each shape timed alone on all threads, FLOP-weighted. Eval loss: "
        f"token-weighted mean cross-entropy over the {WORKLOAD['eval_size']} held-out records.",
        "",
    ]
    return "\n".join(lines)


def _busy_note(stats: dict) -> str:
    load = stats.get("other_load")
    if load is None or load <= BUSY_THRESHOLD:
        return ""
    return f"  [machine busy: other processes used {load:.2f} cores on average]"


def selected_runs(args) -> list[tuple[str, str]]:
    """(side, precision) in the order they run: the two compared for speed back to back (so a
    change in the machine's load hits both alike), then the fp32 reference."""
    if args.precisions:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        runs = [(side, p) for p in precisions for side in ("plain", "ours")]
    else:
        runs = [("plain", "bf16"), ("ours", "bf16"), ("plain", "fp32")]
    return [(side, p) for side, p in runs if not (side == "ours" and args.skip_ours)
            and not (side == "plain" and args.skip_plain)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-train", type=int, default=WORKLOAD["max_train"], help="training records (default 200)")
    parser.add_argument("--quick", action="store_true", help=f"development run: {QUICK_MAX_TRAIN} training records")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Alpaca-format JSON list")
    parser.add_argument("--precisions", default=None,
                        help="comma-separated, run on both sides (default: plain bf16, ours bf16, plain fp32)")
    parser.add_argument("--skip-ours", action="store_true", help="do not run adaptive-lora train")
    parser.add_argument("--skip-plain", action="store_true", help="do not run the plain Trainer script")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override passed to adaptive-lora train as --set KEY=VALUE (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per training run")
    parser.add_argument("--out-dir", default=str(OUT_DIR), help="where results go (default benchmarks/out)")
    args = parser.parse_args(argv)

    if args.quick:
        args.max_train = QUICK_MAX_TRAIN
    if args.precisions is not None:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        if not precisions or any(p not in PRECISIONS for p in precisions):
            parser.error("--precisions takes fp32 and/or bf16")
    if args.max_train < 1:
        parser.error("--max-train must be at least 1")
    if not Path(args.data).is_file():
        parser.error(f"data file '{args.data}' does not exist: pass --data")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Convert the model once up front (about 20 s the first time), outside every timed region.
    folder = model_folder()
    counts = count_matmul_params(folder, WORKLOAD["targets"], WORKLOAD["r"])
    shapes, executed_ours = gemm_mix(folder, ours_microbatches(args, out_dir))

    print("matmul peak (square, and shape-matched to our run's GEMMs)")
    runs = selected_runs(args)
    # The shapes are our run's: time them in the precisions our tool runs in (bf16 by default).
    peak = run_peak(out_dir, args.timeout, shapes, sorted({p for side, p in runs if side == "ours"}) or ("bf16",))
    matched = {d: v["gflops"] for d, v in peak.get("shape_matched", {}).items()}
    for p in PRECISIONS:
        shaped = f", {matched[p]:.1f} shape-matched" if p in matched else ""
        print(f"    {p}: {peak['peak_gflops'][p]:.1f} GFLOP/s square{shaped}"
              f"{_busy_note(peak) if p == PRECISIONS[-1] else ''}")

    rows = []
    for side, p in runs:
        print(f"{'plain PEFT + Trainer script' if side == 'plain' else 'adaptive-lora train'} {p}")
        row = (run_plain if side == "plain" else run_ours)(p, args, out_dir)
        if row:
            loss = f"{row['eval_loss']:.4f}" if row.get("eval_loss") is not None else "-"
            print(f"    {row['tokens_per_s']:.1f} tokens/s, eval loss {loss}{_busy_note(row)}")
            rows.append(row)
    if not rows:
        print("nothing ran: see the logs in", _rel(out_dir))
        return 1

    rows = [add_flops(r, counts, peak["peak_gflops"], matched, executed_ours) for r in rows]
    result = {
        "max_train": args.max_train,
        "workload": WORKLOAD,
        "ours_set": args.ours_set,
        "flop_counts": counts,
        "executed_flops_ours": executed_ours,
        "matmul_peak": peak,
        "rows": rows,
        "comparison": compare(rows),
        "hardware": hardware(),
        "versions": versions(),
        "loadavg": os.getloadavg(),
    }
    write_json(out_dir / "speed.json", result)
    text = markdown(result)
    (out_dir / "speed.md").write_text(text, encoding="utf-8")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
