"""Per-window scoring under the three profiles: reference profiles against an independent
transcription of the reference code (docs/evaluation.md) and its closed-form numbers; the default profile's fixes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference_spec
from mmrphys.metrics import SignalError, WindowTooShortError, window_rates
from mmrphys.metrics.window import _integrate
from mmrphys.profiles import PROFILES

FS = 30.0


def pulse(seconds: float, bpm: float, fs: float = FS, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return np.sin(2 * np.pi * bpm / 60 * t + phase)


def breathing(seconds: float, brpm: float, fs: float = FS) -> np.ndarray:
    """A breathing-like wave: fundamental plus a 2nd harmonic (asymmetric in/out breath)."""
    t = np.arange(int(round(seconds * fs))) / fs
    f = brpm / 60
    return np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t + 0.5)


def noisy_pair(n: int, task: str, fs: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    f = rng.uniform(1.0, 1.8) if task == "bvp" else rng.uniform(0.15, 0.4)
    label = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t + 1) + 0.05 * t
    pred = 0.7 * np.roll(label, 3) + rng.normal(scale=0.6, size=n) + 0.3 * np.sin(2 * np.pi * 0.05 * t)
    return pred.astype(np.float32), label.astype(np.float32)


def diff_normalise(x: np.ndarray) -> np.ndarray:
    d = np.diff(x)
    return np.append(d / np.std(d), 0.0)


@pytest.mark.parametrize("profile", ["rppg-toolbox", "mmrphys"])
@pytest.mark.parametrize("task", ["bvp", "rsp"])
@pytest.mark.parametrize("method", ["fft", "peak"])
@pytest.mark.parametrize("diff", [False, True])
@pytest.mark.parametrize("n,fs", [(160, 30.0), (300, 30.0), (400, 25.0)])
def test_reference_profiles_match_the_spec_transcription(profile, task, method, diff, n, fs):
    check_against_transcription(profile, task, method, diff, n, fs)


@pytest.mark.parametrize(
    "profile,task,method,diff",
    [("mmrphys", t, m, d) for t in ("bvp", "rsp") for m in ("fft", "peak") for d in (False, True)]
    + [("rppg-toolbox", "bvp", "fft", True), ("rppg-toolbox", "rsp", "fft", False)],
)
def test_reference_profiles_match_the_spec_transcription_on_long_windows(profile, task, method, diff):
    # above 30 s MMRPhys switches to Welch; the dense-inverse detrend keeps the Toolbox cases few
    check_against_transcription(profile, task, method, diff, 1000, 30.0)


def check_against_transcription(profile, task, method, diff, n, fs):
    pred, label = noisy_pair(n, task, fs, seed=n + int(diff))
    if diff:
        pred, label = diff_normalise(pred).astype(np.float32), diff_normalise(label).astype(np.float32)
    expected = reference_spec.per_window(pred, label, fs, profile, task, diff, method)
    got = window_rates(pred, label, fs, task=task, method=method, profile=profile, label_diff=diff)
    assert got.profile == profile
    np.testing.assert_allclose(
        [got.rate_label, got.rate_pred, got.snr], expected[:3], rtol=1e-6, atol=1e-6, equal_nan=True
    )
    if expected[3] is None:
        assert got.macc is None
    else:
        assert got.macc == pytest.approx(expected[3], abs=1e-6)


def test_float32_integration_matches_torch():
    x = np.random.default_rng(3).normal(size=(2, 5000)).astype(np.float32)
    expected = torch.cumsum(torch.from_numpy(x), dim=-1).numpy().astype(np.float64)
    np.testing.assert_array_equal(_integrate(x, float32=True), expected)


def test_clean_72_bpm_sinusoid_spec_numbers():
    # docs/evaluation.md (reference code): 72 bpm over 30 s reads 72.0703125; SNR 14.2 dB (Toolbox)
    # vs 132.7 dB (MMRPhys's squared PSD)
    wave = pulse(30, 72, phase=0.6)
    toolbox = window_rates(wave, wave, FS, profile="rppg-toolbox")
    mmrphys = window_rates(wave, wave, FS, profile="mmrphys")
    assert toolbox.rate_pred == toolbox.rate_label == 72.0703125
    assert mmrphys.rate_pred == 72.0703125
    assert round(toolbox.snr, 1) == 14.2
    assert round(mmrphys.snr, 1) == 132.7
    default = window_rates(wave, wave, FS)
    assert default.rate_pred == pytest.approx(72.0, abs=0.25)


def test_mmrphys_snr_of_a_good_10s_window_is_near_zero():
    # docs/evaluation.md bug 4: Welch bins of 0.2 Hz are coarser than the +-0.1 Hz windows
    wave = pulse(10, 90, phase=0.8)
    assert abs(window_rates(wave, wave, FS, profile="mmrphys").snr) < 0.05
    assert window_rates(wave, wave, FS, profile="rppg-toolbox").snr > 5


def test_mmrphys_rate_switches_to_coarse_welch_above_30s():
    # docs/evaluation.md (reference code): at N = 1800 the MMRPhys rate bins are 2.0 bpm, the Toolbox's 0.879
    wave = pulse(60, 73.3)
    mmrphys = window_rates(wave, wave, FS, profile="mmrphys").rate_pred
    toolbox = window_rates(wave, wave, FS, profile="rppg-toolbox").rate_pred
    assert mmrphys / 2.0 == pytest.approx(round(mmrphys / 2.0))
    assert toolbox / (60 * FS / 2048) == pytest.approx(round(toolbox / (60 * FS / 2048)))
    assert mmrphys == 74.0 and abs(toolbox - 73.3) < 0.44


def test_toolbox_rsp_detrend_reads_12_brpm_as_its_harmonic():
    # docs/evaluation.md bug 3: the lambda=100 detrend erases 0.2 Hz at 30 fps -> 24.6 brpm
    wave = breathing(30, 12)
    assert window_rates(wave, wave, FS, task="rsp", profile="rppg-toolbox").rate_pred == 24.609375
    assert window_rates(wave, wave, FS, task="rsp", profile="mmrphys").rate_pred == pytest.approx(12.3, abs=0.01)
    assert window_rates(wave, wave, FS, task="rsp").rate_pred == pytest.approx(12.0, abs=0.25)


@pytest.mark.parametrize("brpm", [5.5, 6.0, 38.0])
def test_default_breathing_band_covers_slow_and_fast_breathing(brpm):
    wave = breathing(60, brpm)
    assert window_rates(wave, wave, FS, task="rsp").rate_label == pytest.approx(brpm, abs=0.3)
    reference = window_rates(wave, wave, FS, task="rsp", profile="mmrphys").rate_label
    assert 7.8 <= reference <= 30.0  # the references' band cannot report it


@pytest.mark.parametrize("bpm", [40.0, 45.0, 150.0, 190.0])
def test_pulse_rates_near_the_band_edges(bpm):
    wave = pulse(30, bpm)
    for profile in PROFILES:
        assert window_rates(wave, wave, FS, profile=profile).rate_label == pytest.approx(bpm, abs=1.0)


def test_outside_the_band_reads_the_edge():
    wave = pulse(30, 30)  # 0.5 Hz, below 0.6 Hz
    assert window_rates(wave, wave, FS, profile="rppg-toolbox").rate_label == pytest.approx(36.0, abs=1.8)


def test_diff_normalised_labels_are_integrated():
    wave = pulse(30, 84) + 0.3 * pulse(30, 168, phase=1)
    diffed = diff_normalise(wave)
    for profile in PROFILES:
        assert window_rates(diffed, diffed, FS, profile=profile, label_diff=True).rate_label == pytest.approx(84, abs=1.8)
    # without integration the harmonic content differs but the fundamental still wins here
    plain = window_rates(wave, wave, FS, label_diff=False).rate_label
    assert plain == pytest.approx(84, abs=0.25)


def test_chirp_windows_follow_the_instantaneous_rate():
    t = np.arange(int(120 * FS)) / FS
    f0, f1 = 1.0, 2.0  # 60 -> 120 bpm over 120 s
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * 120) * t**2))
    rates = window_rates(chirp.reshape(12, -1), chirp.reshape(12, -1), FS).rate_label
    centres = 60 * (f0 + (f1 - f0) * (np.arange(12) * 10 + 5) / 120)
    assert np.all(np.diff(rates) > 0)
    np.testing.assert_allclose(rates, centres, atol=1.5)


def test_default_peak_detection_ignores_in_band_ripple():
    # docs/evaluation.md bug 6: unconstrained find_peaks counts ripple as beats
    wave = pulse(30, 72) + 0.5 * pulse(30, 180, phase=1)
    label = pulse(30, 72)
    for profile in ("rppg-toolbox", "mmrphys"):
        assert window_rates(wave, label, FS, method="peak", profile=profile).rate_pred > 100
    assert window_rates(wave, label, FS, method="peak").rate_pred == pytest.approx(72, abs=0.5)


def test_default_macc_penalises_an_inverted_prediction():
    # docs/evaluation.md bug 7: |r| scores an inverted waveform as perfect
    wave = pulse(30, 72)
    assert window_rates(-wave, wave, FS, profile="mmrphys").macc == pytest.approx(1.0, abs=1e-9)
    assert window_rates(-wave, wave, FS).macc < 0
    delayed = np.roll(wave, 3)  # 0.1 s sensor delay
    assert window_rates(delayed, wave, FS).macc > 0.99


def test_toolbox_rsp_has_no_macc():
    wave = breathing(30, 15)
    assert window_rates(wave, wave, FS, task="rsp", profile="rppg-toolbox").macc is None


def test_stacked_windows_equal_single_windows():
    pred = np.stack([noisy_pair(300, "bvp", FS, seed=s)[0] for s in range(3)])
    label = np.stack([noisy_pair(300, "bvp", FS, seed=s)[1] for s in range(3)])
    for profile in PROFILES:
        batch = window_rates(pred, label, FS, profile=profile)
        for i in range(3):
            one = window_rates(pred[i], label[i], FS, profile=profile)
            assert (one.rate_pred, one.rate_label) == (batch.rate_pred[i], batch.rate_label[i])
            assert one.snr == pytest.approx(batch.snr[i], abs=1e-9)
            assert one.macc == pytest.approx(batch.macc[i], abs=1e-9)


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_samples_are_rejected_with_their_index(bad):
    wave = pulse(10, 72)
    broken = wave.copy()
    broken[17] = bad
    with pytest.raises(SignalError, match=r"prediction: 1 NaN or infinite sample\(s\), first at index \(17,\)"):
        window_rates(broken, wave, FS)
    with pytest.raises(SignalError, match="label: 1 NaN"):
        window_rates(wave, broken, FS, profile="rppg-toolbox")


def test_mismatched_lengths_are_rejected():
    with pytest.raises(SignalError, match=r"prediction shape \(300,\) differs from label shape \(299,\)"):
        window_rates(pulse(10, 72), pulse(10, 72)[:-1], FS)


@pytest.mark.parametrize("fs", [5.0, 0.0, -30.0, math.nan, math.inf, 5000.0, "thirty"])
def test_out_of_range_fs_is_rejected(fs):
    with pytest.raises(SignalError, match="fs"):
        window_rates(pulse(10, 72), pulse(10, 72), fs)


def test_rsp_needs_a_higher_fs_for_the_mmrphys_snr_band():
    wave = np.sin(np.arange(300))
    window_rates(wave, wave, 1.2, task="rsp", profile="rppg-toolbox")  # 1.2 > 2 x 0.5 Hz
    with pytest.raises(SignalError, match="above 1.08 Hz"):
        window_rates(wave, wave, 1.05, task="rsp", profile="mmrphys")


@pytest.mark.parametrize("profile,order_need", [("rppg-toolbox", 10), ("mmrphys", 16)])
def test_window_too_short_for_the_filter_is_a_clear_error(profile, order_need):
    wave = pulse(1, 72)[:order_need]
    window_rates(wave, wave, FS, profile=profile)
    with pytest.raises(WindowTooShortError, match=f"{order_need - 1} samples .* at least {order_need}"):
        window_rates(wave[:-1], wave[:-1], FS, profile=profile)


def test_default_needs_one_period_of_the_lowest_rate():
    wave = breathing(11.9, 12)
    with pytest.raises(WindowTooShortError, match="at least 360 samples"):
        window_rates(wave, wave, FS, task="rsp")


def test_constant_label_is_rejected():
    with pytest.raises(SignalError, match="label is constant"):
        window_rates(pulse(10, 72), np.full(300, 3.0), FS)


def test_constant_prediction_is_flagged():
    label = pulse(10, 72)
    default = window_rates(np.zeros(300), label, FS)
    assert math.isnan(default.rate_pred) and math.isnan(default.snr) and math.isnan(default.macc)
    assert default.flags == ("constant_prediction",)
    toolbox = window_rates(np.zeros(300), label, FS, profile="rppg-toolbox")
    # the reference reads the first in-band bin and an SNR of 0: a number, so it is flagged
    assert toolbox.rate_pred == pytest.approx(36.0, abs=3.6) and toolbox.snr == 0
    assert "constant_prediction" in toolbox.flags


def test_fewer_than_two_peaks_is_flagged_nan():
    label = pulse(10, 72)
    flat_ramp = np.linspace(0, 1, 300) ** 3
    result = window_rates(flat_ramp, label, FS, method="peak", bandpass=False)
    assert math.isnan(result.rate_pred)
    assert "prediction_has_fewer_than_2_peaks" in result.flags
    no_label_rate = window_rates(label, flat_ramp, FS, method="peak", bandpass=False)
    assert math.isnan(no_label_rate.rate_label) and math.isnan(no_label_rate.snr)
    assert "label_has_fewer_than_2_peaks" in no_label_rate.flags
    # the references compare against a NaN rate: no signal bins, so -inf dB
    reference = window_rates(label, flat_ramp, FS, method="peak", bandpass=False, profile="mmrphys")
    assert reference.snr == -math.inf


def test_unknown_profile_task_or_method():
    wave = pulse(10, 72)
    with pytest.raises(ValueError, match="profile must be one of"):
        window_rates(wave, wave, FS, profile="toolbox")
    with pytest.raises(ValueError, match="task must be one of"):
        window_rates(wave, wave, FS, task="hr")
    with pytest.raises(ValueError, match="method must be one of"):
        window_rates(wave, wave, FS, method="welch")
