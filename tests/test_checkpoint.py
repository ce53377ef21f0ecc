"""Mid-run checkpoints on tiny CPU models in fp32: a run interrupted after a checkpoint (an
exception, a real SIGKILL of a subprocess, a SIGTERM) and run again ends exactly like the same
run uninterrupted: the same adapter weights bit for bit, the same metrics rows (timings aside)
and the same eval loss; its summary says at which step it resumed.

The runs use dropout, adaptive clipping, warmup with a cosine schedule and intermediate evals,
so that every piece of state the checkpoint keeps (random states, clipper, scheduler, optimizer,
last eval) is needed for the equality. 40 training records, batch 4, accumulation 2: 5
optimizer steps per epoch, 2 epochs, 10 steps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaptive_lora.cli.main import main as cli_main
from adaptive_lora.errors import Preempted
from adaptive_lora.training import TrainConfig, checkpoint, hooks, train
from train_fixtures import read_metrics, read_summary, train_config, train_env, write_config  # noqa: F401

SRC = Path(__file__).resolve().parent.parent / "src"
STEPS = 10
# Wall-clock fields differ between any two runs; everything else must not.
TIMING = ("tokens_per_s", "time_s")


def _cfg(env, **kw) -> dict:
    return train_config(env, "llama", **{"epochs": 2, "lora_dropout": 0.1, "clip": "adaptive", "warmup_steps": 2,
                                         "lr_schedule": "cosine", "eval_every": 3, "forgetting": False,
                                         "checkpoint_every": 2, **kw})


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(run)]


def _adapter(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def _same_run(got: Path, want: Path) -> None:
    a, b = _adapter(got), _adapter(want)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(got) == _rows(want)
    sg, sw = read_summary(got), read_summary(want)
    assert sg["eval_loss"] == sw["eval_loss"] and sg["last_eval_loss"] == sw["last_eval_loss"]
    assert sg["optimizer_steps"] == sw["optimizer_steps"] == STEPS
    assert sg["grad_norm"] == sw["grad_norm"]


@pytest.fixture(scope="module")
def straight(train_env, tmp_path_factory) -> Path:
    """The uninterrupted run every resumed one must equal."""
    out = tmp_path_factory.mktemp("straight") / "run"
    s = train(TrainConfig.from_dict(_cfg(train_env)), out)
    assert s["status"] == "completed" and s["resumed_from_step"] is None and s["checkpoint_time_s"] > 0
    assert not (out / "checkpoints").exists()  # a completed run's checkpoints are removed
    return out


@pytest.mark.parametrize("every, fail_after, resumed", [
    (2, 3, 2),  # within the first epoch, between two eval points
    (5, 7, 5),  # at the end of epoch 0: the rerun starts epoch 1 at its first batch
    (3, 4, 3),  # a step with an intermediate eval: its row and last_eval come back
])
def test_resume_after_a_crash_equals_the_straight_run(train_env, straight, tmp_path, monkeypatch, every,
                                                      fail_after, resumed):
    cfg = TrainConfig.from_dict(_cfg(train_env, checkpoint_every=every))
    out = tmp_path / "run"
    monkeypatch.setattr(hooks, "after_step", hooks.raise_after(fail_after))
    with pytest.raises(RuntimeError, match="injected"):
        train(cfg, out)
    assert checkpoint.latest(out).step == resumed
    assert max(r["step"] for r in read_metrics(out)) == fail_after  # rows past the checkpoint exist ...
    monkeypatch.setattr(hooks, "after_step", None)
    s = train(cfg, out)
    assert s["resumed_from_step"] == resumed and s["checkpoint_time_s"] > 0
    _same_run(out, straight)  # ... and are gone: the file equals the straight run's
    assert checkpoint.latest(out) is None and not (out / "checkpoints").exists()


def test_sigkill_of_a_real_process_then_rerun(train_env, straight, tmp_path):
    """The CLI in a subprocess killed by SIGKILL after step 3 (its checkpoint: step 2); the same
    command again resumes at step 2 and ends exactly like the straight run."""
    cfg = write_config(tmp_path / "c.yaml", _cfg(train_env))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "ADAPTIVE_LORA_TEST_SIGNAL_STEP": "3", "ADAPTIVE_LORA_TEST_SIGNAL": "KILL"}
    proc = subprocess.run([sys.executable, "-m", "adaptive_lora.cli.main", "train", "--config", str(cfg), "--out",
                           str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "summary.json").exists() and checkpoint.latest(out).step == 2
    assert cli_main(["train", "--config", str(cfg), "--out", str(out)]) == 0
    assert read_summary(out)["resumed_from_step"] == 2
    _same_run(out, straight)


def test_sigterm_writes_a_checkpoint_and_exits_5(train_env, straight, tmp_path, monkeypatch, capsys):
    """A SIGTERM during step 3 (checkpoints every 4 steps) is acted upon at the next step
    boundary: a checkpoint at step 4, exit code 5; the previous handler is back afterwards."""
    cfg = write_config(tmp_path / "c.yaml", _cfg(train_env, checkpoint_every=4))
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(hooks, "after_step", hooks.signal_self_after(3, signal.SIGTERM))
    assert cli_main(["train", "--config", str(cfg), "--out", str(out)]) == Preempted.exit_code
    assert "preempted at step 4" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before
    assert checkpoint.latest(out).step == 4 and not (out / "summary.json").exists()
    monkeypatch.setattr(hooks, "after_step", None)
    assert cli_main(["train", "--config", str(cfg), "--out", str(out)]) == 0
    assert read_summary(out)["resumed_from_step"] == 4
    _same_run(out, straight)


def test_bf16_autocast_resumes_exactly_on_cpu(train_env, tmp_path, monkeypatch):
    """bf16 autocast on a CPU is deterministic too, and the state (fp32 adapters and Adam) is
    restored exactly: the resumed run's eval loss equals the straight one's, not just nearly."""
    cfg = TrainConfig.from_dict(_cfg(train_env, precision="bf16", max_steps=4, eval_every=0))
    straight = tmp_path / "straight"
    train(cfg, straight)
    out = tmp_path / "run"
    monkeypatch.setattr(hooks, "after_step", hooks.raise_after(3))
    with pytest.raises(RuntimeError):
        train(cfg, out)
    monkeypatch.setattr(hooks, "after_step", None)
    s = train(cfg, out)
    assert s["resumed_from_step"] == 2 and s["precision"] == "bfloat16"
    assert s["eval_loss"] == read_summary(straight)["eval_loss"]
    assert _rows(out) == _rows(straight)


def test_a_checkpoint_of_another_config_is_not_used(train_env, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setattr(hooks, "after_step", hooks.raise_after(3))
    with pytest.raises(RuntimeError):
        train(TrainConfig.from_dict(_cfg(train_env)), out)
    monkeypatch.setattr(hooks, "after_step", None)
    other = TrainConfig.from_dict(_cfg(train_env, lr=1e-3, keep_checkpoints=True))
    s = train(other, out)
    assert s["resumed_from_step"] is None and s["optimizer_steps"] == STEPS
    assert "another config" in capsys.readouterr().err
    # keep_checkpoints: the finished run's last checkpoint stays, and it is this config's.
    last = checkpoint.latest(out)
    assert last.step == STEPS and last.identity == checkpoint.identity(other, _Session())


def test_checkpoint_cadence_is_not_part_of_a_runs_identity():
    """Checkpointing more or less often cannot change a result: not a reason to call a finished
    run stale, nor to refuse a checkpoint."""
    base = TrainConfig()
    for key, value in {"checkpoint_every": 7, "keep_checkpoints": True}.items():
        assert TrainConfig.from_dict({key: value}).cache_key("x", ()) == base.cache_key("x", ())


def _crash_resume_equals_straight(cfg, tmp_path, monkeypatch, crash_after: int, resumed: int) -> Path:
    """Train ``cfg`` straight; train it again with a crash after step ``crash_after``, then rerun:
    the rerun resumes at ``resumed`` and ends like the straight run, plan included."""
    straight = tmp_path / "straight"
    train(cfg, straight)
    out = tmp_path / "run"
    monkeypatch.setattr(hooks, "after_step", hooks.raise_after(crash_after))
    with pytest.raises(RuntimeError):
        train(cfg, out)
    monkeypatch.setattr(hooks, "after_step", None)
    assert train(cfg, out)["resumed_from_step"] == resumed
    _same_run(out, straight)
    assert read_summary(out)["plan"] == read_summary(straight)["plan"]
    return out


def test_adalora_resumes_its_rank_allocator(train_env, tmp_path, monkeypatch):
    """AdaLoRA prunes by running importance averages: they are checkpointed too. A crash after
    step 7 (checkpoint at 6, pruning under way) and a rerun end like the straight run."""
    cfg = TrainConfig.from_dict(_cfg(train_env, method="adalora", adalora_init_r=6, adalora_target_r=2,
                                     adalora_tinit=2, adalora_tfinal=3, checkpoint_every=3))
    _crash_resume_equals_straight(cfg, tmp_path, monkeypatch, crash_after=7, resumed=6)


def test_prune_expand_resumes_its_masks_and_scores(train_env, tmp_path, monkeypatch):
    """prune_expand moves ranks by smoothed importance: which zero components are pruned, their
    scores and the unspent credit are checkpointed. A crash after step 7 (checkpoint at 6, moves
    at 4, 6 and 8) and a rerun end like the straight run, with the same ranks moved."""
    cfg = TrainConfig.from_dict(_cfg(train_env, method="prune_expand", alpha_policy="proportional", r_min=1,
                                     pe_warmup=2, pe_interval=2, pe_freeze=1, pe_moves=3, checkpoint_every=3))
    out = _crash_resume_equals_straight(cfg, tmp_path, monkeypatch, crash_after=7, resumed=6)
    assert any(row.get("moved") for row in _rows(out))


def test_latest_ignores_unfinished_checkpoints(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    (tmp_path / "checkpoints" / ".tmp-step-4").mkdir(parents=True)  # a write killed before its rename
    (tmp_path / "checkpoints" / "step-3").mkdir()  # no meta.json: never finished
    assert checkpoint.latest(tmp_path) is None


class _Session:
    """What :func:`checkpoint.identity` reads of a session: fp32 on one process."""

    precision, world = "fp32", 1
