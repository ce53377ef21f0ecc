"""method: prune_expand, ranks moved between modules during training: the schedule, the
capacities, the moves on hand-set importances, the budget, and a real run."""

from __future__ import annotations

import pytest
import torch

from adaptive_lora.errors import UserError
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import StrategyParams, make_plan
from adaptive_lora.training import TrainConfig, train
from adaptive_lora.training.methods import METHODS, PruneExpandMethod
from adaptive_lora.training.prune_expand import Schedule, capacity

from tiny_models import build_model
from train_fixtures import read_metrics, read_summary, train_config, train_env  # noqa: F401 - fixture


@pytest.mark.parametrize("warmup, interval, freeze, total, due", [
    (2, 2, 2, 10, [4, 6, 8]),      # after step 2, every 2, not in the last 2 (9, 10)
    (0, 3, 0, 9, [3, 6, 9]),
    (4, 1, 4, 8, []),              # warm-up and freeze cover the run
    (1, 5, 1, 12, [6, 11]),
])
def test_schedule(warmup, interval, freeze, total, due):
    s = Schedule(warmup, interval, freeze, total)
    assert [k for k in range(1, total + 1) if s.due(k)] == due


@pytest.mark.parametrize("rank, factor, max_rank, r_max, cap", [
    (8, 2.0, 576, 64, 16), (8, 2.0, 576, 12, 12), (8, 2.0, 10, 64, 10), (8, 1.0, 576, 64, 8),
    (40, 2.0, 576, 32, 40),  # a planned rank above r_max is kept, never cut
    (3, 1.5, 576, 64, 5),
])
def test_capacity(rank, factor, max_rank, r_max, cap):
    assert capacity(rank, factor, max_rank, r_max) == cap


def _method(total=10, **kw):
    cfg = TrainConfig.from_dict({"method": "prune_expand", "alpha_policy": "proportional", "r": 2, "r_max": 8,
                                 "r_min": 1, "pe_warmup": 0, "pe_freeze": 0, "pe_interval": 1, "pe_moves": 1,
                                 "lora_dropout": 0.0, **kw})
    base = build_model("llama")
    layout = layout_from_model(base)
    plan = make_plan(layout, "uniform", StrategyParams(r=2))
    method = METHODS["prune_expand"].from_config(cfg, plan)
    model = method.attach(base, layout, cfg, total)
    return method, model, plan


def test_attach_builds_capacity_and_starts_as_the_plan():
    method, model, plan = _method()
    for slot in method.mover.slots:
        assert slot.cap == 4 and slot.rank == 2  # 2 x the planned rank 2
        assert torch.count_nonzero(slot.a[2:]) == 0 and torch.count_nonzero(slot.a[:2]) > 0
        assert torch.count_nonzero(slot.b) == 0
    assert method.mover.active_params() == plan.trainable_params == method.mover.budget


def _set_importance(method, hot: str, factor: float = 10.0):
    """Gradients so that |w * g| is 1 per active element, ``factor`` on the module ``hot``."""
    for slot in method.mover.slots:
        with torch.no_grad():
            slot.a.copy_(torch.where(slot.active[:, None], torch.ones_like(slot.a), torch.zeros_like(slot.a)))
            slot.b.copy_(torch.where(slot.active[None, :], torch.ones_like(slot.b), torch.zeros_like(slot.b)))
        f = factor if slot.name == hot else 1.0
        slot.a.grad = torch.full_like(slot.a, f)
        slot.b.grad = torch.full_like(slot.b, f)


def test_a_move_grows_the_important_module_and_keeps_the_budget():
    """up_proj of layer 1 (in 32 + out 64 = 96 per rank) gets 10x the importance: one move grows it
    by one rank, paid by pruning the least important components of modules of width 48/64/96 until
    the freed parameters cover 96; the rest is carried as credit, so the budget is never exceeded."""
    method, model, plan = _method(pe_beta=0.0)
    hot = "model.layers.1.mlp.up_proj"
    _set_importance(method, hot)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    out = method.after_step(model, 1, opt)
    ranks = out["ranks"]
    assert ranks[hot] == 3 and out["moved"] == 1
    assert out["active_params"] + out["credit"] == plan.trainable_params
    assert 0 <= out["credit"] < max(s.width for s in method.mover.slots)
    pruned = [n for n, r in ranks.items() if r < 2]
    assert pruned and all(ranks[n] == 1 for n in pruned)
    by = {s.name: s for s in method.mover.slots}
    for name in pruned:  # a pruned component is zero, and so are its Adam moments
        s = by[name]
        assert torch.count_nonzero(s.a[~s.active]) == 0 and torch.count_nonzero(s.b[:, ~s.active]) == 0
    grown = by[hot]
    i = int(torch.nonzero(grown.active)[-1])
    assert torch.count_nonzero(grown.a[i]) > 0 and torch.count_nonzero(grown.b[:, i]) == 0


