"""iBVP reader: synchronized RGB and thermal frames with an ear-PPG (BVP) label and its
per-sample signal quality.

Layout::

    ROOT/p01_a/p01_a_rgb/*.bmp     RGB frames, 640x480, 30 fps, named by index or capture time
    ROOT/p01_a/p01_a_t/*.raw       thermal frames: headerless little-endian uint16,
                                   640 wide x 512 rows, value * 0.04 - 273.15 = degC
    ROOT/p01_a/p01_a_bvp.csv       column 0 BVP, column 2 signal quality in [0, 1];
                                   an optional header row, and a column whose header
                                   contains "time" holds sample times (s or epoch ms)

`pXX` is the subject, the letter the condition (a rhythmic breathing, b easy maths,
c hard maths, d head movement). Frames in each folder are taken in natural name order;
thermal frames are paired with RGB frames by capture time when both are named by epoch
milliseconds, else by position. Thermal frames are as wide as the RGB frames and keep
their first rows up to the RGB height (512 -> 480), as the MMRPhys reference does.
Labels ("bvp", "quality") come one per RGB frame, or are interpolated by their time
column, or stretched over the video (docs/datasets.md has the rules). Frames are never
dropped here: the MMRPhys reference deletes frames whose quality is <= 0.3, which
splices distant moments together; "quality" lets the ingest reject chunks instead.
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
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.video import read_frame_files, stream_frame_files

DATASET = "ibvp"
FPS = 30.0
THERMAL_UNIT = "degC"
#: raw thermal counts to degrees Celsius: counts * 0.04 K - 273.15
KELVIN_PER_COUNT, KELVIN_AT_ZERO_C = 0.04, 273.15
BVP_COLUMN, QUALITY_COLUMN = 0, 2
#: digits of a capture time in milliseconds since 1970 (13 from September 2001 on)
EPOCH_MS_DIGITS = 13
#: an RGB frame's thermal partner must lie within 1.5 frame periods at 30 fps: a single
#: dropped thermal frame is bridged by its neighbour, a longer gap is an error
MAX_PAIR_OFFSET_MS = 50


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
            stream_rgb=functools.partial(stream_rgb, folder),
            load_labels=functools.partial(load_labels, folder),
            stream_thermal=functools.partial(stream_thermal, folder),
            thermal_unit=THERMAL_UNIT,
        )


def stream_rgb(folder: Path, window: int) -> Iterator[np.ndarray]:
    """The RGB frames as uint8 (w, H, W, 3), `window` at a time."""
    rgb, _ = _paired_frames(folder)
    return stream_frame_files(rgb, window)


def stream_thermal(folder: Path, window: int) -> Iterator[np.ndarray]:
    """The thermal frame paired with each RGB frame, in degrees Celsius, float32 (w, H, W),
    cut to the RGB frame size, `window` at a time."""
    rgb, thermal = _paired_frames(folder)
    height, width = read_frame_files(rgb[:1]).shape[1:3]
    size = thermal[0].stat().st_size
    rows, remainder = divmod(size, 2 * width)
    if remainder or rows < height:
        raise DatasetError(
            f"{thermal[0]}: {size} bytes is not a uint16 frame as wide as the RGB frames "
            f"({width}) with at least their {height} rows"
        )
    for start in range(0, len(thermal), window):
        part = thermal[start : start + window]
        celsius = np.empty((len(part), height, width), dtype=np.float32)
        for index, path in enumerate(part):
            if path.stat().st_size != size:
                raise DatasetError(
                    f"{path}: {path.stat().st_size} bytes but {thermal[0].name} has {size}; "
                    "truncated or mis-sized thermal frame"
                )
            counts = np.fromfile(path, dtype="<u2").reshape(rows, width)[:height]
            celsius[index] = counts * KELVIN_PER_COUNT - KELVIN_AT_ZERO_C
        yield celsius


def load_labels(folder: Path) -> dict[str, np.ndarray]:
    """BVP and its signal quality ("bvp", "quality") at the RGB frame times."""
    path = require_file(folder / f"{folder.name}_bvp.csv", "iBVP label file")
    columns, times = _parse_csv(path)
    rgb, _ = _paired_frames(folder)
    frames, samples = len(rgb), columns["bvp"].size
    if samples == frames:
        labels = {name: check_finite(values, path, name) for name, values in columns.items()}
    elif times is not None:
        labels = _resample_by_time(times, columns, rgb, path)
    elif samples > frames:
        stretched = np.linspace(0, samples - 1, frames)
        labels = {name: np.interp(stretched, np.arange(samples), check_finite(values, path, name))
                  for name, values in columns.items()}
    else:
        raise DatasetError(
            f"{path}: {samples} label samples for {frames} video frames; the label file is short"
        )
    quality = labels["quality"]
    if quality.min() < 0 or quality.max() > 1:
        raise DatasetError(
            f"{path}: signal quality (column {QUALITY_COLUMN}) spans "
            f"[{quality.min():g}, {quality.max():g}]; expected values in [0, 1]"
        )
    return labels


def _paired_frames(folder: Path) -> tuple[list[Path], list[Path]]:
    """The RGB frame files and, for each, its thermal frame file.

    With capture times in both folders' file names, each RGB frame takes the thermal frame
    nearest in time (a frame dropped by one camera does not shift the rest); otherwise the
    folders are paired by position and must hold equally many frames.
    """
    rgb_dir, thermal_dir = folder / f"{folder.name}_rgb", folder / f"{folder.name}_t"
    rgb = frame_files(rgb_dir, ".bmp", "iBVP RGB frame")
    thermal = frame_files(thermal_dir, ".raw", "iBVP thermal frame")
    rgb_ms, thermal_ms = _epoch_ms(rgb), _epoch_ms(thermal)
    if rgb_ms is None or thermal_ms is None:
        check_frame_counts(len(rgb), len(thermal), rgb_dir, thermal_dir)
        return rgb, thermal
    after = np.searchsorted(thermal_ms, rgb_ms).clip(0, len(thermal_ms) - 1)
    before = (after - 1).clip(0)
    closer_before = np.abs(thermal_ms[before] - rgb_ms) <= np.abs(thermal_ms[after] - rgb_ms)
    nearest = np.where(closer_before, before, after)
    offsets = np.abs(thermal_ms[nearest] - rgb_ms)
    if offsets.max() > MAX_PAIR_OFFSET_MS:
        worst = int(np.argmax(offsets))
        raise DatasetError(
            f"{rgb[worst]}: the nearest thermal frame ({thermal[nearest[worst]].name}) is "
            f"{offsets[worst]} ms away, more than {MAX_PAIR_OFFSET_MS} ms; the thermal stream has a gap"
        )
    return rgb, [thermal[i] for i in nearest]


def _epoch_ms(paths: list[Path]) -> np.ndarray | None:
    """Capture times (ms since 1970) when every file is named by one, else None.

    Epoch milliseconds have 13 digits (since 2001); shorter numbers are frame indices."""
    stems = [path.stem for path in paths]
    if not all(stem.isdigit() and len(stem) >= EPOCH_MS_DIGITS for stem in stems):
        return None
    return np.array([int(stem) for stem in stems], dtype=np.int64)


def _resample_by_time(
    times: np.ndarray, columns: dict[str, np.ndarray], rgb: list[Path], path: Path
) -> dict[str, np.ndarray]:
    """Labels with a time column, interpolated to the RGB frame times.

    Epoch-millisecond label times meet the frames' own capture times when the frames are
    named by them. Otherwise the first label sample is taken as the first frame, frames
    follow at 30 fps, and the time column is in seconds (milliseconds if epoch-sized).
    """
    rgb_ms = _epoch_ms(rgb)
    epoch = bool(times.size) and np.nanmin(times) >= 10 ** (EPOCH_MS_DIGITS - 1)
    if epoch and rgb_ms is not None:
        # subtract the origin before dividing: keeps the millisecond resolution exact
        label_s = (times - rgb_ms[0]) / 1000.0
        frame_s = (rgb_ms - rgb_ms[0]) / 1000.0
    else:
        label_s = (times - times[0]) / (1000.0 if epoch else 1.0)
        frame_s = np.arange(len(rgb)) / FPS
    return labels_at_frames(label_s, columns, frame_s, path)


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
            raise DatasetError(f"{path}: line {number} is not numeric ({err})") from err
    if len({len(row) for row in table}) != 1:
        raise DatasetError(f"{path}: rows have different numbers of columns")
    data = np.array(table)
    columns = {"bvp": data[:, BVP_COLUMN], "quality": data[:, QUALITY_COLUMN]}
    return columns, None if time_column is None else data[:, time_column]
