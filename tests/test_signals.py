"""More allocation signals: weight spectra (data-free), GoRA, post-hoc SVD of a LoRA update.

Hand-made cases where the right answer is known: a power law with a known exponent, D'Hondt
apportionments worked out step by step, a LoRA update with known singular values.
"""

from __future__ import annotations

import json

import pytest
import torch

from adaptive_lora.data import PadCollator
from adaptive_lora.errors import UserError
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import STRATEGIES, StrategyParams, make_plan
from adaptive_lora.strategies.data_driven import water_fill
from adaptive_lora.strategies.proportional import proportional_fill
from adaptive_lora.strategies.spectrum import SPECTRUM_POWER, hill_alpha
from adaptive_lora.training import TrainConfig
from adaptive_lora.training.prepare import TrainData
from adaptive_lora.training.probe import (NEVER_READ, PROBES, ProbeContext, _update_spectra, gora_importance,
                                          plan_with_weights, run_probe, weight_spectra)
from adaptive_lora.training.session import Session

from test_data_driven import _examples  # the same random probe examples
from tiny_models import build_model, save_tiny_model

NEW = ("weight_spectrum", "gora", "svd_compress")


def pareto_eigenvalues(alpha: float, n: int) -> list[float]:
    """n values at the mid quantiles of p(x) ~ x^-alpha on x >= 1 (inverse CDF), descending."""
    return sorted(((1 - (j - 0.5) / n) ** (-1 / (alpha - 1)) for j in range(1, n + 1)), reverse=True)


