"""Every decoder family: generic layout discovery on configs (meta device, no weights) with
hand-checked counts, MoE and vision-language models, and two training steps of a tiny random
model of each dense family through the real path (plan -> LoraConfig -> wrap -> audit -> steps).

The meta-device configs use the published geometry of one model of each family, so the counts
below are the ones a user sees for that model. Per-module LoRA parameters are r x (in + out); a
fused matrix is one module, its out the fused width.
"""

from __future__ import annotations

import math
import re
import time

import pytest

from adaptive_lora.adapters import build_lora_config, uses_fan_in_fan_out
from adaptive_lora.errors import UserError
from adaptive_lora.layout import discover_layout, layout_from_model
from adaptive_lora.layout.discover import AdaptableModule, Layout, classify
from adaptive_lora.strategies import StrategyParams, make_plan
from adaptive_lora.training import TrainConfig, train

from tiny_models import FAMILY_CONFIGS, build_model, save_tiny_model
from train_fixtures import alpaca_records, train_config


def _config(cls_name: str, **kw):
    import transformers

    return getattr(transformers, cls_name)(**kw)


def _llama2_7b():
    return _config("LlamaConfig", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)


# name -> (config, layers, {role: (in, out)} of every layer, base parameters as published, kinds).
# Hand sums of (in + out) per layer, times layers, times r = 8:
# * Llama-2-7B: q,k,v,o 4 x (4096+4096) = 32,768; gate,up,down 3 x (4096+11008) = 45,312;
#   78,080 x 32 x 8 = 19,988,480.
# * Qwen2-7B: 28 heads of 128, 4 K/V heads -> k,v out 512. q,o 2 x 7,168; k,v 2 x 4,096;
#   MLP 3 x (3584+18944) = 67,584; 90,112 x 28 x 8 = 20,185,088.
# * Mistral-7B: 8 K/V heads -> 1024. q,o 2 x 8,192; k,v 2 x 5,120; MLP 3 x 18,432 = 55,296;
#   81,920 x 32 x 8 = 20,971,520.
# * Gemma-2-2B: 8 heads of 256 -> q out 2048, 4 K/V heads -> 1024. q,o 2 x 4,352; k,v 2 x 3,328;
#   MLP 3 x (2304+9216) = 34,560; 49,920 x 26 x 8 = 10,383,360.
# * Phi-3-mini (fused): qkv 3072 -> 9216 (12,288), o 6,144, gate_up 3072 -> 16384 (19,456),
#   down 8192 -> 3072 (11,264); 49,152 x 32 x 8 = 12,582,912.
# * Pythia-160M (GPT-NeoX, fused): query_key_value 768 -> 2304 (3,072), dense 1,536,
#   dense_h_to_4h and dense_4h_to_h 2 x 3,840; 12,288 x 12 x 8 = 1,179,648.
# * Falcon-7B (fused, multi-query: 71 heads of 64 plus one K and one V head -> 4544 + 128 = 4672):
#   query_key_value 9,216, dense 9,088, MLP 2 x (4544+18176) = 45,440; 63,744 x 32 x 8 = 16,318,464.
# * OPT-125M: q,k,v,out_proj 4 x 1,536; fc1, fc2 2 x 3,840; 13,824 x 12 x 8 = 1,327,104.
# * GPT-2 (Conv1D): c_attn 768 -> 2304 (3,072), attn.c_proj 1,536, c_fc and mlp.c_proj 2 x 3,840;
#   12,288 x 12 x 8 = 1,179,648.
LLAMA_7B = {"self_attn.q_proj": (4096, 4096), "self_attn.k_proj": (4096, 4096), "self_attn.v_proj": (4096, 4096),
            "self_attn.o_proj": (4096, 4096), "mlp.gate_proj": (4096, 11008), "mlp.up_proj": (4096, 11008),
            "mlp.down_proj": (11008, 4096)}
