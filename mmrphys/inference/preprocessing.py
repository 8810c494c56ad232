"""From video frames to model input: face boxes, crops, stored precision, resolution.

Ingest runs the first steps (boxes, crops, storage) and the training stream the last
(resolution, channels); serving runs all of them on a new video with the model's own
`PreprocessingConfig`, so a model sees new videos exactly as it saw its training data:

    boxes, found = crop_boxes(rgb, spec)                    # detect or given, square, smooth
    crops = crop_faces(rgb, thermal, boxes, spec)           # float32 at spec.size
    stored = store(crops, spec)                             # rounded as the shards store them
    clip = model_input(stored.rgb[None], stored.thermal[None, ..., None], config)[0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import cv2
import numpy as np

from mmrphys.config import ModelConfig, PreprocessingConfig
from mmrphys.data.recording import DatasetError
from mmrphys.data.schema import as_stored
from mmrphys.data.video import (
    NoFaceError,
    crop_resize,
    detect_faces,
    smooth_boxes,
    square_boxes,
    thermal_boxes,
)

#: largest thermal magnitude float16 stores with better than 1-unit resolution; raw sensor
#: counts above it are stored as float32
FLOAT16_EXACT_LIMIT = 2048.0


@dataclasses.dataclass(frozen=True)
class FaceCrops:
    """Square face crops of one recording: RGB (T, S, S, 3) and thermal (T, S, S) or None."""

    rgb: np.ndarray
    thermal: np.ndarray | None

    @property
    def thermal_dtype(self) -> str | None:
        """How the thermal crops are stored: float16 when it resolves them, else float32."""
        if self.thermal is None:
            return None
        return "float16" if np.nanmax(np.abs(self.thermal)) < FLOAT16_EXACT_LIMIT else "float32"


def crop_boxes(rgb: np.ndarray | Iterable[np.ndarray], spec: PreprocessingConfig, *,
               boxes: np.ndarray | None = None, pre_cropped: bool = False,
               where: str = "video") -> tuple[np.ndarray, np.ndarray]:
    """Per-frame crop boxes (T, 4: x, y, w, h) and whether a face was found in each frame.

    rgb: the frames (T, H, W, 3), or (ingest) the frames in order as a stream of windows,
    which only the detector reads. pre_cropped: the frames are already face crops (kept
    whole; needs the array). boxes: the recording's own face boxes (squared and smoothed
    like detections; for a stream, as many frames as they cover). Otherwise the Haar
    detector runs every `spec.detect_every` frames. Raises NoFaceError naming `where`.
    """
    if pre_cropped:
        n, height, width = rgb.shape[:3]
        return np.tile([0.0, 0.0, width, height], (n, 1)), np.ones(n, bool)
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64)
        n = len(rgb) if isinstance(rgb, np.ndarray) else len(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) < n:
            raise DatasetError(f"{where}: face boxes have shape {boxes.shape}, expected ({n}, 4)")
        boxes, found = boxes[:n], np.ones(n, bool)
    else:
        try:
            boxes, found = detect_faces(rgb, every=spec.detect_every)
        except NoFaceError as err:
            raise NoFaceError(f"{where}: {err}") from err
    return track_boxes(boxes, spec), found


def track_boxes(boxes: np.ndarray, spec: PreprocessingConfig) -> np.ndarray:
    """Crop boxes from per-frame face boxes (T, 4): squared, enlarged and smoothed over time."""
    return smooth_boxes(square_boxes(np.asarray(boxes, np.float64), spec.box_scale), spec.smooth_frames)


def crop_faces(rgb: np.ndarray, thermal: np.ndarray | None, boxes: np.ndarray,
               spec: PreprocessingConfig) -> FaceCrops:
    """Crop every frame to its box and area-resize to spec.size (float32, unrounded);
    thermal frames use the RGB boxes mapped onto the thermal frame."""
    crops = crop_resize(rgb, boxes, spec.size)
    thermal_crops = None
    if thermal is not None:
        mapped = thermal_boxes(boxes, rgb.shape[1:3], thermal.shape[1:3])
        thermal_crops = crop_resize(thermal, mapped, spec.size)
    return FaceCrops(crops, thermal_crops)


def store(crops: FaceCrops, spec: PreprocessingConfig) -> FaceCrops:
    """The crops as the shards hold them (what the stream decodes), for serving."""
    thermal = None if crops.thermal is None else as_stored(crops.thermal, crops.thermal_dtype)
    return FaceCrops(as_stored(crops.rgb, spec.rgb_dtype), thermal)


def resize_clips(clips: np.ndarray, size: int) -> np.ndarray:
    """Float32 (n, T, size, size, C) from clips (n, T, H, W, C) of any dtype, by area
    interpolation (exact block means when size divides H).

    OpenCV's INTER_AREA frame by frame is about ten times faster here than a NumPy
    block-mean reshape, and gives the same values.
    """
    n, t, h, w, c = clips.shape
    if size == h == w:
        return clips.astype(np.float32)
    frames = clips.reshape(n * t, h, w, c)
    out = np.empty((n * t, size, size, c), np.float32)
    for i, frame in enumerate(frames):
        resized = cv2.resize(frame.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        out[i] = resized.reshape(size, size, c)
    return out.reshape(n, t, size, size, c)


def model_input(rgb: np.ndarray | None, thermal: np.ndarray | None, config: ModelConfig) -> np.ndarray:
    """Model-ready float32 clips (n, C, T, R, R), channels RGB then thermal, from stored
    clips rgb (n, T, S, S, 3) and thermal (n, T, S, S, 1) at any stored size S >= R."""
    channels = []
    if config.modality in ("rgb", "rgbt"):
        if rgb is None:
            raise DatasetError(f"modality {config.modality!r} needs RGB frames")
        channels.append(resize_clips(rgb, config.resolution))
    if config.modality in ("thermal", "rgbt"):
        if thermal is None:
            raise DatasetError(f"modality {config.modality!r} needs thermal frames")
        channels.append(resize_clips(thermal, config.resolution))
    video = np.concatenate(channels, axis=-1) if len(channels) > 1 else channels[0]
    return np.ascontiguousarray(video.transpose(0, 4, 1, 2, 3))


def prepare_video(rgb: np.ndarray, thermal: np.ndarray | None, spec: PreprocessingConfig,
                  config: ModelConfig, *, boxes: np.ndarray | None = None, pre_cropped: bool = False,
                  where: str = "video") -> np.ndarray:
    """A whole video as one model-ready clip (C, T, R, R): every step above, in order."""
    if config.modality != "rgb" and thermal is None:
        raise DatasetError(f"{where}: the model takes {config.modality!r} input, but no thermal frames were given")
    face_boxes, _ = crop_boxes(rgb, spec, boxes=boxes, pre_cropped=pre_cropped, where=where)
    crops = store(crop_faces(rgb, thermal if config.modality != "rgb" else None, face_boxes, spec), spec)
    thermal_clip = None if crops.thermal is None else crops.thermal[None, ..., None]
    return model_input(crops.rgb[None], thermal_clip, config)[0]
