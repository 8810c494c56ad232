"""Per-window scoring: rate of the prediction and of the label, SNR and MACC, under a profile.

`window_rates` takes one window (1-D) or a stack of equal-length windows (2-D) and runs
the profile's steps: integrate (diff-normalised signals), detrend, band-pass, then the
spectral-peak or peak-counting rate, the harmonic SNR of the prediction around the
label's rate, and the maximum cross-correlation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmrphys import signals
from mmrphys.profiles import Profile, TaskRules, get_profile

METHODS = ("fft", "peak")
# sampling rates accepted: above twice the highest frequency used, and at most this
MAX_FS = 1000.0

# flags a window result can carry (documented in docs/evaluation.md)
CONSTANT_PREDICTION = "constant_prediction"
FEW_PEAKS_PREDICTION = "prediction_has_fewer_than_2_peaks"
FEW_PEAKS_LABEL = "label_has_fewer_than_2_peaks"
NO_NOISE_BINS = "snr_without_noise_power"


@dataclass(frozen=True)
class WindowRates:
    """Scores of one window (floats) or of a stack of windows (arrays, one per window).

    Rates are per minute (beats for BVP, breaths for RSP); `snr` in dB; `macc` is None
    where the profile defines no MACC for the task. `flags` lists, per window, what made
    a value NaN or unusual (see `docs/evaluation.md`).
    """

    rate_pred: float | np.ndarray
    rate_label: float | np.ndarray
    snr: float | np.ndarray
    macc: float | np.ndarray | None
    flags: tuple[str, ...] | tuple[tuple[str, ...], ...]
    profile: str
    task: str
    method: str


def check_signal(x: np.ndarray, name: str) -> np.ndarray:
    """Return `x` as float64 with samples on the last axis, or raise naming the bad sample."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise signals.SignalError(f"{name}: not a numeric array ({err})") from err
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise signals.SignalError(f"{name}: empty signal (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise signals.SignalError(
            f"{name}: {int(bad.sum())} NaN or infinite sample(s), first at index {where}"
        )
    return arr


def check_fs(fs: float, rules: TaskRules, task: str) -> float:
    """Return `fs` as a float, or raise if it cannot carry the task's bands."""
    try:
        fs = float(fs)
    except (TypeError, ValueError) as err:
        raise signals.SignalError(f"fs must be a number in Hz, got {fs!r}") from err
    highest = max(rules.band[1], rules.snr_band[1])
    if not (math.isfinite(fs) and 2 * highest < fs <= MAX_FS):
        raise signals.SignalError(
            f"fs={fs} Hz is out of range for {task}: it must be above {2 * highest} Hz "
            f"(twice the highest frequency used, {highest} Hz) and at most {MAX_FS} Hz"
        )
    return fs


def min_window_samples(profile: Profile, task: str, fs: float, bandpass: bool = True) -> int:
    """Fewest samples a window needs under `profile` (filter padding, band coverage)."""
    rules = profile.task(task)
    need = signals.filtfilt_min_samples(rules.filter_order) if bandpass else 3
    if profile.min_periods is not None:
        need = max(need, math.ceil(profile.min_periods * fs / rules.band[0]))
    return need


def is_constant(x: np.ndarray) -> np.ndarray:
    """True for each signal (last axis) without variation, relative to its magnitude."""
    scale = np.maximum(1.0, np.abs(x).max(axis=-1))
    return x.std(axis=-1) <= 1e-12 * scale


def _integrate(x: np.ndarray, float32: bool) -> np.ndarray:
    if float32:
        # the references' windows are float32 torch tensors: torch accumulates the sum in
        # double but stores every partial sum as float32
        return np.cumsum(x.astype(np.float32), axis=-1, dtype=np.float64).astype(np.float32).astype(np.float64)
    return np.cumsum(x, axis=-1)


