"""Experiment trackers (``report_to``): what a real run writes to each tracker, read back with
that tracker's own reader; failures that must not cost the run; the missing-package error.

Nothing is installed by these tests: a tracker whose package is not importable is skipped with
the reason (``pip install 'adaptive-lora[<name>]'`` enables it). One tiny training feeds every
installed tracker at once; each test reads back its own.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import struct
from pathlib import Path

import pytest

from adaptive_lora.errors import UserError
from adaptive_lora.training import TrainConfig, train
from adaptive_lora.training import trackers as tr
from adaptive_lora.training.config import DISPLAY_ONLY
from train_fixtures import read_metrics, read_summary, train_config, train_env  # noqa: F401 - a fixture

INSTALLED = [n for n in tr.NAMES if importlib.util.find_spec(tr.KINDS[n].module) is not None]


def _same_series(got: list[tuple], rows: list[dict], key: str) -> None:
    """``got`` = [(step, value)] matches ``rows``' steps and ``key`` values (float32 in some stores)."""
    assert [step for step, _ in got] == [r["step"] for r in rows]
    assert [v for _, v in got] == pytest.approx([r[key] for r in rows], rel=1e-6)


def _needs(name: str):
    return pytest.mark.skipif(name not in INSTALLED, reason=f"{name} is not installed "
                              f"(pip install 'adaptive-lora[{name}]' to test it)")


@pytest.fixture(scope="module")
def tracked_run(train_env, tmp_path_factory):  # noqa: F811 - pytest fixture
    """One run reporting to every installed tracker: ``(run_dir, train rows, eval rows, summary)``."""
    if not INSTALLED:
        pytest.skip("no tracker package is installed")
    base = tmp_path_factory.mktemp("tracked")
    run = base / "tracked-run"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY", "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(var, raising=False)
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        mp.setenv("NETRC", str(base / "no-netrc"))  # no W&B credentials: must go offline by itself
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(base / "wandb-home"))
        mp.setenv("WANDB_SILENT", "true")
        # trackio reads TRACKIO_DIR once, at import: this only takes if nothing imported it before.
        mp.setenv("TRACKIO_DIR", str(base / "trackio"))
        cfg = TrainConfig.from_dict(train_config(train_env, "gpt2", report_to=",".join(INSTALLED)))
        summary = train(cfg, run)
    rows = read_metrics(run)
    return (run, [r for r in rows if r["type"] == "train"], [r for r in rows if r["type"] == "eval"], summary)


def test_every_installed_tracker_finishes_and_is_recorded(tracked_run):
    run, train_rows, _, summary = tracked_run
    assert summary["status"] == "completed" and len(train_rows) >= 3
    status = json.loads((run / "trackers.json").read_text())
    assert status["report_to"] == INSTALLED
    assert status["trackers"] == {n: {"status": "finished"} for n in INSTALLED}


@_needs("tensorboard")
def test_tensorboard_event_files_hold_step_loss_eval_loss_and_layer_norms(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, train_rows, eval_rows, summary = tracked_run
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [r["step"] for r in train_rows]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train_rows], rel=1e-6)
    evals = acc.Scalars("eval_loss")
    assert [e.step for e in evals] == [r["step"] for r in eval_rows]
    assert evals[-1].value == pytest.approx(summary["eval_loss"], rel=1e-6)
    assert "layer_grad_norms/layer_00/A" in acc.Tags()["scalars"] and "summary/trainable_params" in acc.Tags()["scalars"]
    assert "plan/text_summary" in acc.Tags()["tensors"]


@_needs("mlflow")
def test_mlflow_file_store_under_the_run_holds_metrics_params_and_plan(tracked_run):
    from mlflow.tracking import MlflowClient

    run, train_rows, eval_rows, summary = tracked_run
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    [exp] = [e for e in client.search_experiments() if e.name == tr.PROJECT]
    [mlrun] = client.search_runs([exp.experiment_id])
    assert mlrun.info.run_name == "tracked-run"
    history = client.get_metric_history(mlrun.info.run_id, "loss")
    _same_series([(m.step, m.value) for m in history], train_rows, "loss")
    evals = client.get_metric_history(mlrun.info.run_id, "eval_loss")
    assert [m.step for m in evals] == [r["step"] for r in eval_rows]
    assert evals[-1].value == pytest.approx(summary["eval_loss"])
    assert mlrun.data.params["lr"] == "0.003" and mlrun.data.params["report_to"] == json.dumps(INSTALLED)
    plan = json.loads(Path(client.download_artifacts(mlrun.info.run_id, "plan.json", str(run.parent))).read_text())
    assert plan["trainable_params"] == summary["trainable_params"]


