"""User-given rank maps, from YAML/JSON or inline.

Two forms:

* a list of L integers: rank per layer, applied to every targeted module of that layer;
* a mapping of module-name pattern -> rank. A pattern is a regular expression matched against
  the end of the full module name, on a dot boundary (PEFT's own rule), e.g. ``attn.c_attn``,
  ``h\\.1[0-9]\\..*``, ``layers.3.mlp.down_proj``. The most specific pattern wins: the one that
  matches the longest suffix; modules no pattern matches get ``default`` if given, else rank 0.
  A pattern that matches no module is an error, not silently ignored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import UserError
from .registry import register


def load_custom_map(source):
    """Accept a list, a dict, or a path to a .yaml/.yml/.json file holding one of those."""
    if isinstance(source, (list, dict)):
        return source
    if isinstance(source, str):
        path = Path(source).expanduser()
        if path.is_dir():
            raise UserError(f"custom rank map '{source}' is a folder: give a YAML or JSON file")
        if not path.is_file():
            raise UserError(f"custom rank map '{source}' does not exist: give a YAML or JSON file")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                return json.loads(text)
            from ..overrides import yaml_load

            return yaml_load(text)  # a key given twice is refused, not silently overwritten
        except (ValueError, Exception) as exc:  # yaml.YAMLError is not a ValueError
            raise UserError(f"custom rank map '{source}' is not valid YAML/JSON ({str(exc).splitlines()[0]})")
    raise UserError("strategy 'custom' needs a rank map: set custom to a list of per-layer ranks, a pattern map, or a file")


def _rank(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"custom rank {where} must be a non-negative integer, got {value!r}")
    return value


def _compile(pattern):
    """A user's pattern as a regex on the end of a module name; its errors point into the pattern."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise UserError(f"custom rank map key {pattern!r} is not a module-name pattern: keys must be strings such "
                        "as q_proj or 'layers\\.1\\..*' (for per-layer ranks give a list)")
    try:
        re.compile(pattern)  # alone first, so that the position in the message is the user's
    except re.error as exc:
        raise UserError(f"custom pattern '{pattern}' is not a valid regular expression ({exc})") from None
    return re.compile(rf"(?:^|.*\.)({pattern})$")


@register("custom", "your own map: a rank per layer, or module-name pattern -> rank (YAML/JSON)", "custom")
def custom(layout, params):
    spec = load_custom_map(params.custom)
    if isinstance(spec, dict) and "ranks" in spec and len(spec) <= 2:
        default = spec.get("default")
        spec = spec["ranks"]
    else:
        default = None
    if isinstance(spec, list):
        if len(spec) != layout.n_layers:
            raise UserError(
                f"custom rank list has {len(spec)} entries but the model has {layout.n_layers} layers: give one rank per layer"
            )
        ranks = [_rank(v, f"for layer {i}") for i, v in enumerate(spec)]
        return {m.name: ranks[m.layer] for m in layout.modules}
    if isinstance(spec, dict):
        if default is None and "default" in spec:
            spec = dict(spec)
            default = spec.pop("default")
        default = 0 if default is None else _rank(default, "'default'")
        compiled = [(pattern, _compile(pattern), _rank(value, f"for '{pattern}'")) for pattern, value in spec.items()]
        if not compiled and default == 0:
            raise UserError("custom rank map is empty: give pattern: rank pairs (e.g. q_proj: 8) or a list of "
                            "per-layer ranks")
        out, used = {}, set()
        for m in layout.modules:
            best = None
            for pattern, rx, rank in compiled:
                hit = rx.match(m.name)
                if hit and (best is None or len(hit.group(1)) > best[0]):
                    best = (len(hit.group(1)), pattern, rank)
            if best:
                used.add(best[1])
                out[m.name] = best[2]
            else:
                out[m.name] = default
        unused = [p for p, _, _ in compiled if p not in used]
        if unused:
            raise UserError(f"custom pattern(s) {', '.join(unused)} match no targeted module: fix the pattern or the targets")
        return out
    raise UserError("custom rank map must be a list of per-layer ranks or a mapping of pattern -> rank")
