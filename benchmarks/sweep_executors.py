"""Wall time of one 4-run tiny-model sweep: the local executor vs Ray with 2 concurrent runs.

    python benchmarks/sweep_executors.py [--epochs 3] [--keep DIR]

Builds a tiny random Llama folder and a small Alpaca file (the test fixtures, no download), then
times the whole ``adaptive-lora run`` command of each side in a fresh process, each into an
empty results folder: local (one run after another in one process, the model reloaded per run)
and ``--executor ray --max-concurrent 2 --cpus-per-run 1`` (a local Ray instance started by the
command, each run in a fresh worker process). Wall times include start-up (Ray's too), the
step-0 evaluations and the report. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "tests"))

from tiny_models import save_tiny_model  # noqa: E402
from train_fixtures import alpaca_records  # noqa: E402

SIDES = {
    "local": [],
    "ray, 2 concurrent runs x 1 CPU": ["--executor", "ray", "--max-concurrent", "2", "--cpus-per-run", "1"],
}


def _sweep(base: Path, epochs: int) -> Path:
    model = save_tiny_model(base / "llama", "llama")
    data = base / "alpaca.json"
    data.write_text(json.dumps(alpaca_records()), encoding="utf-8")
    defaults = {"model": str(model), "data": str(data), "eval_size": 8, "max_length": 320, "r": 4, "lr": 3e-3,
                "epochs": epochs, "batch_size": 4, "grad_accum": 2, "lora_dropout": 0.0, "precision": "fp32",
                "progress": False}
    sweep = {"name": "bench", "seeds": [0, 1], "defaults": defaults,
             "runs": [{"name": "uniform", "strategy": "uniform", "r": 4},
                      {"name": "linear_decay", "strategy": "linear_decay", "r_base": 8, "r_min": 2}]}
    path = base / "bench.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    return path


def _time(sweep: Path, out: Path, flags: list[str]) -> tuple[float, int, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-m", "adaptive_lora.cli.main", "run", str(sweep), "--out", str(out), *flags]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, proc.returncode, proc.stderr[-2000:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs of each run (default 3: 15 optimizer steps)")
    ap.add_argument("--keep", default=None, help="folder to build in and keep (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        base.mkdir(parents=True, exist_ok=True)
        sweep = _sweep(base, args.epochs)
        rows = []
        for side, flags in SIDES.items():
            seconds, code, err = _time(sweep, base / f"out-{len(rows)}", flags)
            if code != 0:
                print(f"{side}: exit code {code}\n{err}", file=sys.stderr)
                return 1
            rows.append((side, seconds))
    print(f"4 runs (2 strategies x 2 seeds), tiny Llama, {args.epochs} epochs each; cores: {os.cpu_count()}")
    print("| executor | wall s (whole command) |\n|---|---:|")
    for side, seconds in rows:
        print(f"| {side} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
