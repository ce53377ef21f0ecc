"""Every check a run can pass before training, from the model's config on the meta device.

``train`` runs them before it writes anything, ``run`` for every run of a sweep before the first
one trains, and ``run --dry-run`` instead of training. What they read (layouts, records) is
cached per model and data source, so a sweep of many runs checks in seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

# Any one of these in a local model folder is a weights file transformers can load.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def writable_folder(path, what: str) -> Path:
    """``path`` as a folder this process can create or write in; a one-line error otherwise."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} '{path}' is a file: choose a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} '{path}' cannot be created: '{probe}' is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} '{path}' cannot be written: no write permission in '{probe}'")
    return path


@dataclass
class RunChecks:
    """Checks of run configs (``TrainConfig``); ``strict`` also needs what training loads (weights,
    tokenizer, hub data), where a dry run only notes what it could not check."""

    strict: bool = True
    notes: list = field(default_factory=list)
    _layouts: dict = field(default_factory=dict)
    _records: dict = field(default_factory=dict)
    _files: dict = field(default_factory=dict)

    def check(self, cfg):
        """Check one config; returns its plan (None when ranks are decided during the run)."""
        layout = self._layout(cfg.input.model)
        self._model_files(cfg.input.model)
        selected = layout.select(cfg.plan.targets)  # targets that match nothing fail here
        check_layer_lr(cfg.stabilize.layer_lr, layout.n_layers)
        self._data(cfg.input)
        return plan_of(cfg, layout, selected)

    def _layout(self, model: str):
        from ..layout import discover_layout, load_config

        if model not in self._layouts:
            self._layouts[model] = discover_layout(load_config(model))
        return self._layouts[model]

    def _model_files(self, model: str) -> None:
        from ..layout import load_tokenizer, resolve_model

        rm = resolve_model(model)
        if rm.source != "local" or model in self._files:
            return  # the alias is ours; a hub model is fetched (or refused) when it loads
        folder = Path(rm.location)
        has_weights = any((folder / f).is_file() for f in WEIGHT_FILES)
        if not self.strict and not has_weights:
            self._files[model] = self._note(f"model folder '{model}' holds no weights: planned only; training "
                                            "needs its weights and tokenizer files")
            return
        load_tokenizer(model)  # no tokenizer files, or unreadable ones, fail here
        if not has_weights:
            raise UserError(f"model folder '{model}' has no weights ({', '.join(WEIGHT_FILES)}): training needs them")
        self._files[model] = True

    def _data(self, c) -> None:
        from ..data.records import offline_requested, hub_available, looks_like_path, load_records, split_records

        key = (c.data, c.skip_bad_records, c.data_format)
        if key not in self._records:
            hub = c.data != "default" and not looks_like_path(c.data)
            if hub and not self.strict and (offline_requested() or not hub_available()):
                self._records[key] = self._note(f"data '{c.data}' is on the hub, which is unreachable: not checked")
            else:
                self._records[key] = load_records(c.data, skip_bad=c.skip_bad_records,
                                                  data_format=c.data_format).records
        records = self._records[key]
        if isinstance(records, list):
            split_records(records, seed=c.data_seed, eval_size=c.eval_size, max_train=c.max_train, max_eval=c.max_eval)

    def _note(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return text


def check_layer_lr(layer_lr, n_layers: int) -> None:
    """``layer_lr`` (already typed by the config) must name only layers the model has."""
    if isinstance(layer_lr, list) and len(layer_lr) != n_layers:
        raise UserError(f"layer_lr has {len(layer_lr)} multipliers but the model has {n_layers} layers: give one "
                        "per layer, or a map {layer: multiplier}")
    if isinstance(layer_lr, dict):
        bad = sorted(k for k in layer_lr if not 0 <= k < n_layers)
        if bad:
            raise UserError(f"layer_lr names layer {bad[0]}, but the model's layers are 0..{n_layers - 1}: fix the map")


def plan_of(cfg, layout, selected):
    """The run's plan from the config alone, or None when the run decides its ranks itself (AdaLoRA,
    or a data-driven strategy's probe: then its parameters and budget are checked here)."""
    from ..strategies import get_strategy, make_plan, plan_from_file
    from ..strategies.plan import budget_target
    from ..training.methods import METHODS

    p = cfg.plan
    if not METHODS[p.method].needs_plan:
        return None
    if p.plan_file:
        return plan_from_file(layout, p.plan_file)
    strategy = get_strategy(p.strategy)
    if strategy.needs_data:
        cfg.params.check_for(strategy)
        if strategy.allocates_budget or p.budget is not None or p.budget_like is not None:
            budget_target(selected, p.strategy, cfg.params, p.budget, p.budget_like)
        return None
    return make_plan(layout, p.strategy, cfg.params, targets=p.targets, budget=p.budget, budget_like=p.budget_like)
