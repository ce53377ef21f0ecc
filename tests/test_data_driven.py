"""Data-driven allocation: water-filling under an exact budget, and the gradient probe."""

from __future__ import annotations

import pytest
import torch

from adaptive_lora.data import PadCollator
from adaptive_lora.errors import UserError
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import StrategyParams, make_plan
from adaptive_lora.strategies.data_driven import water_fill
from adaptive_lora.training import TrainConfig
from adaptive_lora.training.config import DISPLAY_ONLY, KEY_GROUP
from adaptive_lora.training.prepare import TrainData
from adaptive_lora.training.probe import NEVER_READ, PROBES, ProbeContext, gradient_spectra
from adaptive_lora.training.session import Session

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
    cfg = TrainConfig.from_dict({"probe_batches": 2, "probe_batch_size": 4, "r_max": 16, "precision": "fp32"})
    session = Session(acc=None, device=torch.device("cpu"), world=1, rank=0, main=True, amp=None)
    data = TrainData(_examples(), [], [], PadCollator(0), None, [], [], {})
    extra, info = gradient_spectra(ProbeContext(cfg, session, data, model, layout, layout, None))
    return extra["spectra"], info


def test_probe_deterministic_and_costed():
    model = build_model("llama")
    layout = layout_from_model(model)
    s1, info = _probe(model, layout)
    s2, _ = _probe(build_model("llama"), layout)
    assert s1 == s2
    assert set(s1) == {m.name for m in layout.modules}
    assert info["batches"] == 2 and info["time_s"] > 0 and info["peak_host_rss_mb"] > 0  # a CPU: host RSS, named so
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


# A valid value different from the default for every config key: the cache-key tests change one
# key at a time and check whether the key of each cache changes.
ALTERNATIVE = {
    "model": "other-model", "data": "other.json", "eval_size": 7, "max_train": 9, "max_eval": 3, "data_seed": 5,
    "data_format": "messages", "data_cache": False,
    "max_length": 64, "train_on": "all", "skip_bad_records": True, "dtype": "bf16", "attn_implementation": "eager",
    "device_map": "cpu", "low_cpu_mem_usage": False, "trust_remote_code": True, "revision": "v1.0",
    "gradient_checkpointing": True,
    "quantization": {"bits": 8, "type": "fp4", "double_quant": False, "compute_dtype": "fp16"}, "method": "adalora", "strategy": "linear_decay",
    "targets": ["q_proj"], "budget": 1000, "budget_like": "uniform:16", "plan_file": "p.json", "r": 6, "r_base": 12,
    "r_min": 2, "r_max": 20, "rounding": "ceil", "custom": [4, 4], "probe_batches": 3, "probe_batch_size": 2, "probe_method": "exact",
    "probe_power_iters": 2,
    "eva_rho": 3.0, "eva_tau": 0.9, "eva_examples": 8, "probe_steps": 5, "plan_cache": "elsewhere",
    "spectrum_tail": 0.25, "spectrum_power": 1.0, "svd_probe_r": 16,
    "alpha_policy": "rslora", "lora_alpha": 16.0, "alpha_ratio": 1.0, "lora_dropout": 0.0, "gora_init": True, "gora_init_gamma": 0.05, "pe_capacity": 3.0, "pe_interval": 5, "pe_moves": 4, "pe_warmup": 2, "pe_freeze": 3, "pe_beta": 0.5, "lr": 1e-3, "epochs": 2,
    "max_steps": 7, "batch_size": 4, "grad_accum": 2, "weight_decay": 0.1, "adam_beta1": 0.8, "adam_beta2": 0.99,
    "lr_schedule": "cosine", "precision": "bf16", "seed": 3, "group_by_length": False, "max_tokens": 512,
    "cast_cache": False, "fast_dropout": True, "cpu_attention": False, "fused_lora": False, "keep_memory": False,
    "warmup_steps": 2,
    "warmup_ratio": 0.1, "clip": "fixed", "clip_norm": 0.5, "clip_factor": 3.0, "clip_beta": 0.5,
    "lr_rank_power": 0.5, "lr_rank_ref": 8, "layer_lr": [1.0, 2.0], "loraplus_ratio": 4.0, "eval_every": 2,
    "eval_subset": 4, "forgetting": False, "forgetting_passages": 8, "eval_batch_size": 4, "generate_samples": 1, "max_new_tokens": 8, "loss_spike": 10.0, "adalora_init_r": 16,
    "adalora_target_r": 4, "adalora_tinit": 1, "adalora_tfinal": 2, "adalora_delta_t": 2, "output_dir": "x",
    "progress": False, "report_to": ["tensorboard"], "tracker_strict": True,
    "checkpoint_every": 3, "keep_checkpoints": True,
}


def test_alternatives_cover_every_key():
    assert set(ALTERNATIVE) == set(KEY_GROUP)
    for key, value in ALTERNATIVE.items():
        assert TrainConfig.from_dict({key: value}).to_dict()[key] == value


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_probe_cache_key_changes_with_every_key_it_may_read(probe):
    """Whole config minus an explicit list: a key not on the list always changes the key."""
    ignored = set(NEVER_READ) | set(PROBES[probe].ignore) | set(DISPLAY_ONLY)
    base = TrainConfig().cache_key(probe, NEVER_READ + PROBES[probe].ignore)
    for key, value in ALTERNATIVE.items():
        changed = TrainConfig.from_dict({key: value}).cache_key(probe, NEVER_READ + PROBES[probe].ignore)
        assert (changed == base) == (key in ignored), key


def test_adalora_probe_key_sees_its_schedule_and_alpha():
    # The two keys the old hand-picked list forgot.
    key = PROBES["adalora_ranks"].ignore + NEVER_READ
    base = TrainConfig().cache_key("adalora_ranks", key)
    assert TrainConfig.from_dict({"adalora_tfinal": 3}).cache_key("adalora_ranks", key) != base
    assert TrainConfig.from_dict({"lora_alpha": 8.0}).cache_key("adalora_ranks", key) != base
    assert TrainConfig.from_dict({"seed": 9}).cache_key("adalora_ranks", key) == base


def test_adapter_init_does_not_depend_on_a_cached_probe(tmp_path):
    """Same seed, probe computed (run a) or read from the cache (run b): identical adapters."""
    import json

    from safetensors.torch import load_file

    from adaptive_lora.cli.main import main as cli_main

    from tiny_models import save_tiny_model

    model = save_tiny_model(tmp_path / "m", "llama")
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"Say {w} twice.", "input": "", "output": f"{w} {w}"}
                                for w in ["red", "green", "blue", "cyan", "pink", "gold"] * 3]))
    sets = [f"model={model}", f"data={data}", "eval_size=4", "max_length=320", "batch_size=4", "grad_accum=1",
            "epochs=2", "progress=false", "precision=fp32", "strategy=adalora_derived", "r=4", "r_min=1",
            "r_max=8", "lora_dropout=0.1", "budget_like=uniform:4", f"plan_cache={tmp_path / 'plans'}"]
    for run in ("a", "b"):
        assert cli_main(["train", "--out", str(tmp_path / run), *[x for c in sets for x in ("--set", c)]]) == 0
    sa, sb = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("a", "b"))
    assert (sa["probe"]["cached"], sb["probe"]["cached"]) == (False, True)
    wa, wb = (load_file(tmp_path / r / "adapter" / "adapter_model.safetensors") for r in ("a", "b"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert sa["eval_loss"] == sb["eval_loss"]
