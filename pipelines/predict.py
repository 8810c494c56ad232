"""Run a trained model on one face video (plus an optional synchronized thermal video).

The video goes through the same steps as the ingest: decode, face boxes (Haar cascade,
or boxes the user gives), square and smoothed crops resized with area interpolation to
the stored size and then to the model's resolution; thermal frames use the RGB boxes.
The video is cut into chunks of the model's clip length (the last chunk is aligned to the
video's end so every frame is covered), each chunk is predicted and z-scored, and the
waveforms are stitched back together. HR and RR come from the whole waveforms (and from
30 s windows when the video is longer), with the default evaluation profile.

Outputs in `out_dir`: `<video>_waveforms.csv` (time, bvp, rsp), `<video>_rates.csv`
(window start/end, heart and respiration rate) and `<video>_prediction.png`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from mmrphys.data.recording import DatasetError

#: window for the per-window rates of long videos
RATE_WINDOW_SECONDS = 30.0


@dataclasses.dataclass
class VideoPrediction:
    """Waveforms, rates and output files of one video."""

    fps: float
    waveforms: dict[str, np.ndarray]
    rates: dict[str, float]
    window_rates: list[dict[str, float]]
    files: dict[str, Path]


def _read_thermal(path: Path) -> np.ndarray:
    """Thermal frames (T, H, W) from a .npy array, a video file or a folder of 16-bit frames."""
    from mmrphys.data.video import read_frames, read_video

    if path.suffix == ".npy":
        try:
            frames = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: unreadable thermal array: {err}") from None
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
        raise DatasetError(f"{path}: unreadable face boxes (expected CSV frame,x,y,w,h): {err}") from None
    if table.shape[1] != 5 or len(table) < n:
        raise DatasetError(f"{path}: expected {n} rows of frame,x,y,w,h, got shape {table.shape}")
    return table[:n, 1:]


def crop_video(rgb: np.ndarray, thermal: np.ndarray | None, resolution: int, *,
               boxes: np.ndarray | None = None, pre_cropped: bool = False) -> np.ndarray:
    """Face crops as a raw clip (C, T, H, W), RGB channels then thermal, at `resolution`."""
    from mmrphys.data.video import crop_resize, detect_faces, smooth_boxes, square_boxes, thermal_boxes
    from mmrphys.config import IngestConfig

    ingest = IngestConfig()
    n, height, width = rgb.shape[:3]
    if pre_cropped:
        boxes = np.tile([0.0, 0.0, width, height], (n, 1))
    else:
        if boxes is None:
            boxes, _ = detect_faces(rgb, every=ingest.detect_every)
        boxes = smooth_boxes(square_boxes(boxes, ingest.box_scale), ingest.smooth_frames)
    whole = np.tile([0.0, 0.0, ingest.size, ingest.size], (n, 1))
    # crop at the stored size, then area-resize as the training stream does
    channels = [crop_resize(crop_resize(rgb, boxes, ingest.size), whole, resolution).transpose(3, 0, 1, 2)]
    if thermal is not None:
        t_boxes = thermal_boxes(boxes, (height, width), thermal.shape[1:3])
        crops = crop_resize(crop_resize(thermal.astype(np.float32), t_boxes, ingest.size), whole, resolution)
        channels.append(crops[None])
    return np.concatenate(channels).astype(np.float32)


def chunk_spans(n: int, length: int) -> list[tuple[int, int]]:
    """(start, end) of chunks covering all n frames; the last one is aligned to the end."""
    if n < length:
        length = n - n % 4
        if length < 4:
            raise DatasetError(f"the video has {n} frames; at least 4 are needed")
    spans = [(s, s + length) for s in range(0, n - length + 1, length)]
    if spans[-1][1] < n:
        spans.append((n - length, n))
    return spans


def predict_clip_waveforms(model, clip: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Whole-video waveforms from a (C, T, H, W) clip: chunked, predicted, z-scored, stitched."""
    from pipelines.serving import predict_waveforms

    n = clip.shape[1]
    stitched: dict[str, np.ndarray] = {}
    written = 0
    for start, end in chunk_spans(n, frames):
        predicted = predict_waveforms(model, clip[None, :, start:end])
        for task, values in predicted.items():
            # an end-aligned last chunk overlaps the one before: keep only its new samples
            stitched.setdefault(task, np.zeros(n, np.float32))[written:end] = values[0][written - start:]
        written = end
    return stitched


