"""``adaptive-lora run`` end to end on a tiny model: resume after SIGKILL, the folder lock,
up-front validation, and the paper config planned offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptive_lora.cli.main import main as cli_main
from adaptive_lora.cli.run_cmd import plan_sweep, validate_run_config
from adaptive_lora.experiments import load_sweep

from tiny_models import dialogpt_medium_config, save_config_only, save_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def _records(n=24):
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return [{"instruction": f"Repeat the word {w} {i % 3 + 1} times.", "input": "" if i % 2 else "please",
             "output": " ".join([w] * (i % 3 + 1))} for i, w in enumerate(words * (n // len(words)))]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("runcli")
    model = save_tiny_model(base / "llama", "llama")
    data = base / "data.json"
    data.write_text(json.dumps(_records()))
    return base, model, data


def _sweep(base: Path, model: Path, data: Path, name="s", epochs=2, extra_runs=()) -> Path:
    runs = [{"name": "uniform-r4", "strategy": "uniform", "r": 4},
            {"name": "linear_decay", "strategy": "linear_decay", "r_base": 8, "r_min": 2},
            {"name": "attention_heavy", "strategy": "attention_heavy", "r_base": 8, "r_min": 2},
            *extra_runs]
    cfg = {"name": name, "seeds": [0], "defaults": {
        "model": str(model), "data": str(data), "eval_size": 6, "max_train": 16, "max_length": 320,
        "epochs": epochs, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "progress": False, "precision": "fp32"},
        "runs": runs}
    path = base / f"{name}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "adaptive_lora.cli.main", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)


def test_kill_and_resume(setup, tmp_path):
    base, model, data = setup
    sweep = _sweep(base, model, data, name="kill", epochs=20)  # long enough runs to kill one mid-way
    out = tmp_path / "res"
    proc = _run([str(sweep), "--out", str(out)])
    first = out / "uniform-r4-s0" / "summary.json"
    second_metrics = out / "linear_decay-s0" / "metrics.jsonl"
    deadline = time.time() + 120
    # Wait until run 1 finished and run 2 has logged at least one training step.
    while time.time() < deadline:
        if first.exists() and second_metrics.exists() and '"train"' in second_metrics.read_text():
            break
        if proc.poll() is not None:
            pytest.fail("sweep ended before it could be killed: " + proc.stdout.read())
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("sweep did not reach its second run in time")
    before = first.read_bytes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "linear_decay-s0" / "summary.json").exists()

    # Resume with fewer epochs for the remaining runs would change their config: keep it identical.
    proc = _run([str(sweep), "--out", str(out)])
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert first.read_bytes() == before  # the completed run was not touched
    assert "uniform-r4-s0 skipped (completed)" in log
    for run in ("uniform-r4-s0", "linear_decay-s0", "attention_heavy-s0"):
        s = json.loads((out / run / "summary.json").read_text())
        assert s["status"] == "completed"
        steps = [json.loads(x)["step"] for x in (out / run / "metrics.jsonl").read_text().splitlines()
                 if json.loads(x)["type"] == "train"]
        assert steps == list(range(1, len(steps) + 1))  # each run's steps logged exactly once
    assert (out / "results.md").exists()


def test_concurrent_run_refused(setup, tmp_path):
    from adaptive_lora.experiments.runner import sweep_lock

    base, model, data = setup
    sweep = _sweep(base, model, data, name="lock")
    out = tmp_path / "res"
    out.mkdir()
    with sweep_lock(out):  # another live 'run' holds the folder
        proc = _run([str(sweep), "--out", str(out)])
        log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "in use by another" in log and "Traceback" not in log


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("lrr=0.1", "unknown config key 'lrr'"),
        ("lr=-1", "lr must be a positive number"),
        ("batch_size=0", "batch_size must be a positive integer"),
        ("data=does/not/exist.json", "does not exist"),
        ("strategy=nope", "unknown strategy 'nope'"),
    ],
)
def test_bad_sweep_fails_before_training(setup, tmp_path, capsys, override, fragment):
    base, model, data = setup
    sweep = _sweep(base, model, data, name="bad")
    out = tmp_path / "res"
    code = cli_main(["run", str(sweep), "--out", str(out), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.strip().count("\n") == 0
    assert not out.exists() or not any(p.is_dir() for p in out.iterdir())  # nothing trained


def test_paper_config_plans_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_config_only(tmp_path / "dialogpt", dialogpt_medium_config())
    sweep = load_sweep(ROOT / "configs" / "paper.yaml", {"model": str(folder)}, validate=validate_run_config)
    assert sweep.compare_to_paper
    planned = {spec.group: plan.trainable_params for spec, plan in plan_sweep(sweep)}
    assert planned["uniform-r8"] == 3_145_728 and round(planned["uniform-r8"] / 1e6, 1) == 3.1
    assert planned["uniform-r16"] == 6_291_456 and round(planned["uniform-r16"] / 1e6, 1) == 6.3
    assert set(planned) == {"uniform-r8", "uniform-r16", "linear_decay", "attention_heavy", "empirical"}
    cfg = sweep.specs[0].config
    assert (cfg["lr"], cfg["epochs"], cfg["batch_size"], cfg["grad_accum"], cfg["lora_alpha"], cfg["lora_dropout"],
            cfg["max_train"]) == (3e-4, 3, 8, 4, 32, 0.1, 200)


@pytest.mark.parametrize("name", ["default.yaml", "alpaca-local.yaml"])
def test_shipped_configs_validate(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    if name == "alpaca-local.yaml" and not (ROOT.parent / "shared/data/alpaca/alpaca_first250.json").exists():
        pytest.skip("Alpaca subset not beside the checkout")
    sweep = load_sweep(ROOT / "configs" / name, validate=validate_run_config)
    assert {s.config["strategy"] for s in sweep.specs} >= {"uniform", "linear_decay", "attention_heavy", "empirical"}
