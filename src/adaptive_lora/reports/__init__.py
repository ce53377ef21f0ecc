"""Reports: Table 1, paired verdicts, figures and the paper comparison, read from run folders only.

Nothing here imports torch or the training code: a report can be written on any machine that
has the result files (``summary.json``, ``metrics.jsonl``, ``sweep.json``).
"""

from .collect import RunResult, collect_runs
from .compare import paired_comparisons
from .figures import write_figures
from .paper import PAPER_TABLE1, PaperRow, paper_row_for
from .report import ReportPaths, write_report
from .table import Row, aggregate, pareto_front, write_table

__all__ = [
    "PAPER_TABLE1",
    "PaperRow",
    "ReportPaths",
    "Row",
    "RunResult",
    "aggregate",
    "collect_runs",
    "pareto_front",
    "paired_comparisons",
    "paper_row_for",
    "write_figures",
    "write_report",
    "write_table",
]
