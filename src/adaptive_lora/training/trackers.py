"""Experiment trackers (``report_to``): TensorBoard, MLflow, W&B and trackio, fed from the rows
the run already writes to ``metrics.jsonl``.

What goes to every tracker: the resolved config (flat, as hyperparameters), each optimizer
step's loss, lr, grad norm, tokens/s and per-layer grad norms (``layer_grad_norms/layer_03/A``), each
eval's ``eval_loss`` and ``perplexity`` at its step, the rank plan (a table, or ``plan.json`` as an
MLflow artifact) and the summary's numeric fields (``summary/<key>``) at the last step.

Why accelerate's tracker classes, built here once per run, and not ``Accelerator(log_with=...)``:

- the Accelerator exists before the config's trackers are known (``start_session``), and a sweep
  trains many runs in one process, possibly with one Accelerator: ``log_with`` is fixed when the
  Accelerator is made, while each run needs its own trackers, folder and run name;
- ``log_with`` silently drops a tracker whose package is missing (a debug-level log line); here
  that is a one-line error before training;
- ``accelerator.log`` calls the trackers in turn and lets the first exception end the run; here
  each tracker is called on its own, and a failing one is recorded in ``trackers.json``, warned
  about on stderr and switched off, so a tracker never costs the run its own files.

The classes themselves (``accelerate.tracking.TensorBoardTracker`` ...) are used unchanged, so
hyperparameters and metrics are laid out as for any accelerate user.

Where output goes, unless the tracker's own environment variables say otherwise: TensorBoard
``<run>/tb/``; MLflow a file store ``<run>/mlruns`` (``MLFLOW_TRACKING_URI`` wins); W&B
``<run>/wandb/``, offline when there are no credentials (``WANDB_MODE`` wins); trackio its local
database (``TRACKIO_DIR``, by default under the Hugging Face cache), which is already offline.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import _io
from ..errors import UserError

NAMES = ("tensorboard", "mlflow", "wandb", "trackio")
PROJECT = "adaptive-lora"  # W&B/trackio project and MLflow experiment unless their env vars say otherwise
_TRAIN_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "epoch", "clip_factor")
_EVAL_KEYS = ("eval_loss", "perplexity")


class TrackerError(RuntimeError):
    """A tracker failed and ``tracker_strict`` is true: the run fails (exit 1, like any run failure)."""


# ----------------------------------------------------------------------------- config side


def parse_report_to(value) -> list[str]:
    """``report_to`` as a list of known tracker names, each importable; raises a one-line UserError."""
    if value is None or value == "none":
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"report_to must be a list or a comma-separated string of {', '.join(NAMES)}, got {value!r}")
    names = list(dict.fromkeys(v.strip() for v in value))  # order kept, repeats dropped
    for name in names:
        if name not in KINDS:
            raise UserError(f"report_to: unknown tracker '{name}': use any of {', '.join(NAMES)}")
        if importlib.util.find_spec(KINDS[name].module) is None:
            raise UserError(f"report_to: {name} is not installed: pip install 'adaptive-lora[{name}]', "
                            f"or remove {name} from report_to")
    return names


# ----------------------------------------------------------------------------- one kind per tracker


def _tensorboard(run_dir: Path, run_name: str, group: str):
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker("tb", run_dir)  # writes <run>/tb/


def _mlflow(run_dir: Path, run_name: str, group: str):
    import mlflow
    from accelerate.tracking import MLflowTracker

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow 3 refuses a file store unless this opt-out is set; a file store needs no server,
        # no database package (mlflow-skinny suffices) and keeps the run's records in its folder.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
    return MLflowTracker(experiment_name=PROJECT, run_name=run_name, tags={"group": group})


def _wandb(run_dir: Path, run_name: str, group: str):
    from accelerate.tracking import WandBTracker

    kwargs: dict[str, Any] = {"name": run_name, "group": group, "dir": str(run_dir)}
    if not os.environ.get("WANDB_MODE") and not _wandb_credentials():
        kwargs["mode"] = "offline"  # no key: log locally (``wandb sync`` uploads later)
    return WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), **kwargs)


def _wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (where ``wandb login`` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _trackio(run_dir: Path, run_name: str, group: str):
    from accelerate.tracking import TrackioTracker

    # embed=False: never start a dashboard server from a training run.
    return TrackioTracker(PROJECT, name=run_name, group=group, embed=False)


def _plan_as_text(tracker, plan: dict) -> None:
    cols, rows = plan_table(plan)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    tracker.writer.add_text("plan", "\n".join(lines), global_step=0)


def _plan_as_artifact(tracker, plan: dict) -> None:
    import mlflow

    mlflow.log_dict(plan, "plan.json")


def _plan_as_table(module: str) -> Callable:
    def log_table(tracker, plan: dict) -> None:
        # wandb.Table and trackio.Table take the same (columns, data) arguments.
        cols, rows = plan_table(plan)
        tracker.log({"plan": importlib.import_module(module).Table(columns=cols, data=rows)}, step=0)

    return log_table


@dataclass(frozen=True)
class Kind:
    module: str  # what must be importable (the pip extra is the tracker's name)
    build: Callable  # (run_dir, run_name, group) -> an accelerate GeneralTracker, not started
    log_plan: Callable  # (tracker, plan dict) -> None


KINDS: dict[str, Kind] = {
    "tensorboard": Kind("tensorboard", _tensorboard, _plan_as_text),
    "mlflow": Kind("mlflow", _mlflow, _plan_as_artifact),
    "wandb": Kind("wandb", _wandb, _plan_as_table("wandb")),
    "trackio": Kind("trackio", _trackio, _plan_as_table("trackio")),
}


# ----------------------------------------------------------------------------- row mapping


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v):
    """A hyperparameter value every tracker takes: TensorBoard's hparams refuse None and lists."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return "null" if v is None else json.dumps(v, sort_keys=True, default=str)


