"""The generic folder format: users' own recordings, and what the synthetic generator
writes.

    ROOT/<recording>/meta.json      {"subject": "S01", "session": "1", "fps": 30.0,
                                     "thermal_unit": "celsius", ...}
    ROOT/<recording>/rgb.npy        uint8 (T, H, W, 3), RGB order       } exactly one
                    /rgb/           image frames (PNG, JPEG, BMP, TIFF)   } RGB source
                    /rgb.<ext>      a video file (.avi .mkv .mp4 .mov)   }
    ROOT/<recording>/thermal.npy    float (T, H, W) in thermal_unit     } optional, at
                    /thermal/       16-bit single-channel PNG/TIFF        } most one
    ROOT/<recording>/labels.csv     header with `time` (seconds from the first frame),
                                    `bvp`, and optionally `rsp` and `quality` (per-sample
                                    signal quality in [0, 1])
    ROOT/<recording>/face_boxes.csv optional: frame,x,y,w,h per frame (RGB pixels)

meta.json fields: `subject` (required), `session` (default: the folder name), `fps`
(required unless the RGB source is a video, whose container fps is then used; when both
are given they must agree within 1 %), `thermal_unit` (default "celsius"),
`thermal_scale` / `thermal_offset` (16-bit frames are raw * scale + offset; defaults 1
and 0), `pre_cropped` (frames already cropped to the face), `dataset` (the id prefix,
default "folder"). Other fields are kept by the user and ignored here.

Listing reads only meta.json; frames and labels are decoded by the ingest task.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path
from typing import Iterator

import numpy as np

from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.video import declared_fps, resample_labels, stream_frames, stream_video

VIDEO_SUFFIXES = (".avi", ".mkv", ".mp4", ".mov")
META_FILE, LABELS_FILE, BOXES_FILE = "meta.json", "labels.csv", "face_boxes.csv"
#: relative disagreement allowed between meta.json fps and the video container's fps
FPS_TOLERANCE = 0.01


def read(root: Path) -> Iterator[Recording]:
    """Yield one Recording per sub-folder of `root` holding a meta.json, in name order."""
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    recordings = [p for p in folders if (p / META_FILE).is_file()]
    if not recordings:
        raise DatasetError(f"{root}: no recording folders (sub-folders with a {META_FILE}) found")
    for folder in recordings:
        yield _recording(folder)


def _rgb_source(folder: Path) -> Path:
    candidates = [folder / "rgb.npy", folder / "rgb"] + [folder / f"rgb{s}" for s in VIDEO_SUFFIXES]
    present = [p for p in candidates if p.exists()]
    if len(present) != 1:
        names = ", ".join(p.name for p in present) or "none"
        raise DatasetError(
            f"{folder}: expected exactly one RGB source (rgb.npy, rgb/ or rgb.<{'|'.join(s[1:] for s in VIDEO_SUFFIXES)}>), found {names}"
        )
    return present[0]


def _thermal_source(folder: Path) -> Path | None:
    present = [p for p in (folder / "thermal.npy", folder / "thermal") if p.exists()]
    if len(present) > 1:
        raise DatasetError(f"{folder}: both thermal.npy and thermal/ exist; keep one")
    return present[0] if present else None


def _recording(folder: Path) -> Recording:
    meta_path = folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{meta_path}: cannot read: {err}") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("subject"), (str, int)):
        raise DatasetError(f"{meta_path}: needs a 'subject' field (string)")
    rgb = _rgb_source(folder)
    fps = meta.get("fps")
    if fps is None and rgb.suffix not in VIDEO_SUFFIXES:
        raise DatasetError(f"{meta_path}: needs 'fps' (frames per second) for {rgb.name}")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0):
        raise DatasetError(f"{meta_path}: 'fps' must be a positive number, got {fps!r}")
    if fps is None:
        fps = _video_fps(rgb)
    thermal = _thermal_source(folder)
    boxes = folder / BOXES_FILE
    return Recording(
        dataset=str(meta.get("dataset", "folder")),
        subject=str(meta["subject"]),
        session=str(meta.get("session", folder.name)),
        fps=float(fps),
        source=folder,
        stream_rgb=functools.partial(_stream_rgb, rgb, float(fps)),
        load_labels=functools.partial(_load_labels, folder / LABELS_FILE, float(fps)),
        stream_thermal=(
            functools.partial(_stream_thermal, thermal, float(meta.get("thermal_scale", 1.0)), float(meta.get("thermal_offset", 0.0)))
            if thermal
            else None
        ),
        thermal_unit=str(meta.get("thermal_unit", "celsius")) if thermal else None,
        load_face_boxes=functools.partial(_load_boxes, boxes) if boxes.is_file() else None,
        pre_cropped=bool(meta.get("pre_cropped", False)),
    )


def _video_fps(path: Path) -> float:
    fps = declared_fps(path)
    if not math.isfinite(fps) or fps <= 0:
        raise DatasetError(f"{path}: the video declares no frame rate; give 'fps' in {META_FILE}")
    return fps


def _stream_rgb(path: Path, fps: float, window: int) -> Iterator[np.ndarray]:
    if path.suffix == ".npy":
        dtype, shape, _ = _load_npy(path)
        if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8:
            raise DatasetError(f"{path}: expected uint8 (T, H, W, 3), got {dtype} {shape}")
        yield from _npy_windows(path, window)
        return
    if path.is_dir():
        yield from stream_frames(path, window)
        return
    container_fps = declared_fps(path)
    if container_fps > 0 and abs(container_fps - fps) > FPS_TOLERANCE * fps:
        raise DatasetError(
            f"{path}: wrong fps: the video declares {container_fps:g} fps, {META_FILE} says {fps:g}"
        )
    yield from stream_video(path, window)


def _load_npy(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and data offset of a .npy file, from its header alone."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
    # an OSError (permissions, a flaky disk) is not bad data: it fails the task, which is retried
    except (ValueError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read NumPy array: {err}") from err
    if fortran or dtype.hasobject:
        raise DatasetError(f"{path}: cannot read NumPy array: expected a C-order numeric array")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size < expected:
        raise DatasetError(f"{path}: cannot read NumPy array: truncated ({path.stat().st_size} of {expected} bytes)")
    return dtype, shape, offset


def _npy_windows(path: Path, window: int) -> Iterator[np.ndarray]:
    """The frames of a (T, ...) .npy file read `window` at a time (plain reads, not a
    memory map: mapped pages would count against the task's memory until unmapped)."""
    dtype, shape, offset = _load_npy(path)
    frame = int(np.prod(shape[1:]))
    with path.open("rb") as handle:
        handle.seek(offset)
        for start in range(0, shape[0], window):
            count = min(window, shape[0] - start)
            yield np.fromfile(handle, dtype=dtype, count=count * frame).reshape((count, *shape[1:]))


def _stream_thermal(path: Path, scale: float, offset: float, window: int) -> Iterator[np.ndarray]:
    if path.suffix == ".npy":
        dtype, shape, _ = _load_npy(path)
        if len(shape) != 3 or not np.issubdtype(dtype, np.number):
            raise DatasetError(f"{path}: expected numeric (T, H, W), got {dtype} {shape}")
        for part in _npy_windows(path, window):
            yield part.astype(np.float32)
        return
    for part in stream_frames(path, window, sixteen_bit=True):
        yield part.astype(np.float32) * scale + offset


def _load_labels(path: Path, fps: float) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: label file is missing")
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot read labels: {err}") from err
    if not rows:
        raise DatasetError(f"{path}: label file is empty")
    header = [h.strip().lower() for h in rows[0]]
    if "time" not in header or "bvp" not in header:
        raise DatasetError(f"{path}: header must name 'time' and 'bvp' (and optionally 'rsp'), got {rows[0]}")
    columns = ["time", "bvp"] + [c for c in ("rsp", "quality") if c in header]
    index = [header.index(c) for c in columns]
    values = np.full((len(rows) - 1, len(columns)), np.nan)
    for r, row in enumerate(rows[1:]):
        for c, i in enumerate(index):
            text = row[i].strip() if i < len(row) else ""
            try:
                values[r, c] = float(text) if text else np.nan
            except ValueError as err:
                raise DatasetError(f"{path}: line {r + 2}, column {columns[c]!r}: not a number: {text!r}") from err
    labels = {}
    for c, name in enumerate(columns[1:], start=1):
        labels[name] = resample_labels(values[:, 0], values[:, c], fps, where=str(path))
    return labels


def _load_boxes(path: Path) -> np.ndarray:
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read face boxes: {err}") from err
    if data.shape[1] != 5:
        raise DatasetError(f"{path}: expected columns frame,x,y,w,h, got {data.shape[1]} columns")
    order = np.argsort(data[:, 0])
    return data[order, 1:].astype(np.int64)
