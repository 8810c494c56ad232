"""SCAMPS reader: synthetic avatar videos in MATLAB v7.3 (HDF5) files, with BVP and RSP.

Layout::

    ROOT/P000001.mat   Xsub:  video, float in [0, 1], MATLAB dims (T, H, W, 3), 240x240
    ROOT/P000002.mat   d_ppg: PPG (BVP) waveform, one sample per frame
    ...                d_br:  breathing (RSP) waveform, one sample per frame

All at 30 fps. MATLAB writes arrays column-major, so HDF5 (and h5py) sees every array with
its dimensions reversed: `Xsub` reads as (3, W, H, T). The reader undoes that, finds the
frame axis by the label length (MATLAB (H, W, 3, T) files are accepted too), and scales
the [0, 1] floats to uint8. Each file is one subject (session "1"); no thermal.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from mmrphys.data.datasets.common import (
    check_finite,
    natural_key,
    no_recordings,
    require_dir,
    require_file,
)
from mmrphys.data.recording import DatasetError, Recording

DATASET = "scamps"
FPS = 30.0
VIDEO, BVP, RSP = "Xsub", "d_ppg", "d_br"
#: MATLAB (frame, colour) axis positions of the accepted video layouts, tried in order
LAYOUTS = {"(T, H, W, 3)": (0, 3), "(H, W, 3, T)": (3, 2)}


def read(root: Path) -> Iterator[Recording]:
    """Yield one recording per `P*.mat` file under `root`."""
    files = sorted(require_dir(Path(root), "SCAMPS dataset").glob("P*.mat"), key=natural_key)
    if not files:
        raise no_recordings(root, "SCAMPS", "PNNNNNN.mat files in MATLAB v7.3 format")
    for path in files:
        yield Recording(
            dataset=DATASET,
            subject=path.stem,
            session="1",
            fps=FPS,
            source=path,
            stream_rgb=functools.partial(stream_rgb, path),
            load_labels=functools.partial(load_labels, path),
        )


def stream_rgb(path: Path, window: int) -> Iterator[np.ndarray]:
    """`Xsub` as uint8 (w, H, W, 3) RGB, `window` frames at a time, read one colour plane
    at a time."""
    with _open(path) as mat:
        video = _array(mat, VIDEO, path)
        frames = _signal(mat, BVP, path).size
        frame_axis, colour_axis = _layout(video.shape[::-1], frames, path)
        # h5py axis of MATLAB axis k is 3 - k; order the plane's axes as (T, H, W)
        frame_h5, colour_h5 = 3 - frame_axis, 3 - colour_axis
        spatial = [k for k in range(4) if k not in (frame_axis, colour_axis)]
        wanted = [3 - k for k in (frame_axis, *spatial)]
        kept = [a for a in range(4) if a != colour_h5]
        order = [kept.index(a) for a in wanted]
        for start in range(0, frames, window):
            planes = []
            for colour in range(3):
                index = tuple(colour if a == colour_h5 else slice(start, start + window) if a == frame_h5
                              else slice(None) for a in range(4))
                planes.append(_to_uint8(np.transpose(_read(video, index, path), order), path))
            yield np.stack(planes, axis=-1)


def load_labels(path: Path) -> dict[str, np.ndarray]:
    """`d_ppg` as "bvp" and `d_br` as "rsp", one sample per frame of `Xsub`."""
    with _open(path) as mat:
        bvp = _signal(mat, BVP, path)
        rsp = _signal(mat, RSP, path)
        video = _array(mat, VIDEO, path)
        frame_axis, _ = _layout(video.shape[::-1], bvp.size, path)
        frames = video.shape[::-1][frame_axis]
    if rsp.size != frames:
        raise DatasetError(f"{path}: {RSP} has {rsp.size} samples but {VIDEO} has {frames} frames")
    return {"bvp": check_finite(bvp, path, BVP), "rsp": check_finite(rsp, path, RSP)}


def _open(path: Path) -> h5py.File:
    require_file(path, "SCAMPS .mat file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        header = path.read_bytes()[:20]
        if header.startswith(b"MATLAB 5.0 MAT-file"):
            raise DatasetError(
                f"{path}: a MATLAB v5/v7 MAT-file; SCAMPS files are MATLAB v7.3 (HDF5), "
                "re-save it with save(..., '-v7.3')"
            ) from err
        raise DatasetError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({err})") from err


def _array(mat: h5py.File, name: str, path: Path) -> h5py.Dataset:
    item = mat.get(name)
    if not isinstance(item, h5py.Dataset):
        raise DatasetError(f"{path}: no '{name}' array (variables: {sorted(mat.keys())})")
    return item


def _read(array: h5py.Dataset, index: tuple, path: Path) -> np.ndarray:
    try:
        return array[index]
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read '{array.name}' (truncated or corrupt: {err})") from err


def _signal(mat: h5py.File, name: str, path: Path) -> np.ndarray:
    """A MATLAB vector (stored 1 x T or T x 1) as a 1-D array."""
    array = _array(mat, name, path)
    values = np.squeeze(_read(array, (), path))
    if values.ndim != 1:
        raise DatasetError(f"{path}: '{name}' has shape {array.shape}; expected a vector")
    return values


def _layout(matlab_shape: tuple[int, ...], frames: int, path: Path) -> tuple[int, int]:
    """MATLAB (frame axis, colour axis) of the video, given the frame count of the labels."""
    for frame_axis, colour_axis in LAYOUTS.values():
        if (len(matlab_shape) == 4 and matlab_shape[frame_axis] == frames
                and matlab_shape[colour_axis] == 3):
            return frame_axis, colour_axis
    raise DatasetError(
        f"{path}: '{VIDEO}' has MATLAB shape {tuple(matlab_shape)}; expected one of "
        f"{list(LAYOUTS)} with T = {frames} (the samples in '{BVP}'): "
        "the label is short or the video truncated"
    )


def _to_uint8(plane: np.ndarray, path: Path) -> np.ndarray:
    """A colour plane as uint8: uint8 kept, floats in [0, 1] scaled by 255."""
    if plane.dtype == np.uint8:
        return plane
    if not np.all(np.isfinite(plane)):
        raise DatasetError(f"{path}: '{VIDEO}' holds NaN or infinite pixel values")
    low, high = float(plane.min()), float(plane.max())
    if low < 0.0 or high > 1.0:
        raise DatasetError(
            f"{path}: '{VIDEO}' values span [{low:g}, {high:g}]; expected floats in [0, 1] or uint8"
        )
    return np.round(plane * 255.0).astype(np.uint8)
