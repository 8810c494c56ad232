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

from mmrphys.metrics import Evaluation, preprocess
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


def _span(*values: np.ndarray) -> tuple[float, float]:
    """The range the reference lines cover: the data's, widened to at least 2 units so a
    single window (or identical ones) still gets a visible line."""
    both = np.concatenate(values)
    low, high = float(both.min()), float(both.max())
    pad = max(1.0, 0.05 * (high - low))
    return low - pad, high + pad


def bland_altman_figure(evaluation: Evaluation, task: str) -> Figure:
    """Scatter of predicted vs label rates (with y = x) and the Bland-Altman difference plot
    (with zero, the bias and the 95% limits), side by side.

    Points are drawn where they are, never jittered: coinciding windows show as a darker
    point through transparency, and the title counts the windows.
    """
    rows = [r for r in _rows_of(evaluation, task) if math.isfinite(r["rate_pred"]) and math.isfinite(r["rate_label"])]
    pred = np.array([r["rate_pred"] for r in rows])
    label = np.array([r["rate_label"] for r in rows])
    stats = evaluation.summary[task]
    unit, name = UNITS[task], RATE_NAMES[task]
    minus_label = get_profile(evaluation.profile).bland_altman_sign == "pred_minus_label"
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    scatter, difference = fig.subplots(1, 2)
    scatter.scatter(label, pred, s=18, alpha=0.45, linewidths=0)
    diff = (pred - label) if minus_label else (label - pred)
    mean = (pred + label) / 2
    difference.scatter(mean, diff, s=18, alpha=0.45, linewidths=0)
    if rows:
        low, high = _span(label, pred)
        scatter.plot([low, high], [low, high], color="grey", lw=1, label="y = x")
        scatter.legend(loc="upper left", fontsize="small")
        difference.axhline(0.0, color="grey", lw=1, label="zero")
        lower, upper = stats.get("BA_loa_lower"), stats.get("BA_loa_upper")
        limits = f"95% limits {lower:.2f}, {upper:.2f}" if lower is not None and math.isfinite(lower) else None
        for key, style, text in (("BA_bias", "-", "bias {:.2f}"), ("BA_loa_lower", "--", limits),
                                 ("BA_loa_upper", "--", None)):
            value = stats.get(key)
            if value is not None and math.isfinite(value):
                difference.axhline(value, color="crimson", ls=style, lw=1,
                                   label=None if text is None else text.format(value))
        difference.legend(loc="best", fontsize="small")
    sign = "prediction - label" if minus_label else "label - prediction"
    scatter.set(xlabel=f"label {name} ({unit})", ylabel=f"predicted {name} ({unit})", title=f"{name}: prediction vs label")
    difference.set(xlabel=f"mean of the two ({unit})", ylabel=f"{sign} ({unit})", title="Bland-Altman")
    mae = stats.get("MAE")
    windows = f"{len(rows)} window" + ("" if len(rows) == 1 else "s")
    fig.suptitle(f"{task.upper()} ({evaluation.profile} profile, {windows}"
                 + (f", MAE {mae:.2f}" if mae is not None and math.isfinite(mae) else "")
                 + "; overlapping points look darker)")
    return fig


def plot_bland_altman(evaluation: Evaluation, task: str, path: Path) -> Path:
    """Write `bland_altman_figure` to `path`."""
    return _save(bland_altman_figure(evaluation, task), path)


def waveforms_figure(
    evaluation: Evaluation,
    task: str,
    waveforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
    fs: float | Mapping[str, float],
    max_recordings: int = 4,
    max_seconds: float = 30.0,
) -> Figure:
    """Overlay of processed (profile's band-pass, z-scored) prediction and label for the first
    `max_recordings` recordings, at most `max_seconds` of each (the title says what part of
    how long a recording is shown), with their estimated rates in the legend."""
    rows = _rows_of(evaluation, task)
    all_recordings = [rec for rec in dict.fromkeys(r["recording_id"] for r in rows) if rec in waveforms]
    recordings = all_recordings[:max_recordings]
    fig = Figure(figsize=(10, 2.2 * max(1, len(recordings))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(max(1, len(recordings)), 1, squeeze=False)[:, 0])
    unit = UNITS[task]
    for ax, rec in zip(axes, recordings):
        rec_fs = float(fs[rec] if isinstance(fs, Mapping) else fs)
        pred, label = waveforms[rec]
        total = min(len(label), len(pred))
        n = min(total, int(max_seconds * rec_fs))
        t = np.arange(n) / rec_fs
        mine = [r for r in rows if r["recording_id"] == rec]
        rate_pred, rate_label = (_finite_mean([r[k] for r in mine]) for k in ("rate_pred", "rate_label"))
        for values, rate, who, colour in (
            (label, rate_label, "label", "black"),
            (pred, rate_pred, "prediction", "tab:orange"),
        ):
            shown = zscore(preprocess(values, rec_fs, task, evaluation.profile, evaluation.label_diff))[:n]
            ax.plot(t, shown, color=colour, lw=1.1, label=f"{who}: {rate:.1f} {unit}")
        part = f"first {n / rec_fs:.0f} s of {total / rec_fs:.0f} s" if n < total else f"all {total / rec_fs:.0f} s"
        ax.set_title(f"{rec} ({part})", fontsize="medium", loc="left")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_ylabel("z-score")
    axes[-1].set_xlabel("time (s)")
    shown_of = f"; {len(recordings)} of {len(all_recordings)} recordings" if len(recordings) < len(all_recordings) else ""
    fig.suptitle(f"{task.upper()} waveforms ({evaluation.profile} profile, band-passed{shown_of})")
    return fig


def plot_waveforms(evaluation: Evaluation, task: str, waveforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   fs: float | Mapping[str, float], path: Path) -> Path:
    """Write `waveforms_figure` to `path`."""
    return _save(waveforms_figure(evaluation, task, waveforms, fs), path)


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
