"""Claims and compute-once caches (keylock), and sweeps shared by several processes: run claims,
stale takeover, retries, ``run --worker``, ``--only``. No torch: fake training functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from adaptive_lora._io import atomic_write_json, read_json
from adaptive_lora.errors import UserError
from adaptive_lora.experiments import ExecOptions, load_sweep, run_sweep, run_worker
from adaptive_lora.experiments.claims import ATTEMPTS_NAME, CLAIM_NAME
from adaptive_lora.keylock import Claim, FileCache, compute_once

from train_fixtures import train_env  # noqa: F401 (a fixture)

HERE = Path(__file__).resolve().parent
# Claims beat every 0.05 s; a claim is stale after 5 s (generous: the test machine may be loaded),
# and the "stale" claims the tests plant are 30 s old.
FAST = dict(heartbeat_s=0.05, stale_after_s=5.0)


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _foreign_claim(path: Path, age_s: float, host: str = "another-node", pid: int = 4242) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "worker": f"{host}:{pid}", "token": "old"}))
    _age(path, age_s)


# ----------------------------------------------------------------------------- Claim


def test_claim_is_exclusive_until_released(tmp_path):
    path = tmp_path / "c.json"
    short = dict(heartbeat_s=0.05, stale_after_s=1.0)
    a, b = Claim(path, {"worker": "a"}, **short), Claim(path, {"worker": "b"}, **short)
    assert a.acquire() and not b.acquire()
    assert b.holder()["worker"] == "a"
    time.sleep(1.5)  # longer than stale_after_s: the heartbeat keeps a live claim fresh
    assert not b.acquire() and a.is_ours() and not a.lost
    a.release()
    assert not path.exists()
    assert b.acquire() and b.took_over is None
    b.release()


@pytest.mark.parametrize(
    "age_s, host, pid, taken",
    [
        (30.0, "another-node", 4242, True),  # heartbeat stopped long ago: a dead node
        (0.0, "another-node", 4242, False),  # fresh claim of another machine: alive
        (0.0, None, None, False),  # fresh claim of a live process here (this one)
        (0.0, None, 2**22 + 12345, True),  # a process of this machine that no longer exists
    ],
)
def test_stale_or_dead_claims_are_taken_over(tmp_path, age_s, host, pid, taken):
    import socket

    path = tmp_path / "c.json"
    _foreign_claim(path, age_s, host or socket.gethostname(), pid or os.getpid())
    c = Claim(path, {"worker": "me"}, **FAST)
    assert c.acquire() is taken
    if taken:
        assert c.took_over["token"] == "old" and c.holder()["worker"] == "me"
        assert not list(tmp_path.glob("*.stale-*"))  # the old claim was moved aside and deleted
        c.release()
    else:
        assert json.loads(path.read_text())["token"] == "old"


def test_one_taker_wins_a_stale_claim(tmp_path):
    path = tmp_path / "c.json"
    _foreign_claim(path, 30.0)
    claims = [Claim(path, {"worker": str(i)}, **FAST) for i in range(8)]
    won, gate = [], threading.Barrier(len(claims))

    def take(c):
        gate.wait()
        if c.acquire():
            won.append(c)

    threads = [threading.Thread(target=take, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and won[0].is_ours()
    won[0].release()


# ----------------------------------------------------------------------------- caches


_CHILD = """
import sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from adaptive_lora.keylock import compute_once
def compute():
    with open({counter!r}, "a") as f:
        f.write("x")
    time.sleep(1.0)
    return {{"value": 42}}