FAMILIES = {
    "llama": (_llama2_7b, 32, LLAMA_7B, 6_738_415_616, 19_988_480),
    "qwen2": (lambda: _config("Qwen2Config", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                              num_attention_heads=28, num_key_value_heads=4, vocab_size=152064), 28,
              {"self_attn.q_proj": (3584, 3584), "self_attn.k_proj": (3584, 512), "self_attn.v_proj": (3584, 512),
               "self_attn.o_proj": (3584, 3584), "mlp.gate_proj": (3584, 18944), "mlp.up_proj": (3584, 18944),
               "mlp.down_proj": (18944, 3584)}, 7_615_616_512, 20_185_088),
    "mistral": (lambda: _config("MistralConfig", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, vocab_size=32000), 32,
                {"self_attn.q_proj": (4096, 4096), "self_attn.k_proj": (4096, 1024), "self_attn.v_proj": (4096, 1024),
                 "self_attn.o_proj": (4096, 4096), "mlp.gate_proj": (4096, 14336), "mlp.up_proj": (4096, 14336),
                 "mlp.down_proj": (14336, 4096)}, 7_241_732_096, 20_971_520),
    "gemma2": (lambda: _config("Gemma2Config", hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                               num_attention_heads=8, num_key_value_heads=4, head_dim=256, vocab_size=256000), 26,
               {"self_attn.q_proj": (2304, 2048), "self_attn.k_proj": (2304, 1024), "self_attn.v_proj": (2304, 1024),
                "self_attn.o_proj": (2048, 2304), "mlp.gate_proj": (2304, 9216), "mlp.up_proj": (2304, 9216),
                "mlp.down_proj": (9216, 2304)}, 2_614_341_888, 10_383_360),
    "phi3": (lambda: _config("Phi3Config", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                             num_attention_heads=32, num_key_value_heads=32, vocab_size=32064), 32,
             {"self_attn.o_proj": (3072, 3072), "self_attn.qkv_proj": (3072, 9216), "mlp.gate_up_proj": (3072, 16384),
              "mlp.down_proj": (8192, 3072)}, 3_821_079_552, 12_582_912),
    "gpt_neox": (lambda: _config("GPTNeoXConfig", hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                 num_attention_heads=12, vocab_size=50304, tie_word_embeddings=False), 12,
                 {"attention.query_key_value": (768, 2304), "attention.dense": (768, 768),
                  "mlp.dense_h_to_4h": (768, 3072), "mlp.dense_4h_to_h": (3072, 768)}, 162_322_944, 1_179_648),
    "falcon": (lambda: _config("FalconConfig", hidden_size=4544, num_hidden_layers=32, num_attention_heads=71,
                               multi_query=True, parallel_attn=True, bias=False, vocab_size=65024), 32,
               {"self_attention.query_key_value": (4544, 4672), "self_attention.dense": (4544, 4544),
                "mlp.dense_h_to_4h": (4544, 18176), "mlp.dense_4h_to_h": (18176, 4544)}, 6_921_720_704, 16_318_464),
    "opt": (lambda: _config("OPTConfig", hidden_size=768, ffn_dim=3072, num_hidden_layers=12, num_attention_heads=12,
                            word_embed_proj_dim=768, vocab_size=50272), 12,
            {"self_attn.k_proj": (768, 768), "self_attn.v_proj": (768, 768), "self_attn.q_proj": (768, 768),
             "self_attn.out_proj": (768, 768), "fc1": (768, 3072), "fc2": (3072, 768)}, 125_239_296, 1_327_104),
    "gpt2": (lambda: _config("GPT2Config"), 12,
             {"attn.c_attn": (768, 2304), "attn.c_proj": (768, 768), "mlp.c_fc": (768, 3072),
              "mlp.c_proj": (3072, 768)}, 124_439_808, 1_179_648),
}
BLOCKS = {"gpt2": "transformer.h", "falcon": "transformer.h", "gpt_neox": "gpt_neox.layers",
          "opt": "model.decoder.layers"}  # else model.layers
ATTENTION_ROLES = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.qkv_proj",
                   "self_attn.out_proj", "attention.query_key_value", "attention.dense",
                   "self_attention.query_key_value", "self_attention.dense", "attn.c_attn", "attn.c_proj"}


@pytest.fixture(scope="module")
def layouts():
    return {}


