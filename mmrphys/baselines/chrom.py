"""CHROM, the chrominance method (de Haan & Jeanne 2013), as rPPG-Toolbox computes it and
in a safe form (docs/baselines.md, CHROM).

Each 1.6-s window (an even number of frames, half-overlapping) is divided by its own
mean; two chrominance signals X = 3R - 2G and Y = 1.5R + G - 1.5B are band-passed, mixed
as X - (std X / std Y) Y, Hann-tapered and overlap-added.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from mmrphys.baselines.common import (
    BaselineError,
    bandpass,
    filtfilt_frames,
    pulse_convention,
    require_band,
    require_frames,
    window_length,
    window_means,
)

BAND = (0.7, 2.5)
ORDER = 3
#: the raw output already rises with blood volume (falls with the skin's brightness)
SIGN = 1.0


def chrom_window(fs: float) -> int:
    """CHROM's window: ceil(1.6 fs) frames, made even."""
    length = window_length(fs)
    return length + length % 2


def output_length(n: int, fs: float, faithful: bool) -> int:
    """Samples CHROM returns for n frames: the toolbox drops the tail past whole half-windows."""
    half = chrom_window(fs) // 2
    return half * (n // half) if faithful else n


def _window_starts(n: int, length: int, faithful: bool) -> np.ndarray:
    half = length // 2
    if faithful:
        return np.arange(max(n // half - 1, 0)) * half
    starts = np.arange(0, n - length + 1, half)
    if starts[-1] + length < n:
        # one more window, ending at the last frame, so no frame is dropped
        starts = np.append(starts, n - length)
    return starts


def chrom(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP from per-frame RGB means (T, 3); `output_length` samples.

    faithful: the toolbox's symmetric Hann taper, windows on a half-window grid only (the
    tail is dropped; under two windows' worth of frames gives zeros or nothing) and no
    guards. Otherwise a periodic Hann (its half-overlaps sum to 1), one more window
    ending at the last frame, the sum divided by the taper weight where windows overlap
    by more than half, windows with a zero channel mean left out, and the default
    output convention.
    """
    n = len(means)
    length = chrom_window(fs)
    need = filtfilt_frames(ORDER)
    require_band("CHROM", fs, BAND[1])
    if length < need:
        raise BaselineError(
            f"CHROM filters each {length}-frame window with an order-{ORDER} zero-phase band-pass "
            f"that needs at least {need} samples; fs={fs} is too low (needs fs > 12.5)"
        )
    if not faithful:
        require_frames("CHROM", n, length, f"one {length}-frame window of {fs} fps")
    out_len = output_length(n, fs, faithful)
    starts = _window_starts(n, length, faithful)
    if not starts.size:
        return np.zeros(out_len)
    index = starts[:, None] + np.arange(length)
    mu = window_means(means, starts, length)
    taper = scipy.signal.windows.hann(length, sym=faithful)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = means[index] / mu[:, None, :]  # (windows, L, 3)
        x = 3 * c[..., 0] - 2 * c[..., 1]
        y = 1.5 * c[..., 0] + c[..., 1] - 1.5 * c[..., 2]
        xf, yf = bandpass(x, fs, BAND, ORDER), bandpass(y, fs, BAND, ORDER)
        spread_y = yf.std(axis=1)
        alpha = xf.std(axis=1) / spread_y
    if faithful:
        tapered = (xf - alpha[:, None] * yf) * taper
        return np.bincount(index.ravel(), weights=tapered.ravel(), minlength=out_len)
    usable = (mu > 0).all(axis=1)[:, None]
    alpha = np.where(spread_y > 0, alpha, 0.0)
    tapered = np.where(usable, (xf - alpha[:, None] * yf) * taper, 0.0)
    weight = np.bincount(index.ravel(), weights=(usable * taper).ravel(), minlength=n)
    total = np.bincount(index.ravel(), weights=tapered.ravel(), minlength=n)
    return pulse_convention(total / np.maximum(weight, 1.0), SIGN)
