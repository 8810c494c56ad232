"""Signal processing for pulse (BVP) and breathing (RSP) waveforms: detrend, band-pass,
spectra, rate by spectral peak or by peak counting, harmonic SNR and cross-correlation.

Every function works along the last axis, so a stack of equal-length windows is
processed in one call, in float64. Nothing here knows about evaluation profiles; the
profiles in `mmrphys.profiles` choose the parameters and `mmrphys.metrics` strings the
steps together. Inputs are checked by the callers in `mmrphys.metrics`; these functions
raise `SignalError` only for requests they cannot honour (too few samples, bad band).
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.signal

from mmrphys.errors import UserError

SECONDS_PER_MINUTE = 60.0


class SignalError(UserError, ValueError):
    """A signal or a signal-processing request is unusable; the message says why."""


class WindowTooShortError(SignalError):
    """A window has fewer samples than the processing needs."""


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (1 for n = 0), the references' FFT length."""
    return 1 if n == 0 else 2 ** (int(n) - 1).bit_length()


@functools.lru_cache(maxsize=64)
def _detrend_cholesky(n: int, lam: float) -> np.ndarray:
    """Banded Cholesky factor of I + lam^2 D2'D2 for length n (upper form, 3 rows)."""
    m = n - 2  # rows of the second-difference matrix D2
    diag = np.ones(n)
    diag[:m] += lam**2 * 1.0
    diag[1 : m + 1] += lam**2 * 4.0
    diag[2 : m + 2] += lam**2 * 1.0
    off1 = np.zeros(n - 1)
    off1[:m] += -2.0 * lam**2
    off1[1 : m + 1] += -2.0 * lam**2
    bands = np.zeros((3, n))
    bands[0, 2:] = lam**2
    bands[1, 1:] = off1
    bands[2] = diag
    return scipy.linalg.cholesky_banded(bands, lower=False)


def detrend_smoothness_priors(x: np.ndarray, lam: float) -> np.ndarray:
    """Smoothness-priors detrend (Tarvainen et al. 2002): x - (I + lam^2 D2'D2)^-1 x.

    The system matrix is pentadiagonal and positive definite, so a banded Cholesky solve
    (O(N) per signal) gives the references' dense-inverse result to rounding error.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n < 3:
        raise WindowTooShortError(f"the smoothness-priors detrend needs at least 3 samples, got {n}")
    factor = _detrend_cholesky(n, float(lam))
    flat = x.reshape(-1, n)
    trend = scipy.linalg.cho_solve_banded((factor, False), flat.T, check_finite=False).T
    return (flat - trend).reshape(x.shape)


def detrend_lambda_for_cutoff(cutoff_hz: float, fs: float) -> float:
    """The detrend lambda whose high-pass gain is 0.5 at `cutoff_hz` for sampling rate `fs`.

    Away from the edges the detrend's gain is q/(1+q) with q = (lam (2 - 2 cos w))^2,
    w = 2 pi f / fs; q = 1 at the cut-off.
    """
    return 1.0 / (2.0 - 2.0 * np.cos(2.0 * np.pi * cutoff_hz / fs))


def filtfilt_min_samples(order: int) -> int:
    """Fewest samples a zero-phase Butterworth band-pass of `order` accepts.

    SciPy's `filtfilt` pads 3 * (number of coefficients) samples, 2 * order + 1 for a
    band-pass, and needs strictly more samples than that; the SOS path here pads the same.
    """
    return 3 * (2 * order + 1) + 1


@functools.lru_cache(maxsize=64)
def butter_bandpass(
    fs: float, low: float, high: float, order: int, form: Literal["ba", "sos"] = "ba"
) -> tuple[np.ndarray, ...]:
    """Butterworth band-pass design with edges normalised as `edge / fs * 2`, as the references do."""
    nyquist = fs / 2.0
    if not 0.0 < low < high < nyquist:
        raise SignalError(
            f"band-pass {low}-{high} Hz is not inside (0, {nyquist}) Hz for fs={fs} Hz"
        )
    edges = [low / fs * 2, high / fs * 2]
    if form == "sos":
        return (scipy.signal.butter(order, edges, btype="bandpass", output="sos"),)
    b, a = scipy.signal.butter(order, edges, btype="bandpass")
    return b, a


def bandpass(
    x: np.ndarray,
    fs: float,
    low: float,
    high: float,
    order: int,
    form: Literal["ba", "sos"] = "ba",
) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis.

    `form="ba"` is the references' `filtfilt(b, a, x)` with default padding;
    `form="sos"` runs second-order sections, which stay accurate for narrow low bands
    at high sampling rates, with the same padding length.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    need = filtfilt_min_samples(order)
    if n < need:
        raise WindowTooShortError(
            f"a window of {n} samples is too short for the order-{order} zero-phase "
            f"band-pass {low}-{high} Hz (needs at least {need})"
        )
    coefficients = butter_bandpass(float(fs), float(low), float(high), int(order), form)
    if form == "sos":
        return scipy.signal.sosfiltfilt(coefficients[0], x, axis=-1, padlen=need - 1)
    b, a = coefficients
    return scipy.signal.filtfilt(b, a, x, axis=-1)


def zscore(x: np.ndarray) -> np.ndarray:
    """The metrics' z-score: subtract the mean and divide by the population std along the
    last axis (0/0 -> NaN), as the references' evaluation code does."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / x.std(axis=-1, keepdims=True)