def _wandb_history(run_file: str) -> list[dict]:
    """The history records of an offline ``.wandb`` file (LevelDB-style log: 32 KiB blocks of
    records with a 7-byte header; wandb no longer ships a Python reader for it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, out = Path(run_file).read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and n == 0:
            break
        buf, pos = buf + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # FULL or LAST: a whole record
            rec = pb.Record()
            rec.ParseFromString(buf)
            if rec.WhichOneof("record_type") == "history":
                out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
            buf = b""
    return out


@_needs("wandb")
def test_wandb_goes_offline_without_credentials_and_logs_under_the_run(tracked_run):
    run, train_rows, eval_rows, summary = tracked_run
    [run_file] = glob.glob(str(run / "wandb" / "offline-run-*" / "*.wandb"))
    history = _wandb_history(run_file)
    _same_series([(h["_step"], h["loss"]) for h in history if "loss" in h], train_rows, "loss")
    _same_series([(h["_step"], h["eval_loss"]) for h in history if "eval_loss" in h], eval_rows, "eval_loss")
    assert eval_rows[-1]["eval_loss"] == pytest.approx(summary["eval_loss"])
    assert any(h.get("plan/_type") == "table-file" for h in history)


@_needs("trackio")
def test_trackio_local_database_holds_the_steps(tracked_run):
    import trackio.utils
    from trackio.sqlite_storage import SQLiteStorage

    run, train_rows, _, summary = tracked_run
    if Path(trackio.utils.TRACKIO_DIR) != run.parent / "trackio":
        pytest.skip("trackio was imported before the test could point TRACKIO_DIR at a temporary folder")
    logs = SQLiteStorage.get_logs(tr.PROJECT, "tracked-run")
    _same_series([(x["step"], x["loss"]) for x in logs if "loss" in x], train_rows, "loss")
    assert [x["summary/eval_loss"] for x in logs if "summary/eval_loss" in x] == pytest.approx([summary["eval_loss"]])


# ----------------------------------------------------------------------------- failures


class _Broken:
    """A tracker with accelerate's interface whose every log fails, like W&B with no network."""

    def start(self):
        pass

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None):
        raise ConnectionError("network is unreachable")

    def finish(self):
        pass


@pytest.fixture
def broken_tensorboard(monkeypatch):
    """``report_to: tensorboard`` builds :class:`_Broken` (its check imports json: always there)."""
    monkeypatch.setitem(tr.KINDS, "tensorboard", tr.Kind("json", lambda *a: _Broken(), lambda t, p: None))


def test_a_failing_tracker_is_recorded_and_the_run_completes(train_env, tmp_path, broken_tensorboard,  # noqa: F811
                                                            capsys):
    cfg = TrainConfig.from_dict(train_config(train_env, "gpt2", report_to=["tensorboard"], max_steps=2))
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed" and read_summary(tmp_path / "run")["status"] == "completed"
    assert len([r for r in read_metrics(tmp_path / "run") if r["type"] == "train"]) == 2
    status = json.loads((tmp_path / "run" / "trackers.json").read_text())["trackers"]["tensorboard"]
    assert status == {"status": "failed", "stage": "log", "step": 0,
                      "error": "ConnectionError: network is unreachable"}  # the step-0 eval is its first log
    warnings = [line for line in capsys.readouterr().err.splitlines() if "tracker tensorboard failed" in line]
    assert len(warnings) == 1 and "the run goes on without it" in warnings[0]


def test_tracker_strict_makes_a_tracker_failure_fail_the_run(train_env, tmp_path, broken_tensorboard):  # noqa: F811
    cfg = TrainConfig.from_dict(train_config(train_env, "gpt2", report_to="tensorboard", tracker_strict=True,
                                             max_steps=2))
    with pytest.raises(tr.TrackerError, match=r"^tracker tensorboard failed at log .*tracker_strict is true"):
        train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "metrics.jsonl").exists()
    assert json.loads((tmp_path / "run" / "trackers.json").read_text())["trackers"]["tensorboard"]["status"] == "failed"


