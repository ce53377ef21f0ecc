"""Data-driven allocation: water-filling under an exact budget, and the gradient probe."""

from __future__ import annotations

import pytest
import torch

from adaptive_lora.data import PadCollator
from adaptive_lora.errors import UserError
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import StrategyParams, make_plan
from adaptive_lora.strategies.data_driven import water_fill
from adaptive_lora.training.probe import gradient_spectra

from tiny_models import build_model


@pytest.mark.parametrize(
    "gains, cost, budget, r_min, r_max, want",
    [
        # equal costs: ranks follow the gains; 60 = 6 rank steps of 10
        ({"a": [4, 4, 1], "b": [1, 1, 1]}, {"a": 10, "b": 10}, 60, 1, 4, {"a": 3, "b": 3}),
        # a is worth far more but capped at r_max; the 15 left cannot buy a step of b (30)
        ({"a": [100] * 8, "b": [1] * 8}, {"a": 10, "b": 30}, 125, 1, 8, {"a": 8, "b": 1}),
        # gain per parameter decides: b's step is worth 9/30 = 0.3 > a's 2/10 = 0.2
        ({"a": [5, 2, 2, 2], "b": [9, 9, 9, 9]}, {"a": 10, "b": 30}, 100, 1, 4, {"a": 1, "b": 3}),
        # r_min everywhere exactly exhausts the budget
        ({"a": [1], "b": [1]}, {"a": 10, "b": 30}, 80, 2, 8, {"a": 2, "b": 2}),
    ],
)
def test_water_fill_by_hand(gains, cost, budget, r_min, r_max, want):
    assert water_fill(gains, cost, budget, r_min, r_max) == want


def test_water_fill_infeasible():
    with pytest.raises(UserError, match="below r_min"):
        water_fill({"a": [1]}, {"a": 10, "b": 30}, 50, 2, 8)


def _spectra(layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m.name: sorted(torch.rand(16, generator=g).tolist(), reverse=True) for m in layout.modules}


@pytest.mark.parametrize("like", ["uniform:4", "uniform:8"])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_budget_met_and_bounds(family, like):
    layout = layout_from_model(build_model(family))
    params = StrategyParams(r_min=2, r_max=12, extra={"spectra": _spectra(layout)})
    plan = make_plan(layout, "gradient_sensitivity", params, budget_like=like)
    cheapest = min(m.in_features + m.out_features for m in plan.layout.modules if plan.ranks[m.name] < 12)
    assert 0 <= plan.budget_target - plan.trainable_params < cheapest
    assert all(2 <= r <= 12 for r in plan.ranks.values())
    again = make_plan(layout, "gradient_sensitivity", params, budget_like=like)
    assert again.ranks == plan.ranks  # deterministic


def _examples(n=16, length=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, 250, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * 8 + ids[8:]})
    return out


def _probe(model, layout):
    return gradient_spectra(model, layout, _examples(), PadCollator(0), batch_size=4, n_batches=2, seed=0,
                            device=torch.device("cpu"), amp=None, max_rank=16)


def test_probe_deterministic_and_costed():
    model = build_model("llama")
    layout = layout_from_model(model)
    s1, info = _probe(model, layout)
    s2, _ = _probe(build_model("llama"), layout)
    assert s1 == s2
    assert set(s1) == {m.name for m in layout.modules}
    assert info["batches"] == 2 and info["time_s"] > 0 and info["peak_memory_mb"] > 0
    assert all(v == sorted(v, reverse=True) for v in s1.values())
    assert not any(p.requires_grad for p in model.parameters())  # the probe leaves the model frozen


def test_larger_gradient_gets_more_rank():
    layout = layout_from_model(build_model("llama"))
    target = "model.layers.1.mlp.up_proj"

    def plan_for(model):
        spectra, _ = _probe(model, layout)
        params = StrategyParams(r_min=1, r_max=16, extra={"spectra": spectra})
        return make_plan(layout, "gradient_sensitivity", params, budget_like="uniform:4")

    base = plan_for(build_model("llama"))
    boosted_model = build_model("llama")
    # Scaling a module's output by 10 scales dL/dW of that module by 10 (dL/dW = x^T (10 delta)).
    boosted_model.get_submodule(target).register_forward_hook(lambda mod, inp, out: out * 10)
    boosted = plan_for(boosted_model)
    assert boosted.ranks[target] > base.ranks[target]
    assert boosted.ranks[target] == max(boosted.ranks.values())


@pytest.mark.parametrize("strategy", ["gradient_sensitivity", "eva", "adalora_derived"])
def test_data_driven_run_end_to_end(tmp_path, strategy):
    """Each data-driven strategy trains through the CLI, reports its probe, meets its budget,
    and a second run reuses the cached probe instead of measuring again."""
    import json

    from adaptive_lora.cli.main import main as cli_main

    from tiny_models import save_tiny_model

    model = save_tiny_model(tmp_path / "m", "llama")
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"Say {w} twice.", "input": "", "output": f"{w} {w}"}
                                for w in ["red", "green", "blue", "cyan", "pink", "gold", "gray", "teal"] * 3]))
    common = [f"model={model}", f"data={data}", "eval_size=4", "max_length=320", "batch_size=4", "grad_accum=1",
              "epochs=2", "progress=false", "precision=fp32", f"strategy={strategy}", "r=4", "r_min=1",
              "r_max=8", "probe_batches=2", "eva_examples=16", "eva_tau=0.9", "budget_like=uniform:4",
              f"plan_cache={tmp_path / 'plans'}"]
    for i in range(2):
        code = cli_main(["train", "--out", str(tmp_path / f"run{i}"), *[x for c in common for x in ("--set", c)],
                         "--set", f"seed={i}"])
        assert code == 0
    s0 = json.loads((tmp_path / "run0" / "summary.json").read_text())
    s1 = json.loads((tmp_path / "run1" / "summary.json").read_text())
    assert s0["probe"]["cached"] is False and s0["probe"]["time_s"] > 0
    assert s1["probe"]["cached"] is True
    assert s0["plan"]["modules"] == s1["plan"]["modules"]  # same plan for every seed
    target = 4 * 7 * 4 * 0 + s0["plan"]["budget_target"]
    cheapest = min(m["params"] // m["rank"] for m in s0["plan"]["modules"] if m["rank"])
    assert 0 <= target - s0["trainable_params"] < cheapest
