"""UBFC-rPPG reader (DATASET_2 layout): RGB video with a contact PPG (BVP) label.

Layout::

    ROOT/subject1/vid.avi            RGB video, about 30 fps, 640x480
    ROOT/subject1/ground_truth.txt   3 lines: PPG samples, HR (bpm), sample times (s)
    ROOT/subject3/...

The ground truth holds one sample per video frame; when its length matches the frame
count it is taken frame for frame, otherwise it is interpolated by its timestamps to the
frame times. Yields one recording per subject (session "1"), BVP only, no thermal.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mmrphys.data.datasets.common import (
    check_finite,
    labels_at_frames,
    matching_dirs,
    no_recordings,
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording

DATASET = "ubfc-rppg"
VIDEO = "vid.avi"
GROUND_TRUTH = "ground_truth.txt"
#: used when the video container does not declare a frame rate
NOMINAL_FPS = 30.0


def read(root: Path) -> Iterator[Recording]:
    """Yield one recording per `subjectN/` folder under `root`."""
    subjects = matching_dirs(require_dir(Path(root), "UBFC-rPPG dataset"), r"subject\d+")
    if not subjects:
        raise no_recordings(root, "UBFC-rPPG", f"subjectN/ folders holding {VIDEO} and {GROUND_TRUTH}")
    for folder, _ in subjects:
        fps = _declared_fps(folder / VIDEO)
        yield Recording(
            dataset=DATASET,
            subject=folder.name,
            session="1",
            fps=fps,
            source=folder,
            load_rgb=functools.partial(load_rgb, folder / VIDEO),
            load_labels=functools.partial(load_labels, folder, fps),
        )


def load_rgb(video: Path) -> np.ndarray:
    """Decode the whole video to uint8 (T, H, W, 3) RGB; a truncated file is an error."""
    capture = _open(video)
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise DatasetError(f"{video}: no frame could be decoded")
    if declared > 0 and len(frames) < declared:
        raise DatasetError(
            f"{video}: decoded {len(frames)} of the {declared} frames the container declares; "
            "the file is truncated or corrupt"
        )
    return np.stack(frames)


def load_labels(folder: Path, fps: float) -> dict[str, np.ndarray]:
    """The PPG of `ground_truth.txt` as "bvp", one value per video frame."""
    path = require_file(folder / GROUND_TRUTH, "UBFC-rPPG ground truth file")
    ppg, _, times = _parse_ground_truth(path)
    frames = _frame_count(folder / VIDEO)
    if ppg.size == frames:
        return {"bvp": check_finite(ppg, path, "PPG (line 1)")}
    frame_times = times[0] + np.arange(frames) / fps
    return {"bvp": labels_at_frames(times, {"PPG (line 1)": ppg}, frame_times, path)["PPG (line 1)"]}


def _parse_ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines 1-3 of a DATASET_2 ground truth: PPG, HR and time (s), equally long."""
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
            raise DatasetError(f"{path}: line {number} ({name}) is not numeric: {err}") from None
    if len({row.size for row in rows}) != 1:
        raise DatasetError(
            f"{path}: the PPG, HR and time lines hold {[row.size for row in rows]} values; "
            "they must be equally long"
        )
    return rows[0], rows[1], rows[2]


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
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return float(fps) if fps > 0 else NOMINAL_FPS
