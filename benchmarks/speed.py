"""Speed benchmark: `adaptive-lora train` against a plain PEFT + Trainer script, in one run.

    python benchmarks/speed.py                      # the full benchmark (200 records; ~20 min on 2 cores)
    python benchmarks/speed.py --max-train 16       # a quick smoke run
    python benchmarks/speed.py --skip-ours          # only the matmul peak and the plain script

Steps, each training run in a fresh subprocess so no run warms another's caches or allocator:

1. the machine's matmul peak per dtype (``matmul_peak.py``);
2. the plain Trainer script (``trainer_baseline.py``) in fp32 and in bf16;
3. our tool, ``adaptive-lora train --config <YAML written to benchmarks/out/>``, in fp32 and bf16;
   skipped with a message when the command is missing or fails.

Then a Markdown table (tokens, wall time, tokens/s, achieved GFLOP/s and % of the matmul peak in
the same dtype, eval loss), the speed-up of our best run over the plain script's faster precision
and the eval-loss difference against the plain fp32 run, checked against the targets (>= 1.5x,
within 2 %). Results: ``benchmarks/out/speed.json`` and ``benchmarks/out/speed.md``.
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

TARGET_SPEEDUP = 1.5
TARGET_EVAL_DIFF_PCT = 2.0
# Average cores used by other processes during a run above which its numbers are flagged.
BUSY_THRESHOLD = 0.25
PRECISIONS = ("fp32", "bf16")


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


def run_peak(out_dir: Path, timeout: float | None) -> dict:
    path = out_dir / "matmul_peak.json"
    cmd = [sys.executable, str(BENCH_DIR / "matmul_peak.py"), "--dtypes", ",".join(PRECISIONS), "--out", str(path)]
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


def add_flops(row: dict, counts: dict, peak: dict) -> dict:
    """Achieved GFLOP/s from non-padding tokens (useful work) and, when known, padded positions."""
    flops = lora_train_flops(counts["base_matmul_params"], counts["lora_params"], row["tokens"])
    row["gflops"] = flops / row["wall_s"] / 1e9
    row["pct_of_peak"] = 100.0 * row["gflops"] / peak[row["precision"]]
    if row.get("padded_positions"):
        padded = lora_train_flops(counts["base_matmul_params"], counts["lora_params"], row["padded_positions"])
        row["gflops_incl_padding"] = padded / row["wall_s"] / 1e9
    return row


def compare(rows: list[dict]) -> dict:
    plain = [r for r in rows if r["side"] == "plain"]
    ours = [r for r in rows if r["side"] == "ours"]
    out = {"target_speedup": TARGET_SPEEDUP, "target_eval_diff_pct": TARGET_EVAL_DIFF_PCT}
    if not plain or not ours:
        return out
    best_plain = max(plain, key=lambda r: r["tokens_per_s"])
    best_ours = max(ours, key=lambda r: r["tokens_per_s"])
    out["speedup"] = best_ours["tokens_per_s"] / best_plain["tokens_per_s"]
    out["speedup_of"] = f"ours {best_ours['precision']} / plain {best_plain['precision']}"
    out["speedup_met"] = out["speedup"] >= TARGET_SPEEDUP
    # The reference for quality is the plain fp32 run: full precision, the standard recipe.
    ref = next((r for r in plain if r["precision"] == "fp32"), best_plain)
    if best_ours.get("eval_loss") is not None and ref.get("eval_loss") is not None:
        diff = 100.0 * (best_ours["eval_loss"] - ref["eval_loss"]) / ref["eval_loss"]
        out["eval_diff_pct"] = diff
        out["eval_diff_of"] = f"ours {best_ours['precision']} vs plain {ref['precision']}"
        out["eval_diff_met"] = abs(diff) <= TARGET_EVAL_DIFF_PCT
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
        f"Matmul peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s.",
        f"Workload: {MODEL_ALIAS}, LoRA r={WORKLOAD['r']} on {len(WORKLOAD['targets'])} projections, "
        f"{result['max_train']} training records, max length {WORKLOAD['max_length']}, "
        f"batch {WORKLOAD['batch_size']} x accumulation {WORKLOAD['grad_accum']}, {WORKLOAD['epochs']} epoch.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        "",
        "| side | precision | tokens | wall s | tokens/s | GFLOP/s achieved | % of matmul peak | "
        "GFLOP/s incl. padding | eval loss | other load (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        pad = f"{r['gflops_incl_padding']:.1f}" if r.get("gflops_incl_padding") else "-"
        loss = f"{r['eval_loss']:.4f}" if r.get("eval_loss") is not None else "-"
        other = f"{r['other_load']:.2f}" if r.get("other_load") is not None else "-"
        lines.append(
            f"| {r['side']} | {r['precision']} | {r['tokens']} | {r['wall_s']:.1f} | {r['tokens_per_s']:.1f} | "
            f"{r['gflops']:.1f} | {r['pct_of_peak']:.1f} | {pad} | {loss} | {other} |"
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
    if "speedup" not in cmp_:
        lines.append("- No comparison: one of the sides did not run.")
    if "warning" in cmp_:
        lines.append(f"- Warning: {cmp_['warning']}.")
    lines += [
        "",
        "tokens: non-padding tokens of the training sequences (prompt and response), once per epoch; "
        "wall s: training only, without model loading or evaluation. GFLOP/s achieved: "
        "(4 N_base + 6 N_lora) x tokens / wall, attention scores not counted; 'incl. padding' counts "
        "the padded batch positions the model also computes. Eval loss: token-weighted mean "
        f"cross-entropy over the {WORKLOAD['eval_size']} held-out records.",
        "",
    ]
    return "\n".join(lines)


def _busy_note(stats: dict) -> str:
    load = stats.get("other_load")
    if load is None or load <= BUSY_THRESHOLD:
        return ""
    return f"  [machine busy: other processes used {load:.2f} cores on average]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-train", type=int, default=WORKLOAD["max_train"], help="training records (default 200)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Alpaca-format JSON list")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, both sides (default fp32,bf16)")
    parser.add_argument("--skip-ours", action="store_true", help="do not run adaptive-lora train")
    parser.add_argument("--skip-plain", action="store_true", help="do not run the plain Trainer script")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override passed to adaptive-lora train as --set KEY=VALUE (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per training run")
    parser.add_argument("--out-dir", default=str(OUT_DIR), help="where results go (default benchmarks/out)")
    args = parser.parse_args(argv)

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

    print("matmul peak")
    peak = run_peak(out_dir, args.timeout)
    for p in PRECISIONS:
        print(f"    {p}: {peak['peak_gflops'][p]:.1f} GFLOP/s{_busy_note(peak) if p == PRECISIONS[-1] else ''}")

    rows = []
    if not args.skip_plain:
        print("plain PEFT + Trainer script")
        for p in precisions:
            row = run_plain(p, args, out_dir)
            if row:
                print(f"    {row['tokens_per_s']:.1f} tokens/s, eval loss {row['eval_loss']:.4f}{_busy_note(row)}")
                rows.append(row)
    if not args.skip_ours:
        print("adaptive-lora train")
        for p in precisions:
            row = run_ours(p, args, out_dir)
            if row:
                loss = f"{row['eval_loss']:.4f}" if row.get("eval_loss") is not None else "-"
                print(f"    {row['tokens_per_s']:.1f} tokens/s, eval loss {loss}{_busy_note(row)}")
                rows.append(row)
    if not rows:
        print("nothing ran: see the logs in", _rel(out_dir))
        return 1

    rows = [add_flops(r, counts, peak["peak_gflops"]) for r in rows]
    result = {
        "max_train": args.max_train,
        "workload": WORKLOAD,
        "flop_counts": counts,
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
