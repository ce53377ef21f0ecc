"""A sweep YAML expanded into one :class:`RunSpec` per training run.

Schema (unknown keys and wrong types are refused with a :class:`UserError` naming the key)::

    name: default            # required
    out: results/default     # optional; default results/<name> (relative to the working dir)
    compare_to_paper: false  # optional
    report: true             # optional
    reference: uniform       # optional; the run name or strategy paired comparisons use as reference
    delta: 0.01              # optional; the eval-loss difference the "seeds needed" figure targets
    max_retries: 1           # optional; executions of a run after one whose process died (--max-retries wins)
    seeds: [0, 1, 2]         # optional; default [0]
    defaults: {...}          # training-config fields shared by every run
    budgets:                 # optional; every run is repeated per budget
      - {label: r8, like: "uniform:8"}     # or {label: b3m, params: 3000000}
    variants:                # optional; every run is repeated per variant
      paper: {}
      stabilized: {alpha_policy: rslora}
    runs:                    # required; ``name`` plus training-config overrides
      - {name: uniform-r8, strategy: uniform, r: 8}

Runs expand in the order runs x budgets x variants x seeds, so the runs of one group (and of
one configuration across budgets and variants) sit next to each other in the progress output.
The training config itself is opaque here: the caller passes ``validate`` to check it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .._io import jsonable
from ..errors import UserError
from ..overrides import apply_overrides, read_yaml_mapping

__all__ = ["RunSpec", "Sweep", "load_sweep", "config_hash", "safe_run_id"]

_TOP_KEYS = (
    "name", "out", "compare_to_paper", "report", "seeds", "defaults", "budgets", "variants", "runs",
    "reference", "delta", "max_retries",
)
_BUDGET_KEYS = ("label", "like", "params")
# Set by the sweep itself for every run. Letting a run, a variant or the defaults set them too
# would either be silently overwritten or, via --set, give every seed the same seed.
_IDENTITY_KEYS = ("seed", "run_id", "group", "variant", "budget_label")
_LIKE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*:\s*(\d+)\s*$")
# Characters kept in folder names. '@' and '+' are the group separators and are safe on every
# common file system; anything else (slashes, spaces, colons) becomes '_'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")


def config_hash(config: Mapping) -> str:
    """sha256 of the canonical JSON of ``config`` (sorted keys, no whitespace).

    Two configs that load to the same values hash the same, whatever the key order or YAML
    spelling in the sweep file. Values JSON cannot hold (a date, a path) hash by ``str()``.
    """
    text = json.dumps(
        jsonable(dict(config)), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        allow_nan=False, default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_run_id(text: str) -> str:
    """Make ``text`` usable as one folder name: no separators, no leading dot, no spaces."""
    out = _UNSAFE.sub("_", text.strip())
    # A leading dot would hide the folder (and '.lock'/'..' would clash with our own files).
    return re.sub(r"^\.+", "_", out) or "_"


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep.

    ``group`` is the run name plus ``@<budget label>`` and ``+<variant>`` when the sweep has
    budgets or variants: the runs of a group differ only in their seed, and reports average
    over a group. ``config`` is the full, resolved training config for this run.
    """

    run_id: str
    group: str
    seed: int
    budget_label: str | None
    variant: str | None
    config: dict

    def __post_init__(self):
        if not self.run_id or safe_run_id(self.run_id) != self.run_id:
            raise ValueError(f"run_id {self.run_id!r} is not a safe folder name")
        if not self.group:
            raise ValueError("group must be a non-empty string")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if not isinstance(self.config, dict):
            raise ValueError(f"config must be a dict, got {type(self.config).__name__}")

    @property
    def config_hash(self) -> str:
        """Hash of the config without its display-only keys (``progress``, ``output_dir``): those
        cannot change a result, so changing them must not make a finished run look stale."""
        from ..training.config import DISPLAY_ONLY

        return config_hash({k: v for k, v in self.config.items() if k not in DISPLAY_ONLY})


