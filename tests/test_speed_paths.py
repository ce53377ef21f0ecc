"""The throughput switches compute what the plain path computes.

* ``cast_cache``: bf16 copies of frozen weights give bit-identical losses and gradients under bf16
  autocast, change nothing outside autocast, stay out of state dicts and follow in-place changes;
* ``max_tokens``: a step's examples re-cut into token-budget micro-batches give the same step
  (same examples, same normalisation), so a short run ends at the same eval loss up to float
  rounding;
* the eval under inference mode and the cast cache mix with training afterwards;
* ``fast_dropout``: threshold masks keep each element independently with probability 1 - p
  (p rounded to 1/65536), scale kept elements exactly as torch's dropout does, route the gradient
  through the same mask, follow torch's seed, and are installed only by training on a CPU;
* ``cpu_attention``: the two-GEMM attention gives SDPA's loss and gradients (float rounding
  apart) on every tiny family, with and without padding, and hands what it does not cover to SDPA;
* ``keep_memory``: after glibc is told to keep freed memory, a freed 64 MiB buffer comes back
  without page faults;
* ``fused_lora``: the LoRA linear with one shared cast and the adapter added by ``addmm`` gives
  PEFT's loss and gradients (float rounding apart), with dropout too (threshold masks depend only
  on the seed and the shape), and leaves what it does not cover to PEFT; as one autograd node it
  gives bit for bit what its autograd path gives.
"""

from __future__ import annotations

import types

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
from adaptive_lora.training.speedups import (ThresholdDropout, cache_frozen_casts, fuse_lora_linears,
                                             token_budget_microbatches, unfuse_lora_linears, use_gemm_attention,
                                             use_threshold_dropout, use_torch_dropout)

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


def test_keep_freed_memory_reuses_pages_without_faults():
    """Freed memory stays in the process: allocating and touching 64 MiB again (above glibc's
    largest dynamic mmap threshold, so by default a fresh mapping and 16384 page faults) reuses the
    pages. Process-wide and idempotent."""
    import platform
    import resource

    from adaptive_lora.training.speedups import keep_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert keep_freed_memory() is False
        return
    assert keep_freed_memory() is True and keep_freed_memory() is True
    n = 64 << 20
    faults = []
    for _ in range(4):  # the heap grows to hold the buffer at first, then the freed pages are reused
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.ones(n, dtype=torch.uint8)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        del x
    # Without the setting every one faults 16384 times; with it, small allocations in between may
    # still push one buffer past the freed block (fragmentation), so the best of the reuses counts.
    assert min(faults[1:]) < (n >> 12) // 10, f"page faults per 64 MiB buffer: {faults}"


def test_inference_mode_eval_after_training_and_back():
    model, batch = _wrapped().train(), _batch()
    cache_frozen_casts(model, torch.bfloat16)
    examples = [{"input_ids": list(range(5, 20)), "labels": [-100] * 5 + list(range(10, 20))}]
    evaluate(model, examples, PadCollator(0), 1, torch.device("cpu"), torch.bfloat16)
    loss, grads = _loss_and_grads(model, batch, autocast=True)  # no "inference tensor" error
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("p, levels", [(0.1, 6554), (0.05, 3277), (0.5, 32768), (1e-6, 0), (1 - 1e-7, 65535)])
def test_threshold_dropout_rounds_p_to_sixteen_bits(p, levels):
    d = ThresholdDropout(p)
    assert d.drop_levels == levels and d.effective_p == levels / 65536
    assert d.scale == 65536 / (65536 - levels)  # finite: one level is always kept


def test_threshold_dropout_p_is_settable_like_torch_dropout():
    """Code that sets ``.p`` on a LoRA dropout (benchmarks/ab_switches.py does) must change the masks
    of the threshold dropout too, not only an attribute nothing reads."""
    d, x = ThresholdDropout(0.1).train(), torch.ones(64, 64)
    d.p = 0.5
    assert (d.drop_levels, d.scale, d.p) == (32768, 2.0, 0.5)
    d.p = 0.0
    assert not d.active and d(x) is x
    with pytest.raises(ValueError):
        d.p = 1.0


@pytest.mark.parametrize("p, dtype", [(0.1, torch.float32), (0.1, torch.bfloat16), (0.5, torch.float32),
                                      (0.05, torch.bfloat16)])
