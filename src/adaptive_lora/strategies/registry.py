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
    probe: str | None = None
    """Name of the measurement (``training.probe.PROBES``) whose result this strategy reads from
    ``params.extra``; None for strategies that need only the layout."""
    allocates_budget: bool = False
    """True when the strategy spends a parameter budget itself (``params.extra["budget"]``)
    instead of giving a shape that the planner rescales to the budget."""

    @property
    def needs_data(self) -> bool:
        """Data-driven strategies measure the model on training data before planning."""
        return self.probe is not None


STRATEGIES: dict[str, Strategy] = {}


def register(name: str, description: str, family: str, probe: str | None = None, allocates_budget: bool = False):
    """Decorator: add a strategy function to the registry under ``name``."""

    def wrap(fn):
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} registered twice")  # a bug, not user input
        STRATEGIES[name] = Strategy(name, fn, description, family, probe, allocates_budget)
        return fn

    return wrap


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UserError(f"unknown strategy '{name}': choose one of {', '.join(STRATEGIES)}") from None
