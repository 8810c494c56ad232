"""Signal-processing building blocks against closed-form answers and direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from scipy.sparse import spdiags

from mmrphys import signals

FS = 30.0


def dense_detrend(z: np.ndarray, lam: float) -> np.ndarray:
    """The published formula, (I - (I + lam^2 D'D)^-1) z, with a dense inverse."""
    n = z.shape[0]
    d = spdiags(np.array([np.ones(n), -2 * np.ones(n), np.ones(n)]), np.array([0, 1, 2]), n - 2, n).toarray()
    eye = np.identity(n)
    return (eye - np.linalg.inv(eye + lam**2 * d.T @ d)) @ z


def mid_amplitude(x: np.ndarray) -> float:
    """Amplitude of a sinusoid from its middle half (away from edge effects)."""
    n = x.shape[-1]
    return float(np.sqrt(2) * x[n // 4 : 3 * n // 4].std())


@pytest.mark.parametrize("n", [3, 4, 50, 301])
@pytest.mark.parametrize("lam", [100.0, 253.0])
def test_banded_detrend_matches_dense_inverse(n, lam):
    z = np.random.default_rng(n).normal(size=(2, n)).cumsum(axis=-1)
    got = signals.detrend_smoothness_priors(z, lam)
    for row in range(2):
        np.testing.assert_allclose(got[row], dense_detrend(z[row], lam), atol=1e-9)


def test_detrend_gain_matches_spec_at_30fps():
    # docs/evaluation.md (reference code): gain 0.71 at 0.6 Hz, 0.79 at 40 bpm, 0.03 at 0.2 Hz (12 brpm)
    t = np.arange(6000) / FS
    for freq, gain in [(0.6, 0.71), (40 / 60, 0.79), (0.75, 0.86), (0.2, 0.03)]:
        out = signals.detrend_smoothness_priors(np.sin(2 * np.pi * freq * t), 100.0)
        assert mid_amplitude(out) == pytest.approx(gain, abs=0.01)


def test_detrend_lambda_for_cutoff_inverts_the_half_gain_point():
    # docs/evaluation.md: lambda=100 has its 50% point at 0.478 Hz (30 fps), 0.398 (25), 0.239 (15)
    for fs, cutoff in [(30, 0.478), (25, 0.398), (15, 0.239)]:
        assert signals.detrend_lambda_for_cutoff(cutoff, fs) == pytest.approx(100, rel=0.01)
    lam = signals.detrend_lambda_for_cutoff(0.3, FS)
    t = np.arange(6000) / FS
    out = signals.detrend_smoothness_priors(np.sin(2 * np.pi * 0.3 * t), lam)
    assert mid_amplitude(out) == pytest.approx(0.5, abs=0.01)


def test_detrend_rejects_fewer_than_three_samples():
    with pytest.raises(signals.WindowTooShortError, match="at least 3"):
        signals.detrend_smoothness_priors(np.ones(2), 100.0)


@pytest.mark.parametrize(
    "order,band,b,a",
    [
        (1, (0.6, 3.3), [0.225123, 0, -0.225123], [1, -1.481104, 0.549755]),
        (2, (0.6, 3.3), [0.056448, 0, -0.112897, 0, 0.056448], [1, -3.081806, 3.667995, -2.031385, 0.450445]),
        (2, (0.13, 0.5), [0.001423, 0, -0.002845, 0, 0.001423], [1, -3.884962, 5.666429, -3.677659, 0.896201]),
    ],
)
def test_butterworth_coefficients_match_the_reference(order, band, b, a):
    got_b, got_a = signals.butter_bandpass(FS, *band, order)
    np.testing.assert_allclose(got_b, b, atol=5e-7)
    np.testing.assert_allclose(got_a, a, atol=5e-7)


@pytest.mark.parametrize("form", ["ba", "sos"])
def test_zero_phase_bandpass_halves_amplitude_at_the_cutoffs(form):
    t = np.arange(9000) / FS
    for freq in (0.6, 3.3):
        out = signals.bandpass(np.sin(2 * np.pi * freq * t), FS, 0.6, 3.3, order=2, form=form)
        assert mid_amplitude(out) == pytest.approx(0.5, abs=0.01)
    centre = signals.bandpass(np.sin(2 * np.pi * 1.4 * t), FS, 0.6, 3.3, order=2, form=form)
    assert mid_amplitude(centre) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("order,need", [(1, 10), (2, 16)])
def test_short_window_limit_is_scipys_own(order, need):
    # docs/evaluation.md bug 1: filtfilt needs N >= 10 (order 1) and N >= 16 (order 2)
    assert signals.filtfilt_min_samples(order) == need
    b, a = signals.butter_bandpass(FS, 0.6, 3.3, order)
    scipy.signal.filtfilt(b, a, np.random.default_rng(0).normal(size=need))
    with pytest.raises(ValueError):
        scipy.signal.filtfilt(b, a, np.random.default_rng(0).normal(size=need - 1))
    with pytest.raises(signals.WindowTooShortError, match=f"{need - 1} samples.*at least {need}"):
        signals.bandpass(np.ones(need - 1), FS, 0.6, 3.3, order)


def test_bandpass_rejects_a_band_above_nyquist():
    with pytest.raises(signals.SignalError, match="not inside"):
        signals.bandpass(np.ones(100), 6.0, 0.6, 3.3, 1)


def test_next_pow2():
    assert [signals.next_pow2(n) for n in (0, 1, 2, 3, 160, 180, 300, 900, 1800)] == [
        1, 1, 2, 4, 256, 256, 512, 1024, 2048,
    ]


def test_spectral_peak_rate_is_quantised_to_the_zero_padded_bins():
    # docs/evaluation.md (reference code): N = 900 at 30 fps -> bins of 1.7578125 bpm, 72 bpm reads 72.0703125
    t = np.arange(900) / FS
    freqs, power = signals.periodogram(np.sin(2 * np.pi * 1.2 * t), FS, signals.next_pow2(900))
    assert freqs[1] * 60 == 1.7578125
    assert signals.spectral_peak_rate(freqs, power, 0.6, 3.3) == 72.0703125


def test_spectral_peak_rate_first_bin_wins_ties_and_band_is_inclusive():
    freqs = np.array([0.5, 0.6, 1.0, 3.3, 3.4])
    power = np.array([[9.0, 1.0, 2.0, 2.0, 9.0], [0.0, 5.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 5.0, 0.0]])
    np.testing.assert_array_equal(signals.spectral_peak_rate(freqs, power, 0.6, 3.3), [60.0, 36.0, 198.0])
    with pytest.raises(signals.SignalError, match="no spectral bin"):
        signals.spectral_peak_rate(freqs, power, 3.5, 4.0)


def test_welch_half_bin_spacing():
    # docs/evaluation.md: MMRPhys Welch at N=1800, 30 fps -> 2.0 bpm bins; N=300 -> 0.2 Hz
    for n, spacing in [(1800, 2.0 / 60), (300, 0.2)]:
        freqs, _ = signals.welch_half(np.random.default_rng(0).normal(size=n), FS)
        assert freqs[1] == pytest.approx(spacing)


def test_peak_rate_counts_every_local_maximum_without_constraints():
    t = np.arange(900) / FS
    ripple = np.sin(2 * np.pi * 1.2 * t) + 0.3 * np.sin(2 * np.pi * 3.0 * t + 1)
    unconstrained = signals.peak_rate(ripple, FS)
    constrained = signals.peak_rate(ripple, FS, min_distance=9, min_prominence=0.5 * ripple.std())
    assert unconstrained > 100
    assert constrained == pytest.approx(72.0, abs=0.5)
    peaks, _ = scipy.signal.find_peaks(ripple)
    assert unconstrained == pytest.approx(60 * FS / np.mean(np.diff(peaks)))


def test_peak_rate_is_nan_with_fewer_than_two_peaks():
    rates = signals.peak_rate(np.stack([np.linspace(0, 1, 50), np.sin(np.linspace(0, 20, 50))]), FS)
    assert np.isnan(rates[0]) and np.isfinite(rates[1])


def test_circular_xcorr_equals_pearson_of_rolled_label():
    rng = np.random.default_rng(1)
    pred, label = rng.normal(size=(2, 3, 64))
    got = signals.circular_xcorr(pred, label)
    for row in range(3):
        expected = [np.corrcoef(pred[row], np.roll(label[row], k))[0, 1] for k in range(64)]
        np.testing.assert_allclose(got[row], expected, atol=1e-12)


def test_max_cross_correlation_reference_and_signed():
    rng = np.random.default_rng(2)
    pred, label = rng.normal(size=(2, 80))
    expected = max(abs(np.corrcoef(pred, np.roll(label, k))[0, 1]) for k in range(79))
    assert signals.max_cross_correlation(pred, label) == pytest.approx(expected, abs=1e-12)
    t = np.arange(300) / FS
    wave = np.sin(2 * np.pi * 1.2 * t)
    assert signals.max_cross_correlation(-wave, wave) == pytest.approx(1.0)
    assert signals.max_cross_correlation(-wave, wave, max_lag=4, signed=True) < 0
    shifted = np.roll(wave, -3)
    assert signals.max_cross_correlation(shifted, wave, max_lag=4, signed=True) == pytest.approx(1.0)
    assert np.isnan(signals.max_cross_correlation(np.ones(80), label))


def test_harmonic_snr_windows_and_empty_remainder():
    freqs = np.arange(33) * 0.125  # exact bins, 0-4 Hz
    power = np.ones(33)
    signal_power, noise_power = signals.harmonic_powers(freqs, power, 60.0, 0.6, 3.3, 0.125)
    # signal: 0.875-1.125 and 1.875-2.125 Hz, edges included (6 bins); noise: the
    # other 16 of the 22 bins in 0.625-3.25 Hz
    assert (signal_power, noise_power) == (6.0, 16.0)
    assert signals.snr_db(signal_power, noise_power) == pytest.approx(10 * np.log10(6 / 16))
    assert signals.snr_db(np.float64(1.0), np.float64(0.0)) == 0.0
    assert np.isnan(signals.snr_db(np.float64(1.0), np.float64(0.0), no_noise=np.nan))
    squared = signals.harmonic_powers(freqs, 2 * power, 60.0, 0.6, 3.3, 0.125, squared=True)
    assert squared == (24.0, 64.0)


def test_zscore_population_std():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(signals.zscore(x), (x - 2.5) / np.std(x))
    assert np.isnan(signals.zscore(np.ones(4))).all()
