"""The camera after the optics: which scene moment each frame shows (dropped and
duplicated frames), and how the video is stored (lossless FFV1, or lossy MJPEG or
MPEG-4 part 2, codecs the pinned OpenCV writes).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mmrphys.config import SyntheticConfig

#: OpenCV backend and FourCC of each storage choice; lossy ones quantise away part of the
#: frame-to-frame change that carries the pulse
CODECS = {
    "lossless": (cv2.CAP_FFMPEG, "FFV1"),
    "mjpeg": (cv2.CAP_OPENCV_MJPEG, "MJPG"),
    "mpeg4": (cv2.CAP_FFMPEG, "mp4v"),
}


def frame_map(rng: np.random.Generator, n: int, dropped_rate: float, duplicated_rate: float) -> np.ndarray:
    """(T,) index of the scene moment each stored frame shows. A dropped frame makes the
    video skip one moment ahead, a duplicated one repeats the previous frame; the frame
    count (and the labels' clock) stay as they are, as in datasets without timestamps."""
    index = np.arange(n)
    if dropped_rate <= 0 and duplicated_rate <= 0:
        return index
    events = rng.random((2, n))
    dropped, duplicated = events[0] < dropped_rate, events[1] < duplicated_rate
    return np.clip(index + np.cumsum(dropped) - np.cumsum(duplicated), 0, n - 1)


def write_video(path: Path, frames: np.ndarray, fps: float, config: SyntheticConfig) -> Path:
    """Write RGB frames (T, H, W, 3) with the codec of `config.compression`."""
    api, fourcc = CODECS[config.compression]
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), api, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write {fourcc} video")
    if config.compression == "mjpeg":
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, config.jpeg_quality)
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path
