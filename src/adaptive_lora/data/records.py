"""Alpaca-format records: load them from the embedded set, a local file or the hub, and split them.

A record is a dict with three string fields, ``instruction``, ``input`` (may be empty) and
``output``; this is the format of Stanford Alpaca and of most instruction sets derived from it.

``source`` may be:

- ``"default"``: the small data set embedded in the package (``data/assets/default.json``), so the
  tool works on a machine without network access;
- a path to a ``.json`` file (one JSON list of objects) or a ``.jsonl`` file (one object a line);
- a Hugging Face datasets id such as ``tatsu-lab/alpaca`` (needs the ``hub`` extra and a network,
  or a copy in the local datasets cache).

Everything that is wrong with the data is reported as a one-line :class:`UserError` that names the
file and the 0-based record index, so users can fix the file instead of reading a traceback.
"""

from __future__ import annotations

import json
import math
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .._hub import env_offline, hub_reachable
from ..errors import UserError

DEFAULT_SOURCE = "default"
FIELDS = ("instruction", "input", "output")
REQUIRED_TEXT = ("instruction", "output")  # "input" may be empty; an empty instruction or answer teaches nothing

# The one place users are told what they can use instead of the hub.
_OFFLINE_HINT = (
    "use `data: default` for the embedded data set, or a local Alpaca-format JSON/JSONL path"
)
_SKIP_HINT = "(set skip_bad_records: true to skip such records)"


@dataclass(frozen=True)
class LoadedRecords:
    """The valid records of a source, how many bad ones were skipped, and the source as given."""

    records: list[dict]
    n_skipped: int
    source: str


def load_records(source: str, *, skip_bad: bool = False) -> LoadedRecords:
    """Load and validate Alpaca-format records from ``source`` (see the module docstring).

    Each returned record holds exactly ``instruction``, ``input`` and ``output`` (extra keys are
    dropped). With ``skip_bad=True`` records that are not objects or lack a string field are
    dropped and counted in ``n_skipped``; otherwise the first one raises a :class:`UserError`.
    """
    source = str(source).strip()
    if not source:
        raise UserError("data source is empty: use `data: default`, a JSON/JSONL path or a hub id")
    if source == DEFAULT_SOURCE:
        raw, name = _load_default(), DEFAULT_SOURCE
    elif looks_like_path(source):
        raw, name = _load_file(source), source
    else:
        raw, name = _load_hub(source), source

    records: list[dict] = []
    n_skipped = 0
    for index, item, where in raw:
        problem = _record_problem(item)
        if problem is None:
            records.append({field: item[field] for field in FIELDS})
        elif skip_bad:
            n_skipped += 1
        else:
            raise UserError(f"{name} record {index}{where}: {problem} {_SKIP_HINT}")
    if not records:
        detail = f" ({n_skipped} bad records skipped)" if n_skipped else ""
        raise UserError(
            f"{name} holds no usable records{detail}: give at least one record with "
            f"string fields 'instruction', 'input' and 'output'"
        )
    return LoadedRecords(records=records, n_skipped=n_skipped, source=name)


def looks_like_path(source: str) -> bool:
    """Path or hub id? A path if it exists or has the shape of one; ``owner/name`` is a hub id."""
    if os.path.exists(os.path.expanduser(source)):
        return True
    if source.lower().endswith((".json", ".jsonl")):
        return True
    return source.startswith((".", "/", "~"))


def _record_problem(item) -> str | None:
    """Why ``item`` is not a valid record, or None when it is."""
    if not isinstance(item, dict):
        return f"expected an object with fields {', '.join(map(repr, FIELDS))}, got {_json_type(item)}"
    for field in FIELDS:
        if field not in item:
            return f"field '{field}' is missing"
        if not isinstance(item[field], str):
            return f"field '{field}' must be a string, got {_json_type(item[field])}"
    for field in REQUIRED_TEXT:
        if not item[field].strip():
            return f"field '{field}' is empty: every record needs a non-blank '{field}'"
    return None


