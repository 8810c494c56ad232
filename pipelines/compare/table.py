"""The comparison's table: one row per (entry, test set), each metric as mean and sample
standard deviation over seeds, beside the seed-independent measurements; written as CSV
and Markdown, and drawn as one plot (HR and RR MAE with their seed spread)."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmrphys.config import ExperimentConfig

#: the scored metrics, as the flat names `summary_metrics` gives them after the prefix
METRICS: tuple[str, ...] = tuple(f"{rate}_{m}" for rate in ("hr", "rr") for m in ("mae", "rmse", "pearson", "snr"))
#: headers of the Markdown table for the metric columns
_LABELS = {"hr_mae": "HR MAE", "hr_rmse": "HR RMSE", "hr_pearson": "HR r", "hr_snr": "HR SNR",
           "rr_mae": "RR MAE", "rr_rmse": "RR RMSE", "rr_pearson": "RR r", "rr_snr": "RR SNR"}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (sd NaN for fewer than two)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.mean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def aggregate(runs: Sequence[Any], measured: Mapping[str, Mapping[str, Any]], tests: Sequence[str],
              configs: Mapping[str, ExperimentConfig]) -> list[dict[str, Any]]:
    """Rows of the table from every SeedRun (`pipelines.compare.run`), entries in order."""
    rows = []
    for entry, config in configs.items():
        entry_runs = [r for r in runs if r.entry == entry]
        epochs = [r.train_seconds_per_epoch for r in entry_runs if r.train_seconds_per_epoch is not None]
        for test in tests:
            row: dict[str, Any] = {"entry": entry, "test": test, "runs": len(entry_runs),
                                   "architecture": config.model.architecture}
            for metric in METRICS:
                mean, sd = mean_sd([r.metrics[test].get(metric, math.nan) for r in entry_runs])
                row[f"{metric}_mean"], row[f"{metric}_sd"] = mean, sd
            row["parameters"] = measured[entry]["parameters"]
            row["train_s_per_epoch"] = statistics.mean(epochs) if epochs else math.nan
            row["latency_ms"] = float(measured[entry]["latency_ms"])
            onnx = measured[entry]["onnx_mb"]
            row["onnx_mb"] = math.nan if onnx is None else float(onnx)
            rows.append(row)
    return rows


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Rows as CSV, columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _cell(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def format_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The table in Markdown: metrics as mean ± sd over seeds (just the mean for one run)."""
    metrics = [m for m in METRICS if any(not math.isnan(r[f"{m}_mean"]) for r in rows)]
    headers = ["entry", "test", "runs", *(_LABELS[m] for m in metrics), "params", "train s/epoch",
               "ms/clip", "ONNX MB"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        cells = [r["entry"], r["test"], str(r["runs"]), *(_cell(r[f"{m}_mean"], r[f"{m}_sd"]) for m in metrics),
                 f"{r['parameters']:,}", _cell(r["train_s_per_epoch"], math.nan), f"{r['latency_ms']:.1f}",
                 _cell(r["onnx_mb"], math.nan)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """HR MAE and RR MAE per entry (bars, one colour per test set) with +- sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = list(dict.fromkeys(r["entry"] for r in rows))
    tests = list(dict.fromkeys(r["test"] for r in rows))
    by_key = {(r["entry"], r["test"]): r for r in rows}
    figure, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.1 * len(entries) * max(1, len(tests))), 3.8))
    width = 0.8 / len(tests)
    for axis, metric, unit in ((axes[0], "hr_mae", "bpm"), (axes[1], "rr_mae", "breaths/min")):
        for i, test in enumerate(tests):
            means = [by_key[(e, test)][f"{metric}_mean"] for e in entries]
            sds = [by_key[(e, test)][f"{metric}_sd"] for e in entries]
            axis.bar([x - 0.4 + width * (i + 0.5) for x in range(len(entries))], means, width,
                     yerr=[0.0 if math.isnan(s) else s for s in sds], capsize=3, label=test)
        axis.set_xticks(range(len(entries)), entries, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(f"{_LABELS[metric]} ({unit}), mean ± sd over seeds")
        axis.legend(title="test set", fontsize=7)
    figure.suptitle(title or "comparison", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
