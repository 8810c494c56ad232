"""Compare models on the same shards, splits, seeds and metrics (docs/compare.md).

`entries` names the model configs a comparison can hold, `run` trains and evaluates each
of them under one parent MLflow run, `table` turns the per-seed scores into the
mean +- sd table, its CSV / Markdown files and its plot.
"""

from pipelines.compare.entries import ENTRIES, CompareError, entry_configs, load_entries, resolve_entries
from pipelines.compare.run import CompareResult, EvalSet, parse_test_set, run_compare

__all__ = [
    "ENTRIES", "CompareError", "CompareResult", "EvalSet", "entry_configs", "load_entries", "parse_test_set",
    "resolve_entries", "run_compare",
]
