"""Video decoding, face boxes, cropping and alignment of RGB, thermal and labels.

The steps the ingest applies to every recording, in order:

1. decode (`stream_video`, `stream_frame_files`: a window of frames at a time;
   `read_video`, `read_frames`: all of them): uint8 RGB, errors name the file;
2. face boxes: the recording's own (synthetic, annotated) or the Haar cascade that ships
   with OpenCV (`detect_faces`), re-detected every N frames, falling back to the last
   good box, with a per-frame flag of whether a face was found;
3. `square_boxes` (enlarged 1.5x), `smooth_boxes` (moving average over time);
4. `crop_resize`: crop every frame and resize with area interpolation, in float32 so the
   sub-level pulse survives; `thermal_boxes` maps the RGB boxes onto a thermal camera of
   another resolution (co-registered cameras with the same field of view);
5. `resample_labels`: contact signals sampled at their own times onto the frame times.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from mmrphys.data.recording import COLLECT_WINDOW, DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: frames a container may declare beyond those decoded before we call a video truncated
_FRAME_COUNT_SLACK = 1


class NoFaceError(DatasetError):
    """The face detector found no face in any frame it checked."""


def declared_fps(path: str | Path) -> float:
    """The frame rate a video's container declares, without decoding; 0.0 when OpenCV
    cannot open the file. Callers decide what a missing or odd rate means."""
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
    capture.release()
    return fps


def stream_video(path: str | Path, window: int) -> Iterator[np.ndarray]:
    """Decode a video file in order, at most `window` uint8 RGB frames (w, H, W, 3) at a time.

    Raises DatasetError naming the file when it cannot be opened, holds no frames, or
    decodes fewer frames than its container declares (truncated or corrupt): the last
    two only once the stream reaches the end.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: video file does not exist")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DatasetError(f"{path}: OpenCV cannot open this video (unreadable or unsupported codec)")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        decoded = 0
        frames = []
        while True:
            ok, frame = capture.read()
            if ok:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if frames and (len(frames) == window or not ok):
                decoded += len(frames)
                yield np.stack(frames)
                frames = []
            if not ok:
                break
    finally:
        capture.release()
    if not decoded:
        raise DatasetError(f"{path}: no frames could be decoded (empty, truncated or corrupt video)")
    if declared > 0 and decoded < declared - _FRAME_COUNT_SLACK:
        raise DatasetError(
            f"{path}: truncated or corrupt video: the container declares {declared} frames, "
            f"only {decoded} decoded"
        )


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode a whole video file: (uint8 RGB frames (T, H, W, 3), container fps); the
    errors of `stream_video`."""
    frames = np.concatenate(list(stream_video(path, COLLECT_WINDOW)))
    return frames, declared_fps(path)


def read_frames(folder: str | Path, *, sixteen_bit: bool = False) -> np.ndarray:
    """Read a folder of image frames in file-name order.

    Returns uint8 RGB (T, H, W, 3), or with `sixteen_bit` the single-channel frames as
    stored (e.g. uint16 thermal, (T, H, W)). Raises DatasetError naming the bad file.
    """
    return np.concatenate(list(stream_frames(folder, COLLECT_WINDOW, sixteen_bit=sixteen_bit)))


def stream_frames(folder: str | Path, window: int, *, sixteen_bit: bool = False) -> Iterator[np.ndarray]:
    """`read_frames`, at most `window` frames at a time."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise DatasetError(f"{folder}: no image frames ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return stream_frame_files(files, window, sixteen_bit=sixteen_bit)


def read_frame_files(files: list[Path], *, sixteen_bit: bool = False) -> np.ndarray:
    """Decode image files in the order given (dataset readers order them by index or
    capture time), as `read_frames` does for a folder."""
    return np.concatenate(list(stream_frame_files(files, COLLECT_WINDOW, sixteen_bit=sixteen_bit)))


def stream_frame_files(files: list[Path], window: int, *, sixteen_bit: bool = False) -> Iterator[np.ndarray]:
    """`read_frame_files`, at most `window` frames at a time."""
    shape = None
    for start in range(0, len(files), window):
        frames = []
        for file in files[start : start + window]:
            image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED if sixteen_bit else cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"{file}: unreadable image frame")
            if sixteen_bit:
                if image.ndim != 2:
                    raise DatasetError(f"{file}: expected a single-channel frame, got shape {image.shape}")
            else:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            shape = shape or image.shape
            if image.shape != shape:
                raise DatasetError(f"{file}: frame size {image.shape} differs from the first frame's {shape}")
            frames.append(image)
        yield np.stack(frames)


class FaceDetector:
    """OpenCV's frontal-face Haar cascade: the largest face in a frame, or None."""

    def __init__(self, min_size_fraction: float = 0.1, cascade: str = "haarcascade_frontalface_default.xml"):
        path = Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"{path}: cannot load the Haar cascade shipped with OpenCV")
        self.min_size_fraction = min_size_fraction

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """Box (x, y, w, h) of the largest face in an RGB frame, or None."""
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        side = int(self.min_size_fraction * min(gray.shape))
        faces = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        if len(faces) == 0:
            return None
        return np.asarray(max(faces, key=lambda f: f[2] * f[3]), dtype=np.float64)


