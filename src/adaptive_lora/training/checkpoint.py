"""Mid-run checkpoints: a run killed at any point loses at most the steps since its last one.

Every ``checkpoint_every`` optimizer steps, and at the first step boundary after a SIGTERM (how
clusters preempt), the run's whole training state goes to ``<run>/checkpoints/step-N/``:

* ``state.pt``: the trainable (adapter) parameters, the optimizer, the LR scheduler, the
  method's own state (AdaLoRA's rank allocator), the clipper, the loop's counters and gradient
  norms, the last intermediate eval, the step-0 eval rows and the torch/numpy/python (and CUDA)
  random states of the main process;
* ``rng-<rank>.pt``: the random states of every other process;
* ``metrics.jsonl``: the rows written so far, so a resumed run's file ends identical to that of
  an uninterrupted run (rows of steps after the checkpoint are dropped);
* ``meta.json``, written last: the step, the position in the data (epoch, next micro-batch) and
  the identity of the run (a hash of the resolved config, precision and process count).

A checkpoint is written into a temporary folder, fsynced, then renamed: a reader sees a whole
checkpoint or none. Only the previous one is removed afterwards.

Batches are a function of (seed, epoch) only, so the position plus the restored state is all a
rerun needs to continue exactly where the checkpoint was taken: in fp32 on a CPU a resumed run
ends with the same weights, metrics and eval loss as an uninterrupted one, bit for bit.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import _io
from ..errors import Preempted, UserError

DIR = "checkpoints"
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk (one with its ``meta.json``)."""

    path: Path
    step: int
    identity: str | None
    epoch: int
    next_batch: int  # index of the first micro-batch of the next step within ``epoch``


