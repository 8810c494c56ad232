"""Evaluation reports: waveform overlays, Bland-Altman plots, and the metric tables as
JSON and CSV, written by one function into one folder (ready to log as MLflow artifacts).

Plots use matplotlib's object API with the Agg canvas, so no display or global pyplot
state is involved.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmrphys.metrics import Evaluation, plot_jitter, preprocess
from mmrphys.metrics.recordings import ROW_COLUMNS
from mmrphys.profiles import get_profile
from mmrphys.signals import zscore

UNITS = {"bvp": "beats/min", "rsp": "breaths/min"}
RATE_NAMES = {"bvp": "HR", "rsp": "RR"}

# {task: {recording_id: (prediction, label)}}
Waveforms = Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _rows_of(evaluation: Evaluation, task: str) -> list[dict]:
    return [r for r in evaluation.per_recording if r["task"] == task]


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def plot_bland_altman(evaluation: Evaluation, task: str, path: Path, seed: int = 0) -> Path:
    """Scatter of predicted vs label rates and the Bland-Altman difference plot, side by side.

    Points get a seeded jitter of 1% of their range for visibility only; the bias and
    limit lines come from the unjittered `evaluation.summary`.
    """
    rows = [r for r in _rows_of(evaluation, task) if math.isfinite(r["rate_pred"]) and math.isfinite(r["rate_label"])]
    pred = np.array([r["rate_pred"] for r in rows])
    label = np.array([r["rate_label"] for r in rows])
    stats = evaluation.summary[task]
    unit, name = UNITS[task], RATE_NAMES[task]
    minus_label = get_profile(evaluation.profile).bland_altman_sign == "pred_minus_label"
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    scatter, difference = fig.subplots(1, 2)
    jit_label, jit_pred = plot_jitter(label, seed=seed), plot_jitter(pred, seed=seed + 1)
    scatter.scatter(jit_label, jit_pred, s=14, alpha=0.7)
    if rows:
        low, high = min(label.min(), pred.min()), max(label.max(), pred.max())
        scatter.plot([low, high], [low, high], color="grey", lw=1, label="y = x")
        scatter.legend(loc="upper left")
    scatter.set(xlabel=f"label {name} ({unit})", ylabel=f"predicted {name} ({unit})", title=f"{name}: prediction vs label")
    diff = (jit_pred - jit_label) if minus_label else (jit_label - jit_pred)
    difference.scatter((jit_pred + jit_label) / 2, diff, s=14, alpha=0.7)
    drawn = False
    for key, style, text in (("BA_bias", "-", "bias"), ("BA_loa_lower", "--", "95% limits"), ("BA_loa_upper", "--", None)):
        value = stats.get(key)
        if value is not None and math.isfinite(value):
            difference.axhline(value, color="crimson", ls=style, lw=1, label=None if text is None else f"{text} {value:.2f}")
            drawn = True
    if drawn:
        difference.legend(loc="upper right", fontsize="small")
    sign = "prediction - label" if minus_label else "label - prediction"
    difference.set(xlabel=f"mean of the two ({unit})", ylabel=f"{sign} ({unit})", title="Bland-Altman")
    fig.suptitle(f"{task.upper()} ({evaluation.profile} profile, {len(rows)} windows, MAE {stats['MAE']:.2f})")
    return _save(fig, path)


def plot_waveforms(
    evaluation: Evaluation,
    task: str,
    waveforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
    fs: float | Mapping[str, float],
    path: Path,
    max_recordings: int = 4,
    max_seconds: float = 30.0,
) -> Path:
    """Overlay of processed (profile's band-pass, z-scored) prediction and label for the first
    recordings, with their estimated rates in the legend."""
    rows = _rows_of(evaluation, task)
    recordings = [rec for rec in dict.fromkeys(r["recording_id"] for r in rows) if rec in waveforms][:max_recordings]
    fig = Figure(figsize=(10, 2.2 * max(1, len(recordings))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(max(1, len(recordings)), 1, squeeze=False)[:, 0])
    unit = UNITS[task]
    for ax, rec in zip(axes, recordings):
        rec_fs = float(fs[rec] if isinstance(fs, Mapping) else fs)
        pred, label = waveforms[rec]
        n = min(len(label), int(max_seconds * rec_fs))
        t = np.arange(n) / rec_fs
        mine = [r for r in rows if r["recording_id"] == rec]
        rate_pred, rate_label = (_finite_mean([r[k] for r in mine]) for k in ("rate_pred", "rate_label"))
        for values, rate, who, colour in (
            (label, rate_label, "label", "black"),
            (pred, rate_pred, "prediction", "tab:orange"),
        ):
            shown = zscore(preprocess(values, rec_fs, task, evaluation.profile, evaluation.label_diff))[:n]
            ax.plot(t, shown, color=colour, lw=1.1, label=f"{who}: {rate:.1f} {unit}")
        ax.set_title(f"{rec}", fontsize="medium", loc="left")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_ylabel("z-score")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"{task.upper()} waveforms ({evaluation.profile} profile, band-passed)")
    return _save(fig, path)


def write_tables(evaluation: Evaluation, out_dir: Path) -> dict[str, Path]:
    """evaluation.json (everything), summary.csv (one row per task), per_recording.csv."""
    paths = {
        "evaluation_json": out_dir / "evaluation.json",
        "summary_csv": out_dir / "summary.csv",
        "per_recording_csv": out_dir / "per_recording.csv",
    }
    as_dict = evaluation.to_dict()
    paths["evaluation_json"].write_text(json.dumps(as_dict, indent=2) + "\n")
    metric_names = list(dict.fromkeys(k for s in as_dict["summary"].values() for k in s))
    with paths["summary_csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "profile", "method", *metric_names])
        for task, values in as_dict["summary"].items():
            writer.writerow([task, evaluation.profile, evaluation.method, *("" if values.get(k) is None else values[k] for k in metric_names)])
    columns = list(dict.fromkeys([*ROW_COLUMNS, *(k for row in as_dict["per_recording"] for k in row)]))
    with paths["per_recording_csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in as_dict["per_recording"])
    return paths


def write_report(
    evaluation: Evaluation,
    out_dir: str | Path,
    waveforms: Waveforms | None = None,
    fs: float | Mapping[str, float] | None = None,
) -> dict[str, Path]:
    """Write the tables and plots of `evaluation` into `out_dir`; return name -> path.

    `waveforms` is `{task: {recording_id: (prediction, label)}}` (the signals given to
    `evaluate_recordings`) and `fs` their sampling rate(s); with them, waveform overlays
    of the first recordings are drawn too.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = write_tables(evaluation, out)
    if waveforms is not None and fs is None:
        raise ValueError("write_report: waveforms need fs (one rate or one per recording id)")
    for task in evaluation.summary:
        paths[f"bland_altman_{task}"] = plot_bland_altman(evaluation, task, out / f"bland_altman_{task}.png")
        if waveforms is not None and waveforms.get(task):
            paths[f"waveforms_{task}"] = plot_waveforms(
                evaluation, task, waveforms[task], fs, out / f"waveforms_{task}.png"
            )
    return paths