def preprocess(
    x: np.ndarray,
    fs: float,
    task: str = "bvp",
    profile: str | Profile = "default",
    label_diff: bool = False,
    bandpass: bool = True,
) -> np.ndarray:
    """The profile's waveform processing before rates are read: integrate, detrend, band-pass.

    Inputs are not checked here; `window_rates` checks them first.
    """
    prof = get_profile(profile)
    return _preprocess(np.asarray(x, dtype=np.float64), fs, prof.task(task), prof, label_diff, bandpass)


def _preprocess(x: np.ndarray, fs: float, rules: TaskRules, profile: Profile, diff: bool, bandpass: bool) -> np.ndarray:
    if diff:
        x = _integrate(x, profile.float32_cumsum)
    if rules.detrend_lambda is not None:
        x = signals.detrend_smoothness_priors(x, rules.detrend_lambda)
    elif rules.detrend_cutoff_hz is not None:
        x = signals.detrend_smoothness_priors(x, signals.detrend_lambda_for_cutoff(rules.detrend_cutoff_hz, fs))
    if bandpass:
        x = signals.bandpass(x, fs, *rules.band, order=rules.filter_order, form=rules.filter_form)
    return x


def _rate_spectrum(x: np.ndarray, fs: float, rules: TaskRules) -> tuple[np.ndarray, np.ndarray]:
    if rules.zscore_before_rate:
        x = signals.zscore(x)
    n = x.shape[-1]
    if rules.welch_rate_above_seconds is not None and n > rules.welch_rate_above_seconds * fs:
        return signals.welch_half(x, fs)
    nfft = signals.next_pow2(n)
    if rules.rate_resolution_per_min is not None:
        finest = math.ceil(signals.SECONDS_PER_MINUTE * fs / rules.rate_resolution_per_min)
        nfft = max(nfft, signals.next_pow2(finest))
    return signals.periodogram(x, fs, nfft)


def _rates(x: np.ndarray, fs: float, rules: TaskRules, method: str) -> np.ndarray:
    if method == "fft":
        return signals.spectral_peak_rate(*_rate_spectrum(x, fs, rules), *rules.band)
    distance = math.floor(fs / rules.band[1]) if rules.peak_min_distance else None
    prominence = None
    if rules.peak_min_prominence_std is not None:
        prominence = rules.peak_min_prominence_std * x.std(axis=-1)
    return signals.peak_rate(x, fs, min_distance=distance, min_prominence=prominence)


def _snr(pred: np.ndarray, label_rate: np.ndarray, fs: float, rules: TaskRules) -> tuple[np.ndarray, np.ndarray]:
    """SNR of the processed prediction around the label's rate, and where no noise power was left."""
    if rules.snr_zscore:
        pred = signals.zscore(pred)
    n = pred.shape[-1]
    if rules.snr_welch_from_samples is not None and n >= rules.snr_welch_from_samples:
        freqs, power = signals.welch_half(pred, fs)
    else:
        freqs, power = signals.periodogram(pred, fs, signals.next_pow2(n))
    signal_power, noise_power = signals.harmonic_powers(
        freqs, power, label_rate, *rules.snr_band, half_width=rules.snr_half_width, squared=rules.snr_squared_psd
    )
    return signals.snr_db(signal_power, noise_power, rules.snr_no_noise_bins), noise_power == 0


def _macc(pred: np.ndarray, label: np.ndarray, fs: float, rules: TaskRules) -> np.ndarray | None:
    if rules.macc is None:
        return None
    if rules.macc == "circular_abs":
        return signals.max_cross_correlation(pred, label)
    # half the shortest in-band period: no shift this small can turn an inverted in-band
    # rhythm into a match, while sensor delays (pulse transit, sync) stay covered
    max_lag = math.floor(fs / (2 * rules.band[1]))
    return signals.max_cross_correlation(pred, label, max_lag=max_lag, signed=True)