def _layout(cache: dict, family: str):
    if family not in cache:
        cache[family] = discover_layout(FAMILIES[family][0]())
    return cache[family]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_meta_layout_and_counts_by_hand(layouts, family):
    _, n_layers, roles, base, trainable_r8 = FAMILIES[family]
    layout = _layout(layouts, family)
    assert (layout.n_layers, layout.base_params, len(layout.modules)) == (n_layers, base, n_layers * len(roles))
    prefix = BLOCKS.get(family, "model.layers")
    for i in range(n_layers):
        got = {m.role: (m.in_features, m.out_features) for m in layout.modules if m.layer == i}
        assert got == roles, f"layer {i}"
    assert all(m.name == f"{prefix}.{m.layer}.{m.role}" for m in layout.modules)  # lm_head is never a module
    assert {m.role: m.kind for m in layout.modules} == {r: "attention" if r in ATTENTION_ROLES else "mlp" for r in roles}
    plan = make_plan(layout, "uniform", StrategyParams(r=8))  # targets null: every linear of the blocks
    assert plan.trainable_params == trainable_r8
    assert uses_fan_in_fan_out(layout) == (family == "gpt2")
    assert layout.skipped == () and layout.notes == ()


@pytest.mark.parametrize("family, targets, modules, r8", [
    # The paper's GPT-2 targets: mlp.c_proj comes with c_proj, so the same 48 modules.
    ("gpt2", ["c_attn", "c_proj", "c_fc"], 48, 1_179_648),
    ("phi3", ["qkv_proj"], 32, 32 * 8 * (3072 + 9216)),  # one fused module per layer, one rank
    ("falcon", ["self_attention.query_key_value"], 32, 32 * 8 * (4544 + 4672)),
    ("opt", ["fc1", "fc2"], 24, 12 * 8 * 2 * 3840),
])
def test_targets_filter_the_discovered_modules(layouts, family, targets, modules, r8):
    plan = make_plan(_layout(layouts, family), "uniform", StrategyParams(r=8), targets=targets)
    assert (len(plan.adapted), plan.trainable_params) == (modules, r8)