def with_spectrum(shape, eigs, seed=0) -> torch.Tensor:
    """A matrix whose W^T W has exactly the eigenvalues ``eigs`` (random singular vectors)."""
    g = torch.Generator().manual_seed(seed)
    n = min(shape)
    u = torch.linalg.qr(torch.randn(shape[0], n, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(shape[1], n, generator=g, dtype=torch.float64))[0]
    return (u * torch.tensor(eigs, dtype=torch.float64).sqrt()) @ v.T


def _session():
    return Session(acc=None, device=torch.device("cpu"), world=1, rank=0, main=True, amp=None)


def _ctx(model, cfg=None, data=None):
    layout = layout_from_model(model)
    return ProbeContext(cfg or TrainConfig(), _session(), data, model, layout, layout, None)


# ------------------------------------------------------------------ the Hill estimator


def test_hill_alpha_by_hand():
    # xmin = 1; sum of ln(x / xmin) over e^2, e, 1 is 2 + 1 + 0 = 3, so alpha = 1 + 3 / 3 = 2.
    assert hill_alpha([torch.e ** 2, torch.e, 1.0, 0.5], 3) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        hill_alpha([2.0, 1.0], 1)


@pytest.mark.parametrize("alpha", [2.0, 2.5, 4.0])
def test_probe_recovers_a_known_power_law(alpha):
    """Eigenvalues of W^T W on a power law with exponent alpha: the probe's estimate (top half
    of the spectrum, the default spectrum_tail) is within 2 % of alpha."""
    model = build_model("llama")
    layout = layout_from_model(model)
    name = layout.modules[0].name
    n = 400
    with torch.no_grad():
        model.get_submodule(name).weight = torch.nn.Parameter(with_spectrum((n, 2 * n), pareto_eigenvalues(alpha, n)))
    extra, info = weight_spectra(_ctx(model))
    assert extra["alphas"][name] == pytest.approx(alpha, rel=0.02)
    assert 200 in info["tail_sizes"] and info["time_s"] > 0


def test_lighter_tailed_module_gets_more_rank():
    """Every target weight on a heavy-tailed power law (alpha 2) except one made lighter-tailed
    (alpha 6): that module has the largest alpha and the largest rank."""
    model = build_model("llama")
    layout = layout_from_model(model)
    light = "model.layers.2.self_attn.o_proj"
    with torch.no_grad():
        for i, m in enumerate(layout.modules):
            shape = tuple(model.get_submodule(m.name).weight.shape)
            eigs = pareto_eigenvalues(6.0 if m.name == light else 2.0, min(shape))
            model.get_submodule(m.name).weight.copy_(with_spectrum(shape, eigs, seed=i))
    alphas = weight_spectra(_ctx(model))[0]["alphas"]
    assert max(alphas, key=alphas.get) == light
    params = StrategyParams(r_min=1, r_max=8, extra={"alphas": alphas})
    plan = make_plan(layout, "weight_spectrum", params, budget_like="uniform:4")
    assert plan.ranks[light] == 8 and sorted(plan.ranks.values())[-2] < 8
    assert 0 <= plan.budget_target - plan.trainable_params < min(m.in_features + m.out_features
                                                                 for m in layout.modules)


def test_spectrum_power_default_is_the_papers():
    assert TrainConfig().probe.spectrum_power == SPECTRUM_POWER == 2.5


# ------------------------------------------------------------------ proportional allocation


@pytest.mark.parametrize(
    "target, cost, budget, r_min, r_max, want",
    [
        # 3 : 1 at equal cost, 8 ranks of 10: D'Hondt gives a the 2nd..5th (3/2, 3/3, 3/4, 3/5 beat b's
        # 1/2), the tie 3/6 = 1/2 goes to a by name, then b's 1/2 beats a's 3/7: exactly 6 : 2
        ({"a": 3.0, "b": 1.0}, {"a": 10, "b": 10}, 80, 1, 8, {"a": 6, "b": 2}),
        # the same capped at r_max = 4: a stops at 4, the rest goes to b
        ({"a": 3.0, "b": 1.0}, {"a": 10, "b": 10}, 80, 1, 4, {"a": 4, "b": 4}),
        # equal targets, b three times as expensive: alternate while the steps fit; the 15 left
        # after a=3, b=2 (90) buy one more a (10), not a b (30)
        ({"a": 1.0, "b": 1.0}, {"a": 10, "b": 30}, 105, 1, 8, {"a": 4, "b": 2}),
        # a zero target stays at r_min
        ({"a": 1.0, "b": 0.0}, {"a": 10, "b": 10}, 60, 2, 8, {"a": 4, "b": 2}),
    ],
)
def test_proportional_fill_by_hand(target, cost, budget, r_min, r_max, want):
    assert proportional_fill(target, cost, budget, r_min, r_max) == want


def test_proportional_fill_refuses_a_nan_score():
    with pytest.raises(UserError, match="rerun the probe"):
        proportional_fill({"a": float("nan")}, {"a": 10}, 100, 1, 8)


def test_gora_share_follows_importance_per_parameter():
    """GoRA gives parameter shares proportional to importance: b is three times as important and
    three times as expensive, so both get the same rank (budget 160 = 4 x 10 + 4 x 30)."""
    from adaptive_lora.strategies.gora import gora

    class Mod:  # the two fields the strategy reads of a layout module, plus its name
        def __init__(self, name, n):
            self.name, self.in_features, self.out_features = name, n // 2, n - n // 2

    class Lay:
        modules = [Mod("a", 10), Mod("b", 30)]

    params = StrategyParams(r_min=1, r_max=8, extra={"importance": {"a": 1.0, "b": 3.0}, "budget": 160})
    assert gora(Lay(), params) == {"a": 4, "b": 4}


def _gora(model):
    cfg = TrainConfig.from_dict({"probe_batches": 2, "probe_batch_size": 4, "precision": "fp32"})
    data = TrainData(_examples(), [], [], PadCollator(0), None, [], [], {})
    return gora_importance(_ctx(model, cfg, data))


def test_gora_importance_is_mean_abs_weight_times_gradient(monkeypatch):
    """By hand: W = [[1, -2], [3, 0]], G = [[0.5, 0.5], [-1, 4]]: |W * G| = 0.5, 1, 3, 0; mean 1.125."""
    import adaptive_lora.training.probe as probe

    w, g = torch.tensor([[1.0, -2.0], [3.0, 0.0]]), torch.tensor([[0.5, 0.5], [-1.0, 4.0]])
    monkeypatch.setattr(probe, "_weight_gradients", lambda ctx: ({"m": (w, g)}, {"batches": 1}))
    extra, info = gora_importance(None)
    assert extra == {"importance": {"m": 1.125}} and info["probe"] == "gora_importance"


def test_gora_probe_gives_a_sensitive_module_more_rank():
    """Scaling a module's output by 10 scales its dL/dW by about 10 (downstream activations change
    too): its importance rises several-fold and it gets more rank."""
    model = build_model("llama")
    layout = layout_from_model(model)
    target = "model.layers.1.mlp.up_proj"
    base, info = _gora(model)
    boosted_model = build_model("llama")
    boosted_model.get_submodule(target).register_forward_hook(lambda mod, inp, out: out * 10)
    boosted, _ = _gora(boosted_model)
    assert boosted["importance"][target] > 5 * base["importance"][target]
    assert info["batches"] == 2 and not any(p.requires_grad for p in boosted_model.parameters())

    def ranks(extra):
        return make_plan(layout, "gora", StrategyParams(r_min=1, r_max=16, extra=extra), budget_like="uniform:4").ranks

    assert ranks(boosted)[target] > ranks(base)[target]


# ------------------------------------------------------------------ SVD of a learned update


def test_update_spectra_of_a_known_lora_update():
    """scaling * B A with B = diag(3, 1) on its first rows and A = the first two unit rows:
    singular values 3 s and s, so sigma^2 = 9 s^2 and s^2 (s = alpha / r = 8 / 2 = 4)."""
    from peft import LoraConfig, get_peft_model

    model = build_model("llama")
    name = "model.layers.0.self_attn.q_proj"
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=8, target_modules=[name]))
    mod = peft_model.get_submodule("base_model.model." + name)
    with torch.no_grad():
        mod.lora_A["default"].weight.zero_()
        mod.lora_A["default"].weight[0, 0] = mod.lora_A["default"].weight[1, 1] = 1.0
        mod.lora_B["default"].weight.zero_()
        mod.lora_B["default"].weight[0, 0], mod.lora_B["default"].weight[1, 1] = 3.0, 1.0
    layout = layout_from_model(build_model("llama")).select([name.split(".")[-1]])
    got = _update_spectra(peft_model, layout)
    assert list(got) == [name]
    assert got[name] == pytest.approx([9 * 16, 16])


