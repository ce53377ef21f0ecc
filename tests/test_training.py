"""The training engine on tiny random GPT-2 and Llama models: seconds per run, all on the CPU.

What is proved here: the loss falls; a divergence (forced or real) is a result with exit code 3;
``summary.json`` and ``metrics.jsonl`` hold what docs/ARCHITECTURE.md promises, consistently; the
saved adapter reloads with plain PEFT; every stabilizer switch does what it says; two processes
under torchrun train exactly like one; bad configs fail with one line and exit code 2; AdaLoRA
reports its realised ranks; bf16 autocast runs on the CPU.

Hand-computed facts used below: both tiny models have hidden size 32 and 4 layers. Llama's K/V
projections have 2 of 4 heads (32 -> 16) and its MLP is 64 wide; GPT-2's c_attn is 32 -> 96 and its
MLP 128 wide. So every layer costs 512 parameters per unit of rank in both families, and
``linear_decay`` with r_base 8, r_min 2 gives ranks 8, 6, 4, 2 (8 - 6 i / 3) to layers 0..3:
512 * (8 + 6 + 4 + 2) = 10240 trainable parameters.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from adaptive_lora._io import dumps
from adaptive_lora.adapters import AlphaPolicy, wrap_model
from adaptive_lora.adapters.audit import realised_ranks
from adaptive_lora.cli.main import main as cli_main
from adaptive_lora.data import PadCollator, load_records, split_records, tokenize_records
from adaptive_lora.errors import UserError
from adaptive_lora.evaluation import evaluate
from adaptive_lora.schema import METRIC_DEFINITIONS, SCHEMA_VERSION, SUMMARY_KEYS
from adaptive_lora.layout import layout_from_model, load_model, load_tokenizer
from adaptive_lora.strategies import make_plan
from adaptive_lora.training import TrainConfig, hooks, train
from adaptive_lora.training.stabilizers import GradClipper, lr_lambda, module_of, param_groups, warmup_steps

from train_fixtures import (  # noqa: F401 - train_env is a fixture
    EVAL_SIZE,
    FAMILIES,
    N_RECORDS,
    read_metrics,
    read_summary,
    train_config,
    train_env,
    train_lines,
    write_config,
)

# in_features + out_features of each adapted module, by its role inside a block.
IN_OUT = {
    "gpt2": {"attn.c_attn": 32 + 96, "attn.c_proj": 32 + 32, "mlp.c_fc": 32 + 128, "mlp.c_proj": 128 + 32},
    "llama": {"self_attn.q_proj": 32 + 32, "self_attn.k_proj": 32 + 16, "self_attn.v_proj": 32 + 16,
              "self_attn.o_proj": 32 + 32, "mlp.gate_proj": 32 + 64, "mlp.up_proj": 32 + 64,
              "mlp.down_proj": 64 + 32},
}
N_MODULES = {"gpt2": 16, "llama": 28}
LINEAR_DECAY = {0: 8, 1: 6, 2: 4, 3: 2}  # r_base 8, r_min 2, 4 layers
PLAN = {"strategy": "linear_decay", "r_base": 8, "r_min": 2}
N_TRAIN = N_RECORDS - EVAL_SIZE  # 40
# The main run: 3 epochs of 40 examples in micro-batches of 4, 2 per step: 5 steps an epoch.
MAIN = {**PLAN, "epochs": 3, "batch_size": 4, "grad_accum": 2}
MAIN_STEPS = 15


def role(module_name: str) -> str:
    """``model.layers.2.self_attn.q_proj`` -> ``self_attn.q_proj`` (GPT-2: ``transformer.h.2.attn.c_attn``)."""
    return ".".join(module_name.split(".")[3:])


def layer_of(module_name: str) -> int:
    return int(module_name.split(".")[2])


def split_examples(env: dict, family: str):
    """The tokenised train and eval examples a run with ``train_config`` defaults sees."""
    tokenizer = load_tokenizer(str(env[family]))
    train_recs, eval_recs = split_records(load_records(str(env["data"])).records, seed=0, eval_size=EVAL_SIZE)
    return (tokenize_records(train_recs, tokenizer, 320).examples,
            tokenize_records(eval_recs, tokenizer, 320).examples, tokenizer)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster than two, and steady when other work shares the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def main_run(train_env, tmp_path_factory):
    """``main_run(family) -> (config dict, summary, run folder)``; each family trains once."""
    done: dict = {}

    def get(family: str):
        if family not in done:
            out = tmp_path_factory.mktemp(f"main_{family}")
            cfg = train_config(train_env, family, **MAIN)
            done[family] = (cfg, train(TrainConfig.from_dict(cfg), out), out)
        return done[family]

    return get


# ----------------------------------------------------------------------------- 1. the loss falls


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_falls(main_run, family):
    _, summary, out = main_run(family)
    losses = [row["loss"] for row in train_lines(out)]
    first_epoch, last_epoch = losses[:5], losses[-5:]
    assert sum(last_epoch) / 5 < sum(first_epoch) / 5 - 0.03, losses
    assert summary["eval_loss"] < summary["base_eval_loss"] - 0.05


# ----------------------------------------------------------------------------- 2. divergence


@pytest.mark.parametrize("family", FAMILIES)
def test_forced_divergence_exits_3_and_keeps_logs(train_env, tmp_path, capsys, monkeypatch, family):
    monkeypatch.setattr(hooks, "after_backward", hooks.poison_one_gradient_at(2))
    cfg = write_config(tmp_path / "c.yaml", train_config(train_env, family, max_steps=4))
    out = tmp_path / "run"
    assert cli_main(["train", "--config", str(cfg), "--out", str(out)]) == 3
    s = read_summary(out)
    assert (s["status"], s["diverged_step"], s["diverged_reason"]) == ("diverged", 2, "non-finite gradient")
    assert s["diverged_module"] in {m["name"] for m in s["plan"]["modules"]}
    assert s["eval_loss"] is None and s["perplexity"] is None
    rows = read_metrics(out)
    assert [(r["type"], r["step"]) for r in rows] == [("eval", 0), ("eval_general", 0), ("train", 1), ("diverged", 2)]
    assert rows[2]["loss"] > 0 and rows[3]["where"] == s["diverged_module"]
    assert s["forgetting_base_loss"] > 0 and s["forgetting_delta"] is None  # no "after" for a diverged run
    assert not (out / "adapter").exists()
    assert "diverged at step 2" in capsys.readouterr().err


@pytest.mark.parametrize("family", FAMILIES)
def test_real_divergence_is_detected(train_env, tmp_path, family):
    # lr 1e6 with clipping off: Adam moves B by ~lr at once and the logits overflow within 3 steps.
    # SDPA's backward turns the overflow into NaN gradients; the two-GEMM CPU attention instead
    # saturates, the model collapses to a uniform output (loss ln V, gradient exactly 0) and no
    # value becomes non-finite, so this test of the NaN path attends through SDPA.
    cfg = train_config(train_env, family, lr=1e6, clip="off", max_steps=6, grad_accum=1, cpu_attention=False)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert s["status"] == "diverged"
    assert s["diverged_reason"] in ("non-finite loss", "non-finite gradient")
    assert 1 <= s["diverged_step"] <= 6
    assert read_metrics(tmp_path / "run")[-1]["type"] == "diverged"


# ----------------------------------------------------------------------------- 3. result files


@pytest.mark.parametrize("family", FAMILIES)
def test_summary_fields_are_present_and_consistent(train_env, main_run, family):
    cfg, s, out = main_run(family)
    assert read_summary(out) == json.loads(dumps(s))  # the file holds what train() returned
    assert (s["status"], s["seed"], s["method"], s["strategy"]) == ("completed", 0, "lora", "linear_decay")
    assert (s["world_size"], s["precision"], s["diverged_step"], s["error"]) == (1, "fp32", None, None)
    assert s["perplexity"] == pytest.approx(math.exp(s["eval_loss"]), rel=1e-9)
    assert s["base_perplexity"] == pytest.approx(math.exp(s["base_eval_loss"]), rel=1e-9)

    # Parameters: the plan, r * (in + out) per module, counted by hand.
    mods = s["plan"]["modules"]
    assert s["plan"]["strategy"] == "linear_decay" and len(mods) == N_MODULES[family]
    for m in mods:
        # One plan format everywhere (Plan.to_dict): the summary's realised plan is plan.json's shape.
        assert set(m) == {"name", "layer", "kind", "role", "in_features", "out_features", "rank", "params"}
        assert m["rank"] == LINEAR_DECAY[m["layer"]] and m["layer"] == layer_of(m["name"])
        assert m["params"] == m["rank"] * IN_OUT[family][role(m["name"])]
    assert s["trainable_params"] == s["planned_params"] == sum(m["params"] for m in mods) == 10240
    model = load_model(str(train_env[family]))
    base = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())  # tied weights once
    assert s["base_params"] == base
    assert s["total_params"] == base + 10240
    assert s["efficiency_pct"] == pytest.approx(100 * 10240 / (base + 10240), rel=1e-12)

    # Counting: every train example once per epoch; tokens/s over training time only.
    train_ex, eval_ex, _ = split_examples(train_env, family)
    assert (s["n_train"], s["n_eval"]) == (len(train_ex), len(eval_ex)) == (N_TRAIN, EVAL_SIZE)
    assert s["optimizer_steps"] == s["planned_steps"] == MAIN_STEPS
    assert s["examples_seen"] == 3 * N_TRAIN
    assert s["train_tokens"] == 3 * sum(len(e["input_ids"]) for e in train_ex)
    assert s["eval_tokens"] == sum(sum(t != -100 for t in e["labels"]) for e in eval_ex)
    assert s["train_time_s"] > 0 and s["peak_memory_mb"] > 0
    assert s["tokens_per_s"] == pytest.approx(s["train_tokens"] / s["train_time_s"], rel=1e-9)

    norms = [row["grad_norm"] for row in train_lines(out)]
    g = s["grad_norm"]
    assert {"mean", "max", "p50", "p95", "last"} <= set(g)
    assert g["mean"] == pytest.approx(sum(norms) / len(norms), rel=1e-12)
    assert (g["max"], g["last"]) == (max(norms), norms[-1])
    assert min(norms) <= g["p50"] <= g["p95"] <= g["max"]

    assert s["config"] == TrainConfig.from_dict(cfg).to_dict()
    assert s["versions"]["torch"] == torch.__version__ and {"python", "transformers", "peft", "accelerate"} <= set(s["versions"])
    assert s["hardware"]["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert s["hardware"]["processes"] == 1
    assert s["metric_definitions"] == METRIC_DEFINITIONS
    assert s["schema_version"] == SCHEMA_VERSION and set(s) == set(SUMMARY_KEYS)


@pytest.mark.parametrize("family", FAMILIES)
def test_metrics_has_one_train_line_per_step(main_run, family):
    _, s, out = main_run(family)
    rows = read_metrics(out)
    train = [r for r in rows if r["type"] == "train"]
    assert [r["step"] for r in train] == list(range(1, MAIN_STEPS + 1))
    assert [(r["step"], r["eval_loss"]) for r in rows if r["type"] == "eval"] == [
        (0, s["base_eval_loss"]), (MAIN_STEPS, s["eval_loss"])]
    assert train[-1]["epoch"] == 3.0
    assert sum(r["tokens"] for r in train) == s["train_tokens"]
    for r in train:
        assert math.isfinite(r["loss"]) and r["lr"] == 3e-3 and r["tokens_per_s"] > 0
        layers = r["layer_grad_norms"]
        assert set(layers) == {"0", "1", "2", "3"} and all(set(v) == {"A", "B"} for v in layers.values())
        # The global norm is the norm of all LoRA gradients, so it adds up from the per-layer ones.
        total = math.sqrt(sum(v["A"] ** 2 + v["B"] ** 2 for v in layers.values()))
        assert total == pytest.approx(r["grad_norm"], rel=1e-9)
        # At step 1 B = 0, so A gets no gradient; after that both do.
        assert all(v["B"] > 0 and (v["A"] > 0) == (r["step"] > 1) for v in layers.values())


# ----------------------------------------------------------------------------- 4. the adapter reloads


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_reloads_with_plain_peft(train_env, main_run, family):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, s, out = main_run(family)
    base = AutoModelForCausalLM.from_pretrained(train_env[family], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, out / "adapter")
    _, eval_ex, tokenizer = split_examples(train_env, family)
    res = evaluate(model, eval_ex, PadCollator(tokenizer.pad_token_id), 16, torch.device("cpu"))
    assert res["eval_tokens"] == s["eval_tokens"]
    assert res["eval_loss"] == pytest.approx(s["eval_loss"], rel=1e-5)
    ranks = {name: v["rank"] for name, v in realised_ranks(model).items()}
    assert ranks == {m["name"]: m["rank"] for m in s["plan"]["modules"]}


# ----------------------------------------------------------------------------- 5. stabilizers


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "policy, expected",  # realised scaling by rank, worked out from lora_alpha 32 and alpha_ratio 2
    [
        ("constant", {8: 4.0, 6: 16 / 3, 4: 8.0, 2: 16.0}),  # alpha / r
        ("proportional", {8: 2.0, 6: 2.0, 4: 2.0, 2: 2.0}),  # (2 r) / r
        ("rslora", {8: 32 / math.sqrt(8), 6: 32 / math.sqrt(6), 4: 16.0, 2: 32 / math.sqrt(2)}),  # alpha / sqrt(r)
    ],
)
def test_alpha_policy_sets_the_realised_scaling(train_env, tmp_path, family, policy, expected):
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    cfg = train_config(train_env, family, **PLAN, alpha_policy=policy, max_steps=1, max_eval=2, grad_accum=1)
    assert train(TrainConfig.from_dict(cfg), tmp_path / "run")["status"] == "completed"
    # Read back from the saved adapter: the scaling survives PEFT's own save and load.
    base = AutoModelForCausalLM.from_pretrained(train_env[family], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, tmp_path / "run" / "adapter")
    found = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    assert len(found) == N_MODULES[family]
    for name, module in found.items():
        rank = LINEAR_DECAY[layer_of(name.removeprefix("base_model.model."))]
        assert module.r["default"] == rank
        assert module.scaling["default"] == pytest.approx(expected[rank], rel=1e-12)


@pytest.fixture(scope="module")
def wrapped_llama(train_env):
    """The tiny Llama wrapped with linear_decay ranks 8, 6, 4, 2, and what param_groups needs."""
    model = load_model(str(train_env["llama"]))
    layout = layout_from_model(model)
    cfg = TrainConfig.from_dict(train_config(train_env, "llama", **PLAN))
    plan = make_plan(layout, cfg.plan.strategy, cfg.params)
    model = wrap_model(model, plan, AlphaPolicy(), 0.0)
    return model, plan.adapted, {m.name: m.layer for m in layout.modules}


@pytest.mark.parametrize(
    "switches, per_layer, b_extra",  # lr multiplier of layers 0..3 (ranks 8, 6, 4, 2); extra factor for B
    [
        ({}, (1, 1, 1, 1), 1),
        ({"lr_rank_power": 1.0, "lr_rank_ref": 4}, (4 / 8, 4 / 6, 1, 2), 1),
        ({"lr_rank_power": 0.5}, (1, math.sqrt(8 / 6), math.sqrt(2), 2), 1),  # ref = r_base = 8
        ({"layer_lr": [1.0, 2.0, 3.0, 4.0]}, (1, 2, 3, 4), 1),
        ({"layer_lr": {1: 5.0, 3: 0.5}}, (1, 5, 1, 0.5), 1),
        ({"loraplus_ratio": 16}, (1, 1, 1, 1), 16),
        ({"lr_rank_power": 1.0, "lr_rank_ref": 4, "layer_lr": {0: 3.0}, "loraplus_ratio": 2}, (1.5, 4 / 6, 1, 2), 2),
    ],
)
def test_param_groups_give_each_matrix_its_lr(train_env, wrapped_llama, switches, per_layer, b_extra):
    model, ranks, layers = wrapped_llama
    cfg = TrainConfig.from_dict(train_config(train_env, "llama", **PLAN, lr=1e-3, **switches))
    groups = param_groups(model, cfg, ranks, layers)
    assert len({g["lr"] for g in groups}) == len(groups)  # one group per distinct lr
    seen = {}
    for g in groups:
        assert len(g["params"]) == len(g["names"])
        for label in g["names"]:
            module, matrix = label.rsplit(".", 1)
            want = 1e-3 * per_layer[layers[module]] * (b_extra if matrix == "B" else 1)
            assert g["lr"] == pytest.approx(want, rel=1e-12), label
            seen[label] = g["lr"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(seen) == len(trainable) == 2 * N_MODULES["llama"]
    assert set(seen) == {".".join(module_of(n)) for n in trainable}


@pytest.mark.parametrize(
    "layer_lr, message",
    [([1.0, 2.0, 3.0], "layer_lr has 3 entries but the model has 4 layers"),
     ({4: 2.0}, "layer_lr names layer 4 but the model has layers 0 to 3")],
)
def test_layer_lr_must_fit_the_model(train_env, wrapped_llama, layer_lr, message):
    model, ranks, layers = wrapped_llama
    cfg = TrainConfig.from_dict(train_config(train_env, "llama", **PLAN, layer_lr=layer_lr))
    with pytest.raises(UserError, match=message):
        param_groups(model, cfg, ranks, layers)


@pytest.mark.parametrize(
    "mode, kw, norms, expected",  # expected (factor, threshold) per call
    [
        ("off", {}, [1.0, 100.0], [(1.0, None), (1.0, None)]),
        ("fixed", {"clip_norm": 1.0}, [0.5, 4.0], [(1.0, 1.0), (1 / (4 + 1e-6), 1.0)]),
        # The first norm only seeds the EMA (1); the second keeps it at 1 (0.5 * 1 + 0.5 * 1); the
        # third, 10, is cut to 2 x EMA = 2, and the EMA of post-clip norms becomes 0.5 + 0.5 * 2.
        ("adaptive", {"factor": 2.0, "beta": 0.5}, [1.0, 1.0, 10.0],
         [(1.0, None), (1.0, 2.0), (2 / (10 + 1e-6), 2.0)]),
    ],
)
def test_grad_clipper_by_hand(mode, kw, norms, expected):
    clipper = GradClipper(mode, **kw)
    got = [clipper.scale(n) for n in norms]
    for (factor, thr), (want_factor, want_thr) in zip(got, expected):
        assert factor == pytest.approx(want_factor, rel=1e-12)
        assert thr == (None if want_thr is None else pytest.approx(want_thr, rel=1e-12))
    if mode == "adaptive":
        assert clipper.ema == pytest.approx(0.5 * 1.0 + 0.5 * 10 * 2 / (10 + 1e-6), rel=1e-12)
        assert clipper.threshold() == pytest.approx(2 * clipper.ema, rel=1e-12)


@pytest.mark.parametrize(
    "schedule, warm_steps, warm_ratio, total, expected",  # multiplier at 0-based steps 0..total-1
    [
        ("constant", 0, 0.0, 4, [1, 1, 1, 1]),
        ("constant", 2, 0.0, 4, [0.5, 1, 1, 1]),
        ("linear", 0, 0.0, 4, [1, 0.75, 0.5, 0.25]),
        ("linear", 2, 0.0, 6, [0.5, 1, 1, 0.75, 0.5, 0.25]),
        ("cosine", 0, 0.0, 4, [1, (2 + math.sqrt(2)) / 4, 0.5, (2 - math.sqrt(2)) / 4]),
        # warmup_ratio 0.25 of 8 steps = 2 warmup steps, then cos over the remaining 6
        ("cosine", 0, 0.25, 8, [0.5, 1, 1, (2 + math.sqrt(3)) / 4, 0.75, 0.5, 0.25, (2 - math.sqrt(3)) / 4]),
    ],
)
def test_lr_lambda_exact_values(schedule, warm_steps, warm_ratio, total, expected):
    cfg = TrainConfig.from_dict({"lr_schedule": schedule, "warmup_steps": warm_steps, "warmup_ratio": warm_ratio})
    f = lr_lambda(cfg.stabilize, cfg.optim.lr_schedule, total)
    assert [f(s) for s in range(total)] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert warmup_steps(cfg.stabilize, total) == (warm_steps or round(warm_ratio * total))


@pytest.mark.parametrize(
    "switches, lr_mults",
    [
        # fixed clipping to a tiny norm; warmup_steps 3, then constant
        ({"max_steps": 5, "warmup_steps": 3, "clip": "fixed", "clip_norm": 1e-3}, [1 / 3, 2 / 3, 1, 1, 1]),
        # adaptive clipping; warmup_ratio 0.5 of 6 steps = 3, then linear decay over the other 3
        ({"max_steps": 6, "warmup_ratio": 0.5, "lr_schedule": "linear", "clip": "adaptive", "clip_factor": 2.0,
          "clip_beta": 0.5}, [1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3]),
    ],
)
def test_schedule_and_clipping_in_a_run(train_env, tmp_path, switches, lr_mults):
    cfg = train_config(train_env, "llama", grad_accum=1, **switches)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert s["status"] == "completed" and s["warmup_steps"] == 3
    rows = train_lines(tmp_path / "run")
    # The lr logged at step k is the one that step used: it rises linearly over the warmup.
    assert [r["lr"] for r in rows] == pytest.approx([3e-3 * m for m in lr_mults], rel=1e-12)
    if cfg["clip"] == "fixed":
        for r in rows:
            assert r["clip_threshold"] == 1e-3 and r["grad_norm"] > 1e-3
            assert r["clip_factor"] == pytest.approx(1e-3 / (r["grad_norm"] + 1e-6), rel=1e-12)
            assert r["grad_norm"] * r["clip_factor"] <= 1e-3  # the post-clip norm
    else:
        ema = None  # replay the rule: threshold = clip_factor x EMA of post-clip norms
        for r in rows:
            assert r["clip_threshold"] == (None if ema is None else pytest.approx(2.0 * ema, rel=1e-12))
            clipped = r["grad_norm"] * r["clip_factor"]
            ema = clipped if ema is None else 0.5 * ema + 0.5 * clipped


# ----------------------------------------------------------------------------- 6. two processes


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "adaptive_lora.cli.main", "strategies"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "linear_decay" in proc.stdout


def test_two_processes_train_like_one(train_env, main_run, tmp_path):
    cfg, single, single_dir = main_run("llama")  # batch_size 4, grad_accum 2
    path = write_config(tmp_path / "c.yaml", cfg)
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # two CPU processes (gloo), also on a machine with one GPU
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "adaptive_lora.cli.main", "train", "--config", str(path),
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("completed:") == 1  # one process reports
    s = read_summary(out)
    assert s["world_size"] == 2 and s["hardware"]["processes"] == 2
    for key in ("optimizer_steps", "examples_seen", "train_tokens", "n_train", "n_eval", "eval_tokens",
                "trainable_params"):
        assert s[key] == single[key], key
    assert s["base_eval_loss"] == pytest.approx(single["base_eval_loss"], rel=1e-6)
    assert s["eval_loss"] == pytest.approx(single["eval_loss"], rel=1e-4)
    # Step by step: the same loss and gradient norm (Adam would hide a wrong gradient scale in the
    # eval loss, not in the norm).
    ddp, one = train_lines(out), train_lines(single_dir)
    assert len(ddp) == len(one) == MAIN_STEPS
    assert [r["loss"] for r in ddp] == pytest.approx([r["loss"] for r in one], rel=1e-4)
    assert [r["grad_norm"] for r in ddp] == pytest.approx([r["grad_norm"] for r in one], rel=1e-4)


def test_nan_on_one_process_stops_both_at_that_step(train_env, tmp_path):
    """A NaN in one process's gradient (after DDP's all-reduce, so the other process never sees
    it) must stop both at the same step: one that stopped alone would leave the other waiting
    forever in the next collective. The main process, whose gradients stay finite, writes the
    summary: it names the step and the module poisoned in the other process."""
    cfg = train_config(train_env, "llama", **MAIN)
    path = write_config(tmp_path / "c.yaml", cfg)
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(CUDA_VISIBLE_DEVICES="", ADAPTIVE_LORA_TEST_NAN_STEP="3", ADAPTIVE_LORA_TEST_NAN_RANK="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "adaptive_lora.cli.main", "train", "--config", str(path),
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout  # exit code 3 is a failure to torchrun
    s = read_summary(out)
    assert (s["status"], s["diverged_step"], s["diverged_reason"]) == ("diverged", 3, "non-finite gradient")
    assert s["diverged_module"].startswith("model.layers.")
    assert [r["step"] for r in train_lines(out)] == [1, 2]
    assert [r["step"] for r in read_metrics(out) if r["type"] == "diverged"] == [3]


# ----------------------------------------------------------------------------- 7. config validation


@pytest.mark.parametrize(
    "override, message",
    [
        ("lrr=0.1", "unknown config key 'lrr' (did you mean 'lr'?)"),
        ("lr=-1", "lr must be a positive number, got -1"),
        ("batch_size=0", "batch_size must be a positive integer, got 0"),
        ("precision=fp64", "precision must be one of auto, fp32, bf16, got 'fp64'"),
        ("clip=maybe", "clip must be one of off, fixed, adaptive, got 'maybe'"),
        ("lora_dropout=1.5", "lora_dropout must be a number in [0, 1), got 1.5"),
        ("eval_size=0", "eval_size must be a count >= 1 or a fraction in (0, 1), got 0"),
        ("max_steps=0", "max_steps must be null or a positive integer, got 0"),
        ("targets=zzz_proj", "targets zzz_proj match no module of this llama model"),
        ("data={tmp}/missing.json", "data file '{tmp}/missing.json' does not exist"),
        ("layer_lr=[1, 2]", "layer_lr has 2 multipliers but the model has 4 layers"),
    ],
)
def test_bad_config_exits_2_with_one_line(train_env, tmp_path, capsys, override, message):
    cfg = write_config(tmp_path / "c.yaml", train_config(train_env, "llama"))
    out = tmp_path / "run"
    rc = cli_main(["train", "--config", str(cfg), "--set", override.format(tmp=tmp_path), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in captured.err + captured.out
    # In-process, transformers may draw its weight-loading bar on stderr; that is not our output.
    lines = [line for line in captured.err.strip().splitlines() if not re.search(r"\| *\d+/\d+ \[", line)]
    assert len(lines) == 1 and lines[0].startswith("adaptive-lora: error: " + message.format(tmp=tmp_path))
    assert not (out / "summary.json").exists()


# ----------------------------------------------------------------------------- 8. AdaLoRA


@pytest.mark.parametrize("family", FAMILIES)
def test_adalora_reports_realised_ranks(train_env, tmp_path, family):
    # 20 steps: 2 before pruning starts, 3 with the final budget frozen.
    cfg = train_config(train_env, family, method="adalora", adalora_init_r=6, adalora_target_r=2,
                       adalora_tinit=2, adalora_tfinal=3, epochs=2, grad_accum=1)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert s["status"] == "completed" and s["strategy"] == "adalora" and s["optimizer_steps"] == 20
    mods = s["plan"]["modules"]
    assert len(mods) == N_MODULES[family]
    for m in mods:
        assert 0 <= m["rank"] <= 6
        assert m["params"] == m["rank"] * IN_OUT[family][role(m["name"])]
    assert s["trainable_params"] == sum(m["params"] for m in mods)
    assert s["planned_params"] == 6 * 512 * 4  # init_r on every module
    # PEFT prunes to a total of target_r per module on average.
    assert sum(m["rank"] for m in mods) == 2 * N_MODULES[family]
    assert s["total_params"] == s["base_params"] + s["trainable_params"]
    # AdaLoRA's E vectors count in the global norm, but are no layer's A or B.
    assert all(set(r["layer_grad_norms"]) == {"0", "1", "2", "3"} for r in train_lines(tmp_path / "run"))


# ----------------------------------------------------------------------------- 9. bf16 autocast


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_autocast_runs_on_cpu(train_env, main_run, tmp_path, family):
    cfg = train_config(train_env, family, precision="bf16", max_steps=2, grad_accum=1)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert s["status"] == "completed" and s["precision"] == "bfloat16"
    assert math.isfinite(s["eval_loss"])
    # The base model in bf16 scores the eval set close to, but not exactly like, fp32.
    fp32_base = main_run(family)[1]["base_eval_loss"]
    assert s["base_eval_loss"] == pytest.approx(fp32_base, abs=0.05) and s["base_eval_loss"] != fp32_base


# ----------------------------------------------------------------------------- eval loss and perplexity


class _ConstantLM(torch.nn.Module):
    """Logits all equal to ``value``: the loss of every scored token is log(vocab)."""

    def __init__(self, value: float, vocab: int = 10):
        super().__init__()
        self.value, self.vocab = value, vocab

    def forward(self, input_ids, attention_mask, logits_to_keep=0):
        from types import SimpleNamespace

        keep = logits_to_keep or input_ids.shape[1]  # HF semantics: the last ``keep`` positions
        return SimpleNamespace(logits=torch.full((input_ids.shape[0], keep, self.vocab), self.value))


@pytest.mark.parametrize("value, loss, perplexity", [(0.0, math.log(10), 10.0), (math.nan, math.nan, math.nan)])
def test_evaluate_by_hand(value, loss, perplexity):
    examples = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [-100, 5]}]
    res = evaluate(_ConstantLM(value), examples, PadCollator(0), 1, torch.device("cpu"))
    assert res["eval_tokens"] == 3
    assert res["eval_loss"] == pytest.approx(loss, rel=1e-6, nan_ok=True)  # fp32 logits
    assert res["perplexity"] == pytest.approx(perplexity, rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_scored_logits_only_equal_full_loss(family):
    """Computing logits only where a scored token is predicted gives the full-logits loss."""
    from tiny_models import build_model

    from adaptive_lora.evaluation.metrics import scored_loss_sum, token_loss_sum

    model = build_model(family).eval()
    examples = [{"input_ids": list(range(5, 17)), "labels": [-100] * 7 + list(range(12, 17))},
                {"input_ids": list(range(30, 38)), "labels": [-100] * 3 + list(range(33, 38))}]
    batch = PadCollator(0)(examples)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        want, n_want = token_loss_sum(full, batch["labels"])
        got, n_got = scored_loss_sum(model, batch)
    assert n_got == n_want == 5 + 5
    assert float(got) == pytest.approx(float(want), rel=1e-6)


# ----------------------------------------------------------------------------- options not covered above


def test_eval_every_samples_train_on_all_and_plan_reuse(train_env, tmp_path):
    """eval_every adds eval lines, generate_samples writes samples.jsonl, train_on=all scores
    prompt tokens too, and plan_file reuses an earlier run's plan exactly."""
    cfg = train_config(train_env, "llama", strategy="linear_decay", r_base=8, r_min=2, epochs=2,
                       eval_every=2, generate_samples=2, max_new_tokens=4)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "a")
    evals = [r["step"] for r in read_metrics(tmp_path / "a") if r["type"] == "eval"]
    assert evals[0] == 0 and evals[-1] == s["optimizer_steps"] and 2 in evals
    samples = [json.loads(x) for x in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and {"instruction", "reference", "generated"} <= set(samples[0])

    reused = train(TrainConfig.from_dict(train_config(train_env, "llama", strategy="uniform", r=1,
                                                      plan_file=str(tmp_path / "a" / "plan.json"))),
                   tmp_path / "b")
    assert [m["rank"] for m in reused["plan"]["modules"]] == [m["rank"] for m in s["plan"]["modules"]]

    everything = train(TrainConfig.from_dict(train_config(train_env, "llama", train_on="all", max_steps=1)),
                       tmp_path / "c")
    assert everything["eval_tokens"] > s["eval_tokens"]  # prompt tokens are scored too


def test_loss_spike_marks_divergence(train_env, tmp_path):
    s = train(TrainConfig.from_dict(train_config(train_env, "gpt2", loss_spike=0.01, max_steps=3)), tmp_path / "r")
    assert s["status"] == "diverged" and s["diverged_step"] == 1 and "loss_spike" in s["diverged_reason"]


# ----------------------------------------------------------------------------- learning curves, forgetting


def test_subset_curve_points_and_forgetting(train_env, tmp_path):
    cfg = train_config(train_env, "llama", eval_every=2, eval_subset=3, max_steps=5, grad_accum=1,
                       forgetting_passages=4)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    kinds = [(r["type"], r["step"]) for r in rows if r["type"] != "train"]
    # the full split at 0 and the end; the fixed subset at 0, every 2 steps and the end; general text at 0 and the end
    assert kinds == [("eval", 0), ("eval_subset", 0), ("eval_general", 0), ("eval_subset", 2), ("eval_subset", 4),
                     ("eval", 5), ("eval_subset", 5), ("eval_general", 5)]
    last = {r["type"]: r for r in rows if r["step"] == 5 and r["type"] != "train"}
    assert s["eval_loss"] == last["eval"]["eval_loss"] and s["eval_subset_loss"] == last["eval_subset"]["eval_loss"]
    base_general = next(r for r in rows if r["type"] == "eval_general")["eval_loss"]
    assert s["forgetting_base_loss"] == base_general and s["forgetting_loss"] == last["eval_general"]["eval_loss"]
    assert s["forgetting_delta"] == pytest.approx(s["forgetting_loss"] - base_general, abs=0)
    assert s["forgetting_set"]["passages"] == 4 and "pydoc_data" in s["forgetting_set"]["source"]


def test_forgetting_off_costs_nothing(train_env, tmp_path):
    cfg = train_config(train_env, "gpt2", forgetting=False, max_steps=2)
    s = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert not [r for r in read_metrics(tmp_path / "run") if r["type"] == "eval_general"]
    assert (s["forgetting_delta"], s["forgetting_set"]) == (None, None)
