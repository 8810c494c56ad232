"""iBVP reader: synchronized RGB and thermal frames with an ear-PPG (BVP) label and its
per-sample signal quality.

Layout::

    ROOT/p01_a/p01_a_rgb/*.bmp     RGB frames, 640x480, 30 fps
    ROOT/p01_a/p01_a_t/*.raw       thermal frames: headerless little-endian uint16,
                                   640 wide x 512 rows, value * 0.04 - 273.15 = degC
    ROOT/p01_a/p01_a_bvp.csv       column 0 BVP, column 2 signal quality in [0, 1];
                                   an optional header row, and a column whose header
                                   contains "time" holds sample times in seconds

`pXX` is the subject, the letter the condition (a rhythmic breathing, b easy maths,
c hard maths, d head movement). Frames in each folder are taken in natural name order.
Thermal frames are as wide as the RGB frames and keep their first rows up to the RGB
height (512 -> 480), as the MMRPhys reference does. Labels: "bvp" and "quality" at the
frame times; with a time column they are interpolated by time to frames at 30 fps from
the first label sample, without one they span the video and are stretched to the frame
count (both reference loaders do this). Frames are never dropped here: the MMRPhys
reference deletes frames whose quality is <= 0.3, which breaks the time axis; "quality"
lets the ingest reject chunks instead.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path
from typing import Iterator

import numpy as np

from mmrphys.data.datasets.common import (
    check_finite,
    check_frame_counts,
    frame_files,
    labels_at_frames,
    matching_dirs,
    no_recordings,
    read_rgb_frames,
    read_rgb_image,
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording

DATASET = "ibvp"
FPS = 30.0
THERMAL_UNIT = "degC"
#: raw thermal counts to degrees Celsius: counts * 0.04 K - 273.15
KELVIN_PER_COUNT, KELVIN_AT_ZERO_C = 0.04, 273.15
BVP_COLUMN, QUALITY_COLUMN = 0, 2


def read(root: Path) -> Iterator[Recording]:
    """Yield one recording per `pXX_y/` folder under `root`."""
    sessions = matching_dirs(require_dir(Path(root), "iBVP dataset"), r"(p\d+)_([A-Za-z0-9]+)")
    if not sessions:
        raise no_recordings(root, "iBVP", "pXX_y/ folders holding pXX_y_rgb/, pXX_y_t/ and pXX_y_bvp.csv")
    for folder, match in sessions:
        yield Recording(
            dataset=DATASET,
            subject=match[1],
            session=match[2],
            fps=FPS,
            source=folder,
            load_rgb=functools.partial(load_rgb, folder),
            load_labels=functools.partial(load_labels, folder),
            load_thermal=functools.partial(load_thermal, folder),
            thermal_unit=THERMAL_UNIT,
        )


def load_rgb(folder: Path) -> np.ndarray:
    """The RGB frames as uint8 (T, H, W, 3)."""
    rgb, _ = _frames(folder)
    return read_rgb_frames(rgb)


def load_thermal(folder: Path) -> np.ndarray:
    """The thermal frames in degrees Celsius, float32 (T, H, W), cut to the RGB frame size."""
    rgb, thermal = _frames(folder)
    height, width = read_rgb_image(rgb[0]).shape[:2]
    size = thermal[0].stat().st_size
    rows, remainder = divmod(size, 2 * width)
    if remainder or rows < height:
        raise DatasetError(
            f"{thermal[0]}: {size} bytes is not a uint16 frame as wide as the RGB frames "
            f"({width}) with at least their {height} rows"
        )
    celsius = np.empty((len(thermal), height, width), dtype=np.float32)
    for index, path in enumerate(thermal):
        if path.stat().st_size != size:
            raise DatasetError(
                f"{path}: {path.stat().st_size} bytes but {thermal[0].name} has {size}; "
                "truncated or mis-sized thermal frame"
            )
        counts = np.fromfile(path, dtype="<u2").reshape(rows, width)[:height]
        celsius[index] = counts * KELVIN_PER_COUNT - KELVIN_AT_ZERO_C
    return celsius


def load_labels(folder: Path) -> dict[str, np.ndarray]:
    """BVP and its signal quality ("bvp", "quality") at the RGB frame times."""
    path = require_file(folder / f"{folder.name}_bvp.csv", "iBVP label file")
    columns, times = _parse_csv(path)
    frames = len(_frames(folder)[0])
    if times is not None:
        frame_times = times[0] + np.arange(frames) / FPS
        labels = labels_at_frames(times, columns, frame_times, path)
    else:
        samples = columns["bvp"].size
        if samples < frames:
            raise DatasetError(
                f"{path}: {samples} label samples for {frames} video frames; the label file is short"
            )
        stretched = np.linspace(0, samples - 1, frames)
        labels = {name: np.interp(stretched, np.arange(samples), check_finite(values, path, name))
                  for name, values in columns.items()}
    quality = labels["quality"]
    if quality.min() < 0 or quality.max() > 1:
        raise DatasetError(
            f"{path}: signal quality (column {QUALITY_COLUMN}) spans "
            f"[{quality.min():g}, {quality.max():g}]; expected values in [0, 1]"
        )
    return labels


def _frames(folder: Path) -> tuple[list[Path], list[Path]]:
    """The RGB and thermal frame files, which must be equally many."""
    rgb_dir = folder / f"{folder.name}_rgb"
    thermal_dir = folder / f"{folder.name}_t"
    rgb = frame_files(rgb_dir, ".bmp", "iBVP RGB frame")
    thermal = frame_files(thermal_dir, ".raw", "iBVP thermal frame")
    check_frame_counts(len(rgb), len(thermal), rgb_dir, thermal_dir)
    return rgb, thermal


def _parse_csv(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """BVP and quality columns, and the time column (s) when a header names one."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise DatasetError(f"{path}: empty label file")
    header = None
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        header, rows = [name.strip().lower() for name in rows[0]], rows[1:]
    width = max(BVP_COLUMN, QUALITY_COLUMN) + 1
    if not rows:
        raise DatasetError(f"{path}: label file has a header but no samples")
    time_column = next((i for i, name in enumerate(header or []) if "time" in name), None)
    table = []
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) < width:
            raise DatasetError(f"{path}: line {number} has {len(row)} columns; expected at least {width}")
        try:
            table.append([float(v) if v.strip() else np.nan for v in row])
        except ValueError as err:
            raise DatasetError(f"{path}: line {number} is not numeric ({err})") from None
    if len({len(row) for row in table}) != 1:
        raise DatasetError(f"{path}: rows have different numbers of columns")
    data = np.array(table)
    columns = {"bvp": data[:, BVP_COLUMN], "quality": data[:, QUALITY_COLUMN]}
    return columns, None if time_column is None else data[:, time_column]