def test_svd_compress_water_fills_explained_variance():
    from adaptive_lora.strategies.svd_compress import svd_compress

    spectra = {"a": [9.0, 1.0], "b": [4.0, 4.0]}
    # by hand: r_min 1 keeps each module's first direction (20 of 40); at equal cost b's second
    # direction (4) beats a's (1), then a's second is the only one left with variance: 2 and 2
    assert water_fill(spectra, {"a": 10, "b": 10}, 40, 1, 4) == {"a": 2, "b": 2}

    class Lay:
        modules = [type("M", (), {"name": "a", "in_features": 5, "out_features": 5})(),
                   type("M", (), {"name": "b", "in_features": 5, "out_features": 5})()]

    params = StrategyParams(r_min=1, r_max=4, extra={"spectra": spectra, "budget": 40})
    assert svd_compress(Lay(), params) == {"a": 2, "b": 2}


# ------------------------------------------------------------------ registry, cache, plan


@pytest.mark.parametrize("name", NEW)
def test_new_strategies_are_registered_with_their_probe(name):
    st = STRATEGIES[name]
    assert st.probe in PROBES and st.allocates_budget and st.family == "data-driven"
    with pytest.raises(UserError, match="needs its probe"):
        make_plan(layout_from_model(build_model("gpt2")), name, StrategyParams(), budget_like="uniform:4")


def test_weight_spectra_cache_key_is_data_free():
    """The data-free probe's key changes with the model and the targets, never with the data."""
    ignore = NEVER_READ + PROBES["weight_spectra"].ignore
    base = TrainConfig().cache_key("weight_spectra", ignore)
    for key, value in {"data": "other.json", "max_train": 3, "lr": 1.0, "r": 3, "spectrum_power": 1.0}.items():
        assert TrainConfig.from_dict({key: value}).cache_key("weight_spectra", ignore) == base, key
    for key, value in {"model": "other", "targets": ["q_proj"], "spectrum_tail": 0.25}.items():
        assert TrainConfig.from_dict({key: value}).cache_key("weight_spectra", ignore) != base, key


def test_spectrum_power_reaches_the_strategy_without_a_new_probe(tmp_path):
    model = build_model("llama")
    extras = []
    for power in (2.5, 1.0):
        cfg = TrainConfig.from_dict({"spectrum_power": power, "plan_cache": str(tmp_path)})
        extra, info = run_probe("weight_spectra", _ctx(model, cfg))
        extras.append((extra, info))
    (e1, i1), (e2, i2) = extras
    assert (i1["cached"], i2["cached"]) == (False, True)
    assert (e1["spectrum_power"], e2["spectrum_power"]) == (2.5, 1.0) and e1["alphas"] == e2["alphas"]


def test_plan_with_weights_on_a_local_folder(tmp_path):
    folder = save_tiny_model(tmp_path / "m", "gpt2")
    plan = plan_with_weights(str(folder), "weight_spectrum", StrategyParams(r_min=1, r_max=8),
                             budget_like="uniform:4", spectrum_power=1.0)
    assert plan.strategy == "weight_spectrum" and all(1 <= r <= 8 for r in plan.ranks.values())
    cheapest = min(m.in_features + m.out_features for m in plan.layout.modules if plan.ranks[m.name] < 8)
    assert 0 <= plan.budget_target - plan.trainable_params < cheapest
    with pytest.raises(UserError, match="measures the model on training data"):
        plan_with_weights(str(folder), "gora", budget_like="uniform:4")


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize("strategy", NEW)
def test_new_signal_trains_end_to_end(tmp_path, strategy):
    """Each new strategy trains through the CLI, records its probe, meets its budget within one
    rank step, and keeps every rank within [r_min, r_max]."""
    from adaptive_lora.cli.main import main as cli_main

    model = save_tiny_model(tmp_path / "m", "llama")
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": f"Say {w} twice.", "input": "", "output": f"{w} {w}"}
                                for w in ["red", "green", "blue", "cyan", "pink", "gold", "gray", "teal"] * 3]))
    sets = [f"model={model}", f"data={data}", "eval_size=4", "max_length=320", "batch_size=4", "grad_accum=1",
            "max_steps=2", "progress=false", "precision=fp32", f"strategy={strategy}", "r_min=1", "r_max=8",
            "probe_batches=2", "svd_probe_r=8", "probe_steps=2", "budget_like=uniform:4", "forgetting=false"]
    assert cli_main(["train", "--out", str(tmp_path / "run"), *[x for c in sets for x in ("--set", c)]]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["probe"]["probe"] == STRATEGIES[strategy].probe
    assert summary["probe"]["time_s"] > 0 and summary["probe"]["cached"] is False
    ranks = [m["rank"] for m in summary["plan"]["modules"]]
    assert all(1 <= r <= 8 for r in ranks)
    cheapest = min(m["params"] // m["rank"] for m in summary["plan"]["modules"])
    assert 0 <= summary["plan"]["budget_target"] - summary["trainable_params"] < cheapest