def flat_config(config: dict) -> dict:
    return {k: _scalar(v) for k, v in config.items()}


def _layer_tag(layer: str) -> str:
    return f"layer_{int(layer):02d}" if str(layer).isdigit() else f"layer_{layer}"  # 02: tags sort by layer


def metrics_of(row: dict) -> dict:
    """A metrics.jsonl row -> ``{tag: number}`` (empty for rows trackers do not need)."""
    kind = row.get("type")
    if kind == "train":
        out = {k: row[k] for k in _TRAIN_KEYS if _number(row.get(k))}
        for layer, norms in (row.get("layer_grad_norms") or {}).items():
            # Not grad_norm/layer_03/A: MLflow's file store keeps a metric per file, so the file
            # grad_norm and a folder grad_norm/ cannot both exist.
            out.update({f"layer_grad_norms/{_layer_tag(layer)}/{m}": v for m, v in norms.items() if _number(v)})
        return out
    if isinstance(kind, str) and kind.startswith("eval"):
        # eval (the full held-out split) keeps the plain names; eval_subset, eval_general ... get a prefix
        prefix = "" if kind == "eval" else f"{kind}/"
        return {prefix + k: row[k] for k in _EVAL_KEYS if _number(row.get(k))}
    if kind == "diverged":
        return {"diverged": 1}
    return {}


def summary_metrics(summary: dict) -> dict:
    return {f"summary/{k}": v for k, v in summary.items() if _number(v) and math.isfinite(v)}


def plan_table(plan: dict) -> tuple[list[str], list[list]]:
    """The plan's per-module table as (columns, rows)."""
    modules = plan.get("modules") or []
    cols = list(modules[0]) if modules else ["name", "rank"]
    return cols, [[m.get(c) for c in cols] for m in modules]


# ----------------------------------------------------------------------------- the run's trackers


@dataclass
class _Slot:
    name: str
    kind: Kind
    tracker: Any = None
    failure: dict | None = None  # {"stage", "step", "error"} once it failed; then it is off
    finished: bool = False


