"""POS, the plane orthogonal to skin tone (Wang et al. 2017), as rPPG-Toolbox computes it
and in a safe form (docs/baselines.md, POS).

Every 1.6-s window of RGB means is divided by its own mean, projected onto the plane
[[0, 1, -1], [-2, 1, 1]], the two projections are mixed by the ratio of their spreads and
the zero-mean result is overlap-added; the sum is detrended and band-passed.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mmrphys.baselines.common import (
    bandpass,
    detrend,
    filtfilt_frames,
    pulse_convention,
    require_band,
    require_frames,
    window_length,
    window_means,
)

PROJECTION = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
BAND = (0.75, 3.0)
ORDER = 1
#: the raw output follows the skin's brightness
SIGN = -1.0


def pos(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP (T,) from per-frame RGB means (T, 3).

    faithful: the toolbox's T - l windows (the last frame is never covered, a clip of
    T <= l frames gives zeros) and no guards (one window with a zero channel mean or a
    constant projection makes every sample NaN). Otherwise all T - l + 1 windows; a
    window with a zero channel mean adds nothing, a constant projection mixes with
    ratio 0, and the output follows the default convention.
    """
    n = len(means)
    length = window_length(fs)
    require_band("POS", fs, BAND[1])
    need = filtfilt_frames(ORDER)
    require_frames("POS", n, need, f"its order-{ORDER} zero-phase band-pass pads {need - 1} samples")
    if not faithful:
        require_frames("POS", n, length, f"one {length}-frame window of {fs} fps")
    n_windows = max(n - length + (0 if faithful else 1), 0)
    overlap = np.zeros(n)
    if n_windows:
        starts = np.arange(n_windows)
        mu = window_means(means, starts, length)  # (windows, 3)
        windows = sliding_window_view(means, length, axis=0)[:n_windows]  # (windows, 3, l)
        with np.errstate(divide="ignore", invalid="ignore"):
            normalised = windows / mu[:, :, None]
            if not faithful:
                normalised = np.where((mu > 0).all(axis=1)[:, None, None], normalised, 0.0)
            s1, s2 = np.einsum("pc,wcl->pwl", PROJECTION, normalised.astype(np.float64))
            spread2 = s2.std(axis=1)
            ratio = s1.std(axis=1) / spread2
        if not faithful:
            ratio = np.where(spread2 > 0, ratio, 0.0)
        h = s1 + ratio[:, None] * s2
        h -= h.mean(axis=1, keepdims=True)
        # added window by window in start order, as the toolbox's loop does
        index = starts[:, None] + np.arange(length)
        overlap = np.bincount(index.ravel(), weights=h.ravel(), minlength=n)
    bvp = bandpass(detrend(overlap), fs, BAND, ORDER)
    return bvp if faithful else pulse_convention(bvp, SIGN)
