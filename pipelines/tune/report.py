"""The results of a search: ranked trials, a CSV table, a printed table and a plot of
the metric by resolution and modality pairing."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from mmrphys.config import ExperimentConfig
from mmrphys.inference import is_model_folder
from pipelines.train.driver import BEST_MODEL_DIR, MLFLOW_RUN_FILE
from tune_spaces.overrides import trial_overrides

#: ranking order of trial outcomes (ties in the metric keep this order)
_STATUS_ORDER = {"completed": 0, "stopped early": 1, "error": 2}


def rank_trials(grid, search, trial_runs: Path, base_epochs: int) -> list[dict[str, Any]]:
    """One row per trial, best first: outcome, best metric, where its run and model are."""
    rows = []
    for result in grid:
        trial_id = Path(result.path).name
        overrides = trial_overrides(result.config)
        history = result.metrics_dataframe
        reported = history is not None and search.metric in getattr(history, "columns", ())
        # the epoch index, not the number of reports: a resumed trial reports only its rest
        epochs = int(history["epoch"].max()) + 1 if reported and "epoch" in history else 0
        row: dict[str, Any] = {"trial_id": trial_id, "epochs": epochs}
        if result.error is not None:
            row["status"], row["error"] = "error", str(result.error).strip().splitlines()[-1][:300]
        else:
            wanted = int(overrides.get("train.epochs", base_epochs))
            row["status"] = "completed" if epochs >= wanted else "stopped early"
        best = None
        if reported:
            values = history[search.metric]
            best = history.loc[values.idxmin() if search.mode == "min" else values.idxmax()]
        row[f"best_{search.metric}"] = float(best[search.metric]) if best is not None else math.nan
        for key in ("val_hr_mae", "val_rr_mae", "epoch"):
            if best is not None and key in best:
                row[key if key != "epoch" else "best_epoch"] = float(best[key]) if key != "epoch" else int(best[key]) + 1
        row.update(overrides)
        run_dir = trial_runs / trial_id
        record = run_dir / MLFLOW_RUN_FILE
        if record.is_file():
            row["mlflow_run_id"] = json.loads(record.read_text())["run_id"]
        model_dir = _best_model_dir(run_dir, BEST_MODEL_DIR, search.metric, search.mode)
        if model_dir is not None:
            row["model_dir"] = str(model_dir)
        rows.append(row)
    sign = 1 if search.mode == "min" else -1
    rows.sort(key=lambda r: (
        _STATUS_ORDER[r["status"]] == 2,
        math.isnan(r[f"best_{search.metric}"]),
        sign * r[f"best_{search.metric}"] if not math.isnan(r[f"best_{search.metric}"]) else 0.0,
        _STATUS_ORDER[r["status"]],
    ))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _best_model_dir(run_dir: Path, best_name: str, metric: str, mode: str) -> Path | None:
    """The run's best model: `best_model/` of a finished run, else its best kept checkpoint."""
    if is_model_folder(run_dir / best_name):
        return run_dir / best_name
    scored = []
    for folder in run_dir.glob("checkpoint_*"):
        metrics_file = folder / "metrics.json"
        if is_model_folder(folder) and metrics_file.is_file():
            value = json.loads(metrics_file.read_text()).get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                scored.append((value if mode == "min" else -value, str(folder)))
    return Path(min(scored)[1]) if scored else None


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    first = ["rank", "trial_id", "status", "epochs"]
    metric_cols = [k for k in rows[0] if k.startswith("best_") and k != "best_epoch"]
    middle = metric_cols + ["best_epoch", "val_hr_mae", "val_rr_mae"]
    fields = sorted({k for r in rows for k in r if "." in k})
    last = ["mlflow_run_id", "model_dir", "error"]
    present = {k for r in rows for k in r}
    return [c for c in first + middle + fields + last if c in present]


def write_results(rows: list[dict[str, Any]], path: Path) -> Path:
    """The ranked table as CSV, one row per trial."""
    columns = _columns(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: list[dict[str, Any]], metric: str, limit: int = 20) -> str:
    """The ranked table for the terminal: searched fields shortened, paths left out."""
    columns = [c for c in _columns(rows) if c not in ("mlflow_run_id", "model_dir", "error")]
    headers = [c.split(".", 1)[-1] for c in columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return "" if value is None else str(value)

    body = [[cell(r.get(c)) for c in columns] for r in rows[:limit]]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in body]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more trials in results.csv")
    return "\n".join(lines)


def pairing_label(modality: str, fusion: str) -> str:
    """`rgb`, `thermal`, or `rgbt early` / `rgbt per_task` / `rgbt late`."""
    return modality if modality != "rgbt" else f"rgbt {fusion}"


def plot_metric(rows: list[dict[str, Any]], search, base: ExperimentConfig, path: Path) -> Path:
    """Grouped bars: the best metric per resolution (groups) and modality pairing (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = f"best_{search.metric}"
    best: dict[tuple[int, str], float] = {}
    for row in rows:
        value = row[metric]
        if math.isnan(value):
            continue
        resolution = int(row.get("model.resolution", base.model.resolution))
        label = pairing_label(row.get("model.modality", base.model.modality),
                              row.get("model.fusion", base.model.fusion))
        key = (resolution, label)
        better = min if search.mode == "min" else max
        best[key] = better(best.get(key, value), value)
    resolutions = sorted({k[0] for k in best}, reverse=True)
    labels = sorted({k[1] for k in best})
    figure, axis = plt.subplots(figsize=(max(5.0, 1.6 * len(resolutions) * max(1, len(labels)) / 2), 3.8))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        xs = [r for r, res in enumerate(resolutions) if (res, label) in best]
        values = [best[(resolutions[x], label)] for x in xs]
        axis.bar([x - 0.4 + width * (i + 0.5) for x in xs], values, width, label=label)
    axis.set_xticks(range(len(resolutions)), [f"{r}x{r}" for r in resolutions])
    axis.set_xlabel("resolution")
    axis.set_ylabel(f"{search.metric} (best epoch, {'lower' if search.mode == 'min' else 'higher'} is better)")
    axis.set_title(f"{search.metric} by resolution and modality ({len(rows)} trials)")
    axis.legend(title="modality", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