@dataclass
class Trackers:
    """The trackers of one run. Each call reaches every tracker that has not failed; a failure is
    caught, written to ``<run>/trackers.json`` and warned about once, and that tracker is switched
    off, unless ``strict`` (then :class:`TrackerError` ends the run)."""

    names: list[str]
    strict: bool = False
    slots: list[_Slot] = field(init=False)
    run_dir: Path | None = field(init=False, default=None)
    step: int = field(init=False, default=0)

    def __post_init__(self):
        self.slots = [_Slot(n, KINDS[n]) for n in self.names]

    def start(self, run_dir, run_name: str, config: dict, plan: dict | None = None, group: str | None = None):
        _close_leftovers()  # a run of this process that raised before finish() still holds W&B/MLflow runs
        self.run_dir = Path(run_dir)
        values = flat_config(config)

        def start_one(slot: _Slot):
            slot.tracker = slot.kind.build(self.run_dir, run_name, group or run_name)
            if hasattr(slot.tracker, "start"):  # accelerate < 1.4 starts trackers in __init__
                slot.tracker.start()
            slot.tracker.store_init_configuration(values)
            if plan is not None:
                slot.kind.log_plan(slot.tracker, plan)

        self._each("start", start_one)
        _OPEN.append(self)
        self._write_status()

    def log(self, row: dict) -> None:
        values = metrics_of(row)
        if not values:
            return
        self.step = int(row.get("step", self.step))
        self._each("log", lambda slot: slot.tracker.log(values, step=self.step))

    def finish(self, summary: dict | None) -> None:
        """Log the summary's numbers at the last step and close every tracker."""
        if summary:
            values = summary_metrics(summary)
            self.step = int(summary.get("optimizer_steps") or self.step)
            self._each("finish", lambda slot: slot.tracker.log(values, step=self.step))
        self._each("finish", self._close)
        if self in _OPEN:
            _OPEN.remove(self)
        self._write_status()

    @staticmethod
    def _close(slot: _Slot) -> None:
        if not slot.finished:
            slot.finished = True
            slot.tracker.finish()

    def _each(self, stage: str, fn: Callable[[_Slot], None]) -> None:
        for slot in self.slots:
            if slot.failure is not None:
                continue
            try:
                fn(slot)
            except Exception as e:  # any tracker error: the run's own files must not depend on it
                self._failed(slot, stage, e)

    def _failed(self, slot: _Slot, stage: str, exc: Exception) -> None:
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        slot.failure = {"stage": stage, "step": self.step, "error": error}
        self._write_status()
        if slot.tracker is not None and not slot.finished:
            try:  # release what it holds (a W&B process, an active MLflow run); it may fail again
                self._close(slot)
            except Exception:
                pass
        where = f"tracker {slot.name} failed at {stage} (step {self.step}): {error}"
        if self.strict:
            raise TrackerError(f"{where} (tracker_strict is true; set it to false to go on without it)") from exc
        print(f"adaptive-lora: warning: {where}; the run goes on without it (see trackers.json)", file=sys.stderr)

    def status(self) -> dict:
        return {"report_to": self.names, "strict": self.strict,
                "trackers": {s.name: ({"status": "failed", **s.failure} if s.failure else
                                      {"status": "finished" if s.finished else "running"}) for s in self.slots}}

    def _write_status(self) -> None:
        if self.run_dir is not None:
            _io.atomic_write_json(self.run_dir / "trackers.json", self.status())


# Trackers started in this process and not finished yet: a run that raised between start and
# finish (a bug, an interrupt caught by a sweep) would otherwise leave its W&B run or MLflow
# active run open, and the next run of the sweep would log into it.
_OPEN: list[Trackers] = []


def _close_leftovers() -> None:
    for t in list(_OPEN):
        _OPEN.remove(t)
        t.strict = False  # closing someone else's leftovers must not fail this run
        t.finish(None)
