"""Sweeps on Ray, with a real Ray instance started here (2 CPUs, loopback only): fake runs for
the retry rules, then a 4-run tiny-model sweep through ``adaptive-lora run --executor ray`` with
one worker process SIGKILLed mid-run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from adaptive_lora._io import read_json
from adaptive_lora.errors import UserError
from adaptive_lora.experiments import ExecOptions, RayExecutor, load_sweep, run_sweep
from adaptive_lora.experiments.claims import ATTEMPTS_NAME, CLAIM_NAME

from _fake_sweep import train_fn as fake_train
from train_fixtures import train_config, train_env  # noqa: F401 (train_env is a fixture)

ray = pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
FAST = ExecOptions(max_retries=1, heartbeat_s=0.2, stale_after_s=5.0)
# Fields of summary.json that measure time or the machine, not the result: excluded when a
# retried sweep is compared with a clean one.
TIMING_FIELDS = ("train_time_s", "setup_time_s", "time", "started", "finished", "finished_at", "wall_time_s",
                 "peak_memory_mb", "tokens_per_s", "samples_per_s", "steps_per_s", "env", "probe")


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    """A local Ray instance for this module; workers import this checkout and the test helpers."""
    temp = tmp_path_factory.mktemp("ray")
    path = os.pathsep.join([str(SRC), str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def _sweep(tmp_path: Path, n: int = 4, **defaults):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "ray", "seeds": list(range(n)), "runs": [{"name": "r"}],
                                    "defaults": {"steps": 4, "step_s": 0.05, **defaults}}))
    return load_sweep(path)


def _events(run_dir: Path) -> list[str]:
    return [json.loads(x)["event"] for x in (run_dir / ATTEMPTS_NAME).read_text().splitlines()]


def test_fake_sweep_on_ray_then_rerun_skips(ray_instance, tmp_path):
    out = tmp_path / "out"
    sweep = _sweep(tmp_path)
    res = run_sweep(sweep, out, fake_train, progress=False, executor=RayExecutor(max_concurrent=2), options=FAST)
    assert res.statuses == {f"r-s{i}": "completed" for i in range(4)} and sorted(res.ran) == sorted(res.statuses)
    pids = {line.split()[2] for line in (out / "calls.log").read_text().splitlines() if line.startswith("start")}
    assert len(pids) == 4  # a fresh worker process per run (max_calls=1)
    before = {p: p.read_bytes() for p in out.glob("r-s*/*")}
    res = run_sweep(sweep, out, fake_train, progress=False, executor=RayExecutor(), options=FAST)
    assert res.ran == [] and sorted(res.skipped) == [f"r-s{i}" for i in range(4)]
    assert {p: p.read_bytes() for p in out.glob("r-s*/*")} == before


def test_killed_worker_is_retried_then_given_up(ray_instance, tmp_path, capsys):
    out = tmp_path / "out"
    sweep = _sweep(tmp_path, n=3)
    # r-s1's process is SIGKILLed on its first execution only, r-s2's on every execution.
    specs = [s if s.run_id == "r-s0" else type(s)(**{**s.__dict__, "config": {
        **s.config, ("die_once" if s.run_id == "r-s1" else "die_always"): True}}) for s in sweep.specs]
    sweep.specs[:] = specs
    res = run_sweep(sweep, out, fake_train, executor=RayExecutor(max_concurrent=2), options=FAST)
    assert res.statuses == {"r-s0": "completed", "r-s1": "completed", "r-s2": "failed"}
    assert _events(out / "r-s0") == ["start", "end"]
    assert _events(out / "r-s1") == ["start", "start", "end"]  # died once, retried, completed
    assert _events(out / "r-s2") == ["start", "start", "gave_up"]
    failed = read_json(out / "r-s2" / "summary.json")
    assert "died 2 times" in failed["error"] and "max_retries is 1" in failed["error"] and "Ray:" in failed["error"]
    assert not any((out / r / CLAIM_NAME).exists() for r in res.statuses)
    err = capsys.readouterr().err
    assert "r-s1 worker died" in err and "retry 1 of 1" in err


def test_ray_flags_are_checked():
    with pytest.raises(UserError, match="--max-concurrent must be at least 1"):
        RayExecutor(max_concurrent=0)
    with pytest.raises(UserError, match="--gpus-per-run must be >= 0"):
        RayExecutor(gpus_per_run=-1)


# ----------------------------------------------------------------------------- tiny model, CLI


def _tiny_sweep(tmp_path: Path, env: dict) -> Path:
    cfg = train_config(env, "llama", epochs=3)
    cfg.pop("seed")
    data = {"name": "tiny", "seeds": [0, 1], "defaults": cfg,
            "runs": [{"name": "uniform", "strategy": "uniform", "r": 4},
                     {"name": "linear_decay", "strategy": "linear_decay", "r_base": 8, "r_min": 2}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cli(args: list[str]) -> int:
    from adaptive_lora.cli.main import main

    return main(["run", *args])


def _kill_first_worker(out: Path, run_id: str, done: dict) -> None:
    """SIGKILL the process training ``run_id`` once it has logged a training step; snapshot the
    runs finished at that moment."""
    metrics, claim = out / run_id / "metrics.jsonl", out / run_id / CLAIM_NAME
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            logged = '"type": "train"' in metrics.read_text()
            pid = json.loads(claim.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
            continue
        if logged:
            done["finished"] = {p: p.read_bytes() for run in out.iterdir() if run.name != run_id
                                and (run / "summary.json").exists() for p in _files(run)}
            os.kill(pid, signal.SIGKILL)
            done["pid"] = pid
            return
        time.sleep(0.05)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _result(run_dir: Path) -> dict:
    s = read_json(run_dir / "summary.json")
    return {k: v for k, v in s.items() if k not in TIMING_FIELDS}


def test_tiny_sweep_on_ray_kill_and_retry(ray_instance, train_env, tmp_path):
    sweep = _tiny_sweep(tmp_path, train_env)
    clean = tmp_path / "clean"
    assert _cli([str(sweep), "--out", str(clean), "--executor", "ray", "--max-concurrent", "2"]) == 0
    runs = sorted(p.parent.name for p in clean.glob("*/summary.json"))
    assert len(runs) == 4 and all(read_json(clean / r / "summary.json")["status"] == "completed" for r in runs)
    assert (clean / "results.md").exists()
    before = {p: p.read_bytes() for p in _files(clean) if p.parent != clean}
    assert _cli([str(sweep), "--out", str(clean), "--executor", "ray"]) == 0  # all four skipped
    assert {p: p.read_bytes() for p in _files(clean) if p.parent != clean} == before
    assert all(_events(clean / r) == ["start", "end"] for r in runs)
    # Step-0 evaluations: each key computed by one run (two ran at once), read by the others.
    base_rows = [next(json.loads(x) for x in (clean / r / "metrics.jsonl").read_text().splitlines()
                      if json.loads(x)["type"] == "eval") for r in runs]
    keys = list((clean / "base_evals").glob("*.json"))
    assert keys and sum(1 for row in base_rows if not row.get("cached")) == len(keys)

    out, victim, seen = tmp_path / "killed", "linear_decay-s0", {}
    killer = threading.Thread(target=_kill_first_worker, args=(out, victim, seen))
    killer.start()
    code = _cli([str(sweep), "--out", str(out), "--executor", "ray", "--max-concurrent", "2", "--max-retries", "1"])
    killer.join()
    assert "pid" in seen and code == 0
    for r in runs:
        assert read_json(out / r / "summary.json")["status"] == "completed"
        assert _events(out / r) == (["start", "start", "end"] if r == victim else ["start", "end"])
        assert not (out / r / CLAIM_NAME).exists()
    # Runs finished before the kill were never touched again.
    assert {p: p.read_bytes() for p in seen["finished"]} == seen["finished"]
    # Every run, the retried one included, has the result of the clean sweep (timing aside).
    for r in runs:
        a, b = _result(clean / r), _result(out / r)
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):
                assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), k


def test_ray_driver_waits_for_a_run_held_by_a_worker(ray_instance, tmp_path, capsys):
    from adaptive_lora.keylock import Claim

    out = tmp_path / "out"
    sweep = _sweep(tmp_path, n=2)
    holder = Claim(out / "r-s0" / CLAIM_NAME, {"worker": "slurm-task-3"}, heartbeat_s=0.1, stale_after_s=30)
    assert holder.acquire()

    def finish():
        time.sleep(2.0)
        (out / "r-s0" / "summary.json").write_text('{"status": "completed"}')
        holder.release()

    t = threading.Thread(target=finish)
    t.start()
    res = run_sweep(sweep, out, fake_train, executor=RayExecutor(), options=FAST)
    t.join()
    assert res.statuses == {"r-s0": "completed", "r-s1": "completed"} and res.ran == ["r-s1"]
    assert "r-s0 claimed by worker slurm-task-3" in capsys.readouterr().err
    assert not (out / "r-s0" / ATTEMPTS_NAME).exists()  # never executed by the driver
