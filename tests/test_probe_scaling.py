"""The sketched gradient probe (``training/sketch.py``) against the exact one on tiny models.

Where the answer is known exactly: when the sketch has at least as many columns as the rank of
the gradient (a short batch: rank(G) <= its positions), the range finder captures all of G and
its singular values are the exact ones up to rounding. In general a sketch never exceeds the
exact values (Q has orthonormal columns) and power iterations close the gap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaptive_lora.data import PadCollator
from adaptive_lora.layout import layout_from_model
from adaptive_lora.strategies import make_plan
from adaptive_lora.training import TrainConfig
from adaptive_lora.training.prepare import TrainData
from adaptive_lora.training.probe import ProbeContext, eva_ranks, gradient_spectra
from adaptive_lora.training.session import Session

from test_data_driven import _examples  # the same random probe examples
from tiny_models import build_model

HERE = Path(__file__).resolve().parent


def probe(model, method, iters=0, examples=None, world=1, rank=0, **flat):
    layout = layout_from_model(model)
    cfg = TrainConfig.from_dict({"probe_batches": 2, "probe_batch_size": 4, "r_max": 16, "precision": "fp32",
                                 "probe_method": method, "probe_power_iters": iters, **flat})
    session = Session(acc=None, device=torch.device("cpu"), world=world, rank=rank, main=rank == 0, amp=None)
    data = TrainData(examples or _examples(), [], [], PadCollator(0), None, [], [], {})
    extra, info = gradient_spectra(ProbeContext(cfg, session, data, model, layout, layout, None))
    return extra["spectra"], info


def plan(model, spectra, r_max):
    layout = layout_from_model(model)
    return make_plan(layout, "gradient_sensitivity", TrainConfig.from_dict({"r_min": 1, "r_max": r_max})
                     .strategy_params(spectra=spectra), budget_like="uniform:2").ranks


def _short(length=10):
    """One example of ``length`` tokens: every module's gradient has rank <= length."""
    ids = torch.randint(0, 250, (length,), generator=torch.Generator().manual_seed(1)).tolist()
    return [{"input_ids": ids, "labels": [-100] * 3 + ids[3:]}]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("boost", [False, True])
def test_sketch_is_exact_when_it_covers_the_gradients_rank(family, boost):
    """r_max 4 -> 12 sketch columns >= 10 positions >= rank(G): the sketch's top 4 equal the
    exact ones to float32 rounding (relative 1e-4 of each module's largest), and so do the ranks
    planned from them. ``boost``: a hook already on a module scales its output by 10, so its
    dL/dW by 10: the temporary adapter joins before that hook, as a change of W would."""
    target = "model.layers.1.mlp.up_proj" if family == "llama" else "transformer.h.1.mlp.c_fc"

    def model():
        m = build_model(family)
        if boost:
            m.get_submodule(target).register_forward_hook(lambda mod, inp, out: out * 10)
        return m

    common = dict(examples=_short(), probe_batches=1, probe_batch_size=1, r_max=4)
    exact, _ = probe(model(), "exact", **common)
    sketch, info = probe(model(), "sketch", **common)
    assert info["passes"] == 2 and set(sketch) == set(exact)
    for name, ref in exact.items():
        assert len(sketch[name]) == len(ref) == 4
        assert sketch[name] == pytest.approx(ref, abs=1e-4 * ref[0]), name
    assert plan(model(), sketch, 4) == plan(model(), exact, 4)


def test_sketch_below_exact_and_power_iterations_close_the_gap():
    """192 positions, r_max 6 so 14 sketch columns on 32 x 32 to 64 x 32 weights: no sketched
    singular value exceeds the exact one, and the largest error (relative to the module's sigma_1)
    shrinks with each power iteration (measured 0.136, 0.025, 0.0074 for 0, 1, 2; fixed seeds)."""
    exact, _ = probe(build_model("llama"), "exact", r_max=6)
    errors = []
    for iters in (0, 1, 2):
        sketch, info = probe(build_model("llama"), "sketch", iters, r_max=6)
        assert info["passes"] == 2 + 2 * iters
        worst = 0.0
        for name, ref in exact.items():
            s, e = torch.tensor(sketch[name]).sqrt(), torch.tensor(ref).sqrt()
            assert bool((s <= e * (1 + 1e-5)).all()), name
            worst = max(worst, float(((e - s) / e[0]).max()))
        errors.append(worst)
    assert errors[0] > errors[1] > errors[2] and errors[1] < 0.04 and errors[2] < 0.01


@pytest.mark.parametrize("method", ["sketch", "exact"])
def test_probe_leaves_the_model_as_it_was(method):
    """Same weights, no hook left, nothing requires or holds a gradient afterwards; during the
    sketch no base parameter requires a gradient (only the temporary factors do). On a CPU the
    memory figure is named host RSS."""
    model = build_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    watch = model.get_submodule("model.layers.0.self_attn.q_proj")
    handle = watch.register_forward_hook(lambda *a: seen.append(any(p.requires_grad for p in model.parameters())))
    _, info = probe(model, method, 1, r_max=4)  # k = 12 < 32: the sketch is smaller than the weights
    handle.remove()
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not any(p.requires_grad or p.grad is not None for p in model.parameters())
    assert seen and not any(seen) if method == "sketch" else seen
    assert info["peak_host_rss_mb"] > 0 and "peak_memory_mb" not in info and "peak_accelerator_mb" not in info
    if method == "sketch":  # (in + out) x k per module, far below the weights' size on real models
        assert info["gradient_buffers_mb"] < probe(build_model("llama"), "exact", r_max=4)[1]["gradient_buffers_mb"]


def test_eva_runs_under_the_runs_autocast():
    """The EVA probe's forward passes run under the session's autocast (bf16 here)."""
    model = build_model("llama")
    layout = layout_from_model(model)
    seen = []
    model.get_submodule("model.layers.0.mlp.up_proj").register_forward_hook(
        lambda *a: seen.append(torch.is_autocast_enabled("cpu")))
    cfg = TrainConfig.from_dict({"r": 4, "eva_examples": 16, "eva_tau": 0.9, "probe_batch_size": 4})
    session = Session(acc=None, device=torch.device("cpu"), world=1, rank=0, main=True, amp=torch.bfloat16)
    data = TrainData(_examples(), [], [], PadCollator(0), None, [], [], {})
    extra, info = eva_ranks(ProbeContext(cfg, session, data, model, layout, layout, None))
    assert seen and all(seen) and info["precision"] == "bfloat16"
    assert set(extra["ranks"]) == {m.name for m in layout.modules} and sum(extra["ranks"].values()) > 0


def test_two_processes_split_the_batches_and_agree(tmp_path):
    """torchrun with 2 CPU processes (gloo): each probes 2 of the 4 batches, the sketches and the
    exact gradients are summed over both, and both processes get the single process's values."""
    single = {m: probe(build_model("llama"), m, 1, probe_batches=4, probe_batch_size=2)[0]
              for m in ("sketch", "exact")}
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(CUDA_VISIBLE_DEVICES="", PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "probe_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["batches_per_process"] == 2
        for method, spectra in single.items():
            for name, ref in spectra.items():
                assert got[method][name] == pytest.approx(ref, rel=1e-4, abs=1e-6 * ref[0]), (rank, method, name)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
