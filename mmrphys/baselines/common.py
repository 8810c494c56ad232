"""Shared pieces of the unsupervised baselines: their errors and profiles, input checks,
the per-frame spatial mean, the 1.6-s window, sliding window means, the zero-phase
band-pass and the output convention of the default profile (docs/baselines.md).
"""

from __future__ import annotations

import math

import numpy as np

from mmrphys import signals
from mmrphys.errors import UserError

#: the profiles a baseline can run under (names shared with `mmrphys.profiles`)
BASELINE_PROFILES = ("default", "rppg-toolbox")
#: the rPPG-Toolbox's smoothness-priors lambda, used whatever the frame rate
DETREND_LAMBDA = 100.0
#: seconds of the POS and CHROM windows
WINDOW_SECONDS = 1.6
#: channel names in input order
CHANNELS = ("R", "G", "B")
#: frames the spatial mean converts and reduces at a time: a small temporary copy is
#: 10x faster than a casting reduction over the whole clip (benchmarks/baselines.py)
MEAN_BLOCK_FRAMES = 64


class BaselineError(UserError, ValueError):
    """Input an unsupervised baseline cannot use; the message names the problem."""


class UnknownMethodError(BaselineError):
    """The method name is not one of `mmrphys.baselines.METHODS`."""


class ClipTooShortError(BaselineError):
    """The clip has fewer frames than the method's windows or filters need."""


def is_faithful(profile: str) -> bool:
    """True for "rppg-toolbox" (the toolbox's arithmetic), False for "default" (the safe form)."""
    if profile == "rppg-toolbox":
        return True
    if profile == "default":
        return False
    if profile == "mmrphys":
        raise BaselineError(
            "profile 'mmrphys' defines no unsupervised baselines (the MMRPhys reference has none); "
            f"use one of {list(BASELINE_PROFILES)}"
        )
    raise BaselineError(f"profile must be one of {list(BASELINE_PROFILES)}, got {profile!r}")


def check_fs(fs: float) -> float:
    """A positive, finite frame rate in Hz, as a float."""
    if isinstance(fs, bool) or not isinstance(fs, (int, float, np.integer, np.floating)):
        raise BaselineError(f"fs must be a frame rate in Hz (a number), got {fs!r}")
    if not (math.isfinite(fs) and fs > 0):
        raise BaselineError(f"fs must be a positive, finite frame rate in Hz, got {fs!r}")
    return float(fs)


def _check_values(x: np.ndarray, what: str) -> None:
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise BaselineError(f"{what} must hold real numbers (integer or float), got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise BaselineError(
            f"{what} contain NaN or inf in {bad.size} frame(s), the first at frame {int(bad[0])}"
        )
    if x.size and x.min() < 0:
        raise BaselineError(
            f"{what} must be non-negative light intensities (0-255 or 0-1), got a minimum of {x.min()}"
        )


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Face crops (T, H, W, 3), RGB, integer or float, finite and non-negative."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise BaselineError(
            f"frames must be face crops of shape (T, H, W, 3) in RGB order, got shape {frames.shape}"
        )
    if min(frames.shape[:3]) < 1:
        raise BaselineError(f"frames must hold at least one frame of at least 1x1 pixels, got shape {frames.shape}")
    _check_values(frames, "frames")
    return frames


def check_means(means: np.ndarray) -> np.ndarray:
    """Per-frame RGB means (T, 3), integer or float, finite and non-negative."""
    means = np.asarray(means)
    if means.ndim != 2 or means.shape[1] != 3 or means.shape[0] < 1:
        raise BaselineError(f"means must be per-frame RGB means of shape (T, 3), got shape {means.shape}")
    _check_values(means, "means")
    return means


def spatial_mean(frames: np.ndarray, profile: str = "default") -> np.ndarray:
    """Per-frame mean of each channel over all pixels: (T, H, W, 3) -> (T, 3).

    Summed over rows, then over columns, in float64 ("default") or, as the toolbox's
    driver does, in float32 ("rppg-toolbox"); for integer pixels the float32 result is
    float32(true mean) exactly (docs/baselines.md, spatial mean).
    """
    frames = check_frames(frames)
    n, height, width = frames.shape[:3]
    dtype = np.float32 if is_faithful(profile) else np.float64
    out = np.empty((n, 3), dtype)
    for start in range(0, n, MEAN_BLOCK_FRAMES):
        block = frames[start : start + MEAN_BLOCK_FRAMES].astype(dtype, copy=False)
        out[start : start + len(block)] = block.sum(axis=1).sum(axis=1) / (height * width)
    return out


def window_length(fs: float) -> int:
    """POS's window, ceil(1.6 fs) frames, from the float product as the toolbox does."""
    return math.ceil(WINDOW_SECONDS * fs)


def require_frames(method: str, n: int, need: int, why: str) -> None:
    """Raise `ClipTooShortError` unless the clip has at least `need` frames."""
    if n < need:
        raise ClipTooShortError(f"{method} needs at least {need} frames ({why}), got {n}")


def require_band(method: str, fs: float, high: float) -> None:
    """Raise unless the method's filter band ends below the Nyquist frequency."""
    if high >= fs / 2:
        raise BaselineError(
            f"{method} band-passes up to {high} Hz, which needs fs > {2 * high} Hz, got fs={fs}"
        )


def detrend(x: np.ndarray) -> np.ndarray:
    """The toolbox's smoothness-priors detrend (lambda 100) along the last axis.

    Each trace is centred first: the detrend removes constants exactly, and the solve
    then rounds relative to the pulse instead of to the skin's brightness, which is
    hundreds of times larger (docs/baselines.md, shared steps).
    """
    x = np.asarray(x, dtype=np.float64)
    return signals.detrend_smoothness_priors(x - x.mean(axis=-1, keepdims=True), DETREND_LAMBDA)


def filtfilt_frames(order: int) -> int:
    """Fewest samples `filtfilt` accepts for a Butterworth band-pass of `order`."""
    return signals.filtfilt_min_samples(order)


def bandpass(x: np.ndarray, fs: float, band: tuple[float, float], order: int) -> np.ndarray:
    """Zero-phase Butterworth band-pass (b, a form, default padding) along the last axis."""
    return signals.bandpass(x, fs, band[0], band[1], order, form="ba")


def window_means(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Per-channel mean of x[s : s + length] for every start s: (len(starts), channels).

    Accumulated frame by frame in x's dtype, the order of the toolbox's per-window
    `mean(axis=0)`, so float32 input rounds as it does there.
    """
    total = x[starts]
    for offset in range(1, length):
        total = total + x[starts + offset]
    return total / length


def pulse_convention(bvp: np.ndarray, sign: float) -> np.ndarray:
    """The default profile's output: zero mean, oriented to rise with blood volume.

    `sign` is the method's orientation (-1 for a method whose raw output follows the
    skin's brightness, which blood volume lowers); docs/baselines.md, default convention.
    """
    bvp = np.asarray(bvp, dtype=np.float64)
    return sign * (bvp - bvp.mean())
