"""The ingest section: how recordings become stored chunks, and how subjects are split.

`PreprocessingConfig` is the part that decides what a model sees (face boxes, crop,
stored precision). It is stored in the shards' manifest and copied into every model
trained on them, so prediction crops new videos exactly as the ingest did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal

from mmrphys.config.base import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig(Config):
    """Video to face crops: what ingest stores and what serving repeats.

    size: crop size (frames are cropped to a square box and area-resized to size x size;
        models of a smaller resolution area-resize again).
    rgb_dtype: storage precision of RGB crops (see docs/data.md for the measurement);
        serving rounds crops the same way.
    detect_every / box_scale / smooth_frames: Haar re-detection interval (when a recording
        has no face boxes of its own), square-box enlargement about the box centre, and
        the moving-average window of box smoothing (1: no smoothing).
    """

    size: int = 72
    rgb_dtype: Literal["uint8", "float16"] = "uint8"
    detect_every: int = 30
    box_scale: float = 1.5
    smooth_frames: int = 15

    def validate(self) -> None:
        if self.size < 8:
            raise ConfigError(f"PreprocessingConfig.size: must be >= 8, got {self.size}")
        if self.detect_every < 1 or self.smooth_frames < 1:
            raise ConfigError("PreprocessingConfig.detect_every and smooth_frames: must be >= 1")
        if self.box_scale < 1.0:
            raise ConfigError(f"PreprocessingConfig.box_scale: must be >= 1, got {self.box_scale}")


@dataclasses.dataclass(frozen=True)
class IngestConfig(Config):
    """How recordings become chunks, and how subjects are split.

    preprocessing: face boxes, crop size and stored precision (PreprocessingConfig).
    chunk_frames / overlap: chunk length and the frames consecutive chunks share.
    max_no_face: largest fraction of a chunk's frames without a detected face.
    max_frame_mismatch: RGB/thermal frame counts may differ by this much (both are then
        cut to the shorter); beyond it the recording is rejected.
    min_quality: for datasets with per-frame signal-quality labels (iBVP), the lowest mean
        quality a chunk may have (the reference drops frames at <= 0.3; we drop whole
        chunks, keeping every kept chunk continuous in time).
    split: train/val/test fractions of subjects (ignored when folds > 0); `0,0,1` puts the
        whole dataset in `test`, for cross-dataset protocols.
    folds: k >= 3 gives k subject folds: fold i tests group i, validates on group i+1.
    seed: the subject shuffle of the split.
    """

    preprocessing: PreprocessingConfig = dataclasses.field(default_factory=PreprocessingConfig)
    chunk_frames: int = 180
    overlap: int = 0
    max_no_face: float = 0.5
    max_frame_mismatch: int = 0
    min_quality: float = 0.3
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    folds: int = 0
    seed: int = 0

    def validate(self) -> None:
        if self.chunk_frames < 8:
            raise ConfigError(f"IngestConfig.chunk_frames: must be >= 8, got {self.chunk_frames}")
        if not 0 <= self.overlap < self.chunk_frames:
            raise ConfigError(f"IngestConfig.overlap: must be in [0, chunk_frames), got {self.overlap}")
        if not 0.0 <= self.min_quality <= 1.0:
            raise ConfigError(f"IngestConfig.min_quality: must be in [0, 1], got {self.min_quality}")
        if not 0.0 <= self.max_no_face <= 1.0:
            raise ConfigError(f"IngestConfig.max_no_face: must be in [0, 1], got {self.max_no_face}")
        if self.max_frame_mismatch < 0:
            raise ConfigError("IngestConfig.max_frame_mismatch: must be >= 0")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(
                f"IngestConfig.split: expected three fractions train, val, test >= 0 summing to 1 "
                f"(e.g. 0,0,1 puts every subject in test), got {list(self.split)}"
            )
        if self.folds and self.folds < 3:
            raise ConfigError(f"IngestConfig.folds: 0 (use split fractions) or >= 3, got {self.folds}")

    def shard_key(self) -> str:
        """Hash of the settings that change shard contents (not the split)."""
        fields = {k: v for k, v in self.to_dict().items() if k not in ("split", "folds", "seed")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