def test_growth_does_not_change_the_model_function():
    method, model, _ = _method()
    ids = torch.randint(0, 250, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for slot in method.mover.slots:  # a trained-looking adapter
            slot.b[:, slot.active] = 0.01
        before = model(input_ids=ids).logits
        slot = method.mover.slots[5]
        method.mover.credit = slot.width
        method.mover._grow(slot, 3, None)
        after = model(input_ids=ids).logits
    assert slot.rank == 3 and torch.equal(before, after)


def test_no_move_when_nothing_matters_less():
    """Equal importance everywhere: pruning a component would buy nothing better; ranks stay."""
    method, model, plan = _method(pe_beta=0.0)
    _set_importance(method, hot="none", factor=1.0)
    out = method.after_step(model, 1, None)
    assert out["moved"] == 0 and out["ranks"] == plan.adapted


def test_needs_proportional_alpha():
    cfg = TrainConfig.from_dict({"method": "prune_expand", "alpha_policy": "constant"})
    with pytest.raises(UserError, match="alpha_policy: proportional"):
        PruneExpandMethod.from_config(cfg, None)


def test_a_real_run_moves_ranks_logs_them_and_reports_the_final_ones(train_env, tmp_path):  # noqa: F811
    cfg = train_config(train_env, "llama", method="prune_expand", alpha_policy="proportional", max_steps=6,
                       grad_accum=1, pe_warmup=1, pe_interval=2, pe_freeze=1, pe_moves=4, r_min=1)
    summary = train(TrainConfig.from_dict(cfg), tmp_path / "run")
    assert summary["status"] == "completed"
    rows = [r for r in read_metrics(tmp_path / "run") if r.get("type") == "train"]
    moved = {r["step"]: r["moved"] for r in rows if "ranks" in r}
    assert sorted(moved) == [3, 5] and sum(moved.values()) > 0
    final = read_summary(tmp_path / "run")
    last = [r for r in rows if "ranks" in r][-1]
    assert {m["name"]: m["rank"] for m in final["plan"]["modules"]} == last["ranks"]
    assert final["trainable_params"] == last["active_params"] <= final["planned_params"]
    # The report draws the ranks over time from the run folder alone.
    from adaptive_lora.reports import write_report
    from adaptive_lora.reports.collect import collect_runs
    from adaptive_lora.reports.figures import rank_history

    steps, layers, grid = rank_history(collect_runs(tmp_path)[0])
    assert steps == [0, 3, 5] and layers == [0, 1, 2, 3]
    assert [sum(col) for col in zip(*grid)][0] == 4 * 7 * 4  # step 0: the plan, rank 4 on 7 modules x 4 layers
    paths = write_report(tmp_path)
    assert any(p.name == "rank_moves.png" for p in paths.figures)


def test_moves_spread_and_a_grown_rank_is_not_pruned_at_once():
    """Two hot modules of the same width and importance, each with one component twice as useful
    as the other (scores 20 and 10, mean 15). A grown rank is valued at its module's lowest (10),
    so the module's mean drops to 13.3 and the next move goes to the other module: the four
    moves alternate, 2 + 2, instead of piling onto the first (capacity 8 would allow it)."""
    method, model, _ = _method(pe_beta=0.0, pe_moves=4, pe_capacity=4.0)
    hot = ("model.layers.1.mlp.up_proj", "model.layers.2.mlp.up_proj")
    for slot in method.mover.slots:
        with torch.no_grad():
            slot.a.copy_(torch.where(slot.active[:, None], torch.ones_like(slot.a), torch.zeros_like(slot.a)))
            slot.b.copy_(torch.where(slot.active[None, :], torch.ones_like(slot.b), torch.zeros_like(slot.b)))
        f = 10.0 if slot.name in hot else 1.0
        slot.a.grad, slot.b.grad = torch.full_like(slot.a, f), torch.full_like(slot.b, f)
        slot.a.grad[0] *= 2
        slot.b.grad[:, 0] *= 2
    out = method.after_step(model, 1, None)
    assert out["moved"] == 4 and [out["ranks"][h] for h in hot] == [4, 4]
    for slot in method.mover.slots:  # nothing grown this round was pruned to pay for a later move
        assert all(slot.active[i] for i in (slot.born or {}))
