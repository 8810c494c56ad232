"""The one type every dataset reader yields: a recording with lazily loaded modalities.

Readers only find files and describe them; the (expensive) decoding happens when the
ingest task calls the loaders, so listing a dataset is cheap and each recording can be
decoded in its own Ray task. Loaders must be picklable (module-level functions or
`functools.partial` of them), never lambdas.

Frames come as streams: `stream_rgb(window)` yields the frames in order, at most
`window` at a time, so the ingest holds one window of a long recording, not all of it
(docs/data.md, "Memory"). `load_rgb()` / `load_thermal()` collect a whole stream for
the callers that want every frame at once (serving a short video).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import numpy as np

from mmrphys.errors import UserError

#: (window) -> the frames in order as arrays of `window` frames (the last may hold fewer): uint8
#: (w, H, W, 3) in RGB channel order, or float32 thermal (w, H, W) in `thermal_unit`.
#: A stream checks its frames as it goes and raises DatasetError naming the file.
FrameStream = Callable[[int], Iterator[np.ndarray]]
#: frames per window when a whole stream is collected
COLLECT_WINDOW = 256
#: () -> dict with optional float64 arrays "bvp", "rsp" at the frame times (length T),
#:       and optionally "quality" (per-frame signal quality in [0, 1])
LabelLoader = Callable[[], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Recording:
    """One synchronized recording of a subject: RGB video, optional thermal, labels."""

    dataset: str
    subject: str
    session: str
    fps: float
    source: Path
    stream_rgb: FrameStream
    load_labels: LabelLoader
    stream_thermal: FrameStream | None = None
    thermal_unit: str | None = None
    #: () -> int array (T, 4) of face boxes x, y, w, h in RGB pixels, when the dataset
    #: knows them (synthetic data); None means "detect"
    load_face_boxes: Callable[[], np.ndarray] | None = None
    #: frames already cropped to the face (e.g. BP4D+ preprocessed layout)
    pre_cropped: bool = False

    @property
    def recording_id(self) -> str:
        """Stable id used in shard file names and reports: dataset/subject/session."""
        return f"{self.dataset}/{self.subject}/{self.session}"

    @property
    def load_rgb(self) -> Callable[[], np.ndarray]:
        """() -> every RGB frame, uint8 (T, H, W, 3)."""
        return functools.partial(collect, self.stream_rgb)

    @property
    def load_thermal(self) -> Callable[[], np.ndarray] | None:
        """() -> every thermal frame, float32 (T, H, W); None without a thermal camera."""
        return None if self.stream_thermal is None else functools.partial(collect, self.stream_thermal)


def collect(stream: FrameStream) -> np.ndarray:
    """Every frame of `stream` in one array (T, ...)."""
    return np.concatenate(list(stream(COLLECT_WINDOW)))


class DatasetError(UserError, ValueError):
    """A dataset folder or file is missing, unreadable or malformed; names the path."""
