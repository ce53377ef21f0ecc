"""The strategy registry: name -> function + one-line description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: Callable  # (Layout, StrategyParams) -> {module_name: int rank}; 0 = no adapter
    description: str
    family: str  # "baseline", "paper", "placement", "custom", "data-driven"
    needs_data: bool = False  # data-driven strategies measure the model before training


STRATEGIES: dict[str, Strategy] = {}


def register(name: str, description: str, family: str, needs_data: bool = False):
    """Decorator: add a strategy function to the registry under ``name``."""

    def wrap(fn):
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} registered twice")  # a bug, not user input
        STRATEGIES[name] = Strategy(name, fn, description, family, needs_data)
        return fn

    return wrap


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UserError(f"unknown strategy '{name}': choose one of {', '.join(STRATEGIES)}") from None
