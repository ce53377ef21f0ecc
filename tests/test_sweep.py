"""Sweeps: override parsing, YAML expansion, resumable execution, the folder lock, a kill test.

No torch here: every test passes a fake training function.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adaptive_lora._io import atomic_write_json, read_json
from adaptive_lora.errors import UserError
from adaptive_lora.experiments import (
    RunSpec,
    apply_overrides,
    config_hash,
    load_sweep,
    parse_overrides,
    run_sweep,
)

HERE = Path(__file__).resolve().parent


def write_sweep(tmp_path: Path, data: dict | str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def base_sweep(**extra) -> dict:
    data = {"name": "t", "runs": [{"name": "a", "strategy": "uniform"}]}
    data.update(extra)
    return data


class FakeTrainer:
    """Records its calls; ``behaviour[run_id]`` picks completed / diverged / raise / interrupt."""

    def __init__(self, behaviour: dict[str, str] | None = None):
        self.behaviour = behaviour or {}
        self.calls: list[str] = []

    def __call__(self, spec, run_dir: Path) -> dict:
        run_id, config = spec.run_id, spec.config
        self.calls.append(run_id)
        what = self.behaviour.get(run_id, "completed")
        (run_dir / "metrics.jsonl").write_text('{"type": "train", "step": 0}\n')
        if what == "raise":
            raise ValueError("boom\nsecond line")
        if what == "interrupt":
            raise KeyboardInterrupt
        summary = {"status": what, "run_id": run_id, "group": spec.group, "seed": config["seed"]}
        atomic_write_json(run_dir / "summary.json", summary)
        return summary


# ----------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    "pairs, expected",
    [
        (["lr=1e-4"], {"lr": 1e-4}),  # YAML 1.1 would read this as a string
        (["r=8"], {"r": 8}),
        (["lr=0.5"], {"lr": 0.5}),
        (["bf16=true"], {"bf16": True}),
        (["name=foo"], {"name": "foo"}),
        (["name='8'"], {"name": "8"}),
        (["x=null"], {"x": None}),
        (["x="], {"x": None}),
        (["targets=[q_proj,v_proj]"], {"targets": ["q_proj", "v_proj"]}),
        (["strategy_params.r=8"], {"strategy_params": {"r": 8}}),
        (["a.b=1", "a.c=2"], {"a": {"b": 1, "c": 2}}),
        (["a.b.c=x"], {"a": {"b": {"c": "x"}}}),
        (["r=8", "r=16"], {"r": 16}),
        (["a.b=1", "a={c: 2}"], {"a": {"c": 2}}),
        (["msg=a=b"], {"msg": "a=b"}),
        ([" lr = 1e-4"], {"lr": 1e-4}),
        ([], {}),
    ],
)
def test_parse_overrides(pairs, expected):
    got = parse_overrides(pairs)
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    "pairs, needle",
    [
        (["lr"], "'lr' has no '='"),
        (["=3"], "empty key"),
        (["a..b=1"], "empty key"),
        (["a=1", "a.b=2"], "conflicts with an earlier --set a=1"),
        (["x=[1,"], "--set x: cannot read the value"),
    ],
)
def test_parse_overrides_errors(pairs, needle):
    with pytest.raises(UserError, match=None) as e:
        parse_overrides(pairs)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "base, over, expected",
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # lists replace, never concatenate
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({}, {}, {}),
    ],
)
def test_apply_overrides(base, over, expected):
    before = json.dumps([base, over])
    assert apply_overrides(base, over) == expected
    assert json.dumps([base, over]) == before  # inputs untouched


def test_apply_overrides_returns_independent_copy():
    base = {"a": {"x": [1]}}
    out = apply_overrides(base, {})
    out["a"]["x"].append(2)
    assert base == {"a": {"x": [1]}}


# ----------------------------------------------------------------------------- expansion


@pytest.mark.parametrize(
    "extra, n, first_ids, last_group",
    [
        ({}, 1, ["a-s0"], "a"),
        ({"seeds": [0, 1, 2]}, 3, ["a-s0", "a-s1", "a-s2"], "a"),
        (
            {"budgets": [{"label": "r8", "like": "uniform:8"}, {"label": "b3m", "params": 3000000}]},
            2,
            ["a@r8-s0", "a@b3m-s0"],
            "a@b3m",
        ),
        ({"variants": {"paper": {}, "stab": {"clip": "adaptive"}}}, 2, ["a+paper-s0", "a+stab-s0"], "a+stab"),
        (
            {
                "seeds": [0, 1, 2],
                "budgets": [{"label": "r8", "like": "uniform:8"}, {"label": "b3m", "params": 3e6}],
                "variants": {"paper": {}, "stab": {}},
                "runs": [{"name": "a"}, {"name": "linear_decay"}],
            },
            24,
            ["a@r8+paper-s0", "a@r8+paper-s1", "a@r8+paper-s2", "a@r8+stab-s0"],
            "linear_decay@b3m+stab",
        ),
        ({"runs": [{"name": "my run/1"}]}, 1, ["my_run_1-s0"], "my run/1"),
        ({"runs": [{"name": ".hidden"}]}, 1, ["_hidden-s0"], ".hidden"),
    ],
)
def test_expansion(tmp_path, extra, n, first_ids, last_group):
    sweep = load_sweep(write_sweep(tmp_path, base_sweep(**extra)))
    ids = [s.run_id for s in sweep.specs]
    assert len(ids) == n == len(set(ids))
    assert ids[: len(first_ids)] == first_ids
    assert sweep.specs[-1].group == last_group
    for spec in sweep.specs:
        # The seed trains; run id, group, variant and budget label are bookkeeping beside the config.
        assert spec.config["seed"] == spec.seed
        assert not {"run_id", "group", "variant", "budget_label"} & set(spec.config)
        assert spec.run_id == spec.run_id.replace("/", "_")


def test_expansion_order_and_fields(tmp_path):
    sweep = load_sweep(
        write_sweep(
            tmp_path,
            base_sweep(
                seeds=[3, 4],
                budgets=[{"label": "r8", "like": "uniform:8"}, {"label": "b3m", "params": 3000000}],
                variants={"paper": {}, "stabilized": {"alpha_policy": "rslora"}},
                runs=[{"name": "uniform-r8", "strategy": "uniform", "r": 8}, {"name": "linear_decay"}],
            ),
        )
    )
    # runs x budgets x variants x seeds, seeds innermost
    key = [(s.group.split("@")[0], s.budget_label, s.variant, s.seed) for s in sweep.specs]
    assert key == [
        (r, b, v, s)
        for r in ("uniform-r8", "linear_decay")
        for b in ("r8", "b3m")
        for v in ("paper", "stabilized")
        for s in (3, 4)
    ]
    spec = next(s for s in sweep.specs if s.run_id == "linear_decay@r8+stabilized-s4")
    assert spec.group == "linear_decay@r8+stabilized"
    assert spec.config["budget_like"] == "uniform:8" and spec.budget_label == "r8"
    assert "budget" not in spec.config and "name" not in spec.config
    assert spec.config["alpha_policy"] == "rslora"
    spec = next(s for s in sweep.specs if s.run_id == "uniform-r8@b3m+paper-s3")
    assert spec.config["budget"] == 3000000 and "budget_like" not in spec.config
    assert "alpha_policy" not in spec.config and spec.config["r"] == 8


# Which layers set "lr" (and a nested field) -> which value wins.
@pytest.mark.parametrize(
    "layers, expected",
    [
        ({"defaults"}, "defaults"),
        ({"defaults", "run"}, "run"),
        ({"defaults", "run", "variant"}, "variant"),
        ({"defaults", "run", "variant", "cli"}, "cli"),
        ({"defaults", "cli"}, "cli"),
        ({"run", "variant"}, "variant"),
    ],
)
def test_merge_order(tmp_path, layers, expected):
    data = base_sweep(variants={"v": {}})
    if "defaults" in layers:
        data["defaults"] = {"lr": "defaults", "opt": {"beta": "defaults", "keep": 1}}
    if "run" in layers:
        data["runs"][0].update({"lr": "run", "opt": {"beta": "run"}})
    if "variant" in layers:
        data["variants"]["v"] = {"lr": "variant", "opt": {"beta": "variant"}}
    cli = {"lr": "cli", "opt": {"beta": "cli"}} if "cli" in layers else None
    (spec,) = load_sweep(write_sweep(tmp_path, data), overrides=cli).specs
    assert spec.config["lr"] == expected
    assert spec.config["opt"]["beta"] == expected
    if "defaults" in layers:  # deep merge keeps sibling fields of a nested mapping
        assert spec.config["opt"]["keep"] == 1


def test_budget_overrides_run_and_defaults_keys(tmp_path):
    data = base_sweep(
        defaults={"budget_like": "uniform:16", "lr": 1e-4},
        budgets=[{"label": "r8", "like": "uniform:8"}],
    )
    (spec,) = load_sweep(write_sweep(tmp_path, data)).specs
    assert spec.config["budget_like"] == "uniform:8" and spec.budget_label == "r8"
    assert spec.config["lr"] == 1e-4 and isinstance(spec.config["lr"], float)
    data["defaults"]["budget_label"] = "x"  # bookkeeping the sweep sets itself
    with pytest.raises(UserError, match="'budget_label' cannot be set in 'defaults'"):
        load_sweep(write_sweep(tmp_path, data))


def test_sweep_settings_and_defaults(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, base_sweep()))
    assert (sweep.name, sweep.out, sweep.compare_to_paper, sweep.report) == ("t", "results/t", False, True)
    assert sweep.source == base_sweep()
    sweep = load_sweep(write_sweep(tmp_path, base_sweep(out="x/y", compare_to_paper=True, report=False)))
    assert (sweep.out, sweep.compare_to_paper, sweep.report) == ("x/y", True, False)


@pytest.mark.parametrize(
    "data, needles",
    [
        (base_sweep(extra=1), ["unknown key 'extra'", "sweep.yaml"]),
        (base_sweep(seed=[0]), ["unknown key 'seed'"]),
        ({"runs": [{"name": "a"}]}, ["missing required key 'name'"]),
        ({"name": "t"}, ["missing required key 'runs'"]),
        (base_sweep(runs=[]), ["'runs' must be a non-empty list"]),
        (base_sweep(runs=[{"strategy": "uniform"}]), ["runs[0].name"]),
        (base_sweep(runs=[{"name": "a"}, {"name": "a"}]), ["two runs are named 'a'"]),
        (base_sweep(runs=[{"name": "a", "seed": 1}]), ["'seed' cannot be set in run 'a'"]),
        (base_sweep(runs=["a"]), ["'runs[0]' must be a mapping"]),
        (base_sweep(defaults={"run_id": "x"}), ["'run_id' cannot be set in 'defaults'"]),
        (base_sweep(defaults=[1]), ["'defaults' must be a mapping"]),
        (base_sweep(seeds=0), ["'seeds' must be a non-empty list"]),
        (base_sweep(seeds=["a"]), ["'seeds' must hold integers"]),
        (base_sweep(seeds=[1, 1]), ["lists a seed twice"]),
        (base_sweep(compare_to_paper="yes please"), ["'compare_to_paper' must be true or false"]),
        (base_sweep(report=1), ["'report' must be true or false"]),
        (base_sweep(out=5), ["'out' must be a folder path"]),
        (base_sweep(name=""), ["'name' must be a non-empty string"]),
        (base_sweep(budgets=[{"label": "r8", "like": "uniform:8", "size": 1}]), ["unknown key 'size' in budgets[0]"]),
        (base_sweep(budgets=[{"label": "r8", "like": "uniform:8", "params": 5}]), ["exactly one of 'like'"]),
        (base_sweep(budgets=[{"label": "r8"}]), ["exactly one of 'like'"]),
        (base_sweep(budgets=[{"like": "uniform:8"}]), ["budgets[0].label"]),
        (base_sweep(budgets=[{"label": "r8", "like": "uniform"}]), ["budgets[0].like must look like '<strategy>:<r>'"]),
        (base_sweep(budgets=[{"label": "r8", "like": "uniform:0"}]), ["budgets[0].like"]),
        (base_sweep(budgets=[{"label": "b", "params": -5}]), ["budgets[0].params must be a positive integer"]),
        (base_sweep(budgets=[{"label": "b", "params": "3M"}]), ["budgets[0].params"]),
        (base_sweep(budgets=[{"label": "b", "params": 1.5}]), ["budgets[0].params"]),
        (base_sweep(budgets=[{"label": "b", "params": 5}, {"label": "b", "params": 6}]), ["two budgets have the label 'b'"]),
        (base_sweep(budgets=[]), ["'budgets' must be a non-empty list"]),
        (base_sweep(variants={}), ["'variants' is empty"]),
        (base_sweep(variants=["paper"]), ["'variants' must be a mapping"]),
        (base_sweep(variants={"v": [1]}), ["'variants.v' must be a mapping"]),
        (base_sweep(variants={"v": {"seed": 1}}), ["'seed' cannot be set in 'variants.v'"]),
        (base_sweep(runs=[{"name": "a/b"}, {"name": "a_b"}]), ["both map to the folder name 'a_b-s0'"]),
        ("name: [unclosed\n", ["not valid YAML at line"]),
        ("- just\n- a list\n", ["must be a YAML mapping"]),
    ],
)
def test_bad_sweep_files(tmp_path, data, needles):
    path = write_sweep(tmp_path, data)
    with pytest.raises(UserError) as e:
        load_sweep(path)
    msg = str(e.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg
    assert str(path) in msg


@pytest.mark.parametrize(
    "overrides, needle",
    [({"seed": 1}, "--set seed is not allowed"), ({"run_id": "x"}, "--set run_id is not allowed")],
)
def test_identity_overrides_refused(tmp_path, overrides, needle):
    with pytest.raises(UserError, match=needle.replace("-", r"\-")):
        load_sweep(write_sweep(tmp_path, base_sweep()), overrides=overrides)


def test_missing_sweep_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")


def test_validate_is_applied_and_errors_carry_run_id(tmp_path):
    data = base_sweep(seeds=[0, 1], runs=[{"name": "good", "r": 8}, {"name": "bad", "r": "eight"}])

    def validate(cfg: dict) -> dict:
        if not isinstance(cfg.get("r"), int):
            raise UserError(f"'r' must be an integer, got {cfg.get('r')!r}")
        return {**cfg, "resolved": True}

    with pytest.raises(UserError) as e:
        load_sweep(write_sweep(tmp_path, data), validate=validate)
    assert str(e.value).startswith("bad-s0: 'r' must be an integer")

    data["runs"] = data["runs"][:1]
    sweep = load_sweep(write_sweep(tmp_path, data), validate=validate)
    assert all(s.config["resolved"] for s in sweep.specs)


def test_runspec_post_init():
    with pytest.raises(ValueError):
        RunSpec(run_id="a/b", group="a", seed=0, budget_label=None, variant=None, config={})
    with pytest.raises(ValueError):
        RunSpec(run_id="a", group="a", seed=True, budget_label=None, variant=None, config={})


def test_config_hash_is_canonical():
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 1.5})
    assert config_hash({"x": float("nan")}) == config_hash({"x": float("nan")})


# ----------------------------------------------------------------------------- runner


def load(tmp_path: Path, overrides: dict | None = None, **extra):
    return load_sweep(write_sweep(tmp_path, base_sweep(**extra)), overrides=overrides)


def test_run_sweep_writes_sweep_json_and_spec(tmp_path, capsys):
    sweep = load(tmp_path, seeds=[0, 1], variants={"v": {}})
    out = tmp_path / "out"
    trainer = FakeTrainer()
    res = run_sweep(sweep, out, trainer)
    assert trainer.calls == ["a+v-s0", "a+v-s1"]
    assert res.ran == trainer.calls and res.skipped == []
    assert res.statuses == {"a+v-s0": "completed", "a+v-s1": "completed"}
    meta = read_json(out / "sweep.json")
    assert meta["name"] == "t" and meta["compare_to_paper"] is False and "time" in meta
    assert meta["source"] == sweep.source
    assert meta["runs"][1] == {
        "run_id": "a+v-s1", "group": "a+v", "seed": 1, "budget_label": None, "variant": "v",
        "config_hash": sweep.specs[1].config_hash,
    }
    spec = read_json(out / "a+v-s0" / "spec.json")
    assert spec["config"] == sweep.specs[0].config
    assert spec["config_hash"] == config_hash(sweep.specs[0].config)
    err = capsys.readouterr().err
    assert "[run 1/2] a+v-s0 ..." in err and "[run 2/2] a+v-s1 completed" in err

    res = run_sweep(sweep, out, trainer)
    assert res.ran == [] and res.skipped == ["a+v-s0", "a+v-s1"]
    assert "[run 1/2] a+v-s0 skipped (completed)" in capsys.readouterr().err


def test_resume_skips_finished_and_redoes_interrupted_and_failed(tmp_path):
    sweep = load(tmp_path, runs=[{"name": n} for n in ("done", "div", "fail", "cut", "never")])
    out = tmp_path / "out"
    first = FakeTrainer({"done-s0": "completed", "div-s0": "diverged", "fail-s0": "raise", "cut-s0": "interrupt"})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, out, first, progress=False)
    assert first.calls == ["done-s0", "div-s0", "fail-s0", "cut-s0"]
    assert not (out / "cut-s0" / "summary.json").exists()
    (out / "cut-s0" / "partial.bin").write_bytes(b"half")  # left behind by the killed run

    kept = {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for run in ("done-s0", "div-s0")
        for p in (out / run).iterdir()
    }
    second = FakeTrainer()
    res = run_sweep(sweep, out, second, progress=False)
    assert second.calls == ["fail-s0", "cut-s0", "never-s0"]
    assert res.ran == second.calls and res.skipped == ["done-s0", "div-s0"]
    assert res.statuses == {
        "done-s0": "completed", "div-s0": "diverged", "fail-s0": "completed",
        "cut-s0": "completed", "never-s0": "completed",
    }
    assert not (out / "cut-s0" / "partial.bin").exists()  # redone from an empty folder
    assert not (out / "fail-s0" / "error.log").exists()
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in kept} == kept


def test_failing_train_fn_writes_failed_summary_and_continues(tmp_path, capsys):
    sweep = load(
        tmp_path,
        runs=[{"name": "x", "strategy": "uniform"}, {"name": "y"}],
        budgets=[{"label": "r8", "like": "uniform:8"}],
        variants={"v": {}},
    )
    out = tmp_path / "out"
    trainer = FakeTrainer({"x@r8+v-s0": "raise"})
    res = run_sweep(sweep, out, trainer)
    assert trainer.calls == ["x@r8+v-s0", "y@r8+v-s0"]
    assert res.statuses == {"x@r8+v-s0": "failed", "y@r8+v-s0": "completed"}
    summary = read_json(out / "x@r8+v-s0" / "summary.json")
    assert summary["status"] == "failed"
    assert summary["error"] == "ValueError: boom second line"
    assert {k: summary[k] for k in ("run_id", "group", "seed", "budget_label", "variant", "strategy")} == {
        "run_id": "x@r8+v-s0", "group": "x@r8+v", "seed": 0, "budget_label": "r8", "variant": "v",
        "strategy": "uniform",
    }
    assert "Traceback" in (out / "x@r8+v-s0" / "error.log").read_text()
    assert "[run 1/2] x@r8+v-s0 failed" in capsys.readouterr().err


def test_train_fn_that_only_returns_a_summary(tmp_path):
    sweep = load(tmp_path, runs=[{"name": "a"}, {"name": "b"}])
    out = tmp_path / "out"

    def train_fn(spec, run_dir):
        return {"status": "completed"} if spec.run_id == "a-s0" else None

    res = run_sweep(sweep, out, train_fn, progress=False)
    assert res.statuses == {"a-s0": "completed", "b-s0": "failed"}
    assert read_json(out / "a-s0" / "summary.json") == {"status": "completed"}
    assert "without writing summary.json" in read_json(out / "b-s0" / "summary.json")["error"]


@pytest.mark.parametrize("finished_status", ["completed", "diverged"])
def test_config_change_is_refused_before_training(tmp_path, finished_status):
    out = tmp_path / "out"
    data = dict(runs=[{"name": "a"}, {"name": "b"}], defaults={"lr": 1e-4, "opt": {"beta": 0.9}})
    run_sweep(load(tmp_path, **data), out, FakeTrainer({"b-s0": finished_status}), progress=False)
    before = (out / "sweep.json").read_bytes()

    trainer = FakeTrainer()
    for overrides in ({"lr": 2e-4}, {"opt": {"beta": 0.95}}, {"new_key": 1}):
        with pytest.raises(UserError) as e:
            run_sweep(load(tmp_path, overrides=overrides, **data), out, trainer, progress=False)
        msg = str(e.value)
        assert msg.startswith(f"run a-s0 (and 1 other run) in '{out}' was finished with a different config")
        assert msg.endswith("use another --out or delete that run folder")
        assert next(iter(overrides)) in msg  # the diff names the changed key
    assert trainer.calls == []
    assert (out / "sweep.json").read_bytes() == before  # a refused sweep changes nothing

    # The same config is accepted again, whatever the key order in the file.
    data["defaults"] = {"opt": {"beta": 0.9}, "lr": 1e-4}
    res = run_sweep(load(tmp_path, **data), out, trainer, progress=False)
    assert res.skipped == ["a-s0", "b-s0"]


def test_config_change_of_a_failed_run_is_redone(tmp_path):
    out = tmp_path / "out"
    run_sweep(load(tmp_path, defaults={"lr": 1}), out, FakeTrainer({"a-s0": "raise"}), progress=False)
    trainer = FakeTrainer()
    res = run_sweep(load(tmp_path, defaults={"lr": 2}), out, trainer, progress=False)
    assert trainer.calls == ["a-s0"] and res.statuses == {"a-s0": "completed"}
    assert read_json(out / "a-s0" / "spec.json")["config"]["lr"] == 2


def test_finished_run_without_spec_json_is_refused(tmp_path):
    out = tmp_path / "out"
    run_sweep(load(tmp_path), out, FakeTrainer(), progress=False)
    (out / "a-s0" / "spec.json").unlink()
    with pytest.raises(UserError, match="no readable spec.json"):
        run_sweep(load(tmp_path), out, FakeTrainer(), progress=False)


def test_lock_refuses_a_second_sweep(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # flock locks belong to an open file description: a second open() in this process conflicts
    # just like another process would.
    with open(out / ".lock", "a+") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242\n")
        holder.flush()
        trainer = FakeTrainer()
        with pytest.raises(UserError) as e:
            run_sweep(load(tmp_path), out, trainer, progress=False)
        assert str(e.value) == (
            f"results folder '{out}' is in use by another 'adaptive-lora run' (pid 4242); "
            "wait for it to finish or choose another --out"
        )
        assert trainer.calls == [] and not (out / "sweep.json").exists()
    # Released holder: the sweep runs, records its pid, and releases the lock when done.
    run_sweep(load(tmp_path), out, FakeTrainer(), progress=False)
    assert (out / ".lock").read_text().strip() == str(os.getpid())
    with open(out / ".lock", "a+") as again:
        fcntl.flock(again.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_lock_is_released_on_error(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load(tmp_path), out, FakeTrainer({"a-s0": "interrupt"}), progress=False)
    with open(out / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        run_sweep(load(tmp_path), tmp_path / "f", FakeTrainer(), progress=False)


# ----------------------------------------------------------------------------- kill test


def _poll(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_sigkill_mid_sweep_then_resume(tmp_path):
    """SIGKILL during run 2, rerun: every run completes once and run 1's files stay byte-identical."""
    path = write_sweep(
        tmp_path,
        {
            "name": "kill",
            "seeds": [0, 1, 2],
            "defaults": {"steps": 8, "step_s": 0.1},
            "runs": [{"name": "r"}],
        },
    )
    out = tmp_path / "out"
    cmd = [sys.executable, str(HERE / "_fake_sweep.py"), str(path), str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Run 2's metrics exist only once run 1 has finished and run 2 is training.
        _poll(lambda: (out / "r-s1" / "metrics.jsonl").exists(), 20, "run 2 to start")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    run2_finished_before_kill = (out / "r-s1" / "summary.json").exists()
    run1 = {p.name: p.read_bytes() for p in (out / "r-s0").iterdir()}
    assert json.loads(run1["summary.json"])["status"] == "completed"

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0, second.stderr

    assert {p.name: p.read_bytes() for p in (out / "r-s0").iterdir()} == run1
    calls = (out / "calls.log").read_text().splitlines()
    calls = [" ".join(c.split()[:2]) for c in calls]  # drop the pids
    for run_id in ("r-s0", "r-s1", "r-s2"):
        assert calls.count(f"done {run_id}") == 1, calls
        assert read_json(out / run_id / "summary.json")["status"] == "completed"
    assert calls.count("start r-s0") == 1
    assert calls.count("start r-s1") == (1 if run2_finished_before_kill else 2)
    assert calls.count("start r-s2") == 1
    # The redone run started from an empty folder: one metrics line per step, not more.
    assert len((out / "r-s1" / "metrics.jsonl").read_text().splitlines()) == 8
