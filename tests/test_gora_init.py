"""GoRA's gradient-compressing initialisation (``gora_init``): by hand, against the exact
gradient on a tiny model, and through a real run."""

from __future__ import annotations

import pytest
import torch

from adaptive_lora.adapters import AlphaPolicy, wrap_model
from adaptive_lora.data import PadCollator
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import StrategyParams, make_plan
from adaptive_lora.training import TrainConfig, train
from adaptive_lora.adapters.audit import lora_layers
from adaptive_lora.training.gora_init import compressed_b, gora_initialise
from adaptive_lora.training.prepare import gradient_probe_batches as probe_batches
from adaptive_lora.training.prepare import TrainData
from adaptive_lora.training.probe import ProbeContext, _weight_gradients
from adaptive_lora.training.session import Session

from test_data_driven import _examples  # the same random probe examples
from tiny_models import build_model
from train_fixtures import read_summary, train_config, train_env  # noqa: F401 - train_env is a fixture

GAMMA = 0.5


def _session():
    return Session(acc=None, device=torch.device("cpu"), world=1, rank=0, main=True, amp=None)


def test_compressed_b_by_hand():
    """A = [[1, 0, 0], [0, 2, 0]] spans the first two input coordinates, so P_A zeroes the third
    column of G, and s*B*A = -gamma * G P_A exactly. With s = 2, gamma = 0.5 and
    G = [[1, 2, 3], [4, 5, 6]]: G A^T = [[1, 4], [4, 10]], (A A^T)^-1 = diag(1, 1/4), so
    B = -(0.5 / 2) * [[1, 1], [4, 2.5]] = [[-0.25, -0.25], [-1, -0.625]]."""
    a = torch.tensor([[1.0, 0, 0], [0, 2.0, 0]])
    g = torch.tensor([[1.0, 2, 3], [4, 5, 6]])
    s = 2.0
    b = compressed_b(s * g @ a.T, a, s, GAMMA)  # dL/dB at B = 0 is s * G A^T
    assert torch.allclose(b, torch.tensor([[-0.25, -0.25], [-1.0, -0.625]], dtype=torch.float64))
    assert torch.allclose(s * b @ a.double(), -GAMMA * torch.tensor([[1.0, 2, 0], [4, 5, 0]], dtype=torch.float64))


def _cfg(**kw):
    return TrainConfig.from_dict({"probe_batches": 2, "probe_batch_size": 4, "precision": "fp32",
                                  "lora_dropout": 0.1, "gora_init": True, "gora_init_gamma": GAMMA, **kw})


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_initialised_update_is_minus_gamma_g_projected_on_a(family):
    """On a tiny model: s*B*A equals -gamma * G A^T (A A^T)^-1 A with G the exact weight gradient
    of the same batches (computed the expensive way, on the unwrapped base), for every module;
    the base weights are untouched, trainable flags restored, and no random number drawn."""
    cfg = _cfg()
    data = TrainData(_examples(), [], [], PadCollator(0), None, [], [], {})
    base = build_model(family)
    layout = layout_from_model(base)
    grads, _ = _weight_gradients(ProbeContext(cfg, _session(), data, base, layout, layout, None))
    grads = dict(grads.items())  # (W, dL/dW) per module

    plan = make_plan(layout, "uniform", StrategyParams(r=4))
    model = wrap_model(build_model(family), plan, AlphaPolicy("constant", 8.0, 2.0), 0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    info = gora_initialise(model, _session(), data, probe_batches(cfg, len(data.train)), GAMMA)
    assert torch.equal(torch.get_rng_state(), rng)
    assert info["modules"] == len(plan.adapted) and info["batches"] == 2
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags and model.training
    for n, p in model.named_parameters():
        if n in before:
            assert torch.equal(p, before[n]), n
    for key, layer in lora_layers(model).items():
        s = float(layer.scaling["default"])
        a = layer.lora_A["default"].weight.detach().double()
        b = layer.lora_B["default"].weight.detach().double()
        g = grads[key][1].double()
        if family == "gpt2":
            g = g.T  # Conv1D stores (in, out); the adapter's B.A is (out, in)
        expected = -GAMMA * g @ a.T @ torch.linalg.inv(a @ a.T) @ a
        assert torch.allclose(s * b @ a, expected, rtol=1e-4, atol=1e-9), key


def test_run_with_gora_init_records_it_and_computes_its_own_step0(train_env, tmp_path):  # noqa: F811
    """A real run: the init's cost is in the summary, and the step-0 eval is not taken from the
    sweep's base-eval cache (the model at step 0 is no longer the base)."""
    common = dict(max_steps=2, probe_batches=2)
    cache: dict = {}
    plain = train(TrainConfig.from_dict(train_config(train_env, "llama", **common)), tmp_path / "plain",
                  base_eval_cache=cache)
    gora = train(TrainConfig.from_dict(train_config(train_env, "llama", gora_init=True, **common)),
                 tmp_path / "gora", base_eval_cache=cache)
    init = read_summary(tmp_path / "gora")["probe"]["init"]
    assert init["gora_init"] and init["batches"] == 2 and init["modules"] > 0
    assert gora["base_eval_loss"] != plain["base_eval_loss"]
    assert plain["status"] == gora["status"] == "completed"
