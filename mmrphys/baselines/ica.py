"""ICA (Poh et al.) as rPPG-Toolbox computes it and in a safe form (docs/baselines.md, ICA).

The detrended, z-scored R, G and B traces of the whole clip are whitened and unmixed by
JADE; the source with the most concentrated spectrum is band-passed.
"""

from __future__ import annotations

import numpy as np

from mmrphys import signals
from mmrphys.baselines.common import (
    CHANNELS,
    BaselineError,
    bandpass,
    detrend,
    filtfilt_frames,
    pulse_convention,
    require_band,
    require_frames,
)
from mmrphys.baselines.jade import jade_sources

BAND = (0.7, 2.5)
ORDER = 3
#: a detrended channel whose spread is below this fraction of its level carries only rounding
FLAT_RELATIVE_SPREAD = 1e-10
#: whitening keeps directions whose variance is above this fraction of the largest
RANK_TOLERANCE = 1e-10
#: the default selection's spectra are zero-padded to at least this resolution, Hz
SELECTION_RESOLUTION_HZ = 0.1


def _whiten_faithful(z: np.ndarray) -> np.ndarray:
    """inv(sqrtm(z z^T / T)) z, the symmetric whitening; raises where the toolbox does."""
    bad = [CHANNELS[c] for c in np.flatnonzero(~np.isfinite(z).all(axis=1))]
    if bad:
        raise BaselineError(
            f"ICA: channel {', '.join(bad)} is constant after detrending, so its z-score is 0/0 "
            "(rPPG-Toolbox's sqrtm raises here; the default profile handles it)"
        )
    values, vectors = np.linalg.eigh(z @ z.T / z.shape[1])
    if values.min() <= RANK_TOLERANCE * values.max():
        raise BaselineError(
            "ICA: the z-scored channels are linearly dependent (e.g. a grey video), so their "
            "correlation matrix cannot be inverted (rPPG-Toolbox fails here; the default profile handles it)"
        )
    return (vectors / np.sqrt(values)) @ vectors.T @ z


def _whiten_safe(z: np.ndarray) -> np.ndarray:
    """Whitened data on the directions the channels actually span (rows <= 3).

    With full rank this is the symmetric whitening of the toolbox; flat or dependent
    channels reduce the number of sources instead of failing.
    """
    values, vectors = np.linalg.eigh(z @ z.T / z.shape[1])
    keep = values > RANK_TOLERANCE * max(values.max(), 0.0)
    if keep.all():
        return (vectors / np.sqrt(values)) @ vectors.T @ z
    return (vectors[:, keep] / np.sqrt(values[keep])).T @ z


def _select_faithful(sources: np.ndarray) -> int:
    """The source whose normalised power spectrum (all bins but DC) has the highest peak."""
    spectra = np.fft.fft(sources, axis=1)[:, 1:]
    n = spectra.shape[1]
    power = np.abs(spectra[:, : n // 2]) ** 2
    return int(np.argmax((power / power.sum(axis=1, keepdims=True)).max(axis=1)))


def _select_safe(sources: np.ndarray, fs: float) -> int:
    """The source with the largest share of its (non-DC) power in one bin of the pulse band."""
    nfft = signals.next_pow2(max(sources.shape[1], int(np.ceil(fs / SELECTION_RESOLUTION_HZ))))
    power = np.abs(np.fft.rfft(sources, n=nfft, axis=1)[:, 1:]) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / fs)[1:]
    in_band = (freqs >= BAND[0]) & (freqs <= BAND[1])
    total = power.sum(axis=1)
    share = np.where(total > 0, power[:, in_band].max(axis=1) / np.where(total > 0, total, 1.0), 0.0)
    return int(np.argmax(share))


def ica(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP (T,) from per-frame RGB means (T, 3).

    faithful: the toolbox's JADE and its selection over all frequencies; a constant
    channel or linearly dependent channels raise. Otherwise flat channels are dropped
    (all flat: zeros), the selection looks only inside the 0.7-2.5 Hz pulse band, and
    the output is oriented against the band-passed green trace (default convention).
    """
    n = len(means)
    require_band("ICA", fs, BAND[1])
    need = filtfilt_frames(ORDER)
    require_frames("ICA", n, need, f"its order-{ORDER} zero-phase band-pass pads {need - 1} samples")
    traces = means.T.astype(np.float64)
    detrended = detrend(traces)
    spread = detrended.std(axis=1)
    if faithful:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (detrended - detrended.mean(axis=1, keepdims=True)) / spread[:, None]
        sources = jade_sources(_whiten_faithful(z))
        return bandpass(sources[_select_faithful(sources)].real, fs, BAND, ORDER)
    usable = spread > FLAT_RELATIVE_SPREAD * np.abs(traces).mean(axis=1)
    if not usable.any():
        return np.zeros(n)
    z = np.zeros_like(detrended)
    z[usable] = (detrended[usable] - detrended[usable].mean(axis=1, keepdims=True)) / spread[usable, None]
    sources = jade_sources(_whiten_safe(z)).real
    bvp = bandpass(sources[_select_safe(sources, fs)], fs, BAND, ORDER)
    # blood darkens the skin, green most: a pulse source anti-correlates with green
    reference = z[1] if usable[1] else z[usable].sum(axis=0)
    sign = -1.0 if np.dot(bvp, bandpass(reference, fs, BAND, ORDER)) > 0 else 1.0
    return pulse_convention(bvp, sign)
