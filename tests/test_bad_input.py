"""Bad input through the in-process CLI: every case exits with its code and one line that says
what is wrong; a finished run is never damaged; a sweep's exit code says how its runs ended."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from adaptive_lora.cli.main import main

from tiny_models import gpt2_config, save_config_only, save_tiny_model
from train_fixtures import alpaca_records

BASE = {"eval_size": 8, "max_length": 320, "r": 4, "epochs": 1, "batch_size": 4, "grad_accum": 1,
        "lora_dropout": 0.0, "precision": "fp32", "progress": False, "lr": 3e-3}


def _write(path: Path, obj) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    b = tmp_path_factory.mktemp("bad")
    llama = save_tiny_model(b / "llama", "llama")
    e = {"b": b, "llama": llama, "gpt2": save_tiny_model(b / "gpt2", "gpt2"), "afile": _write(b / "afile.txt", "x")}
    e["data"] = _write(b / "data.json", alpaca_records(24))
    notok = b / "notok"
    notok.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(llama / f, notok)
    badw = Path(shutil.copytree(llama, b / "badw"))
    _write(badw / "model.safetensors", "not safetensors")
    e.update(notok=notok, badw=badw, zero=save_config_only(b / "zero", gpt2_config(n_layer=0)))
    badf = save_config_only(b / "badf", gpt2_config())
    _write(badf / "config.json", {**json.loads((badf / "config.json").read_text()), "n_embd": "big"})
    e["badf"] = badf
    e["badjson"] = save_config_only(b / "badjson", gpt2_config())
    _write(e["badjson"] / "config.json", "{not json")
    recs = alpaca_records(24)
    for name, change in (("empty_out", {"output": ""}), ("blank_instr", {"instruction": "  \t"})):
        e[name] = _write(b / f"{name}.json", recs[:5] + [{**recs[5], **change}] + recs[6:])
    e["not_list"] = _write(b / "obj.json", {"instruction": "a"})
    e["bad_data_json"] = _write(b / "broken.json", "[{")
    plans = {"list": [], "norank": {"modules": [{"name": "model.layers.0.self_attn.q_proj"}]},
             "strrank": {"modules": [{"name": "model.layers.0.self_attn.q_proj", "rank": "8"}]},
             "negrank": {"modules": [{"name": "model.layers.0.self_attn.q_proj", "rank": -1}]},
             "empty": {"modules": []}, "foreign": {"modules": [{"name": "transformer.h.0.attn.c_attn", "rank": 4}]},
             "huge": {"modules": [{"name": "model.layers.0.self_attn.q_proj", "rank": 999}]}}
    for k, v in plans.items():
        e[f"plan_{k}"] = _write(b / f"plan_{k}.json", v)
    for k, text in (("intkeys", "1: 8\n"), ("nullkey", "null: 8\n"), ("badrx", "'q_proj(': 8\n"),
                    ("dupkey", "q_proj: 8\nq_proj: 4\n"), ("short", "[4, 4]\n"), ("neg", "q_proj: -2\n"),
                    ("big", "q_proj: 1000\n"), ("nomatch", "zzz_proj: 4\n"), ("notyaml", "a: [\n"), ("ok", "q_proj: 4\n")):
        e[f"custom_{k}"] = _write(b / f"custom_{k}.yaml", text)
    e["dup_cfg"] = _write(b / "dup.yaml", "lr: 0.1\nlr: 0.2\n")
    e["finished"] = _finished_run(b / "finished", llama, e["data"])
    return e


def _finished_run(out: Path, model: Path, data: Path) -> Path:
    out.mkdir()
    cfg = {**BASE, "model": str(model), "data": str(data)}
    _write(out / "summary.json", {"status": "completed", "run_id": "finished", "config": cfg})
    _write(out / "metrics.jsonl", "")
    (out / "adapter").mkdir()
    _write(out / "adapter" / "adapter_config.json", {"r": 4})
    return out


def _fmt(arg, e: dict, tmp: Path) -> str:
    return arg.format(**{k: str(v) for k, v in e.items()}, tmp=str(tmp))


def _train(*sets, out="{tmp}/o"):
    args = ["train", "--out", out, "--set", "model={llama}", "--set", "data={data}"]
    for k, v in BASE.items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    for s in sets:
        args += ["--set", s]
    return args


def _plan(*extra, model="{llama}"):
    return ["plan", "--model", model, *extra]


def _sweep_file(tmp: Path, e: dict, extra_top=None, **run) -> str:
    cfg = {"name": "bad", "defaults": {**BASE, "model": str(e["llama"]), "data": str(e["data"])},
           "runs": [{"name": "a", **run}], **(extra_top or {})}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _run(**run):
    return ("sweep", run, {}, ["--dry-run"])


def _top(**top):
    return ("sweep", {}, top, ["--dry-run"])


CASES = [
    # 3 structured input: custom maps, model configs, output paths, plan files, weights
    (_plan("--strategy", "custom", "--custom", "{custom_intkeys}"), 2, "key 1 is not a module-name pattern"),
    (_plan("--strategy", "custom", "--custom", "{custom_nullkey}"), 2, "key None is not a module-name pattern"),
    (_plan("--strategy", "custom", "--custom", "{custom_dupkey}"), 2, "given twice"),
    (_plan("--strategy", "custom", "--custom", "{custom_notyaml}"), 2, "is not valid YAML/JSON"),
    (_plan("--strategy", "custom", "--custom", "{custom_short}"), 2, "custom rank list has 2 entries"),
    (_plan("--strategy", "custom", "--custom", "{custom_neg}"), 2, "must be a non-negative integer"),
    (_plan("--strategy", "custom", "--custom", "{custom_nomatch}"), 2, "match no targeted module"),
    (_plan("--strategy", "custom", "--custom", "{tmp}"), 2, "is a folder"),
    (_plan("--strategy", "custom", "--custom", "{tmp}/nope.yaml"), 2, "does not exist"),
    (_plan("--strategy", "custom"), 2, "strategy 'custom' needs a rank map"),
    (_plan(model="{badf}"), 2, "cannot read the model config"),
    (_plan(model="{badjson}"), 2, "cannot read the model config"),
    (_plan(model="{afile}"), 2, "is a file"),
    (_plan(model="{tmp}/missing"), 2, "does not exist"),
    (_train(out="{afile}"), 2, "is a file: choose a folder"),
    (_train(out="{afile}/sub"), 2, "cannot be created"),
    (_train("plan_file={plan_list}"), 2, "holds a JSON list"),
    (_train("plan_file={plan_norank}"), 2, "needs a 'name' and a non-negative integer 'rank'"),
    (_train("plan_file={plan_strrank}"), 2, "non-negative integer 'rank'"),
    (_train("plan_file={plan_negrank}"), 2, "non-negative integer 'rank'"),
    (_train("plan_file={plan_foreign}"), 2, "does not fit this model"),
    (_train("plan_file={tmp}"), 2, "is a folder"),
    (_train("plan_file={tmp}/none.json"), 2, "does not exist"),
    (_train("model={badw}"), 2, "cannot load weights"),  # not safetensors: one line when the weights load
    # 4 nonsense accepted before
    (_plan("--r", "100000"), 2, "rank 100000, above its min(in, out)"),
    (_plan("--strategy", "custom", "--custom", "{custom_big}"), 2, "above its min(in, out) = 32"),
    (_train("plan_file={plan_huge}"), 2, "above its min(in, out)"),
    (_plan("--budget", "1e6"), 2, "largest possible adapter"),
    (_plan("--budget-like", "uniform:100"), 2, "largest possible adapter"),
    (_plan("--budget", "1e12"), 2, "largest possible adapter"),
    (_plan("--strategy", "linear_decay", "--r-base", "40"), 2, "r_base (40) is larger than r_max (32)"),
    (_plan("--strategy", "linear_decay", "--r-min", "20"), 2, "r_min (20) is larger than r_base"),
    (_plan("--custom", "{custom_ok}"), 2, "strategy 'uniform' ignores it"),
    (_plan("--targets", ""), 2, "targets is empty"),
    (_plan("--targets", ","), 2, "targets is empty"),
    (_plan("--targets", "nope"), 2, "match no module"),
    (_plan("--r", "0"), 2, "r must be a positive integer"),
    (_plan("--budget", "10"), 2, "below the minimum"),
    (["train", "--config", "{dup_cfg}"], 2, "given twice"),
    (_train("data={empty_out}"), 2, "field 'output' is empty"),
    (_train("data={blank_instr}"), 2, "field 'instruction' is empty"),
    (_train("custom={custom_ok}"), 2, "ignores it"),
    (_train("targets=nope"), 2, "match no module"),
    (_train("layer_lr=[1, 2]"), 2, "layer_lr has 2 multipliers but the model has 4 layers"),
    (_train("layer_lr={{9: 2.0}}"), 2, "layer_lr names layer 9"),
    (_train("budget=1e9"), 2, "largest possible adapter"),
    # 5 misleading messages
    (_train("model={notok}"), 2, "has no tokenizer files"),
    (_plan(model="{zero}"), 2, "has 0 layers"),
    (_plan("--budget", "-5"), 2, "must be a positive number"),
    (_plan("--budget", "abc"), 2, "is not a number"),
    (_plan("--strategy", "custom", "--custom", "{custom_badrx}"), 2, "missing ), unterminated subpattern at position 6"),
    (_train("data={tmp}"), 2, "is a folder"),
    (_train("data={not_list}"), 2, "must hold a JSON list"),
    (_train("data={bad_data_json}"), 2, "invalid JSON"),
    (_train("data={tmp}/none.json"), 2, "does not exist"),
    (["train", "--config", "{tmp}"], 2, "is a folder"),
    (["train", "--config", "{tmp}/none.yaml"], 2, "does not exist"),
    (_train("plan_file={plan_empty}"), 2, "lists no modules"),
    (_train("lr=abc"), 2, "lr must be a number"),
    (_plan("--r", "x"), 2, "invalid int value"),
    (["report", "{dup_cfg}"], 2, "is a file, not a results folder"),
    (["report", "{tmp}/nothing"], 2, "does not exist"),
    (["report", "{tmp}"], 2, "holds no run"),
    (["report", "{b}", "--out", "{afile}"], 2, "is a file: choose a folder"),
    (["report", "{b}", "--delta", "-1"], 2, "--delta must be a positive number"),
    (["report", "{b}", "--delta", "x"], 2, "is not a number"),
    (["report", "{b}", "--reference", " "], 2, "--reference is empty"),
    # 1 a finished run is not touched; 2 sweeps: dry runs check everything and name the run
    (_train(out="{finished}"), 2, "holds a finished run (completed): pass --overwrite"),
    (_run(data="{empty_out}"), 2, "run a-s0: {empty_out} record 5: field 'output' is empty"),
    (_run(targets="zzz"), 2, "run a-s0: targets zzz match no module"),
    (_run(layer_lr=[1.0]), 2, "run a-s0: layer_lr has 1 multipliers"),
    (_run(plan_file="{plan_foreign}"), 2, "run a-s0: plan_file"),
    (_run(strategy="custom", custom="{custom_intkeys}"), 2, "run a-s0: custom rank map key 1"),
    (_run(budget="1e9"), 2, "run a-s0: budget 1,000,000,000 (params) is above the largest possible"),
    (_run(model="{zero}"), 2, "run a-s0: the model config has 0 layers"),
    (_run(model="{notok}"), 2, "run a-s0: model folder"),
    (_run(strategy="gradient_sensitivity", budget_like="uniform:40"), 2, "(each module at min(r_max=32, min(in, out)))"),
    (_top(reference=""), 2, "'reference' must be a non-empty string"),
    (_top(delta=-1), 2, "'delta' must be a positive number"),
    (_top(delta="x"), 2, "'delta' must be a positive number"),
]


def _expand(case, e, tmp):
    args, code, fragment = case
    if isinstance(args, tuple):
        _, run, top, flags = args
        run = {k: _fmt(v, e, tmp) if isinstance(v, str) else v for k, v in run.items()}
        args = ["run", _sweep_file(tmp, e, top, **run), "--out", str(tmp / "res"), *flags]
    return [_fmt(a, e, tmp) for a in args], code, _fmt(fragment, e, tmp)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c[2][:30]}" for i, c in enumerate(CASES)])
def test_bad_input(env, tmp_path, capsys, case):
    args, code, fragment = _expand(case, env, tmp_path)
    got = main(args)
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert fragment in err and "\n" not in err and "Traceback" not in err, err


def test_at_least_sixty_cases():
    assert len(CASES) >= 60


# ----------------------------------------------------------------------------- folders kept intact


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_finished_run_folder_is_byte_identical(env, capsys):
    before = _digest(env["finished"])
    for args in (_train("data={empty_out}", out="{finished}"), _train(out="{finished}"),
                 _train("model={badw}", out="{finished}")):
        assert main([_fmt(a, env, env["b"]) for a in args]) == 2
    assert _digest(env["finished"]) == before
    capsys.readouterr()


def test_failed_train_is_labelled_failed_in_report(env, tmp_path, monkeypatch, capsys):
    from adaptive_lora.reports.collect import collect_runs
    from adaptive_lora.training import run as run_stage

    def boom(*a, **k):
        raise RuntimeError("out of something")

    monkeypatch.setattr(run_stage, "fit", boom)
    out = tmp_path / "res" / "r1"
    assert main([_fmt(a, env, tmp_path) for a in _train(out=str(out))]) == 1
    (run,) = collect_runs(tmp_path / "res")
    assert run.status == "failed" and "out of something" in run.get("error")
    assert main(["report", str(tmp_path / "res")]) == 0
    assert "failed" in (tmp_path / "res" / "results.md").read_text()
    capsys.readouterr()


# ----------------------------------------------------------------------------- sweep exit codes


def _real_sweep(tmp: Path, e: dict, runs: list) -> str:
    cfg = {"name": "codes", "defaults": {**BASE, "model": str(e["llama"]), "data": str(e["data"]), "max_train": 8},
           "runs": runs, "report": False}
    path = tmp / "codes.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_sweep_with_a_failed_run_exits_4(env, tmp_path, monkeypatch, capsys):
    from adaptive_lora.cli import run_cmd

    real = run_cmd.train_run

    def flaky(spec, run_dir, base_eval_cache=None):
        if spec.run_id.startswith("b"):
            raise RuntimeError("disk on fire")
        return real(spec, run_dir, base_eval_cache)

    monkeypatch.setattr(run_cmd, "train_run", flaky)
    sweep = _real_sweep(tmp_path, env, [{"name": "a"}, {"name": "b"}])
    assert main(["run", sweep, "--out", str(tmp_path / "res")]) == 4
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 completed" in last and "1 failed (b-s0)" in last


def test_sweep_with_a_diverged_run_exits_3(env, tmp_path, monkeypatch, capsys):
    from adaptive_lora.training import hooks

    monkeypatch.setattr(hooks, "after_backward", hooks.poison_one_gradient_at(1))
    sweep = _real_sweep(tmp_path, env, [{"name": "a"}])
    assert main(["run", sweep, "--out", str(tmp_path / "res")]) == 3
    assert "1 diverged (a-s0)" in capsys.readouterr().err.strip().splitlines()[-1]


def test_dry_run_shows_states_and_another_definition_is_refused(env, tmp_path, capsys):
    sweep = _real_sweep(tmp_path, env, [{"name": "a"}])
    out = tmp_path / "res"
    assert main(["run", sweep, "--out", str(out), "--dry-run"]) == 0
    assert " pending " in capsys.readouterr().out
    assert main(["run", sweep, "--out", str(out)]) == 0
    assert main(["run", sweep, "--out", str(out), "--dry-run"]) == 0
    assert " done " in capsys.readouterr().out
    assert main(["run", sweep, "--out", str(out), "--dry-run", "--set", "lr=0.5"]) == 0
    assert " stale " in capsys.readouterr().out
    other = _real_sweep(tmp_path, env, [{"name": "a"}, {"name": "renamed", "lr": 0.01}])
    assert main(["run", other, "--out", str(out)]) == 2
    assert "--add-to-existing" in capsys.readouterr().err
    assert main(["run", other, "--out", str(out), "--add-to-existing"]) == 0
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["run_id"] for r in runs] == ["a-s0", "renamed-s0"]
