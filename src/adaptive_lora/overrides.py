"""YAML files and ``--set key=value`` overrides, read the same way by ``train``, ``run`` and ``plan``.

An override is one ``key=value`` string from the command line. The value is read as YAML, so
``lr=1e-4`` is a float, ``r=8`` an int, ``targets=[q_proj,v_proj]`` a list and ``name=foo`` a
string. A dotted key (``strategy_params.r=8``) sets a field inside a nested mapping.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

import yaml

from .errors import UserError

__all__ = ["parse_overrides", "apply_overrides", "yaml_load", "read_yaml_mapping"]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` as a float.

    PyYAML follows YAML 1.1, whose float pattern needs a dot, so ``1e-4`` and ``3e6`` load as
    *strings*. Learning rates are written exactly like that, and a string ``lr`` would only fail
    deep inside training (or, worse, be accepted by a lenient validator). We use the YAML 1.2
    float pattern instead; everything else is plain ``safe_load``.
    """


_FLOAT_TAG = "tag:yaml.org,2002:float"
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# The implicit resolvers are a class attribute keyed by first character. Build a new mapping
# (never mutate SafeLoader's, which other code in the process relies on) and swap the float
# pattern in place, so that the order in which int/float/timestamp are tried stays the same.
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, _FLOAT_12 if tag == _FLOAT_TAG else rx) for tag, rx in resolvers]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _no_duplicate_keys(loader, node, deep=False):
    """A key given twice in one mapping is an error: YAML would silently keep the last one."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
        except TypeError:  # an unhashable key: let the default constructor report it
            break
        if dup:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def yaml_load(text: str) -> Any:
    """Parse YAML text safely (no arbitrary objects), reading ``1e-4`` as a float and refusing a
    key given twice in one mapping."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader


def read_yaml_mapping(path, what: str) -> dict:
    """Read a YAML file that must hold a mapping; every problem is one line naming the file."""
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} '{path}' does not exist: give the path of a YAML file") from None
    except IsADirectoryError:
        raise UserError(f"{what} '{path}' is a folder: give the path of a YAML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} '{path}': {e}") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} '{path}' must be a YAML mapping of key: value")
    return data


def parse_overrides(pairs: list[str]) -> dict:
    """Turn ``["lr=1e-4", "strategy_params.r=8"]`` into ``{"lr": 1e-4, "strategy_params": {"r": 8}}``.

    Later pairs win over earlier ones. Setting a field inside a key that an earlier pair set to a
    plain value (``a=1`` then ``a.b=2``) is refused: the intent is ambiguous.
    """
    out: dict = {}
    for pair in pairs or []:
        if not isinstance(pair, str) or "=" not in pair:
            raise UserError(
                f"--set {pair!r} has no '='; write it as key=value, e.g. --set lr=1e-4"
            )
        key, raw = pair.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p.strip() for p in parts):
            raise UserError(
                f"--set {pair!r} has an empty key; write it as key=value, e.g. --set lr=1e-4"
            )
        parts = [p.strip() for p in parts]
        try:
            value = yaml_load(raw)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e)
            raise UserError(
                f"--set {key}: cannot read the value {raw!r} as YAML ({problem}); "
                f"quote strings that contain ':', '#', '[' or '{{'"
            ) from None
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise UserError(
                    f"--set {key} conflicts with an earlier --set {'.'.join(parts[: i + 1])}="
                    f"{child!r}; set one or the other"
                )
            node = child
        node[parts[-1]] = value
    return out


def apply_overrides(base: Mapping, overrides: Mapping) -> dict:
    """Deep-merge ``overrides`` into ``base`` and return a new dict (neither input is changed).

    Mappings merge key by key; any other value (lists included) replaces the old one, so
    ``targets=[q_proj]`` means exactly those targets, not the old ones plus ``q_proj``.
    """
    out = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = apply_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
