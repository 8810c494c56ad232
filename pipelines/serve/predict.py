"""Run a model on one face video (plus an optional synchronized thermal video).

The video goes through the model's own preprocessing (`mmrphys.inference`: the face
boxes, crop, stored precision and resolution it was trained with), is cut into chunks of
the model's clip length (the last one aligned to the video's end), predicted, z-scored
and stitched. HR and RR come from the whole waveforms and from a window sliding every
second, under the evaluation profile the model was validated with.

Outputs in `out_dir`, named after the recording (`--name`, default the video's file
name; an existing output is never overwritten unless asked):
`<name>_waveforms.csv` (time, bvp, rsp), `<name>_rates.csv` and `<name>_rates.json`
(whole-video rates and rates over time) and `<name>_prediction.png`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmrphys.data.recording import DatasetError
from mmrphys.data.video import read_frames, read_video
from mmrphys.inference import Predictor, clip_rates, prepare_video, rates_over_time
from mmrphys.tasks import TASKS
from pipelines.serve.references import resolve_model

#: the sliding window of rates over time, and its step
RATE_WINDOW_SECONDS, RATE_STEP_SECONDS = 10.0, 1.0
#: how much of the waveform the plot shows: a readable stretch, not the whole video
PLOT_SECONDS = 10.0


@dataclasses.dataclass
class VideoPrediction:
    """Waveforms, rates and output files of one video."""

    fps: float
    waveforms: dict[str, np.ndarray]
    rates: dict[str, float]
    rates_over_time: list[dict[str, float]]
    files: dict[str, Path]


def _read_thermal(path: Path) -> np.ndarray:
    """Thermal frames (T, H, W) from a .npy array, a video file or a folder of 16-bit frames."""
    if path.suffix == ".npy":
        try:
            frames = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: unreadable thermal array: {err}") from err
        if frames.ndim != 3:
            raise DatasetError(f"{path}: thermal frames must be (T, H, W), got shape {frames.shape}")
        return frames
    if path.is_dir():
        return read_frames(path, sixteen_bit=True)
    frames, _ = read_video(path)
    return frames[..., 0]


def _read_boxes(path: Path, n: int) -> np.ndarray:
    """Per-frame face boxes from a CSV of frame,x,y,w,h (a header line is allowed)."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable face boxes (expected CSV frame,x,y,w,h): {err}") from err
    if table.shape[1] != 5 or len(table) < n:
        raise DatasetError(f"{path}: expected {n} rows of frame,x,y,w,h, got shape {table.shape}")
    return table[:n, 1:]


def output_files(out_dir: Path, name: str) -> dict[str, Path]:
    """Where `predict` writes the outputs of recording `name`."""
    return {"waveforms": out_dir / f"{name}_waveforms.csv", "rates": out_dir / f"{name}_rates.csv",
            "rates_json": out_dir / f"{name}_rates.json", "plot": out_dir / f"{name}_prediction.png"}


def predict_video(
    model_ref: str,
    video: str | Path,
    *,
    thermal: str | Path | None = None,
    out_dir: str | Path = "predictions",
    name: str | None = None,
    overwrite: bool = False,
    fps: float | None = None,
    face_boxes: str | Path | None = None,
    pre_cropped: bool = False,
    tracking_uri: str | None = None,
) -> VideoPrediction:
    """Predict BVP/RSP waveforms and HR/RR for one video; write CSV, JSON and a plot."""
    video = Path(video)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise DatasetError(f"--fps {fps:g}: expected a positive frame rate in frames per second")
    files = output_files(Path(out_dir), name or video.stem)
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not overwrite:
        raise DatasetError(f"{existing[0]} exists: pass --name to name this recording, or --overwrite")
    model, artifact = resolve_model(model_ref, tracking_uri=tracking_uri)
    config = artifact.config
    rgb, container_fps = read_video(video)
    fps = float(fps or container_fps)
    if not math.isfinite(fps) or fps <= 0:
        raise DatasetError(f"{video}: the container has no usable frame rate; pass --fps")
    thermal_frames = None
    if config.modality != "rgb":
        if thermal is None:
            raise DatasetError(f"the model takes {config.modality!r} input: pass the thermal video with --thermal")
        thermal_frames = _read_thermal(Path(thermal))
        if abs(len(thermal_frames) - len(rgb)) > 1:
            raise DatasetError(f"{thermal}: {len(thermal_frames)} thermal frames for {len(rgb)} RGB frames in {video}")
    n = len(rgb) if thermal_frames is None else min(len(rgb), len(thermal_frames))
    boxes = _read_boxes(Path(face_boxes), n) if face_boxes else None
    clip = prepare_video(rgb[:n], None if thermal_frames is None else thermal_frames[:n], artifact.preprocessing,
                         config, boxes=boxes, pre_cropped=pre_cropped, where=str(video))
    waveforms = Predictor(model, config).predict_video(clip, fps)
    profile = artifact.evaluation.profile
    whole = {k: float(v[0]) for k, v in clip_rates({t: w[None] for t, w in waveforms.items()}, fps, profile).items()}
    over_time = rates_over_time(waveforms, fps, window_seconds=RATE_WINDOW_SECONDS,
                                step_seconds=RATE_STEP_SECONDS, profile=profile)
    _write_outputs(files, fps, waveforms, whole, over_time)
    return VideoPrediction(fps=fps, waveforms=waveforms, rates=whole, rates_over_time=over_time, files=files)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else ""