@dataclass
class Sweep:
    """A loaded sweep: its settings, the expanded runs, and the YAML as loaded (``source``).

    ``out`` is the results folder from the file, or ``results/<name>`` when the file has none;
    the CLI's ``--out`` takes precedence over both.
    """

    name: str
    out: str | None
    compare_to_paper: bool
    report: bool
    specs: list[RunSpec]
    source: dict = field(default_factory=dict)
    max_retries: int | None = None  # None: the executor's default (see experiments.claims)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a sweep needs a non-empty name")
        if not self.specs:
            raise ValueError(f"sweep {self.name!r} has no runs")
        seen: set[str] = set()
        for spec in self.specs:
            if spec.run_id in seen:
                raise ValueError(f"sweep {self.name!r} has two runs with id {spec.run_id!r}")
            seen.add(spec.run_id)


# ----------------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(d: Mapping, allowed: tuple[str, ...], where: str, path: str) -> None:
    for key in d:
        if key not in allowed:
            raise UserError(
                f"{path}: unknown key '{key}' in {where}; allowed keys: {', '.join(allowed)}"
            )


def _mapping(value: Any, where: str, path: str, example: str) -> dict:
    if value is None:  # "defaults:" with nothing under it
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"{path}: '{where}' must be a mapping ({example}), got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise UserError(f"{path}: key {key!r} in '{where}' must be a string")
    return dict(value)