value, computed = compute_once(Path({path!r}), compute, poll_s=0.05)
print(value["value"], computed)
"""


def test_compute_once_across_processes(tmp_path):
    path, counter = tmp_path / "cache" / "probe-abc.json", tmp_path / "count"
    src = str(HERE.parent / "src")
    code = _CHILD.format(src=src, counter=str(counter), path=str(path))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert counter.read_text() == "x"  # computed once by three processes
    assert sorted(o[1] for o in outs) == ["False", "False", "True"] and {o[0] for o in outs} == {"42"}
    assert read_json(path) == {"value": 42} and not (path.parent / "probe-abc.json.lock").exists()


def test_compute_once_failure_frees_the_key(tmp_path):
    path = tmp_path / "k.json"

    def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        compute_once(path, boom)
    assert not path.exists() and not (tmp_path / "k.json.lock").exists()
    assert compute_once(path, lambda: [1]) == ([1], True)
    assert compute_once(path, lambda: [2]) == ([1], False)


def test_file_cache_threads_compute_once(tmp_path):
    caches = [FileCache(tmp_path / "evals", poll_s=0.02, **FAST) for _ in range(4)]
    computed, got, gate = [], [], threading.Barrier(4)

    def use(cache):
        gate.wait()
        key = "base_eval-0123456789abcdef"
        if key in cache:
            got.append(cache[key])
        else:
            time.sleep(0.3)
            computed.append(1)
            cache[key] = {"eval": {"loss": 1.5}}
            got.append(cache[key])

    threads = [threading.Thread(target=use, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(computed) == 1 and got == [{"eval": {"loss": 1.5}}] * 4


def test_file_cache_release_frees_an_unstored_key(tmp_path):
    a, b = FileCache(tmp_path, **FAST), FileCache(tmp_path, poll_s=0.02, **FAST)
    assert "k" not in a  # a claims the key (it would compute)...
    a.release()  # ...but its run failed first
    assert "k" not in b  # b gets the key at once instead of waiting
    b["k"] = 1
    assert "k" in a and a["k"] == 1


# ----------------------------------------------------------------------------- sweeps


class Trainer:
    def __init__(self, step_s: float = 0.0):
        self.step_s, self.calls = step_s, []
        self.seen_checkpoints = {}

    def __call__(self, spec, run_dir: Path) -> dict:
        self.calls.append(spec.run_id)
        self.seen_checkpoints[spec.run_id] = sorted(p.name for p in (run_dir / "checkpoints").glob("*")) \
            if (run_dir / "checkpoints").is_dir() else None
        time.sleep(self.step_s)
        summary = {"status": "completed", "run_id": spec.run_id, "group": spec.group, "seed": spec.seed}
        atomic_write_json(run_dir / "summary.json", summary)
        return summary


def _sweep(tmp_path: Path, n: int = 3, **extra):
    data = {"name": "t", "seeds": list(range(n)), "runs": [{"name": "r"}], **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(path)


def _starts(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / ATTEMPTS_NAME).read_text().splitlines()]
    return [r for r in rows if r["event"] == "start"]


def test_every_execution_is_logged_and_claims_are_released(tmp_path):
    out = tmp_path / "out"
    run_sweep(_sweep(tmp_path), out, Trainer(), progress=False)
    for i in range(3):
        run_dir = out / f"r-s{i}"
        assert [r["attempt"] for r in _starts(run_dir)] == [1] and not (run_dir / CLAIM_NAME).exists()
        ends = [json.loads(x) for x in (run_dir / ATTEMPTS_NAME).read_text().splitlines()][1:]
        assert [(e["event"], e["status"]) for e in ends] == [("end", "completed")]


def test_stale_claim_is_taken_over_and_dead_runs_retried_then_failed(tmp_path, capsys):
    out = tmp_path / "out"
    sweep = _sweep(tmp_path)
    # r-s0: a dead node's claim, one crashed execution before (within max_retries=1): resumed.
    # r-s1: two crashed executions already: given up, marked failed with the reason.
    # r-s2: a checkpoint of this config survives the clearing; stray files do not.
    for run_id, crashed in (("r-s0", 1), ("r-s1", 2), ("r-s2", 1)):
        run_dir = out / run_id
        run_dir.mkdir(parents=True)
        spec = next(s for s in sweep.specs if s.run_id == run_id)
        atomic_write_json(run_dir / "spec.json", {"run_id": run_id, "config": spec.config,
                                                  "config_hash": spec.config_hash})
        with open(run_dir / ATTEMPTS_NAME, "w") as f:
            for a in range(crashed):
                f.write(json.dumps({"event": "start", "attempt": a + 1, "worker": "dead:1", "host": "n1"}) + "\n")
    _foreign_claim(out / "r-s0" / CLAIM_NAME, age_s=30.0)
    (out / "r-s2" / "checkpoints" / "step-4").mkdir(parents=True)
    (out / "r-s2" / "partial.bin").write_bytes(b"x")

    trainer = Trainer()
    res = run_sweep(sweep, out, trainer, options=ExecOptions(max_retries=1, **FAST))
    assert trainer.calls == ["r-s0", "r-s2"]
    assert res.statuses == {"r-s0": "completed", "r-s1": "failed", "r-s2": "completed"}
    starts = _starts(out / "r-s0")
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[-1]["took_over_from"] == {"worker": "another-node:4242", "host": "another-node", "pid": 4242}
    failed = read_json(out / "r-s1" / "summary.json")
    assert failed["status"] == "failed" and "died 2 times" in failed["error"] and "max_retries is 1" in failed["error"]
    assert trainer.seen_checkpoints["r-s2"] == ["step-4"] and not (out / "r-s2" / "partial.bin").exists()
    assert "[run 2/3] r-s1 failed: its process died 2 times" in capsys.readouterr().err
    # The given-up run closes its log: the next invocation executes it again (a failed run is redone).
    again = Trainer()
    assert run_sweep(sweep, out, again, progress=False, options=ExecOptions(**FAST)).statuses["r-s1"] == "completed"
    assert again.calls == ["r-s1"]


def test_checkpoints_of_another_config_are_not_kept(tmp_path):
    out = tmp_path / "out"
    run_dir = out / "r-s0"
    (run_dir / "checkpoints" / "step-2").mkdir(parents=True)
    atomic_write_json(run_dir / "spec.json", {"config_hash": "something else"})
    trainer = Trainer()
    run_sweep(_sweep(tmp_path, n=1), out, trainer, progress=False)
    assert trainer.seen_checkpoints["r-s0"] is None


def test_driver_waits_for_a_run_held_by_a_live_worker(tmp_path, capsys):
    out = tmp_path / "out"
    sweep = _sweep(tmp_path, n=2)
    holder = Claim(out / "r-s0" / CLAIM_NAME, {"worker": "other"}, **FAST)
    assert holder.acquire()

    def finish():
        time.sleep(0.5)
        atomic_write_json(out / "r-s0" / "summary.json", {"status": "completed"})
        holder.release()

    t = threading.Thread(target=finish)
    t.start()
    trainer = Trainer()
    res = run_sweep(sweep, out, trainer, options=ExecOptions(**FAST))
    t.join()
    assert trainer.calls == ["r-s1"] and res.statuses == {"r-s0": "completed", "r-s1": "completed"}
    assert "r-s0 claimed by worker other" in capsys.readouterr().err


def test_worker_leaves_held_runs_and_only_runs_one(tmp_path):
    out = tmp_path / "out"
    sweep = _sweep(tmp_path, n=3)
    holder = Claim(out / "r-s1" / CLAIM_NAME, {"worker": "other"}, **FAST)
    assert holder.acquire()
    try:
        trainer = Trainer()
        res = run_worker(sweep, out, trainer, progress=False, options=ExecOptions(**FAST), only="r-s2")
        assert trainer.calls == ["r-s2"] and res.statuses == {"r-s2": "completed"}
        res = run_worker(sweep, out, trainer, progress=False, options=ExecOptions(**FAST))
        assert trainer.calls == ["r-s2", "r-s0"] and "r-s1" not in res.statuses
    finally:
        holder.release()
    with pytest.raises(UserError, match="--only nope: sweep 't' has no run with that id"):
        run_worker(sweep, out, trainer, progress=False, only="nope")


def test_two_worker_processes_share_the_runs(tmp_path):
    """Two 'run --worker' processes on one folder: every run executes exactly once, both work."""
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"name": "w", "seeds": list(range(6)), "runs": [{"name": "r"}],
                                    "defaults": {"steps": 4, "step_s": 0.2}}))
    out = tmp_path / "out"
    cmd = [sys.executable, str(HERE / "_fake_sweep.py"), str(path), str(out), "--worker",
           "--heartbeat", "0.1", "--stale", "10"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    calls = [line.split() for line in (out / "calls.log").read_text().splitlines()]
    starts = [(w[1], w[2]) for w in calls if w[0] == "start"]  # (run, pid)
    assert sorted(run for run, _ in starts) == [f"r-s{i}" for i in range(6)]  # no run twice
    assert len({pid for _, pid in starts}) == 2, starts  # both workers took runs
    for i in range(6):
        run_dir = out / f"r-s{i}"
        assert len(_starts(run_dir)) == 1 and read_json(run_dir / "summary.json")["status"] == "completed"
        assert not (run_dir / CLAIM_NAME).exists()
    assert read_json(out / "sweep.json")["name"] == "w"


def test_workers_do_not_take_the_driver_lock(tmp_path):
    from adaptive_lora.experiments.runner import sweep_lock

    out = tmp_path / "out"
    out.mkdir()
    with sweep_lock(out):
        trainer = Trainer()
        run_worker(_sweep(tmp_path, n=1), out, trainer, progress=False)
        assert trainer.calls == ["r-s0"]
        with pytest.raises(UserError, match="in use by another"):
            run_sweep(_sweep(tmp_path, n=1), out, trainer, progress=False)


@pytest.mark.parametrize("bad, needle", [
    (dict(max_retries=-1), "max_retries must be a non-negative integer"),
    (dict(heartbeat_s=10, stale_after_s=5), "must be positive and shorter than the stale limit"),
])
def test_bad_exec_options(bad, needle):
    with pytest.raises(UserError, match=needle):
        ExecOptions(**bad)


def test_multiprocess_launch_trains_each_run_together_once(tmp_path):
    """torch.distributed.run with 2 processes: only the main one takes the folder lock and claims,
    both enter every run the main one decides to train, a finished run is skipped by both."""
    import socket

    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "seeds": [0, 1, 2], "runs": [{"name": "r"}],
                                    "defaults": {"steps": 2, "step_s": 0.01}}))
    out = tmp_path / "out"
    run_sweep(load_sweep(path), out, Trainer(), progress=False, only="r-s1")  # finished before the launch
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(HERE / "_fake_sweep.py"), str(path), str(out), "--multiprocess"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.split() for line in (out / "calls.log").read_text().splitlines()]
    starts = sorted((w[1], w[3]) for w in lines if w[0] == "start")
    assert starts == [("r-s0", "0"), ("r-s0", "1"), ("r-s2", "0"), ("r-s2", "1")]
    for run in ("r-s0", "r-s2"):
        assert len(_starts(out / run)) == 1 and read_json(out / run / "summary.json")["status"] == "completed"


@pytest.mark.parametrize("flags, needle", [
    (["--executor", "ray"], "--executor ray needs Ray: pip install 'adaptive-lora[ray]'"),
    (["--ray-address", "auto"], "--ray-address only apply to --executor ray"),
    (["--gpus-per-run", "1", "--max-concurrent", "2"], "--gpus-per-run, --max-concurrent only apply to --executor ray"),
    (["--worker", "--executor", "ray"], "--worker executes runs in this process"),
])
def test_run_flags_are_checked_first(tmp_path, monkeypatch, capsys, flags, needle):
    from adaptive_lora.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["run", str(tmp_path / "not-even-read.yaml"), *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_real_run_under_torchrun_takes_the_lock_once(train_env, tmp_path):
    """'run' with 2 processes (torchrun, CPU): both train each run together, the main one writes;
    before, every process took the folder lock and all but one failed."""
    import socket

    from train_fixtures import train_config

    cfg = train_config(train_env, "llama", max_train=16)
    cfg.pop("seed")
    path = tmp_path / "mp.yaml"
    path.write_text(yaml.safe_dump({"name": "mp", "seeds": [0], "defaults": cfg, "report": False,
                                    "runs": [{"name": "uniform", "strategy": "uniform", "r": 4}]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "adaptive_lora.cli.main", "run", str(path), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = read_json(out / "uniform-s0" / "summary.json")
    assert s["status"] == "completed" and s["world_size"] == 2
    assert len(_starts(out / "uniform-s0")) == 1


def test_sigterm_releases_the_claim_and_is_not_a_crash(tmp_path):
    """Slurm preempts with SIGTERM: the run's claim is released and its execution logged as
    interrupted, so the next worker resumes it at once and it does not count against max_retries."""
    import signal

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "seeds": [0], "runs": [{"name": "r"}],
                                    "defaults": {"steps": 50, "step_s": 0.1}}))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(HERE / "_fake_sweep.py"), str(path), str(out), "--worker"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "r-s0" / "metrics.jsonl").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    events = [json.loads(x)["event"] for x in (out / "r-s0" / ATTEMPTS_NAME).read_text().splitlines()]
    assert events == ["start", "interrupted"] and not (out / "r-s0" / CLAIM_NAME).exists()


def test_two_cli_workers_share_a_tiny_sweep_and_its_probe(train_env, tmp_path):
    """Two 'adaptive-lora run --worker' processes on one folder, tiny model: each run executes
    once, and the probe both data-driven seeds need at the same time is measured once."""
    from train_fixtures import train_config

    cfg = train_config(train_env, "llama", max_train=16, r_min=1, r_max=8, probe_batches=2,
                       budget_like="uniform:4")
    cfg.pop("seed")
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"name": "w", "seeds": [0, 1], "defaults": cfg, "report": False, "runs": [
        {"name": "grad", "strategy": "gradient_sensitivity"}, {"name": "uniform", "strategy": "uniform"}]}))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "adaptive_lora.cli.main", "run", str(path), "--out", str(out), "--worker"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    runs = ["grad-s0", "grad-s1", "uniform-s0", "uniform-s1"]
    pids = set()
    for run in runs:
        (start,) = _starts(out / run)  # exactly one execution
        pids.add(start["pid"])
        assert read_json(out / run / "summary.json")["status"] == "completed"
    assert len(pids) == 2  # both workers trained
    probes = [read_json(out / r / "summary.json")["probe"]["cached"] for r in ("grad-s0", "grad-s1")]
    assert sorted(probes) == [False, True] and len(list((out / "plans").glob("*.json"))) == 1
