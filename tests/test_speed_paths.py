"""The throughput switches compute what the plain path computes.

* ``cast_cache``: bf16 copies of frozen weights give bit-identical losses and gradients under bf16
  autocast, change nothing outside autocast, stay out of state dicts and follow in-place changes;
* ``max_tokens``: a step's examples re-cut into token-budget micro-batches give the same step
  (same examples, same normalisation), so a short run ends at the same eval loss up to float
  rounding;
* the eval under inference mode and the cast cache mix with training afterwards.
"""

from __future__ import annotations

import pytest
import torch

from adaptive_lora.adapters import AlphaPolicy, wrap_model
from adaptive_lora.data import PadCollator
from adaptive_lora.evaluation import evaluate
from adaptive_lora.evaluation.metrics import scored_loss_sum
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import make_plan
from adaptive_lora.strategies.params import StrategyParams
from adaptive_lora.training import TrainConfig, train
from adaptive_lora.training.speedups import cache_frozen_casts, token_budget_microbatches

from train_fixtures import train_config, train_env  # noqa: F401 - train_env is a fixture


def _wrapped(family: str = "llama"):
    from tiny_models import build_model

    torch.manual_seed(0)
    model = build_model(family)
    plan = make_plan(layout_from_model(model), "uniform", StrategyParams(r=4))
    model = wrap_model(model, plan, AlphaPolicy(), 0.0)
    for p in model.parameters():  # B = 0 at init would make every gradient check trivial
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.2)
    return model


def _batch():
    examples = [{"input_ids": list(range(5, 29)), "labels": [-100] * 9 + list(range(14, 29))},
                {"input_ids": list(range(40, 52)), "labels": [-100] * 4 + list(range(44, 52))}]
    return PadCollator(0)(examples)


def _loss_and_grads(model, batch, autocast: bool):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # GPT-2's own dropout draws the same masks on every call
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss, _ = scored_loss_sum(model, batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cast_cache_is_bit_identical_under_autocast(family):
    model, batch = _wrapped(family).train(), _batch()
    keys = set(model.state_dict())
    want_loss, want_grads = _loss_and_grads(model, batch, autocast=True)
    fp32_loss, _ = _loss_and_grads(model, batch, autocast=False)
    assert cache_frozen_casts(model, torch.bfloat16) > 0
    got_loss, got_grads = _loss_and_grads(model, batch, autocast=True)
    assert torch.equal(got_loss, want_loss)
    assert all(torch.equal(g, w) for g, w in zip(got_grads, want_grads))
    assert torch.equal(_loss_and_grads(model, batch, autocast=False)[0], fp32_loss)  # outside autocast: fp32
    assert set(model.state_dict()) == keys  # the copies are not buffers: adapters save as before


def test_cast_cache_skips_what_it_must_and_follows_in_place_changes():
    model = _wrapped()
    assert cache_frozen_casts(model, None) == 0
    n = cache_frozen_casts(model, torch.bfloat16)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    frozen = [m for m in linears if not m.weight.requires_grad]
    assert n == len(frozen) and len(frozen) < len(linears)  # LoRA's A and B (trainable) keep their forward
    lin = frozen[0]
    with torch.no_grad():
        lin.weight.mul_(2.0)
    x = torch.randn(3, lin.in_features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = lin(x)
    assert torch.equal(got, torch.nn.functional.linear(x.bfloat16(), lin.weight.bfloat16()))
    lin.weight.requires_grad_(True)  # unfrozen after caching: the weight gets its gradient
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin(x).float().sum().backward()
    assert lin.weight.grad is not None


@pytest.mark.parametrize("world", [1, 2])
def test_token_budget_microbatches_cover_the_step(world):
    lengths = [50, 10, 12, 48, 300, 11, 9, 30]
    step = [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert token_budget_microbatches(step, lengths, None) is step
    cut = token_budget_microbatches(step, lengths, 100, world)
    assert sorted(i for b in cut for i in b) == list(range(8))  # the same examples, once each
    for b in cut:
        padded = len(b) * max(lengths[i] for i in b)
        assert padded <= 100 or len(b) == world or (len(b) == 1)  # only an over-long example breaks the budget
        assert len(b) % world == 0 or b is cut[-1]
    assert cut[0] == [4] or world == 2


def test_max_tokens_trains_like_fixed_batches(train_env, tmp_path):
    """Same examples per step and the same normalisation: without dropout the eval loss after
    training differs only by float rounding."""
    cfg = train_config(train_env, "llama", max_steps=3, forgetting=False)
    a = train(TrainConfig.from_dict(cfg), tmp_path / "a")
    b = train(TrainConfig.from_dict({**cfg, "max_tokens": 400}), tmp_path / "b")
    assert a["train_tokens"] == b["train_tokens"] and a["examples_seen"] == b["examples_seen"]
    assert b["eval_loss"] == pytest.approx(a["eval_loss"], abs=1e-5)


def test_bf16_run_with_cast_cache_equals_run_without(train_env, tmp_path):
    """The switch end to end: a bf16 run with the cache (the default) ends at exactly the eval loss
    of one without; eval in inference mode between steps does not upset training."""
    cfg = train_config(train_env, "llama", precision="bf16", max_steps=3, grad_accum=1, eval_every=1,
                       forgetting=False)
    on = train(TrainConfig.from_dict(cfg), tmp_path / "on")
    off = train(TrainConfig.from_dict({**cfg, "cast_cache": False}), tmp_path / "off")
    assert on["eval_loss"] == off["eval_loss"]


def test_inference_mode_eval_after_training_and_back():
    model, batch = _wrapped().train(), _batch()
    cache_frozen_casts(model, torch.bfloat16)
    examples = [{"input_ids": list(range(5, 20)), "labels": [-100] * 5 + list(range(10, 20))}]
    evaluate(model, examples, PadCollator(0), 1, torch.device("cpu"), torch.bfloat16)
    loss, grads = _loss_and_grads(model, batch, autocast=True)  # no "inference tensor" error
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