def _json_type(value) -> str:
    """The JSON name of a Python value's type, as users see it in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Sources. Each yields (index, item, where) triples; `where` adds the line number for JSONL.
# ---------------------------------------------------------------------------------------------


def default_data_path():
    """The embedded data set as an ``importlib.resources`` traversable (it may not exist)."""
    return resources.files("adaptive_lora.data") / "assets" / "default.json"


def _load_default() -> list[tuple[int, object, str]]:
    path = default_data_path()
    if not path.is_file():
        raise UserError(
            "the embedded data set (adaptive_lora/data/assets/default.json) is missing from this "
            "install: reinstall adaptive-lora, or use a local Alpaca-format JSON/JSONL path"
        )
    return _parse_json_list(path.read_text(encoding="utf-8"), DEFAULT_SOURCE)


def _load_file(source: str) -> list[tuple[int, object, str]]:
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(
            f"data file '{source}' does not exist: fix the path, or {_OFFLINE_HINT}"
        )
    if path.is_dir():
        raise UserError(f"data path '{source}' is a folder: give a .json or .jsonl file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"data file '{source}' is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        raise UserError(f"cannot read data file '{source}': {exc.strerror or exc}")
    suffix = path.suffix.lower()
    # Sniff files with other suffixes: a JSON list starts with '['; anything else is read as JSONL.
    is_jsonl = suffix == ".jsonl" or (suffix != ".json" and not text.lstrip().startswith("["))
    return _parse_jsonl(text, source) if is_jsonl else _parse_json_list(text, source)


def _parse_json_list(text: str, name: str) -> list[tuple[int, object, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    if not isinstance(data, list):
        raise UserError(
            f"{name} must hold a JSON list of records [{{\"instruction\": ..., \"input\": ..., "
            f"\"output\": ...}}, ...], got {_json_type(data)}"
        )
    return [(i, item, "") for i, item in enumerate(data)]


def _parse_jsonl(text: str, name: str) -> list[tuple[int, object, str]]:
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines (a trailing newline, say) are not records
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{name}: invalid JSON at line {lineno}, column {exc.colno}: {exc.msg}")
        out.append((len(out), item, f" (line {lineno})"))
    return out


# ---------------------------------------------------------------------------------------------
# Hugging Face hub
# ---------------------------------------------------------------------------------------------


def offline_requested() -> bool:
    """Whether the environment asks for offline mode (read now, not at import time)."""
    return env_offline("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


hub_available = hub_reachable  # module-level name, so tests can stand in for the network


@contextmanager
def _datasets_offline(datasets_module):
    """Force ``datasets`` into offline mode for one call.

    ``datasets`` reads ``HF_HUB_OFFLINE`` once, when it is imported; if it was imported before the
    environment changed (or the hub just turned out to be unreachable) it would still go to the
    network. In offline mode it serves a copy from the local cache, or fails at once.
    """
    config = datasets_module.config
    saved = config.HF_HUB_OFFLINE
    config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        config.HF_HUB_OFFLINE = saved


def _load_hub(dataset_id: str) -> list[tuple[int, object, str]]:
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"data '{dataset_id}' looks like a Hugging Face datasets id, which needs the hub extra: "
            f"pip install 'adaptive-lora[hub]', or {_OFFLINE_HINT}"
        ) from None

    offline = offline_requested() or not hub_available()
    try:
        if offline:
            with _datasets_offline(datasets):
                ds = datasets.load_dataset(dataset_id, split="train")
        else:
            ds = datasets.load_dataset(dataset_id, split="train")
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        # ConnectionError and TimeoutError are OSErrors. Offline, "not found" only means "not in
        # the local cache", whatever the exception says; say what to do instead.
        if offline or isinstance(exc, (ConnectionError, TimeoutError)):
            raise UserError(
                f"cannot reach the Hugging Face Hub and data '{dataset_id}' is not in the local "
                f"datasets cache: {_OFFLINE_HINT}"
            ) from exc
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"could not load data '{dataset_id}' from the Hugging Face Hub ({first_line}): {_OFFLINE_HINT}"
        ) from exc

    missing = [f for f in FIELDS if f not in (ds.column_names or [])]
    if missing:
        raise UserError(
            f"data '{dataset_id}' has no column(s) {', '.join(map(repr, missing))} (it has "
            f"{', '.join(map(repr, ds.column_names))}): use an Alpaca-format data set"
        )
    return [(i, item, "") for i, item in enumerate(ds.to_list())]


# ---------------------------------------------------------------------------------------------
# Train / eval split
# ---------------------------------------------------------------------------------------------


def split_records(
    records: list[dict],
    *,
    seed: int = 0,
    eval_size: int | float = 0.2,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Shuffle ``records`` with ``seed`` and split them into ``(train, eval)``.

    The eval split is the first ``eval_size`` shuffled records (a count, or a fraction in (0, 1) of
    all records, rounded); train is the rest. Only then are train and eval cut to ``max_train`` /
    ``max_eval``, so the eval split of a study never depends on how many training examples a run
    uses. The shuffle uses its own ``random.Random(seed)``: global RNG state does not matter.
    """
    n = len(records)
    if isinstance(eval_size, bool) or not isinstance(eval_size, (int, float)):
        raise UserError(f"eval_size must be a count or a fraction in (0, 1), got {eval_size!r}")
    if isinstance(eval_size, float):
        if not 0.0 < eval_size < 1.0 or math.isnan(eval_size):
            raise UserError(f"eval_size {eval_size} as a fraction must lie in (0, 1); use an integer for a count")
        n_eval = round(eval_size * n)
    else:
        n_eval = eval_size
    if n_eval >= n:
        raise UserError(
            f"eval_size {eval_size} leaves no training records out of {n}: lower eval_size or add records"
        )
    if n_eval < 1:
        raise UserError(f"eval_size {eval_size} gives an empty eval split for {n} records: raise eval_size")
    for name, value in (("max_train", max_train), ("max_eval", max_eval)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{name} must be a positive integer or null, got {value!r}")

    order = list(range(n))
    random.Random(seed).shuffle(order)
    eval_records = [records[i] for i in order[:n_eval]]
    train_records = [records[i] for i in order[n_eval:]]
    if max_train is not None:
        train_records = train_records[:max_train]
    if max_eval is not None:
        eval_records = eval_records[:max_eval]
    return train_records, eval_records