def waveform_rates(
    waveforms: np.ndarray,
    fs: float,
    task: str = "bvp",
    profile: str | Profile = "default",
    method: Literal["fft", "peak"] = "fft",
    label_diff: bool = False,
) -> np.ndarray:
    """Rates per minute of one waveform (T,) or of each row of (B, T), with no label.

    The prediction half of `window_rates`, for serving arbitrary clips: the same checks
    and processing, but a waveform shorter than `min_window_samples` (e.g. a 6-s clip for
    breathing under the default profile, which needs one period of 5/min) gives NaN
    rather than an error, as does a constant row under the default profile.
    """
    prof = get_profile(profile)
    rules = prof.task(task)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    x = check_signal(waveforms, f"{task} waveform")
    fs = check_fs(fs, rules, task)
    if x.shape[-1] < min_window_samples(prof, task, fs):
        return np.full(x.shape[:-1], np.nan)
    rates = _rates(_preprocess(x, fs, rules, prof, label_diff, True), fs, rules, method)
    if prof.undefined_is_nan:
        rates = np.where(is_constant(x), np.nan, rates)
    return rates


def window_rates(
    pred: np.ndarray,
    label: np.ndarray,
    fs: float,
    task: str = "bvp",
    method: Literal["fft", "peak"] = "fft",
    profile: str | Profile = "default",
    label_diff: bool = False,
    bandpass: bool = True,
) -> WindowRates:
    """Score one window (1-D arrays) or a stack of equal-length windows (2-D, one per row).

    `label_diff=True` means both signals are first differences (DiffNormalized labels)
    and are integrated first. Raises `SignalError` for NaN/inf samples, mismatched
    shapes, a constant label or an out-of-range `fs`, and `WindowTooShortError` for a
    window shorter than `min_window_samples`.
    """
    prof = get_profile(profile)
    rules = prof.task(task)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    pred = check_signal(pred, "prediction")
    label = check_signal(label, "label")
    if pred.shape != label.shape:
        raise signals.SignalError(f"prediction shape {pred.shape} differs from label shape {label.shape}")
    if pred.ndim > 2:
        raise signals.SignalError(f"expected one window (1-D) or a stack of windows (2-D), got shape {pred.shape}")
    fs = check_fs(fs, rules, task)
    n = pred.shape[-1]
    need = min_window_samples(prof, task, fs, bandpass)
    if n < need:
        raise signals.WindowTooShortError(
            f"a window of {n} samples ({n / fs:.2f} s at {fs} Hz) is too short for {task} "
            f"under profile {prof.name!r} (needs at least {need} samples)"
        )
    if is_constant(label).any():
        raise signals.SignalError("label is constant: it holds no pulse or breathing to compare with")

    single = pred.ndim == 1
    pred2, label2 = np.atleast_2d(pred), np.atleast_2d(label)
    constant = is_constant(pred2)
    p = _preprocess(pred2, fs, rules, prof, label_diff, bandpass)
    g = _preprocess(label2, fs, rules, prof, label_diff, bandpass)
    rate_pred = _rates(p, fs, rules, method)
    rate_label = _rates(g, fs, rules, method)
    snr, no_noise = _snr(p, rate_label, fs, rules)
    macc = _macc(p, g, fs, rules)

    flags: list[list[str]] = [[] for _ in range(p.shape[0])]
    for i in range(p.shape[0]):
        if constant[i]:
            flags[i].append(CONSTANT_PREDICTION)
        if not np.isfinite(rate_pred[i]):
            flags[i].append(FEW_PEAKS_PREDICTION)
        if not np.isfinite(rate_label[i]):
            flags[i].append(FEW_PEAKS_LABEL)
        if no_noise[i] and not constant[i]:
            flags[i].append(NO_NOISE_BINS)
    if prof.undefined_is_nan:
        rate_pred = np.where(constant, np.nan, rate_pred)
        snr = np.where(constant | ~np.isfinite(rate_label), np.nan, snr)
        macc = None if macc is None else np.where(constant, np.nan, macc)

    def out(values: np.ndarray | None):
        if values is None:
            return None
        return float(values[0]) if single else values

    return WindowRates(
        rate_pred=out(rate_pred),
        rate_label=out(rate_label),
        snr=out(snr),
        macc=out(macc),
        flags=tuple(flags[0]) if single else tuple(tuple(f) for f in flags),
        profile=prof.name,
        task=task,
        method=method,
    )