def test_threshold_dropout_law_scale_and_gradient(p, dtype):
    torch.manual_seed(0)
    x = (torch.rand(400, 2500) + 0.5).to(dtype).requires_grad_()  # no zeros: a zero output = dropped
    d = ThresholdDropout(p).train()
    y = d(x)
    kept = y != 0
    n, q = x.numel(), d.effective_p
    dropped = 1 - kept.double().mean().item()
    assert abs(dropped - q) < 5 * (q * (1 - q) / n) ** 0.5  # 5 sigma of a Bernoulli mean
    # pairs of neighbours (the same 64-bit draw or the next one) are dropped together at rate q^2
    both = (~kept[:, :-1] & ~kept[:, 1:]).double().mean().item()
    assert abs(both - q * q) < 5 * (q * q / (n - 400)) ** 0.5
    assert d.scale == pytest.approx(1.0 / (1.0 - q), rel=1e-12)  # unbiased for the rounded p
    expected = (x.detach().float() * d.scale).to(dtype)  # one rounding, as torch's dropout
    assert torch.equal(y[kept], expected[kept])
    y.sum().backward()
    assert torch.equal(x.grad, torch.where(kept, torch.tensor(d.scale).to(dtype), torch.zeros((), dtype=dtype)))


def test_threshold_dropout_follows_torch_seed_and_is_off_in_eval():
    d, x = ThresholdDropout(0.1).train(), torch.ones(64, 64)
    torch.manual_seed(3)
    a, b = d(x), d(x)
    torch.manual_seed(3)
    assert torch.equal(d(x), a) and not torch.equal(a, b)  # reproducible, fresh masks per call
    assert d.eval()(x) is x and ThresholdDropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        ThresholdDropout(1.0)


def test_use_threshold_dropout_swaps_every_lora_dropout_and_back():
    from tiny_models import build_model

    model = build_model("llama")
    plan = make_plan(layout_from_model(model), "uniform", StrategyParams(r=4))
    model = wrap_model(model, plan, AlphaPolicy(), 0.1)
    n_lora = sum(1 for _ in plan.ranks)
    assert use_threshold_dropout(model) == n_lora
    assert sum(isinstance(m, ThresholdDropout) for m in model.modules()) == n_lora
    assert use_threshold_dropout(model) == 0  # already swapped
    assert use_torch_dropout(model) == n_lora
    assert not any(isinstance(m, ThresholdDropout) for m in model.modules())
    without = wrap_model(build_model("llama"), plan, AlphaPolicy(), 0.0)  # PEFT's Identity: nothing to swap
    assert use_threshold_dropout(without) == 0


@pytest.mark.parametrize("dropout, same", [(0.1, False), (0.0, True)])
def test_fast_dropout_changes_only_the_draws(train_env, tmp_path, dropout, same):
    """Training installs the threshold masks on a CPU when asked (the draws then differ from
    torch's, the default); without dropout the switch changes nothing at all."""
    cfg = train_config(train_env, "llama", max_steps=2, forgetting=False, lora_dropout=dropout)
    assert TrainConfig.from_dict(cfg).optim.fast_dropout is False  # torch's draws unless asked
    on = train(TrainConfig.from_dict({**cfg, "fast_dropout": True}), tmp_path / "on")
    off = train(TrainConfig.from_dict(cfg), tmp_path / "off")
    assert (on["eval_loss"] == off["eval_loss"]) is same


