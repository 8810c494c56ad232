"""What the dataset readers share: file and folder checks that name the path, frame folders
in natural order, per-frame array files, and aligning label samples to the frame times.

Every failure here is a `DatasetError` whose message starts with the offending path, so the
ingest's validation report (or the user's traceback) says which file is wrong and how.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from mmrphys.data.recording import DatasetError


def require_dir(path: Path, what: str) -> Path:
    """Return `path` if it is a folder, else raise naming it as `what`."""
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder is missing")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return `path` if it is a file, else raise naming it as `what`."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} is missing")
    return path


def natural_key(path: Path) -> list:
    """Sort key that orders `frame2` before `frame10` (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def matching_dirs(root: Path, pattern: str) -> list[tuple[Path, re.Match]]:
    """Sub-folders of `root` whose whole name matches `pattern`, in natural order."""
    found = []
    for path in sorted(root.iterdir(), key=natural_key):
        match = re.fullmatch(pattern, path.name)
        if match and path.is_dir():
            found.append((path, match))
    return found


def no_recordings(root: Path, dataset: str, expected: str) -> DatasetError:
    """The error for a dataset root that holds no recordings, saying what was looked for."""
    return DatasetError(f"{root}: no {dataset} recordings found (expected {expected})")


def frame_files(folder: Path, suffix: str, what: str) -> list[Path]:
    """The `*suffix` files of a frame folder in natural order; the folder must hold some.
    Hidden files (macOS `._` copies, editor backups) are not frames."""
    require_dir(folder, what)
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == suffix and not p.name.startswith(".")),
        key=natural_key,
    )
    if not files:
        raise DatasetError(f"{folder}: {what} folder holds no {suffix} frames")
    return files


def stream_frame_arrays(paths: list[Path], load: Callable[[Path], np.ndarray], window: int) -> Iterator[np.ndarray]:
    """One array per file, stacked `window` files at a time into (w, ...) arrays; every
    frame must have the first one's shape and dtype."""
    first = load(paths[0])
    for start in range(0, len(paths), window):
        part = paths[start : start + window]
        frames = np.empty((len(part), *first.shape), dtype=first.dtype)
        for index, path in enumerate(part):
            frame = first if start + index == 0 else load(path)
            if frame.shape != first.shape or frame.dtype != first.dtype:
                raise DatasetError(
                    f"{path}: {frame.dtype} frame of shape {frame.shape} differs from "
                    f"{paths[0].name}'s {first.dtype} {first.shape}"
                )
            frames[index] = frame
        yield frames


def check_frame_counts(rgb: int, thermal: int, rgb_source: Path, thermal_source: Path) -> None:
    """RGB and thermal must have one frame each per time step; a mismatch cannot be aligned."""
    if rgb != thermal:
        raise DatasetError(
            f"{thermal_source}: {thermal} thermal frames but {rgb_source} has {rgb} RGB frames; "
            "the modalities cannot be aligned frame by frame"
        )


def check_finite(values: np.ndarray, source: Path, name: str) -> np.ndarray:
    """Return `values` as float64, raising at the first NaN or infinity."""
    values = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DatasetError(
            f"{source}: {name} has {bad.size} non-finite value(s) (NaN or inf), "
            f"the first at sample {bad[0]}"
        )
    return values


def labels_at_frames(
    sample_times: np.ndarray,
    signals: Mapping[str, np.ndarray],
    frame_times: np.ndarray,
    source: Path,
) -> dict[str, np.ndarray]:
    """Linearly interpolate label `signals` sampled at `sample_times` (s) to `frame_times` (s).

    Every signal holds one value per sample time. The labels must cover the frames: they may start or end at most one frame period
    inside the video (held constant there), otherwise the label file is short and the
    recording is rejected rather than padded with invented values.
    """
    times = check_finite(sample_times, source, "label timestamps")
    checked = {name: check_finite(values, source, name) for name, values in signals.items()}
    steps = np.diff(times)
    if np.any(steps <= 0):
        at = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise DatasetError(f"{source}: label timestamps do not increase at sample {at}")
    period = float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 0.0
    if times.size < 2 or times[0] > frame_times[0] + period or times[-1] < frame_times[-1] - period:
        covered = f"{_seconds(times[0])}-{_seconds(times[-1])} s" if times.size else "nothing"
        raise DatasetError(
            f"{source}: labels cover {covered} but the {len(frame_times)} video frames span "
            f"{_seconds(frame_times[0])}-{_seconds(frame_times[-1])} s; the label file is short"
        )
    return {name: np.interp(frame_times, times, values) for name, values in checked.items()}


def _seconds(value: float) -> str:
    """A time for a message, to 10 ms (a jittered -0.001 s reads 0.00, not -0.00)."""
    return f"{round(float(value), 2) + 0.0:.2f}"
