"""One entry point for every baseline: a method name, face crops or their per-frame RGB
means, the frame rate and a profile in; a BVP waveform out (docs/baselines.md)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmrphys.baselines import chrom, colour_projection, green, ica, pbv, pos
from mmrphys.baselines.common import (
    UnknownMethodError,
    check_fs,
    check_means,
    is_faithful,
    spatial_mean,
)

MethodFunction = Callable[[np.ndarray, float, bool], np.ndarray]

#: name -> method, in the toolbox's order of its shipped configs
_METHODS: dict[str, MethodFunction] = {
    "ica": ica.ica,
    "pos": pos.pos,
    "chrom": chrom.chrom,
    "green": green.green,
    "lgi": colour_projection.lgi,
    "pbv": pbv.pbv,
    "omit": colour_projection.omit,
}
METHODS: tuple[str, ...] = tuple(_METHODS)


def _method(method: str) -> MethodFunction:
    try:
        return _METHODS[method.lower()]
    except (KeyError, AttributeError) as err:
        raise UnknownMethodError(f"unknown baseline method {method!r}; choose one of {list(METHODS)}") from err


def extract_from_means(method: str, means: np.ndarray, fs: float, *, profile: str = "default") -> np.ndarray:
    """BVP waveform of `method` from per-frame RGB means (T, 3).

    "default" computes in float64 and returns T samples. "rppg-toolbox" follows the
    means' dtype as the toolbox's NumPy code does: pass float32 means (`spatial_mean`
    under that profile) to reproduce its float32 driver, float64 for the exact
    arithmetic; CHROM then returns `output_length` samples.
    """
    run = _method(method)
    faithful = is_faithful(profile)
    fs = check_fs(fs)
    means = check_means(means)
    if not (faithful and means.dtype == np.float32):
        means = means.astype(np.float64)
    return run(means, fs, faithful)


def extract(method: str, frames: np.ndarray, fs: float, *, profile: str = "default") -> np.ndarray:
    """BVP waveform of `method` from face crops (T, H, W, 3) in RGB order (uint8 or float).

    Under "rppg-toolbox" the crops are averaged in float32, as the toolbox's driver
    does; under "default" in float64.
    """
    # fail on a bad name, profile or rate before averaging a long clip
    _method(method)
    is_faithful(profile)
    check_fs(fs)
    return extract_from_means(method, spatial_mean(frames, profile), fs, profile=profile)


def output_length(method: str, n_frames: int, fs: float, *, profile: str = "default") -> int:
    """Samples `extract` returns for a clip of `n_frames` frames (frame i -> sample i)."""
    _method(method)
    faithful = is_faithful(profile)
    n = int(n_frames)
    return chrom.output_length(n, check_fs(fs), faithful) if method.lower() == "chrom" else n
