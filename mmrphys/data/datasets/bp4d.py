"""BP4D+ reader for the preprocessed per-frame layout the MMRPhys reference trains on.

The raw BP4D+ release is not read directly: like the reference, this reader expects each
task already face-cropped and resized, one `.npy` file per frame::

    ROOT/F001T1/RGB/000000.npy       (H, W, 3) RGB, uint8 (floats: 0-255, or 0-1)
    ROOT/F001T1/Thermal/000000.npy   (H, W) or (H, W, 1) float, degrees Celsius
    ROOT/F001T1/labels.npy           (T, K) float, K >= 2, one row per frame:
                                     0 BVP, 1 RSP, 2 EDA, 3 ECG, 4 HR, 5 RR,
                                     6 SysBP, 7 MeanBP, 8 DiaBP, 9 raw BP

Folder names may also read `F001_T1` / `F001-T01`; the frame folder names are matched
without regard to case. All at 25 fps. Recordings are `pre_cropped` (no face detection).
Unlike the reference, which truncates RGB and thermal to the shorter one, a frame-count
mismatch is an error: which end to cut cannot be known. Yields "bvp" (column 0) and
"rsp" (column 1).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import numpy as np

from mmrphys.data.datasets.common import (
    check_finite,
    check_frame_counts,
    frame_files,
    stream_frame_arrays,
    matching_dirs,
    no_recordings,
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording

DATASET = "bp4d"
FPS = 25.0
THERMAL_UNIT = "degC"
RGB_DIR, THERMAL_DIR, LABELS = "rgb", "thermal", "labels.npy"
BVP_COLUMN, RSP_COLUMN = 0, 1


def read(root: Path) -> Iterator[Recording]:
    """Yield one recording per `<subject><task>/` folder under `root`."""
    tasks = matching_dirs(require_dir(Path(root), "BP4D+ dataset"), r"([FMfm]\d{3})[_-]?([Tt]\d+)")
    if not tasks:
        raise no_recordings(
            root, "BP4D+", "F001T1/-style folders holding RGB/ and Thermal/ per-frame .npy files and labels.npy"
        )
    for folder, match in tasks:
        yield Recording(
            dataset=DATASET,
            subject=match[1].upper(),
            session=f"T{int(match[2][1:])}",
            fps=FPS,
            source=folder,
            stream_rgb=functools.partial(stream_rgb, folder),
            load_labels=functools.partial(load_labels, folder),
            stream_thermal=functools.partial(stream_thermal, folder),
            thermal_unit=THERMAL_UNIT,
            pre_cropped=True,
        )


def stream_rgb(folder: Path, window: int) -> Iterator[np.ndarray]:
    """The cropped RGB frames as uint8 (w, H, W, 3), `window` at a time."""
    rgb, _ = _frames(folder)
    first = _load_npy(rgb[0])
    if first.ndim != 3 or first.shape[-1] != 3:
        raise DatasetError(f"{rgb[0]}: RGB frame of shape {first.shape}; expected (H, W, 3)")
    if first.dtype == np.uint8:
        yield from stream_frame_arrays(rgb, _load_npy, window)
        return
    # floats at most 1 are on the 0-1 scale: a 0-255 frame that dark would be black; the
    # scale is the recording's, so one pass finds the brightest value first
    brightest = max(float(np.max(part)) for part in stream_frame_arrays(rgb, _load_npy, window))
    scale = 255.0 if brightest <= 1.0 else 1.0
    for part in stream_frame_arrays(rgb, _load_npy, window):
        part = check_finite(part, rgb[0].parent, "RGB frames")
        if part.min() < 0 or part.max() * scale > 255.0:
            raise DatasetError(
                f"{rgb[0].parent}: RGB values span [{part.min():g}, {part.max():g}]; "
                "expected uint8, floats in 0-255 or floats in 0-1"
            )
        yield np.round(part * scale).astype(np.uint8)


def stream_thermal(folder: Path, window: int) -> Iterator[np.ndarray]:
    """The cropped thermal frames in degrees Celsius, float32 (w, H, W), `window` at a time."""
    rgb, thermal = _frames(folder)
    rgb_size = _load_npy(rgb[0]).shape[:2]
    for part in stream_frame_arrays(thermal, _load_npy, window):
        if part.ndim == 4 and part.shape[-1] == 1:
            part = part[..., 0]
        if part.ndim != 3:
            raise DatasetError(f"{thermal[0]}: thermal frame of shape {part.shape[1:]}; expected (H, W)")
        if part.shape[1:] != rgb_size:
            raise DatasetError(
                f"{thermal[0]}: thermal frames are {part.shape[1:]} but RGB frames are {rgb_size}; "
                "pre-cropped modalities must share the crop"
            )
        yield check_finite(part, thermal[0].parent, "thermal frames").astype(np.float32)


def load_labels(folder: Path) -> dict[str, np.ndarray]:
    """Columns 0 (BVP) and 1 (RSP) of `labels.npy`, one row per frame."""
    path = require_file(folder / LABELS, "BP4D+ label file")
    table = _load_npy(path)
    frames = len(_frames(folder)[0])
    if table.ndim != 2 or table.shape[1] <= RSP_COLUMN:
        raise DatasetError(
            f"{path}: label array of shape {table.shape}; expected (frames, columns) with "
            f"column {BVP_COLUMN} BVP and {RSP_COLUMN} RSP"
        )
    if table.shape[0] != frames:
        raise DatasetError(
            f"{path}: {table.shape[0]} label rows for {frames} frames; "
            + ("the label file is short" if table.shape[0] < frames else "labels and frames disagree")
        )
    return {
        "bvp": check_finite(table[:, BVP_COLUMN], path, f"BVP (column {BVP_COLUMN})"),
        "rsp": check_finite(table[:, RSP_COLUMN], path, f"RSP (column {RSP_COLUMN})"),
    }


def _frames(folder: Path) -> tuple[list[Path], list[Path]]:
    """The RGB and thermal per-frame files, which must be equally many."""
    rgb_dir, thermal_dir = _subfolder(folder, RGB_DIR), _subfolder(folder, THERMAL_DIR)
    rgb = frame_files(rgb_dir, ".npy", "BP4D+ RGB frame")
    thermal = frame_files(thermal_dir, ".npy", "BP4D+ thermal frame")
    check_frame_counts(len(rgb), len(thermal), rgb_dir, thermal_dir)
    return rgb, thermal


def _subfolder(folder: Path, name: str) -> Path:
    """`folder/name`, matching the name without regard to case (RGB/, Thermal/)."""
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name.lower() == name and child.is_dir():
                return child
    return folder / name


def _load_npy(path: Path) -> np.ndarray:
    try:
        # never unpickle: object arrays in a dataset file could run code
        return np.load(path, allow_pickle=False)
    # an OSError (permissions, a flaky disk) is not bad data: it fails the task, which is retried
    except (ValueError, EOFError) as err:
        raise DatasetError(f"{path}: unreadable .npy file ({err})") from err
