"""PURE reader: PNG frames named by capture time with a pulse-oximeter JSON (BVP label).

Layout (as distributed; the frames folder may also be `ROOT/XX-YY/` itself, and the JSON
may sit at `ROOT/XX-YY.json`)::

    ROOT/01-01/01-01/Image1392643993642815000.png   frames, 640x480 RGB, ~30 fps,
                                                    named Image<capture time in ns>.png
    ROOT/01-01/01-01.json                           "/FullPackage": [{"Timestamp": ns,
                                                      "Value": {"waveform": ..., ...}}, ...]
                                                    (~60 Hz), "/Image": [{"Timestamp": ns}]

XX is the subject (01-10), YY the session (01 steady, 02 talking, 03-04 slow/fast
translation, 05-06 small/medium rotation). The oximeter waveform is interpolated by its
timestamps to each frame's capture time; "bvp" only, no thermal.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from mmrphys.data.datasets.common import (
    labels_at_frames,
    matching_dirs,
    no_recordings,
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.video import stream_frame_files

DATASET = "pure"
#: the camera's nominal rate; labels follow the frames' own timestamps
FPS = 30.0
FRAME_NAME = re.compile(r"Image(\d+)\.png")


def read(root: Path) -> Iterator[Recording]:
    """Yield one recording per `XX-YY/` folder under `root`."""
    sessions = matching_dirs(require_dir(Path(root), "PURE dataset"), r"(\d{2})-(\d{2})")
    if not sessions:
        raise no_recordings(root, "PURE", "XX-YY/ folders with Image<ns>.png frames and XX-YY.json")
    for folder, match in sessions:
        frames = folder / folder.name if (folder / folder.name).is_dir() else folder
        labels = folder / f"{folder.name}.json"
        if not labels.is_file() and (Path(root) / labels.name).is_file():
            labels = Path(root) / labels.name
        yield Recording(
            dataset=DATASET,
            subject=match[1],
            session=match[2],
            fps=FPS,
            source=folder,
            stream_rgb=functools.partial(stream_rgb, frames),
            load_labels=functools.partial(load_labels, frames, labels),
        )


def stream_rgb(frames: Path, window: int) -> Iterator[np.ndarray]:
    """The frames of the session in capture order, uint8 (w, H, W, 3) RGB, `window` at a time."""
    return stream_frame_files([path for path, _ in _frame_files(frames)], window)


def load_labels(frames: Path, labels: Path) -> dict[str, np.ndarray]:
    """The oximeter waveform as "bvp", interpolated to each frame's capture time."""
    label_stamps, waveform, listed = _parse_json(require_file(labels, "PURE label JSON"))
    stamps = np.array([stamp for _, stamp in _frame_files(frames)], dtype=np.int64)
    if listed is not None and listed != stamps.size:
        raise DatasetError(
            f"{labels}: /Image lists {listed} frames but {frames} holds {stamps.size} "
            "Image<ns>.png files; frames are missing or extra"
        )
    origin = stamps[0]
    # integer nanoseconds exceed float64 precision: subtract the origin before converting
    frame_times = (stamps - origin) / 1e9
    label_times = (label_stamps - origin) / 1e9
    return {"bvp": labels_at_frames(label_times, {"waveform": waveform}, frame_times, labels)["waveform"]}


def _frame_files(folder: Path) -> list[tuple[Path, int]]:
    """(path, capture time in ns) of every Image<ns>.png in `folder`, in time order."""
    require_dir(folder, "PURE frame")
    found = []
    for path in folder.iterdir():
        match = FRAME_NAME.fullmatch(path.name)
        if match:
            found.append((path, int(match[1])))
    if not found:
        raise DatasetError(f"{folder}: PURE frame folder holds no Image<ns>.png frames")
    return sorted(found, key=lambda item: item[1])


def _parse_json(path: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Timestamps (int64 ns) and waveform of /FullPackage, and the /Image count if any."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    package = data.get("/FullPackage") if isinstance(data, dict) else None
    if not isinstance(package, list) or not package:
        raise DatasetError(f"{path}: no '/FullPackage' list of oximeter samples")
    stamps, waveform = [], []
    for index, entry in enumerate(package):
        try:
            stamps.append(int(entry["Timestamp"]))
            waveform.append(float(entry["Value"]["waveform"]))
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(
                f"{path}: /FullPackage entry {index} lacks a numeric Timestamp or Value.waveform"
            ) from err
    images = data.get("/Image")
    listed = len(images) if isinstance(images, list) else None
    return np.array(stamps, dtype=np.int64), np.array(waveform, dtype=np.float64), listed