def detect_faces(
    frames: np.ndarray | Iterable[np.ndarray], every: int = 30, detector: FaceDetector | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Face boxes for every frame, detecting on every `every`-th frame.

    `frames`: RGB (T, H, W, 3), or the frames in order as consecutive windows (a stream,
    of which only the frames checked are kept while it runs). Returns (boxes float (T, 4) x, y, w, h; found bool (T,)). A frame whose detection
    failed keeps the last good box (or the first good one, before any was found) and is
    flagged `found = False`. Raises NoFaceError when no checked frame has a face.
    """
    if every < 1:
        raise ValueError(f"detect every must be >= 1, got {every}")
    detector = detector or FaceDetector()
    n, checked, detections = 0, [], []
    for window in [frames] if isinstance(frames, np.ndarray) else frames:
        for i in range(-n % every, len(window), every):
            checked.append(n + i)
            detections.append(detector(window[i]))
        n += len(window)
    if all(d is None for d in detections):
        raise NoFaceError(f"no face found in any of the {len(checked)} frames checked (every {every} frames)")
    boxes = np.empty((n, 4))
    found = np.zeros(n, bool)
    last = next(d for d in detections if d is not None)
    for start, detection in zip(checked, detections):
        if detection is not None:
            last = detection
        boxes[start : start + every] = last
        found[start : start + every] = detection is not None
    return boxes, found


def square_boxes(boxes: np.ndarray, scale: float = 1.5) -> np.ndarray:
    """Square boxes around the same centres, side = `scale` x the longer side."""
    boxes = np.asarray(boxes, np.float64)
    cx = boxes[:, 0] + boxes[:, 2] / 2
    cy = boxes[:, 1] + boxes[:, 3] / 2
    side = scale * np.maximum(boxes[:, 2], boxes[:, 3])
    return np.stack([cx - side / 2, cy - side / 2, side, side], axis=1)


def smooth_boxes(boxes: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of every box coordinate over `window` frames (edges held)."""
    boxes = np.asarray(boxes, np.float64)
    if window <= 1 or len(boxes) < 2:
        return boxes.copy()
    half = window // 2
    padded = np.pad(boxes, ((half, window - 1 - half), (0, 0)), mode="edge")
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(4)], axis=1)


def _clamp_box(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer box shifted (and if need be shrunk) to lie inside the frame."""
    x, y, w, h = box
    side_w, side_h = int(round(min(w, width))), int(round(min(h, height)))
    x0 = int(round(min(max(x, 0), width - side_w)))
    y0 = int(round(min(max(y, 0), height - side_h)))
    return x0, y0, max(side_w, 1), max(side_h, 1)


def crop_resize(frames: np.ndarray, boxes: np.ndarray, size: int = 72) -> np.ndarray:
    """Crop each frame to its box and resize to size x size with area interpolation.

    frames: (T, H, W) or (T, H, W, C); boxes: (T, 4). Returns float32 (T, size, size[, C]):
    resizing in float keeps the fraction-of-a-level pulse that rounding would erase.
    """
    if len(boxes) != len(frames):
        raise ValueError(f"{len(boxes)} boxes for {len(frames)} frames")
    height, width = frames.shape[1:3]
    out = np.empty((len(frames), size, size) + frames.shape[3:], np.float32)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        x, y, w, h = _clamp_box(box, height, width)
        crop = frame[y : y + h, x : x + w].astype(np.float32)
        out[i] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return out


def thermal_boxes(boxes: np.ndarray, rgb_shape: tuple[int, int], thermal_shape: tuple[int, int]) -> np.ndarray:
    """Map RGB face boxes onto the thermal frame (cameras co-registered, same field of view)."""
    sy = thermal_shape[0] / rgb_shape[0]
    sx = thermal_shape[1] / rgb_shape[1]
    return np.asarray(boxes, np.float64) * np.array([sx, sy, sx, sy])


def resample_labels(times: np.ndarray, values: np.ndarray, fps: float, where: str = "labels") -> np.ndarray:
    """Linearly interpolate a signal sampled at `times` (seconds from the first video
    frame) onto the frame times k / fps that it covers.

    Raises DatasetError (naming `where`) when the times are not increasing or start after
    the first frame. Missing (NaN) samples stay NaN around their position.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if len(times) < 2:
        raise DatasetError(f"{where}: need at least 2 label samples, got {len(times)}")
    if np.any(~np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise DatasetError(f"{where}: time stamps must be finite and strictly increasing")
    if times[0] > 0.5 / fps:
        raise DatasetError(f"{where}: labels start at {times[0]:.3f} s, after the first video frame (0 s)")
    n = int(np.floor(times[-1] * fps + 1e-6)) + 1
    return np.interp(np.arange(n) / fps, times, values)