def _loss_and_full_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss, _ = scored_loss_sum(model, batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


# family -> whether the switch applies: a checked family (GEMM_ATTENTION_FAMILIES) attending through
# SDPA by default and through transformers' attention registry (Falcon has its own attention code
# and is not in the list; Gemma 2 defaults to eager)
GEMM_FAMILIES = {"llama": True, "gpt2": True, "qwen2": True, "mistral": True, "gemma2": False, "phi3": True,
                 "gpt_neox": True, "falcon": False, "opt": True, "mixtral": True}


@pytest.mark.parametrize("family", sorted(GEMM_FAMILIES))
@pytest.mark.parametrize("padded, block", [(True, 64), (False, 64), (True, 5)])
def test_gemm_attention_matches_sdpa(family, padded, block, monkeypatch):
    """block 64: one block for these 24 positions; block 5: five causal blocks of queries."""
    from tiny_models import build_model

    import adaptive_lora.training.speedups as speedups

    monkeypatch.setattr(speedups, "GEMM_ATTENTION_BLOCK", block)

    switches = GEMM_FAMILIES[family]
    examples = [{"input_ids": list(range(5, 29)), "labels": [-100] * 9 + list(range(14, 29))},
                {"input_ids": list(range(40, 52)), "labels": [-100] * 4 + list(range(44, 52))}]
    batch = PadCollator(0)(examples if padded else examples[:1])
    model = build_model(family).eval()  # eval: no dropout anywhere, gradients all the same
    want, want_grads = _loss_and_full_grads(model, batch)
    assert use_gemm_attention(model) is switches
    attended = []
    real = speedups._attend
    monkeypatch.setattr(speedups, "_attend", lambda *a: attended.append(1) or real(*a))
    got, got_grads = _loss_and_full_grads(model, batch)
    blocks = -(-24 // block)  # causal blocks of the batch's 24 positions (the first example's length)
    assert len(attended) == (blocks * model.config.num_hidden_layers if switches else 0)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_gemm_attention_hands_over_what_it_does_not_cover(monkeypatch):
    """Longer sequences, attention dropout and a soft-capped model go to SDPA, unchanged."""
    from tiny_models import build_model
    from transformers.integrations import sdpa_attention

    import adaptive_lora.training.speedups as speedups

    model = build_model("llama").eval()
    use_gemm_attention(model)
    handed_over = []
    real = sdpa_attention.sdpa_attention_forward
    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", lambda *a, **k: handed_over.append(1) or real(*a, **k))
    batch = _batch()
    scored_loss_sum(model, batch)
    assert not handed_over
    monkeypatch.setattr(speedups, "GEMM_ATTENTION_MAX_LEN", 8)  # the batch is 24 long
    scored_loss_sum(model, batch)
    assert len(handed_over) == model.config.num_hidden_layers
    q = torch.randn(1, 4, 5, 8)
    k = torch.randn(1, 2, 5, 8)
    v_wide = torch.randn(1, 2, 5, 16)  # value heads wider than query heads (DeepSeek-V3's layout)
    for kwargs in ({"dropout": 0.1}, {"softcap": 30.0}, {"position_bias": torch.zeros(1, 4, 5, 5)}, {"value": v_wide},
                   {"s_aux": torch.zeros(4)}):
        handed_over.clear()
        try:
            value = kwargs.pop("value", k)
            speedups.gemm_attention(model.model.layers[0].self_attn, q, k, value, None, **kwargs)
        except (ValueError, TypeError):  # SDPA itself refuses soft-capping and sinks
            pass
        assert handed_over == [1], kwargs


def test_cpu_attention_switch_in_training(train_env, tmp_path, monkeypatch):
    """A run with the two-GEMM attention ends where one with SDPA does (float rounding apart)."""
    import adaptive_lora.training.run as run

    switched = []
    monkeypatch.setattr(run, "use_gemm_attention", lambda m: switched.append(use_gemm_attention(m)))
    cfg = train_config(train_env, "llama", max_steps=2, forgetting=False)
    on = train(TrainConfig.from_dict(cfg), tmp_path / "on")
    off = train(TrainConfig.from_dict({**cfg, "cpu_attention": False}), tmp_path / "off")
    eager = train(TrainConfig.from_dict({**cfg, "attn_implementation": "eager"}), tmp_path / "eager")
    assert switched == [True]  # only the first run: off by the switch, and eager asked for by name
    assert eager["eval_loss"] == pytest.approx(off["eval_loss"], abs=1e-5)
    assert on["eval_loss"] == pytest.approx(off["eval_loss"], abs=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_lora_linear_matches_peft(dropout):
    """The whole model in float64 (so that rounding is out of the way: folding the scalings into
    A and B rounds differently in fp32): the same loss and gradients."""
    model, batch = _wrapped().double(), _batch()
    if dropout:
        for mod in model.modules():
            if hasattr(mod, "lora_dropout"):
                mod.lora_dropout["default"] = ThresholdDropout(dropout)
    model.train()
    want, want_grads = _loss_and_grads(model, batch, False)
    n = fuse_lora_linears(model)
    assert n == sum(1 for m in model.modules() if hasattr(m, "lora_A"))
    got, got_grads = _loss_and_grads(model, batch, False)
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert fuse_lora_linears(model) == 0 and unfuse_lora_linears(model) == n
    again, _ = _loss_and_grads(model, batch, False)
    assert float(again) == float(want)


def test_fused_lora_linear_under_autocast_is_as_close_to_fp32_as_peft():
    """bf16 autocast, one adapted linear: the output and the gradients are as far from fp32 as
    PEFT's own bf16 path is (the input is cast once, before the dropout; B's scaling is folded)."""
    torch.manual_seed(1)
    layer = next(m for m in _wrapped().modules() if hasattr(m, "lora_A")).train()
    x, w = torch.randn(3, 7, layer.in_features), torch.randn(3, 7, layer.out_features)

    def run(autocast):
        layer.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = layer(xi)
        (y.float() * w).sum().backward()
        return [y.detach().float(), xi.grad] + [p.grad.clone() for p in layer.parameters() if p.requires_grad]

    exact = run(False)
    peft_bf16 = run(True)
    fuse_lora_linears(layer)
    fused_bf16 = run(True)
    for e, p, f in zip(exact, peft_bf16, fused_bf16):
        err_peft, err_fused = (p - e).abs().max().item(), (f - e).abs().max().item()
        assert err_fused <= 2 * err_peft + 1e-3 * e.abs().max().item()


@pytest.mark.parametrize("autocast,dropout", [(True, 0.3), (True, 0.0), (False, 0.3), (False, 0.0)])
def test_lora_linear_as_one_node_is_bit_identical(autocast, dropout, monkeypatch):
    """The fused LoRA linear as one autograd node runs the same ops as autograd's path through the
    fused forward: under bf16 autocast (the cast cache's weights, threshold dropout) the same loss
    and gradients bit for bit. In fp32 the input's gradient is summed in another order (the base's
    and the adapter's share of each module first, then the modules that read the same input), so
    the gradients agree to float rounding."""
    import adaptive_lora.training.speedups as speedups

    model, batch = _wrapped(), _batch()
    if dropout:
        for mod in model.modules():
            if hasattr(mod, "lora_dropout"):
                mod.lora_dropout["default"] = ThresholdDropout(dropout)
    model.train()
    if autocast:
        cache_frozen_casts(model, torch.bfloat16)
    fuse_lora_linears(model)
    results = {}
    for one_node in (False, True):
        monkeypatch.setattr(speedups, "LORA_ONE_NODE", one_node)
        layer = next(m for m in model.modules() if hasattr(m, "lora_A"))
        x = torch.randn(2, 3, layer.in_features, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            node = type(layer(x).grad_fn).__name__
        assert (node == "_LoraLinearBackward") == one_node, node
        results[one_node] = _loss_and_grads(model, batch, autocast)
    (loss_a, grads_a), (loss_b, grads_b) = results[False], results[True]
    assert torch.equal(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b):
        if autocast:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


def test_lora_linear_with_torch_dropout_is_not_one_node():
    model = _wrapped().train()
    for mod in model.modules():
        if hasattr(mod, "lora_dropout"):
            mod.lora_dropout["default"] = torch.nn.Dropout(0.3)
    fuse_lora_linears(model)
    layer = next(m for m in model.modules() if hasattr(m, "lora_A"))
    y = layer(torch.randn(2, 3, layer.in_features, requires_grad=True))
    assert type(y.grad_fn).__name__ != "_LoraLinearBackward"


def test_fused_lora_linear_leaves_the_rest_to_peft():
    model, batch = _wrapped(), _batch()
    fuse_lora_linears(model)
    with torch.no_grad():
        want, _ = scored_loss_sum(model, batch)
        with model.disable_adapter():
            base, _ = scored_loss_sum(model, batch)
    assert float(base) != float(want)  # disabling the adapter went through PEFT's forward
    gpt2 = _wrapped("gpt2")
    assert fuse_lora_linears(gpt2) == 0  # GPT-2's Conv1D projections: PEFT's own layer class


@pytest.mark.parametrize("mask_kind", ["causal", "padded", "bidirectional", "prefix", "none_causal", "none_full"])
def test_gemm_attention_blocks_only_under_causal_masks(mask_kind, monkeypatch):
    """Against SDPA on the same inputs: a mask that lets a query see later keys (bidirectional,
    prefix-LM) must not be cut into causal blocks."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    import adaptive_lora.training.speedups as speedups

    monkeypatch.setattr(speedups, "GEMM_ATTENTION_BLOCK", 3)
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 4, 10, 8, generator=g), torch.randn(2, 2, 10, 8, generator=g), torch.randn(2, 2, 10, 8, generator=g)
    causal = torch.ones(10, 10, dtype=torch.bool).tril()
    masks = {"causal": causal.expand(2, 1, 10, 10), "bidirectional": torch.ones(2, 1, 10, 10, dtype=torch.bool),
             "padded": causal & (torch.arange(10) < torch.tensor([[10], [6]])).view(2, 1, 1, 10),
             "prefix": causal | (torch.arange(10).view(10, 1) < 4) & (torch.arange(10) < 4),
             "none_causal": None, "none_full": None}
    module = types.SimpleNamespace(is_causal=mask_kind != "none_full", num_key_value_groups=2)
    mask = masks[mask_kind]
    if mask is not None and mask.dim() == 2:
        mask = mask.expand(2, 1, 10, 10)
    got, _ = speedups.gemm_attention(module, q, k, v, mask)
    want, _ = sdpa_attention_forward(module, q, k, v, mask, is_causal=None)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_gemm_attention_only_for_checked_families():
    """A family outside GEMM_ATTENTION_FAMILIES keeps SDPA even when it attends through the registry
    (some models branch on the name "sdpa" itself)."""
    from tiny_models import build_model

    import adaptive_lora.training.speedups as speedups

    model = build_model("llama")
    model.config.model_type = "not_checked"
    assert use_gemm_attention(model) is False and model.config._attn_implementation == "sdpa"
    assert "falcon" not in speedups.GEMM_ATTENTION_FAMILIES


def test_scored_head_refuses_a_model_that_ignores_logits_to_keep():
    from tiny_models import build_model

    model = build_model("llama").eval()
    real = model.forward
    model.forward = lambda **kw: real(**{**kw, "logits_to_keep": 0})  # all positions reach the head
    with pytest.raises(RuntimeError, match="logits_to_keep"):
        scored_loss_sum(model, _batch())


def test_gemm_attention_follows_a_sliding_window(monkeypatch):
    """Mistral with a window shorter than the sequence: the window lives in SDPA's mask, which
    the two GEMMs (in blocks) apply as it is."""
    from tiny_models import FAMILY_CONFIGS

    import adaptive_lora.training.speedups as speedups
    from adaptive_lora.layout.discover import model_class

    monkeypatch.setattr(speedups, "GEMM_ATTENTION_BLOCK", 4)
    config = FAMILY_CONFIGS["mistral"]()
    batch = _batch()
    torch.manual_seed(0)
    unwindowed, _ = _loss_and_full_grads(model_class(config).from_config(config).eval(), batch)
    config.sliding_window = 5
    torch.manual_seed(0)
    model = model_class(config).from_config(config).eval()
    want, want_grads = _loss_and_full_grads(model, batch)
    assert float(want) != pytest.approx(float(unwindowed), rel=1e-5)  # the window changes the result
    model.set_attn_implementation("eager")
    eager, _ = _loss_and_full_grads(model, batch)
    model.set_attn_implementation("sdpa")
    assert use_gemm_attention(model)
    got, got_grads = _loss_and_full_grads(model, batch)
    assert float(want) == pytest.approx(float(eager), rel=1e-5)  # the window is in SDPA's mask too
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [False, True])
def test_threshold_dropout_masks_replay_under_gradient_checkpointing(fused):
    """Non-reentrant checkpointing recomputes each layer's forward in the backward pass; the
    masks come from torch's generator state, which checkpointing restores, so the recomputed
    masks are the ones the forward used: the gradients equal those without checkpointing, with
    PEFT's forward and with the fused LoRA linear (one autograd node, which draws its own mask)."""
    model, batch = _wrapped(), _batch()
    use_threshold_dropout(model)
    for mod in model.modules():
        if isinstance(mod, ThresholdDropout):
            mod.__init__(0.3)
    if fused:
        fuse_lora_linears(model)
    model.train()
    want, want_grads = _loss_and_grads(model, batch, False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert model.is_gradient_checkpointing
    got, got_grads = _loss_and_grads(model, batch, False)
    assert float(got) == float(want)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