def standardize_chunks(x: np.ndarray) -> np.ndarray:
    """The per-chunk z-score of training labels and served predictions: each row along
    its last axis, unbiased std (as the reference trainer), a constant row -> zeros;
    float32. `mmrphys.losses.zscore` is its torch twin inside the loss."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, ddof=1, keepdims=True) if x.shape[-1] > 1 else np.zeros_like(mean)
    return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def periodogram(x: np.ndarray, fs: float, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """One-sided density periodogram, rectangular window, no detrend, zero-padded to `nfft`."""
    return scipy.signal.periodogram(x, fs=fs, nfft=nfft, detrend=False, axis=-1)


def welch_half(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """MMRPhys's Welch spectrum: segments of N//2 samples, Hann, 50% overlap, no detrend."""
    nperseg = x.shape[-1] // 2
    return scipy.signal.welch(
        x, fs=fs, nperseg=nperseg, noverlap=nperseg // 2, nfft=nperseg, detrend=False, axis=-1
    )


def spectral_peak_rate(freqs: np.ndarray, power: np.ndarray, low: float, high: float) -> np.ndarray:
    """Rate per minute of the largest spectral bin with low <= f <= high (first bin wins ties)."""
    in_band = (freqs >= low) & (freqs <= high)
    if not in_band.any():
        raise SignalError(f"no spectral bin lies in {low}-{high} Hz; the window is too short")
    band_freqs = freqs[in_band]
    return band_freqs[np.argmax(power[..., in_band], axis=-1)] * SECONDS_PER_MINUTE


def peak_rate(
    x: np.ndarray,
    fs: float,
    min_distance: int | None = None,
    min_prominence: np.ndarray | float | None = None,
) -> np.ndarray:
    """Rate per minute from local maxima: 60 fs / mean(peak spacing); NaN with < 2 peaks.

    With no constraints every strict local maximum counts, as in the references;
    `min_distance` (samples) and `min_prominence` (per row, signal units) reject ripple.
    """
    x = np.asarray(x, dtype=np.float64)
    rows = x.reshape(-1, x.shape[-1])
    prominences = np.broadcast_to(
        np.asarray(np.nan if min_prominence is None else min_prominence, dtype=np.float64),
        x.shape[:-1],
    ).reshape(-1)
    rates = np.full(rows.shape[0], np.nan)
    for i, row in enumerate(rows):
        kwargs = {}
        if min_distance is not None:
            kwargs["distance"] = max(1, int(min_distance))
        if np.isfinite(prominences[i]):
            kwargs["prominence"] = prominences[i]
        peaks, _ = scipy.signal.find_peaks(row, **kwargs)
        if peaks.size >= 2:
            rates[i] = SECONDS_PER_MINUTE * fs / np.mean(np.diff(peaks))
    return rates.reshape(x.shape[:-1])


def harmonic_powers(
    freqs: np.ndarray,
    power: np.ndarray,
    rate: np.ndarray | float,
    low: float,
    high: float,
    half_width: float,
    squared: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectral power near the reference rate and its 2nd harmonic, and in the rest of the band.

    Signal bins: f0 - w <= f <= f0 + w or 2 f0 - w <= f <= 2 f0 + w, with f0 = rate / 60
    and w = `half_width` (not clipped to the band); noise bins: the other bins with
    low <= f <= high. `squared` sums squared PSD values (the MMRPhys reference).
    """
    f0 = np.asarray(rate, dtype=np.float64)[..., None] / SECONDS_PER_MINUTE
    values = power**2 if squared else power
    near = ((freqs >= f0 - half_width) & (freqs <= f0 + half_width)) | (
        (freqs >= 2 * f0 - half_width) & (freqs <= 2 * f0 + half_width)
    )
    band = (freqs >= low) & (freqs <= high)
    signal_power = np.where(near, values, 0.0).sum(axis=-1)
    noise_power = np.where(band & ~near, values, 0.0).sum(axis=-1)
    return signal_power, noise_power


def snr_db(signal_power: np.ndarray, noise_power: np.ndarray, no_noise: float = 0.0) -> np.ndarray:
    """10 log10(signal / noise); `no_noise` where the noise power is exactly 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = 10.0 * np.log10(signal_power / noise_power)
    return np.where(noise_power == 0, no_noise, snr)


def circular_xcorr(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Pearson r between `pred` and `np.roll(label, k)` for every k = 0..N-1, via the FFT.

    Both inputs have the same shape; a constant input gives NaN.
    """
    n = pred.shape[-1]
    p = pred - pred.mean(axis=-1, keepdims=True)
    g = label - label.mean(axis=-1, keepdims=True)
    cross = np.fft.irfft(np.fft.rfft(p, axis=-1) * np.conj(np.fft.rfft(g, axis=-1)), n=n, axis=-1)
    norm = np.sqrt((p**2).sum(axis=-1) * (g**2).sum(axis=-1))[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return cross / norm


def max_cross_correlation(
    pred: np.ndarray, label: np.ndarray, max_lag: int | None = None, signed: bool = False
) -> np.ndarray:
    """MACC: the largest correlation between `pred` and circular shifts of `label`.

    `max_lag=None, signed=False` is the references' definition: max |r| over shifts
    0..N-2. Otherwise shifts are limited to |k| <= max_lag (both directions) and, with
    `signed=True`, the signed r is maximised, so an inverted waveform scores low.
    """
    r = circular_xcorr(np.asarray(pred, np.float64), np.asarray(label, np.float64))
    n = r.shape[-1]
    if max_lag is None:
        shifts = np.arange(0, max(n - 1, 1))
    else:
        lag = min(int(max_lag), n - 1)
        shifts = np.unique(np.r_[np.arange(0, lag + 1), np.arange(n - lag, n)] % n)
    chosen = r[..., shifts]
    # a constant input makes every r NaN, and np.max keeps the NaN
    return np.max(chosen if signed else np.abs(chosen), axis=-1)
