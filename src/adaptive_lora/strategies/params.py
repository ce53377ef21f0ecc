"""Parameters shared by the strategies, validated once."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

ROUNDING = {
    # floor reproduces the paper's average rank 9.5 for linear decay on 24 layers
    # (16, 15, 14, ... 4): the paper's formula yields fractional ranks and int() truncates.
    "floor": lambda x: math.floor(x + 1e-9),  # the epsilon keeps 11.9999999 from becoming 11
    "round": lambda x: math.floor(x + 0.5),  # half up, not Python's banker's rounding
    "ceil": lambda x: math.ceil(x - 1e-9),
}


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        what = "a non-negative integer" if allow_zero else "a positive integer"
        raise UserError(f"{name} must be {what}, got {value!r}")
    return value


def doc_field(default=None, doc: str = "", factory=None):
    """A dataclass field with a one-line ``doc`` (its meaning and its default's trade-off).

    The doc is metadata, not a docstring, so that ``--help``, the README's key list and error
    messages read the same text at run time.
    """
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class StrategyParams:
    """Inputs every strategy may read, declared once: ``plan``, ``train``, sweeps and the help
    text all take these fields from here. Defaults are the paper's (section 3.2.4)."""

    r: int = doc_field(8, "rank of the uniform baseline and the placement strategies (paper: 8 and 16)")
    r_base: int = doc_field(16, "starting (linear decay) or reference (attention-heavy, empirical) rank")
    r_min: int = doc_field(4, "lower clamp of the adaptive strategies; below ~4 a module learns little")
    r_max: int = doc_field(32, "upper clamp of the adaptive strategies; caps any one module's share")
    rounding: str = doc_field("floor", "fractional ranks to integers: floor (reproduces the paper), round, ceil")
    custom: Any = doc_field(None, "for strategy custom: a list of one rank per layer, or a map pattern -> rank "
                                  "(inline or a YAML/JSON file)")
    extra: dict = doc_field(doc="probe results of data-driven strategies (set by the probe, never by users)",
                            factory=dict)

    USER_FIELDS = ("r", "r_base", "r_min", "r_max", "rounding", "custom")

    def __post_init__(self):
        _positive_int("r", self.r)
        _positive_int("r_base", self.r_base)
        _positive_int("r_min", self.r_min)
        _positive_int("r_max", self.r_max)
        if self.r_min > self.r_base:
            raise UserError(f"r_min ({self.r_min}) is larger than r_base ({self.r_base}): lower r_min or raise r_base")
        if self.r_max < self.r_min:
            raise UserError(f"r_max ({self.r_max}) is smaller than r_min ({self.r_min}): raise r_max")
        if self.rounding not in ROUNDING:
            raise UserError(f"rounding '{self.rounding}' is unknown: use one of {', '.join(ROUNDING)}")

    def check_for(self, strategy) -> None:
        """Refuse parameters the chosen strategy (a registry ``Strategy``) would ignore or clamp away."""
        if self.custom is not None and strategy.name != "custom":
            raise UserError(f"custom is set but strategy '{strategy.name}' ignores it: remove custom, or use "
                            "strategy custom")
        if strategy.family == "paper" and self.r_base > self.r_max:
            raise UserError(f"r_base ({self.r_base}) is larger than r_max ({self.r_max}): every rank would be clamped; "
                            "lower r_base or raise r_max")

    def to_int(self, x: float) -> int:
        return ROUNDING[self.rounding](x)

    def clamp(self, x: int) -> int:
        return max(self.r_min, min(self.r_max, x))

    def to_dict(self) -> dict:
        out = {"r": self.r, "r_base": self.r_base, "r_min": self.r_min, "r_max": self.r_max, "rounding": self.rounding}
        if self.custom is not None:
            out["custom"] = self.custom
        return out