def test_a_run_left_open_is_closed_when_the_next_run_starts(tmp_path, broken_tensorboard):
    first = tr.Trackers(["tensorboard"])
    first.start(tmp_path / "a", "a", {"lr": 1e-3})
    assert first in tr._OPEN  # e.g. train() raised between start and finish
    second = tr.Trackers(["tensorboard"])
    second.start(tmp_path / "b", "b", {"lr": 1e-3})
    assert tr._OPEN == [second] and first.slots[0].finished
    second.finish({"eval_loss": 1.0})
    assert tr._OPEN == []


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("name", tr.NAMES)
def test_a_missing_tracker_package_is_a_one_line_error_naming_the_extra(monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: None if mod == tr.KINDS[name].module
                        else real(mod, *a))
    with pytest.raises(UserError) as e:
        TrainConfig.from_dict({"report_to": [name]})
    assert str(e.value) == (f"report_to: {name} is not installed: pip install 'adaptive-lora[{name}]', "
                            f"or remove {name} from report_to")
    assert "\n" not in str(e.value)


def test_report_to_accepts_lists_comma_strings_and_none_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: object())  # all "installed"
    assert TrainConfig.from_dict({"report_to": "tensorboard, wandb,tensorboard"}).output.report_to == [
        "tensorboard", "wandb"]
    assert TrainConfig.from_dict({"report_to": "none"}).output.report_to == []
    assert TrainConfig().output.report_to == [] and TrainConfig().output.tracker_strict is False
    with pytest.raises(UserError, match="unknown tracker 'tensorbord': use any of tensorboard, mlflow, wandb, trackio"):
        TrainConfig.from_dict({"report_to": ["tensorbord"]})
    with pytest.raises(UserError, match="tracker_strict must be true or false"):
        TrainConfig.from_dict({"tracker_strict": "yes"})


def test_trackers_do_not_change_a_runs_config_hash(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: object())
    assert {"report_to", "tracker_strict"} <= set(DISPLAY_ONLY)
    plain = TrainConfig().cache_key("x", ())
    assert TrainConfig.from_dict({"report_to": "mlflow", "tracker_strict": True}).cache_key("x", ()) == plain


def test_rows_map_to_tracker_metrics():
    row = {"type": "train", "step": 3, "loss": 2.5, "lr": 1e-3, "grad_norm": 0.7, "clip_factor": None,
           "layer_grad_norms": {"3": {"A": 0.1, "B": 0.2}, "12": {"A": 0.3, "B": 0.4}}}
    assert tr.metrics_of(row) == {"loss": 2.5, "lr": 1e-3, "grad_norm": 0.7, "layer_grad_norms/layer_03/A": 0.1,
                                  "layer_grad_norms/layer_03/B": 0.2, "layer_grad_norms/layer_12/A": 0.3,
                                  "layer_grad_norms/layer_12/B": 0.4}
    assert tr.metrics_of({"type": "eval", "step": 0, "eval_loss": 2.0, "perplexity": 7.4, "cached": True}) == {
        "eval_loss": 2.0, "perplexity": 7.4}
    assert tr.metrics_of({"type": "eval_general", "step": 0, "eval_loss": 3.0}) == {"eval_general/eval_loss": 3.0}
    assert tr.flat_config({"targets": ["c_attn", "c_fc"], "budget": None, "lr": 1e-3}) == {
        "targets": '["c_attn", "c_fc"]', "budget": "null", "lr": 1e-3}
    assert tr.summary_metrics({"status": "completed", "eval_loss": 2.0, "perplexity": float("inf"),
                               "grad_norm": {"mean": 1.0}}) == {"summary/eval_loss": 2.0}


def test_no_report_to_writes_no_trackers_file(train_env, tmp_path):  # noqa: F811
    train(TrainConfig.from_dict(train_config(train_env, "gpt2", max_steps=1)), tmp_path / "run")
    assert not (tmp_path / "run" / "trackers.json").exists()
