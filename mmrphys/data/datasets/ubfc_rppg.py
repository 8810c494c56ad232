"""UBFC-rPPG reader: RGB video with a contact PPG (BVP) label, both published layouts.

DATASET_2 (the 42-subject "realistic" set most papers use)::

    ROOT/subject1/vid.avi            RGB video, 640x480, ~29-30 fps
    ROOT/subject1/ground_truth.txt   3 lines: PPG, HR (bpm), sample time (s)

DATASET_1 (the 8-video "simple" set)::

    ROOT/5-gt/vid.avi                RGB video (or a single vid*.avi), ~28.7 fps
    ROOT/5-gt/gtdump.xmp             CSV, no header: time (ms), HR, SpO2, PPG (~62 Hz)

The DATASET_2 ground truth holds one sample per video frame: when its length matches the
frame count it is taken frame for frame. Otherwise (and always for DATASET_1) the PPG is
interpolated by its timestamps to the frame times, the first sample taken as the first
frame. Yields one recording per folder (subject = folder name, session "1"), BVP only.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mmrphys.data.datasets.common import (
    check_finite,
    labels_at_frames,
    natural_key,
    no_recordings,
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.video import declared_fps, stream_video

DATASET = "ubfc-rppg"
VIDEO = "vid.avi"
GROUND_TRUTH, GT_DUMP = "ground_truth.txt", "gtdump.xmp"
#: used when the video container does not declare a frame rate
NOMINAL_FPS = 30.0


def read(root: Path) -> Iterator[Recording]:
    """Yield one recording per `subjectN/` (DATASET_2) or `gtdump.xmp` (DATASET_1) folder."""
    root = require_dir(Path(root), "UBFC-rPPG dataset")
    folders = [
        path for path in sorted(root.iterdir(), key=natural_key)
        if path.is_dir() and (re.fullmatch(r"subject\d+", path.name) or (path / GT_DUMP).is_file())
    ]
    if not folders:
        raise no_recordings(
            root, "UBFC-rPPG", f"subjectN/ folders with {VIDEO} and {GROUND_TRUTH}, or folders with {GT_DUMP}"
        )
    for folder in folders:
        video = _video(folder)
        fps = _declared_fps(video)
        yield Recording(
            dataset=DATASET,
            subject=folder.name,
            session="1",
            fps=fps,
            source=folder,
            stream_rgb=functools.partial(stream_rgb, video),
            load_labels=functools.partial(load_labels, folder, video, fps),
        )


def stream_rgb(video: Path, window: int) -> Iterator[np.ndarray]:
    """Decode the video to uint8 (w, H, W, 3) RGB, `window` frames at a time; a truncated
    file is an error."""
    return stream_video(video, window)


def load_labels(folder: Path, video: Path, fps: float) -> dict[str, np.ndarray]:
    """The contact PPG as "bvp", one value per video frame."""
    if (folder / GT_DUMP).is_file():
        path = folder / GT_DUMP
        ppg, times, name = *_parse_gt_dump(path), "PPG (column 4)"
    else:
        path = require_file(folder / GROUND_TRUTH, "UBFC-rPPG ground truth file")
        ppg, times, name = *_parse_ground_truth(path), "PPG (line 1)"
    frames = _frame_count(video)
    if ppg.size == frames and path.name == GROUND_TRUTH:
        return {"bvp": check_finite(ppg, path, name)}
    frame_times = times[0] + np.arange(frames) / fps
    return {"bvp": labels_at_frames(times, {name: ppg}, frame_times, path)[name]}


def _parse_ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """PPG and time (s) from lines 1 and 3 of a DATASET_2 ground truth (line 2 is HR)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 3:
        raise DatasetError(
            f"{path}: expected 3 lines (PPG, HR in bpm, time in s), found {len(lines)}"
        )
    rows = []
    for number, (line, name) in enumerate(zip(lines, ("PPG", "HR", "time")), start=1):
        try:
            rows.append(np.array([float(v) for v in line.split()], dtype=np.float64))
        except ValueError as err:
            raise DatasetError(f"{path}: line {number} ({name}) is not numeric: {err}") from err
    if len({row.size for row in rows}) != 1:
        raise DatasetError(
            f"{path}: the PPG, HR and time lines hold {[row.size for row in rows]} values; "
            "they must be equally long"
        )
    return rows[0], rows[2]


def _parse_gt_dump(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """PPG and time (s) from a DATASET_1 gtdump.xmp: CSV rows of time (ms), HR, SpO2, PPG."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    table = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 4:
            raise DatasetError(
                f"{path}: line {number} has {len(row)} columns; expected time (ms), HR, SpO2, PPG"
            )
        try:
            table.append((float(row[0]), float(row[3])))
        except ValueError as err:
            raise DatasetError(f"{path}: line {number} is not numeric ({err})") from err
    if not table:
        raise DatasetError(f"{path}: empty ground truth file")
    data = np.array(table)
    return data[:, 1], data[:, 0] / 1000.0


def _video(folder: Path) -> Path:
    """`vid.avi`, or the folder's only `vid*.avi` (DATASET_1 names some `vid-12.avi`)."""
    candidates = sorted(folder.glob("vid*.avi"))
    return candidates[0] if len(candidates) == 1 else folder / VIDEO


def _open(video: Path) -> cv2.VideoCapture:
    require_file(video, "UBFC-rPPG video")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DatasetError(f"{video}: OpenCV cannot open the video (unreadable or corrupt)")
    return capture


def _frame_count(video: Path) -> int:
    """Frames in the video: the container's count, or counted by demuxing when it has none."""
    capture = _open(video)
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if frames <= 0:
        frames = 0
        while capture.grab():
            frames += 1
    capture.release()
    if frames == 0:
        raise DatasetError(f"{video}: the video holds no frames")
    return frames


def _declared_fps(video: Path) -> float:
    """The container's frame rate; the nominal rate when the file is missing or unreadable
    (its loaders then report the problem when the recording is ingested)."""
    if not video.is_file():
        return NOMINAL_FPS
    fps = declared_fps(video)
    return fps if fps > 0 else NOMINAL_FPS