def latest(run_dir) -> Checkpoint | None:
    """The run folder's newest complete checkpoint, or None (a sweep calls this to keep a killed
    run's folder instead of clearing it)."""
    root = Path(run_dir) / DIR
    found = []
    for path in root.glob("step-*") if root.is_dir() else ():
        try:
            m = _io.read_json(path / "meta.json")
            found.append(Checkpoint(path, int(m["step"]), m.get("identity"), int(m["epoch"]), int(m["next_batch"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a checkpoint without its meta.json was never finished
    return max(found, key=lambda c: c.step, default=None)


def clear(run_dir) -> None:
    """Remove every checkpoint of ``run_dir``."""
    shutil.rmtree(Path(run_dir) / DIR, ignore_errors=True)


def identity(cfg, session) -> str:
    """What a checkpoint must match to be resumed: every key that can change a result (the cache
    key leaves out output_dir, checkpoint cadence and other display-only keys), the precision the
    session resolved (``auto`` differs between machines) and the number of processes."""
    return cfg.cache_key("checkpoint", (), {"precision": session.precision, "world": session.world})


# ----------------------------------------------------------------------------- random states


def rng_state() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- the checkpointer


class Checkpointer:
    """Writes and restores one run's checkpoints; ``fit`` calls it once per optimizer step.

    ``load()`` (before anything is written into the run folder) reads the newest checkpoint of
    the same run, ``restore()`` (once the optimizer exists) puts its state back, ``step_done()``
    writes one when due, ``finish()`` removes them once the run has its summary.
    """

    def __init__(self, out: Path, cfg, session):
        self.out, self.session = Path(out), session
        self.every, self.keep = cfg.output.checkpoint_every, cfg.output.keep_checkpoints
        self.identity = identity(cfg, session)
        self.time_s = 0.0  # writing and restoring, apart from the training time
        self.resumed: Checkpoint | None = None
        self.state: dict | None = None  # the loaded state.pt, until restore() applies it
        self.metrics_text = ""  # metrics.jsonl as it was at the checkpoint
        self.base_eval: dict | None = None  # the step-0 eval rows, kept so a rerun does not redo them
        self.init_info: dict | None = None  # what an initialisation stage (gora_init) reported, likewise
        self._stop = False  # set by the SIGTERM handler
        self._written: Path | None = None
        if session.sharded and self.every:
            raise UserError("checkpoint_every is not supported under FSDP or DeepSpeed (each process holds a shard "
                            "of the optimizer state): set checkpoint_every: 0")

    @property
    def resumed_from_step(self) -> int | None:
        return self.resumed.step if self.resumed else None

    def load(self) -> Checkpoint | None:
        """Read the newest checkpoint of this run; one of another config is set aside (it is
        replaced by this run's first checkpoint), with one line on stderr."""
        t0 = time.perf_counter()
        found = latest(self.out)
        if found is None:
            return None
        if found.identity != self.identity:
            self._note(f"{found.path} was written with another config, precision or process count: starting "
                       "from step 0")
            return None
        import torch

        self.state = torch.load(found.path / "state.pt", map_location="cpu", weights_only=True)
        rank_file = found.path / f"rng-{self.session.rank}.pt"
        if self.session.rank:
            self.state["rng"] = torch.load(rank_file, weights_only=True)
        self.metrics_text = (found.path / "metrics.jsonl").read_text(encoding="utf-8")
        self.base_eval = self.state["base_eval"]
        self.init_info = self.state.get("init_info")
        self.resumed = found
        self.time_s += time.perf_counter() - t0
        self._note(f"{found.path}: resuming at step {found.step}")
        return found

    def restore(self, model, parts, method, res) -> tuple[int, int]:
        """Put the loaded state into the model, optimizer, scheduler, clipper, method and
        ``res``; return the data position ``(epoch, next micro-batch)`` to continue from."""
        if self.state is None:
            return 0, 0
        import torch

        t0 = time.perf_counter()
        s, unwrapped = self.state, self.session.acc.unwrap_model(model)
        params = {n: p for n, p in unwrapped.named_parameters() if p.requires_grad}
        shapes = {n: tuple(p.shape) for n, p in params.items()}
        if shapes != {n: tuple(t.shape) for n, t in s["params"].items()}:
            raise UserError(f"checkpoint {self.resumed.path} holds other adapter shapes than this run builds (a "
                            "probe gave another plan?): delete that folder to start again")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(s["params"][n])
        parts.optimizer.load_state_dict(s["optimizer"])
        parts.scheduler.load_state_dict(s["scheduler"])
        parts.clipper.ema = s["clipper_ema"]
        method.load_state(unwrapped, s["method"])
        for k, v in s["fit"].items():
            setattr(res, k, v)
        set_rng_state(s["rng"])
        self.state = None  # free the copy
        self.time_s += time.perf_counter() - t0
        return self.resumed.epoch, self.resumed.next_batch

    # ------------------------------------------------------------------ writing

    def step_done(self, model, parts, method, res, epoch: int, next_batch: int) -> None:
        """After optimizer step ``res.steps`` (its rows logged, its eval done): write a checkpoint
        when one is due; after a SIGTERM, write one and raise :class:`Preempted`."""
        stop = self._stop
        if self.session.world > 1:  # every process must take the same decision at the same step
            (n,) = self.session.reduce_sum(float(stop))
            stop = n > 0
        due = bool(self.every) and res.steps % self.every == 0
        if due or stop:
            self.write(model, parts, method, res, epoch, next_batch)
        if stop:
            raise Preempted(res.steps, self._written or self.out / DIR)

    def write(self, model, parts, method, res, epoch: int, next_batch: int) -> Path:
        """Write the checkpoint of step ``res.steps`` atomically; remove the previous one."""
        import torch

        t0 = time.perf_counter()
        s = self.session
        final = self.out / DIR / f"step-{res.steps}"
        tmp = self.out / DIR / f".tmp-step-{res.steps}"
        if s.main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        s.acc.wait_for_everyone()
        if s.rank:
            _save(torch, rng_state(), tmp / f"rng-{s.rank}.pt")
        s.acc.wait_for_everyone()
        if s.main:
            unwrapped = s.acc.unwrap_model(model)
            state = {
                "params": {n: p.detach().cpu().clone() for n, p in unwrapped.named_parameters() if p.requires_grad},
                "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
                "clipper_ema": parts.clipper.ema, "method": method.state(unwrapped), "rng": rng_state(),
                "fit": {"steps": res.steps, "train_time": res.train_time, "tokens": res.tokens,
                        "examples": res.examples, "grad_norms": list(res.grad_norms), "last_eval": res.last_eval},
                "base_eval": self.base_eval, "init_info": self.init_info,
            }
            _save(torch, state, tmp / "state.pt")
            metrics = self.out / "metrics.jsonl"
            _write_synced(tmp / "metrics.jsonl", metrics.read_bytes() if metrics.exists() else b"")
            meta = {"format": FORMAT, "step": res.steps, "epoch": epoch, "next_batch": next_batch,
                    "identity": self.identity}
            _write_synced(tmp / "meta.json", (_io.dumps(meta, indent=2) + "\n").encode())
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            for old in final.parent.iterdir():  # the new one is safe on disk: drop the others
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        s.acc.wait_for_everyone()
        self._written = final
        self.time_s += time.perf_counter() - t0
        return final

    def finish(self, status: str) -> None:
        """A finished run (completed or diverged) needs no checkpoint: remove them unless
        ``keep_checkpoints``."""
        if self.session.main and status in ("completed", "diverged") and not self.keep:
            clear(self.out)

    # ------------------------------------------------------------------ SIGTERM

    def guard(self):
        """Context manager: while the loop runs, SIGTERM only sets a flag, acted upon at the next
        step boundary (a checkpoint, then :class:`Preempted`); the previous handler comes back
        afterwards. Signal handlers can only be set in the main thread: elsewhere, nothing."""
        return _SigtermGuard(self)

    def _note(self, text: str) -> None:
        if self.session.main:
            print(f"adaptive-lora: checkpoint {text}", file=sys.stderr)


class _SigtermGuard:
    def __init__(self, ckpt: Checkpointer):
        self.ckpt, self.previous = ckpt, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and not self.ckpt.session.sharded:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.ckpt._stop = True

    def __exit__(self, exc_type, *exc) -> None:
        if self.previous is None:
            return
        signal.signal(signal.SIGTERM, self.previous)
        if self.ckpt._stop and exc_type is None:
            # It came after the last step boundary: hand it to the previous handler, so that a
            # preemption still stops the process (the last checkpoint is on disk).
            signal.raise_signal(signal.SIGTERM)


class Disabled:
    """The checkpointer of a loop that keeps none (the training probes)."""

    time_s = 0.0

    def restore(self, model, parts, method, res) -> tuple[int, int]:
        return 0, 0

    def step_done(self, *args) -> None:
        pass


# ----------------------------------------------------------------------------- files


def _save(torch, obj, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)
