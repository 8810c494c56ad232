"""Writers of tiny datasets in each real dataset's on-disk layout, for the reader tests.

Frames are a few 16x12 pixels. Every frame is distinct and its channels differ (red high,
green stepping with the frame index, blue low), so a test can tell a channel swap or a
reordered frame from a correct read.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np

HEIGHT, WIDTH = 12, 16


def rgb_frames(count: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames: R = 200, G = 7 * t + column, B = 30 + row."""
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = 200
    frames[..., 1] = (7 * np.arange(count)[:, None, None] + np.arange(width)[None, None, :]) % 256
    frames[..., 2] = 30 + np.arange(height)[None, :, None]
    return frames


def pulse(times: np.ndarray, hz: float = 1.2) -> np.ndarray:
    """A smooth label waveform at `times` (s)."""
    return np.sin(2 * np.pi * hz * times)


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write RGB frames to an AVI with the lossless FFV1 codec (decodes bit-exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write FFV1 video"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_image(path: Path, frame: np.ndarray) -> None:
    """Write one RGB frame as an image file (BMP/PNG: lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def write_ubfc(root: Path, subject: str = "subject1", frames: int = 30, fps: float = 30.0,
               label_times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A UBFC-rPPG DATASET_2 subject: `vid.avi` + 3-line `ground_truth.txt` (PPG, HR, time).

    Labels are sampled at `label_times` (default: one per frame). Returns (frames, ppg).
    """
    folder = root / subject
    video = rgb_frames(frames)
    write_video(folder / "vid.avi", video, fps)
    times = np.arange(frames) / fps if label_times is None else label_times
    ppg = pulse(times)
    hr = np.full_like(times, 72.0)
    (folder / "ground_truth.txt").write_text(
        "\n".join("  ".join(f"{v:.9e}" for v in row) for row in (ppg, hr, times)) + "\n"
    )
    return video, ppg