def _write_outputs(files: dict[str, Path], fps: float, waveforms: dict[str, np.ndarray],
                   rates: dict[str, float], over_time: list[dict[str, float]]) -> None:
    files["plot"].parent.mkdir(parents=True, exist_ok=True)
    tasks = list(waveforms)
    n = len(waveforms[tasks[0]])
    with files["waveforms"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", *tasks])
        for i in range(n):
            writer.writerow([f"{i / fps:.4f}", *(f"{waveforms[t][i]:.5f}" for t in tasks)])
    names = list(rates)
    with files["rates"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["window", "start_s", "end_s", *names])
        writer.writerow(["whole", "0.00", f"{n / fps:.2f}", *(_fmt(rates[k]) for k in names)])
        for row in over_time:
            writer.writerow([f"{RATE_WINDOW_SECONDS:g}s", f"{row['start_s']:.2f}", f"{row['end_s']:.2f}",
                             *(_fmt(row[k]) for k in names)])
    files["rates_json"].write_text(json.dumps({
        "fps": fps, "seconds": n / fps, "whole": rates,
        "window_seconds": RATE_WINDOW_SECONDS, "step_seconds": RATE_STEP_SECONDS, "over_time": over_time,
    }, indent=2, allow_nan=True) + "\n")
    _plot(files["plot"], fps, waveforms, rates, over_time)


def _plot(path: Path, fps: float, waveforms: dict[str, np.ndarray], rates: dict[str, float],
          over_time: list[dict[str, float]]) -> None:
    """A readable stretch of each waveform beside its rate over the whole video."""
    tasks = list(waveforms)
    n = len(waveforms[tasks[0]])
    shown = min(n, int(PLOT_SECONDS * fps))
    figure = Figure(figsize=(12, 2.8 * len(tasks)), layout="constrained")
    axes = figure.subplots(len(tasks), 2, squeeze=False, width_ratios=(3, 2))
    for (wave_axis, rate_axis), task in zip(axes, tasks):
        info = TASKS[task]
        time_axis = np.arange(shown) / fps
        wave_axis.plot(time_axis, waveforms[task][:shown], lw=1.0)
        crop = f"first {shown / fps:.0f} s of {n / fps:.0f} s" if shown < n else f"all {n / fps:.0f} s"
        whole = rates[info.rate_output]
        wave_axis.set_title(f"{info.title} ({crop}); whole video {info.rate_title} {whole:.1f} {info.unit}")
        wave_axis.set_xlabel("time (s)")
        wave_axis.set_ylabel("z-score")
        if over_time:
            mid = [(r["start_s"] + r["end_s"]) / 2 for r in over_time]
            rate_axis.plot(mid, [r[info.rate_output] for r in over_time], marker=".", lw=1.0)
            rate_axis.set_title(f"{info.rate_title} over time ({RATE_WINDOW_SECONDS:g} s window, "
                                f"every {RATE_STEP_SECONDS:g} s)")
        else:
            rate_axis.set_title(f"{info.rate_title} over time: video shorter than {RATE_WINDOW_SECONDS:g} s")
        rate_axis.axhline(whole, color="grey", ls="--", lw=0.8, label="whole video")
        rate_axis.set_xlim(0, n / fps)  # the whole video's time span, windows at their centres
        rate_axis.set_xlabel("window centre (s)")
        rate_axis.set_ylabel(info.rate_label)
        rate_axis.legend(loc="best", fontsize=8)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
