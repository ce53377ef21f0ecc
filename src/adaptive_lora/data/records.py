"""Records: load them from the embedded set, a local file or the hub, and split them.

A record is an Alpaca record (three string fields, ``instruction``, ``input`` (may be empty) and
``output``: the format of Stanford Alpaca and of most instruction sets derived from it) or a chat
record (``messages``, also read from ShareGPT ``conversations``); see :mod:`.formats`.

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
from .formats import ACCEPTED, FIELDS, FORMATS, detect_format, json_type as _json_type, normalise

DEFAULT_SOURCE = "default"

# The one place users are told what they can use instead of the hub.
_OFFLINE_HINT = (
    "use `data: default` for the embedded data set, or a local JSON/JSONL path"
)
_SKIP_HINT = "(set skip_bad_records: true to skip such records)"


@dataclass(frozen=True)
class LoadedRecords:
    """The valid records of a source, how many bad ones were skipped, the source as given, and
    the format its records were read in (``alpaca``, ``messages`` or ``sharegpt``)."""

    records: list[dict]
    n_skipped: int
    source: str
    format: str = "alpaca"


def load_records(source: str, *, skip_bad: bool = False, data_format: str = "auto") -> LoadedRecords:
    """Load and validate records from ``source`` (see the module docstring).

    An Alpaca record holds exactly ``instruction``, ``input`` and ``output``, a chat record exactly
    ``messages`` (extra keys are dropped). ``data_format`` is one of :data:`FORMATS`; ``auto``
    decides from the first object. With ``skip_bad=True`` records that do not fit the format are
    dropped and counted in ``n_skipped``; otherwise the first one raises a :class:`UserError`.
    """
    if data_format not in FORMATS:
        raise UserError(f"data_format must be one of {', '.join(FORMATS)}, got {data_format!r}")
    source = str(source).strip()
    if not source:
        raise UserError("data source is empty: use `data: default`, a JSON/JSONL path or a hub id")
    if source == DEFAULT_SOURCE:
        raw, name = _load_default(), DEFAULT_SOURCE
    elif looks_like_path(source):
        raw, name = _load_file(source), source
    else:
        raw, name = _load_hub(source), source

    fmt = detect_format((item for _, item, _ in raw), name) if data_format == "auto" else data_format
    records: list[dict] = []
    n_skipped = 0
    for index, item, where in raw:
        record, problem = normalise(item, fmt)
        if problem is None:
            records.append(record)
        elif skip_bad:
            n_skipped += 1
        else:
            raise UserError(f"{name} record {index}{where}: {problem} {_SKIP_HINT}")
    if not records:
        detail = f" ({n_skipped} bad records skipped)" if n_skipped else ""
        raise UserError(f"{name} holds no usable records{detail} (format {fmt}): give at least one of {ACCEPTED}")
    return LoadedRecords(records=records, n_skipped=n_skipped, source=name, format=fmt)


def looks_like_path(source: str) -> bool:
    """Path or hub id? A path if it exists or has the shape of one; ``owner/name`` is a hub id."""
    if os.path.exists(os.path.expanduser(source)):
        return True
    if source.lower().endswith((".json", ".jsonl")):
        return True
    return source.startswith((".", "/", "~"))


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

    columns = ds.column_names or []
    missing = [f for f in FIELDS if f not in columns]
    if missing and "messages" not in columns and "conversations" not in columns:
        raise UserError(
            f"data '{dataset_id}' has no column(s) {', '.join(map(repr, missing))} (it has "
            f"{', '.join(map(repr, columns))}): use a data set of {ACCEPTED}"
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
    n_eval = eval_count(n, eval_size)
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


def eval_count(n: int, eval_size: int | float) -> int:
    """Records held out of ``n`` for ``eval_size`` (a count, or a fraction rounded); the rest train."""
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
    return n_eval