def _bool(value: Any, key: str, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UserError(f"{path}: '{key}' must be true or false, got {value!r}")
    return value


def _name(value: Any, where: str, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{path}: '{where}' must be a non-empty string, got {value!r}")
    return value.strip()


def _no_identity_keys(d: Mapping, where: str, path: str) -> None:
    for key in _IDENTITY_KEYS:
        if key in d:
            hint = "list seeds in the top-level 'seeds'" if key == "seed" else "the sweep sets it"
            raise UserError(f"{path}: '{key}' cannot be set in {where}; {hint}")


def _comparison_keys(data: Mapping, path: str) -> None:
    """``reference`` (a non-empty string) and ``delta`` (a positive number), when given."""
    if "reference" in data:
        _name(data["reference"], "reference", path)
    if "delta" in data:
        d = data["delta"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
            raise UserError(f"{path}: 'delta' must be a positive number (an eval-loss difference, e.g. 0.01), "
                            f"got {d!r}")


def _seeds(value: Any, path: str) -> list[int]:
    if value is None:
        return [0]
    if not isinstance(value, list) or not value:
        raise UserError(f"{path}: 'seeds' must be a non-empty list of integers, e.g. [0, 1, 2]")
    for s in value:
        if isinstance(s, bool) or not isinstance(s, int):
            raise UserError(f"{path}: 'seeds' must hold integers, got {s!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{path}: 'seeds' lists a seed twice: {value}")
    return list(value)


def _budgets(value: Any, path: str) -> list[dict]:
    """Each budget as the config fields it sets: ``budget_like`` or ``budget``, and ``budget_label``."""
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise UserError(
            f"{path}: 'budgets' must be a non-empty list like "
            "[{label: r8, like: 'uniform:8'}, {label: b3m, params: 3000000}]"
        )
    out: list[dict] = []
    for i, entry in enumerate(value):
        where = f"budgets[{i}]"
        entry = _mapping(entry, where, path, "{label: r8, like: 'uniform:8'}")
        _check_keys(entry, _BUDGET_KEYS, where, path)
        label = _name(entry.get("label"), f"{where}.label", path)
        if ("like" in entry) == ("params" in entry):
            raise UserError(
                f"{path}: {where} ('{label}') needs exactly one of 'like' (e.g. 'uniform:8') "
                "or 'params' (e.g. 3000000)"
            )
        if "like" in entry:
            like = entry["like"]
            m = _LIKE.match(like) if isinstance(like, str) else None
            if m is None or int(m.group(2)) <= 0:
                raise UserError(
                    f"{path}: {where}.like must look like '<strategy>:<r>' with r > 0, "
                    f"e.g. 'uniform:8'; got {like!r}"
                )
            fields = {"budget_like": f"{m.group(1)}:{int(m.group(2))}"}
        else:
            params = entry["params"]
            # 3e6 loads as a float; accept it when it is a whole number.
            if isinstance(params, float) and params.is_integer():
                params = int(params)
            if isinstance(params, bool) or not isinstance(params, int) or params <= 0:
                raise UserError(
                    f"{path}: {where}.params must be a positive integer (a parameter count), "
                    f"got {entry['params']!r}"
                )
            fields = {"budget": params}
        fields["budget_label"] = label
        out.append(fields)
    labels = [b["budget_label"] for b in out]
    dup = next((x for x in labels if labels.count(x) > 1), None)
    if dup is not None:
        raise UserError(f"{path}: two budgets have the label '{dup}'; labels must be unique")
    return out


def _variants(value: Any, path: str) -> list[tuple[str, dict]]:
    if value is None:
        return []
    variants = _mapping(value, "variants", path, "{paper: {}, stabilized: {clip: adaptive}}")
    if not variants:
        raise UserError(f"{path}: 'variants' is empty; remove it or name at least one variant")
    out = []
    for name, overrides in variants.items():
        where = f"variants.{name}"
        _name(name, "variants", path)
        overrides = _mapping(overrides, where, path, "training-config fields")
        _no_identity_keys(overrides, f"'{where}'", path)
        out.append((name.strip(), overrides))
    return out


def _runs(value: Any, path: str) -> list[tuple[str, dict]]:
    if not isinstance(value, list) or not value:
        raise UserError(
            f"{path}: 'runs' must be a non-empty list like [{{name: uniform-r8, strategy: uniform}}]"
        )
    out: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        where = f"runs[{i}]"
        entry = _mapping(entry, where, path, "{name: uniform-r8, strategy: uniform}")
        name = _name(entry.get("name"), f"{where}.name", path)
        if name in seen:
            raise UserError(f"{path}: two runs are named '{name}'; run names must be unique")
        seen.add(name)
        overrides = {k: v for k, v in entry.items() if k != "name"}
        _no_identity_keys(overrides, f"run '{name}'", path)
        out.append((name, overrides))
    return out


# ----------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> dict:
    data = read_yaml_mapping(path, "sweep file")
    if not data:
        raise UserError(f"{path}: a sweep file must be a YAML mapping with 'name' and 'runs'")
    for key in data:
        if not isinstance(key, str):
            raise UserError(f"{path}: top-level key {key!r} must be a string")
    return data


def load_sweep(
    path: str | Path,
    overrides: dict | None = None,
    validate: Callable[[dict], dict] | None = None,
) -> Sweep:
    """Read a sweep YAML and expand it into run specs (runs x budgets x variants x seeds).

    A run's config is the deep merge, later winning, of: ``defaults``, the run's own keys (all
    but ``name``), the budget (``budget_like`` or ``budget``, plus ``budget_label``), the
    variant's overrides, the run identity (``seed``, ``run_id``, ``group``, ``variant``) and
    finally ``overrides`` (the CLI's ``--set``; they apply to every run).

    ``validate`` is called on every run's config now, before anything trains, and its return
    value (the resolved config) is what the run gets. A :class:`UserError` it raises is re-raised
    with the run id in front, so a typo fails the whole sweep up front and says which run.
    """
    path = Path(path)
    data = _read_yaml(path)
    _check_keys(data, _TOP_KEYS, "the sweep file", str(path))
    p = str(path)
    settings = _settings(data, p)
    axes = _Axes(
        defaults=_mapping(data.get("defaults"), "defaults", p, "training-config fields"),
        seeds=_seeds(data.get("seeds"), p),
        budgets=_budgets(data.get("budgets"), p),
        variants=_variants(data.get("variants"), p),
    )
    _no_identity_keys(axes.defaults, "'defaults'", p)
    if "runs" not in data:
        raise UserError(f"{p}: missing required key 'runs' (a list of runs, each with a 'name')")
    runs = _runs(data["runs"], p)
    overrides = _checked_overrides(overrides)
    specs = [_spec(run_name, run_overrides, budget, variant, seed, axes, overrides, validate, p)
             for run_name, run_overrides, budget, variant, seed in _product(runs, axes, p)]
    return Sweep(specs=specs, source=data, **settings)


def _settings(data: Mapping, p: str) -> dict:
    """The sweep-level keys: name, out, compare_to_paper, report, max_retries (checked)."""
    if "name" not in data:
        raise UserError(f"{p}: missing required key 'name' (the sweep's name, e.g. name: default)")
    name = _name(data["name"], "name", p)
    out = data.get("out")
    if out is None:
        out = f"results/{safe_run_id(name)}"
    elif not isinstance(out, str) or not out.strip():
        raise UserError(f"{p}: 'out' must be a folder path (a string), got {out!r}")
    _comparison_keys(data, p)
    retries = data.get("max_retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise UserError(f"{p}: 'max_retries' must be a non-negative integer (e.g. 1), got {retries!r}")
    return {"name": name, "out": out, "max_retries": retries,
            "compare_to_paper": _bool(data.get("compare_to_paper"), "compare_to_paper", p, False),
            "report": _bool(data.get("report"), "report", p, True)}


@dataclass
class _Axes:
    defaults: dict
    seeds: list[int]
    budgets: list[dict]
    variants: list[tuple[str, dict]]


def _checked_overrides(overrides: dict | None) -> dict:
    overrides = dict(overrides or {})
    for key in _IDENTITY_KEYS:
        if key in overrides:
            raise UserError(
                f"--set {key} is not allowed: the sweep sets '{key}' for every run"
                + ("; edit 'seeds' in the sweep file instead" if key == "seed" else "")
            )
    return overrides


def _product(runs: list[tuple[str, dict]], axes: _Axes, p: str):
    """(run name, run overrides, budget, variant, seed) in the order runs x budgets x variants x
    seeds; None stands for an absent axis. Refuses two runs that map to one folder name."""
    ids: dict[str, str] = {}
    for run_name, run_overrides in runs:
        for budget in list(axes.budgets) or [None]:
            for variant in list(axes.variants) or [None]:
                for seed in axes.seeds:
                    label = f"{_group(run_name, budget, variant)}-s{seed}"
                    run_id = safe_run_id(label)
                    if run_id in ids:
                        raise UserError(f"{p}: runs '{ids[run_id]}' and '{label}' both map to the "
                                        f"folder name '{run_id}'; rename one of them")
                    ids[run_id] = label
                    yield run_name, run_overrides, budget, variant, seed


def _group(run_name: str, budget: dict | None, variant: tuple | None) -> str:
    group = run_name
    if budget is not None:
        group += f"@{budget['budget_label']}"
    if variant is not None:
        group += f"+{variant[0]}"
    return group


def _spec(run_name, run_overrides, budget, variant, seed, axes: _Axes, overrides, validate, p: str) -> RunSpec:
    group = _group(run_name, budget, variant)
    run_id = safe_run_id(f"{group}-s{seed}")
    config = apply_overrides(axes.defaults, run_overrides)
    if budget is not None:
        # The label names the budget in reports; only the budget itself trains.
        config = apply_overrides(config, {k: v for k, v in budget.items() if k != "budget_label"})
    if variant is not None:
        config = apply_overrides(config, variant[1])
    # The seed is a training input; run id, group and variant are bookkeeping that the RunSpec
    # carries beside the config.
    config = apply_overrides(config, {"seed": seed})
    config = apply_overrides(config, overrides)
    if validate is not None:
        try:
            resolved = validate(config)
        except UserError as e:
            raise UserError(f"{run_id}: {e} (sweep file '{p}')") from None
        if not isinstance(resolved, dict):
            raise TypeError(f"validate must return the resolved config as a dict, got {type(resolved).__name__}")
        config = resolved
    return RunSpec(run_id=run_id, group=group, seed=seed, budget_label=budget["budget_label"] if budget else None,
                   variant=variant[0] if variant else None, config=config)