def predict_video(
    model_ref: str,
    video: str | Path,
    *,
    thermal: str | Path | None = None,
    out_dir: str | Path = "predictions",
    fps: float | None = None,
    face_boxes: str | Path | None = None,
    pre_cropped: bool = False,
    tracking_uri: str | None = None,
) -> VideoPrediction:
    """Predict BVP/RSP waveforms and HR/RR for one video; write CSVs and a plot."""
    from mmrphys.data.video import read_video
    from pipelines.models import resolve_model
    from pipelines.serving import clip_rates

    model, config = resolve_model(model_ref, tracking_uri=tracking_uri)
    video = Path(video)
    rgb, container_fps = read_video(video)
    fps = float(fps or container_fps)
    if not math.isfinite(fps) or fps <= 0:
        raise DatasetError(f"{video}: the container has no usable frame rate; pass --fps")
    thermal_frames = None
    if config.modality in ("thermal", "rgbt"):
        if thermal is None:
            raise DatasetError(f"the model takes {config.modality!r} input: pass the thermal video with --thermal")
        thermal_frames = _read_thermal(Path(thermal))
        if abs(len(thermal_frames) - len(rgb)) > 1:
            raise DatasetError(f"{thermal}: {len(thermal_frames)} thermal frames for {len(rgb)} RGB frames in {video}")
    n = min(len(rgb), len(thermal_frames)) if thermal_frames is not None else len(rgb)
    boxes = _read_boxes(Path(face_boxes), n) if face_boxes else None
    clip = crop_video(rgb[:n], None if thermal_frames is None else thermal_frames[:n], config.resolution,
                      boxes=boxes, pre_cropped=pre_cropped)
    if config.modality == "thermal":
        clip = clip[3:]
    waveforms = predict_clip_waveforms(model, clip, config.frames)
    whole = {k: float(v[0]) for k, v in clip_rates({t: w[None] for t, w in waveforms.items()}, fps).items()}
    windows = _window_rates(waveforms, fps)
    files = _write_outputs(Path(out_dir), video.stem, fps, waveforms, whole, windows)
    return VideoPrediction(fps=fps, waveforms=waveforms, rates=whole, window_rates=windows, files=files)


def _window_rates(waveforms: dict[str, np.ndarray], fps: float) -> list[dict[str, float]]:
    from pipelines.serving import clip_rates

    n = len(next(iter(waveforms.values())))
    size = int(RATE_WINDOW_SECONDS * fps)
    if n < 2 * size:
        return []
    rows = []
    for start in range(0, n - size + 1, size):
        window = {t: w[None, start:start + size] for t, w in waveforms.items()}
        rates = {k: float(v[0]) for k, v in clip_rates(window, fps).items()}
        rows.append({"start_s": start / fps, "end_s": (start + size) / fps, **rates})
    return rows


def _write_outputs(out_dir: Path, stem: str, fps: float, waveforms: dict[str, np.ndarray],
                   rates: dict[str, float], windows: list[dict[str, float]]) -> dict[str, Path]:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = list(waveforms)
    n = len(waveforms[tasks[0]])
    files = {"waveforms": out_dir / f"{stem}_waveforms.csv", "rates": out_dir / f"{stem}_rates.csv",
             "plot": out_dir / f"{stem}_prediction.png"}
    with files["waveforms"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", *tasks])
        for i in range(n):
            writer.writerow([f"{i / fps:.4f}", *(f"{waveforms[t][i]:.5f}" for t in tasks)])
    rate_names = list(rates)
    with files["rates"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start_s", "end_s", *rate_names])
        writer.writerow(["0.0", f"{n / fps:.2f}", *(f"{rates[k]:.2f}" for k in rate_names)])
        for row in windows:
            writer.writerow([f"{row['start_s']:.2f}", f"{row['end_s']:.2f}", *(f"{row[k]:.2f}" for k in rate_names)])
    titles = {"bvp": ("Blood volume pulse", "heart_rate_bpm", "HR {:.1f} bpm"),
              "rsp": ("Respiration", "respiration_rate_bpm", "RR {:.1f} breaths/min")}
    figure, axes = plt.subplots(len(tasks), 1, figsize=(10, 2.6 * len(tasks)), sharex=True, squeeze=False)
    time_axis = np.arange(n) / fps
    for axis, task in zip(axes[:, 0], tasks):
        name, key, fmt = titles[task]
        axis.plot(time_axis, waveforms[task], lw=0.8)
        axis.set_title(f"{name}: {fmt.format(rates[key])}")
        axis.set_ylabel("z-score")
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(files["plot"], dpi=110)
    plt.close(figure)
    return files
