"""Rank-allocation strategies: pure functions from a layout and parameters to ranks.

A strategy never touches torch state or files: ``fn(layout, params) -> {module_name: rank}``.
That makes each one trivial to test, plot and compare. A new strategy is one function in
``paper.py`` (or a module of its own), one ``@register`` line, and one test.
"""

from .budget import match_budget, parse_budget_like
from .params import ROUNDING, StrategyParams
from .plan import Plan, make_plan, plan_from_file
from .registry import STRATEGIES, Strategy, get_strategy, register

# Importing the modules registers their strategies.
from . import paper as _paper  # noqa: F401,E402
from . import custom as _custom  # noqa: F401,E402
from . import data_driven as _data_driven  # noqa: F401,E402
from . import spectrum as _spectrum  # noqa: F401,E402
from . import gora as _gora  # noqa: F401,E402
from . import svd_compress as _svd_compress  # noqa: F401,E402

__all__ = [
    "STRATEGIES",
    "ROUNDING",
    "Plan",
    "Strategy",
    "StrategyParams",
    "get_strategy",
    "make_plan",
    "plan_from_file",
    "match_budget",
    "parse_budget_like",
    "register",
]
