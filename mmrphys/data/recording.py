"""The one type every dataset reader yields: a recording with lazily loaded modalities.

Readers only find files and describe them; the (expensive) decoding happens when the
ingest task calls the loaders, so listing a dataset is cheap and each recording can be
decoded in its own Ray task. Loaders must be picklable (module-level functions or
`functools.partial` of them), never lambdas.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from mmrphys.errors import UserError

#: () -> uint8 array (T, H, W, 3), RGB channel order
RgbLoader = Callable[[], np.ndarray]
#: () -> float32 array (T, H, W) in `thermal_unit`
ThermalLoader = Callable[[], np.ndarray]
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
    load_rgb: RgbLoader
    load_labels: LabelLoader
    load_thermal: ThermalLoader | None = None
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


class DatasetError(UserError, ValueError):
    """A dataset folder or file is missing, unreadable or malformed; names the path."""