def test_smollm2_geometry_is_unchanged():
    """SmolLM2-135M's config (no weights): the 7 projections x 30 layers the main job adapts."""
    cfg = _config("LlamaConfig", hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    layout = discover_layout(cfg)
    assert len(layout.modules) == 210 and layout.base_params == 134_515_008
    assert layout.default_targets == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ----------------------------------------------------------------------------- mixture of experts


def test_mixtral_plans_attention_and_skips_router_and_experts():
    """Mixtral-8x7B: experts are fused 3-D parameters (8 x 28672 x 4096 and 8 x 4096 x 14336) and
    the router a 8 x 4096 weight; neither is a module. Attention per layer: q,o 2 x 8,192 and k,v
    (8 K/V heads -> 1024) 2 x 5,120 = 26,624; x 32 layers x 8 = 6,815,744."""
    cfg = _config("MixtralConfig", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, vocab_size=32000)
    layout = discover_layout(cfg)
    assert layout.base_params == 46_702_792_704
    assert len(layout.modules) == 128 and {m.kind for m in layout.modules} == {"attention"}
    assert make_plan(layout, "uniform", StrategyParams(r=8)).trainable_params == 6_815_744
    why = dict(layout.skipped)
    assert len(why) == 32 * 3
    assert why["model.layers.5.mlp.gate"] == "the MoE router"
    assert why["model.layers.5.mlp.experts.gate_up_proj"] == "MoE experts, a fused 3-D parameter"
    assert layout.notes == ("not adapted: the MoE router (mlp.gate)",
                            "not adapted: MoE experts, a fused 3-D parameter (mlp.experts.down_proj, "
                            "mlp.experts.gate_up_proj)")


@pytest.mark.parametrize("target, names", [
    ("gate_up_proj", "MoE experts, a fused 3-D parameter (model.layers.0.mlp.experts.gate_up_proj)"),
    ("experts", "MoE experts, a fused 3-D parameter (model.layers.0.mlp.experts.gate_up_proj)"),
    ("gate", "the MoE router (model.layers.0.mlp.gate)"),
])
def test_moe_targets_naming_experts_or_router_are_refused(target, names):
    layout = layout_from_model(build_model("mixtral", n_layer=2))
    with pytest.raises(UserError) as e:
        layout.select(["q_proj", target])
    assert str(e.value) == (f"targets {target} names {names}, which adaptive-lora never adapts: set targets to modules "
                            "of the blocks (q_proj,k_proj,v_proj,o_proj), or leave targets null for all of them")


def test_qwen2_moe_adapts_the_shared_expert_not_its_gate():
    """Qwen1.5-MoE-A2.7B: 24 layers; attention 4 x (2048+2048) = 16,384, the shared expert's MLP
    3 x (2048+5632) = 23,040; 39,424 x 24 x 8 = 7,569,408. Its router (mlp.gate, 60 experts) and
    the shared expert's 2048 -> 1 gate are routers, never adapted."""
    cfg = _config("Qwen2MoeConfig", hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                  num_attention_heads=16, num_key_value_heads=16, num_experts=60, moe_intermediate_size=1408,
                  shared_expert_intermediate_size=5632, vocab_size=151936)
    layout = discover_layout(cfg)
    assert len(layout.modules) == 24 * 7
    assert {m.role for m in layout.modules if m.kind == "mlp"} == {
        "mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj", "mlp.shared_expert.down_proj"}
    assert make_plan(layout, "uniform", StrategyParams(r=8)).trainable_params == 7_569_408
    assert {why for n, why in layout.skipped if n.endswith("gate")} == {"the MoE router"}
    assert sum(n.endswith("gate") for n, _ in layout.skipped) == 2 * 24  # mlp.gate and shared_expert_gate


# ----------------------------------------------------------------------------- vision-language models


def test_vision_language_model_adapts_the_language_model_only():
    """LLaVA-1.5-7B: a CLIP vision tower (24 layers of its own linears) and a Llama-2-7B language
    model. Only the language model's 32 blocks are adapted: the Llama-2-7B counts above."""
    layout = discover_layout(_config("LlavaConfig", text_config=_llama2_7b().to_dict()))
    assert layout.n_layers == 32 and len(layout.modules) == 224
    assert all(m.name.startswith("model.language_model.layers.") for m in layout.modules)
    assert make_plan(layout, "uniform", StrategyParams(r=8)).trainable_params == 19_988_480


# ----------------------------------------------------------------------------- generic rules


@pytest.mark.parametrize("role, kind", [
    ("attn.c_proj", "attention"), ("mlp.c_proj", "mlp"), ("fc1", "mlp"), ("self_attn.out_proj", "attention"),
    ("attention.dense", "attention"), ("self_attention.dense", "attention"), ("mlp.shared_expert.up_proj", "mlp"),
    ("feed_forward.w1", "mlp"), ("block_sparse_moe.experts.0.w2", "mlp"), ("q_proj", "attention"),
    ("mixer.in_proj", "other"), ("per_layer_projection", "other"),
])
def test_classify_by_name(role, kind):
    assert classify(role) == kind


def test_other_kind_in_the_placement_strategies():
    """A module that is neither attention nor MLP by name (e.g. a Mamba mixer's in_proj) gets the
    feed-forward rank from attention_heavy and no adapter from attention_only or mlp_only."""
    mods = (AdaptableModule("m.layers.0.attn.q", 0, "attention", "attn.q", 8, 8),
            AdaptableModule("m.layers.0.mlp.up", 0, "mlp", "mlp.up", 8, 16),
            AdaptableModule("m.layers.0.mixer.in_proj", 0, "other", "mixer.in_proj", 8, 16))
    layout = Layout("x", "x", 1, mods, 1000, ("q", "up", "in_proj"))
    heavy = make_plan(layout, "attention_heavy", StrategyParams(r_base=8, r_min=2)).ranks
    assert list(heavy.values()) == [8, 4, 4]
    assert list(make_plan(layout, "attention_only", StrategyParams(r=4)).ranks.values()) == [4, 0, 0]
    assert list(make_plan(layout, "mlp_only", StrategyParams(r=4)).ranks.values()) == [0, 4, 0]


def test_seventy_billion_plan_on_the_meta_device():
    """Llama-2-70B: 80 layers, h 8192, 8 K/V heads (1024), MLP 28672. Per layer q,o 2 x 16,384,
    k,v 2 x 9,216, MLP 3 x 36,864 = 161,792; x 80 x 8 = 103,546,880. No weights are allocated."""
    cfg = _config("LlamaConfig", hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                  num_attention_heads=64, num_key_value_heads=8, vocab_size=32000)
    start = time.perf_counter()
    plan = make_plan(discover_layout(cfg), "linear_decay")
    seconds = time.perf_counter() - start
    assert plan.base_params == 68_976_648_192 and len(plan.layout.modules) == 560
    assert make_plan(plan.layout, "uniform", StrategyParams(r=8)).trainable_params == 103_546_880
    assert seconds < 10, f"{seconds:.1f} s"  # about a second alone; generous for a loaded machine


# ----------------------------------------------------------------------------- tiny models train

DENSE = ["gpt2", "llama", "qwen2", "mistral", "gemma2", "phi3", "gpt_neox", "falcon", "opt"]


@pytest.fixture(scope="module")
def family_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("families")
    data = base / "alpaca.json"
    import json

    data.write_text(json.dumps(alpaca_records(16)), encoding="utf-8")
    return {"data": data, "base": base}


@pytest.mark.parametrize("family", DENSE + ["mixtral", "llava"])
def test_tiny_model_trains_two_steps(family_env, tmp_path, family):
    """Plan (linear_decay over every linear of the blocks; attention only for Mixtral) ->
    LoraConfig -> wrap -> audit (inside train) -> two optimizer steps on the CPU."""
    folder = save_tiny_model(family_env["base"] / family, family)
    env = {family: folder, "data": family_env["data"]}
    cfg = train_config(env, family, strategy="linear_decay", r_base=8, r_min=2, max_steps=2, grad_accum=1,
                       batch_size=2, eval_size=4, max_length=256, max_eval=2)
    summary = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert summary["status"] == "completed" and summary["optimizer_steps"] == 2
    assert math.isfinite(summary["eval_loss"])
    layout = layout_from_model(build_model(family))
    plan = make_plan(layout, "linear_decay", StrategyParams(r_base=8, r_min=2))
    assert summary["trainable_params"] == plan.trainable_params  # the audited model holds the plan
    assert build_lora_config(plan).fan_in_fan_out == (family == "gpt2")


@pytest.mark.parametrize("family", DENSE + ["mixtral"])
def test_default_targets_are_peft_all_linear(family):
    """With targets null, the modules are exactly what PEFT's ``all-linear`` wraps (every linear
    but the output layer) on the tiny models, except on Mixtral: PEFT 0.21 wraps the router and
    the fused experts there too (as parameters), which we leave out by design."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    from adaptive_lora.layout.discover import plain_name

    layout = layout_from_model(build_model(family))
    peft = get_peft_model(build_model(family), LoraConfig(r=2, target_modules="all-linear"))
    wrapped = {plain_name(n) for n, m in peft.named_modules() if isinstance(m, LoraLayer)}
    moe = {n for n in wrapped if re.search(r"\.mlp\.(gate|experts)(\.|$)", n)}
    assert bool(moe) == (family == "mixtral")
    assert wrapped - moe == {m.name for m in layout.modules}


def test_plan_command_notes_the_skipped_moe_weights(tmp_path, capsys):
    import json

    from adaptive_lora.cli.main import main as cli_main
    from tiny_models import save_config_only

    folder = save_config_only(tmp_path / "mixtral", FAMILY_CONFIGS["mixtral"]())
    assert cli_main(["plan", "--model", str(folder), "--strategy", "uniform", "--r", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["modules"]) == 16 and out["trainable_params"] == 4 * 4 * (64 + 48 + 48 + 64)
    assert out["notes"] == list(layout_from_model(build_model("mixtral")).notes)
    assert out["notes"][0] == "not adapted: the MoE router (mlp.gate)"


@pytest.mark.parametrize("family", ["gpt2", "phi3", "llava"])
def test_layout_of_a_wrapped_model_is_the_plain_layout(family):
    """Discovery on a PEFT-wrapped model (as after training) sees the base layers, never LoRA's
    own lora_A/lora_B linears, and keeps the plain names."""
    layout = layout_from_model(build_model(family))
    plan = make_plan(layout, "linear_decay", StrategyParams(r_base=4, r_min=2))
    from adaptive_lora.adapters import wrap_model

    wrapped = wrap_model(build_model(family), plan, dropout=0.0)
    assert layout_from_model(wrapped) == layout
