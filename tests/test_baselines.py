"""The unsupervised baselines: the toolbox profile against a literal transcription of the
reference (`tests/reference_baselines.py`, after docs/baselines.md) and the reference's numbers, each documented defect in
that profile and its absence in the default profile, the errors, and pulse recovery
from a rendered video."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrphys import signals
from mmrphys.baselines import (
    METHODS,
    BaselineError,
    ClipTooShortError,
    UnknownMethodError,
    chrom,
    extract,
    extract_from_means,
    ica,
    output_length,
    pos,
    spatial_mean,
    window_length,
)
from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import SKIN_PULSATILITY, render
from mmrphys.errors import UserError
from mmrphys.metrics import waveform_rates
from tests import reference_baselines as ref

TOOLBOX = "rppg-toolbox"
#: (fs, T) of the comparison signals: the reference's frame rates and lengths 97-601
CASES = [(20, 97), (24, 288), (25, 250), (30, 450), (30, 601), (35, 300), (24, 150), (20, 400), (35, 601)]
SKIN = np.array([180.0, 130.0, 100.0])


def rule_means(fs: float, n: int, seed: int, hr: float = 72.0) -> tuple[np.ndarray, np.ndarray]:
    """RGB means (n, 3) of skin whose blood volume `pulse` darkens it (green most), under a
    slow common illumination change, independent per-channel wander and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    phase = 2 * np.pi * np.cumsum(hr / 60 * (1 + 0.03 * np.sin(2 * np.pi * 0.1 * t))) / fs
    pulse = np.sin(phase) + 0.3 * np.sin(2 * phase + 0.5)
    light = 1 + 0.02 * np.sin(2 * np.pi * 0.07 * t + seed)
    kernel = np.ones(min(int(fs), n)) / min(int(fs), n)
    wander = np.stack([np.convolve(rng.standard_normal(n), kernel, "same") for _ in range(3)], axis=1)
    wander *= 0.3 / wander.std(axis=0)
    skin = SKIN * light[:, None] * (1 - 0.005 * SKIN_PULSATILITY * pulse[:, None])
    return skin + wander + 0.1 * rng.standard_normal((n, 3)), pulse


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def corr(a: np.ndarray, b: np.ndarray, fs: float) -> float:
    """Pearson r of two waveforms within the pulse band (drift in unfiltered methods aside)."""
    a, b = (signals.bandpass(x, fs, 0.6, 3.3, 2, form="sos") for x in (a, b[: len(a)]))
    return float(np.corrcoef(a, b)[0, 1])


def default_form(raw: np.ndarray, sign: float) -> np.ndarray:
    return sign * (raw - raw.mean())


# --- shared steps: the reference's numbers ----------------------------------------------------

@pytest.mark.parametrize(
    "fs, frames", [(25, 40), (29.97, 48), (30, 48), (35, 56), (24, 39), (20, 32), (15, 24), (60, 96)]
)
def test_window_length_table(fs, frames):
    assert window_length(fs) == frames


def test_window_length_is_exact_ceiling_for_integer_rates():
    assert all(window_length(fs) == -(-8 * fs // 5) for fs in range(1, 1001))


def test_chrom_window_is_made_even():
    assert chrom.chrom_window(24) == 40 and chrom.chrom_window(30) == 48 and chrom.chrom_window(25) == 40


def test_filter_coefficients_at_30_fps():
    b, a = signals.butter_bandpass(30.0, *pos.BAND, pos.ORDER)
    np.testing.assert_allclose(b, [0.1935996, 0, -0.1935996], atol=5e-8)
    np.testing.assert_allclose(a, [1, -1.5323732, 0.6128008], atol=5e-8)
    assert chrom.BAND == ica.BAND and chrom.ORDER == ica.ORDER
    b, a = signals.butter_bandpass(30.0, *chrom.BAND, chrom.ORDER)
    np.testing.assert_allclose(b, [0.0047505, 0, -0.0142516, 0, 0.0142516, 0, -0.0047505], atol=5e-8)
    np.testing.assert_allclose(
        a, [1, -5.0474607, 10.8059392, -12.5687736, 8.3816252, -3.0393275, 0.4683121], atol=5e-8
    )


def test_spatial_mean_toolbox_is_float32_and_exact_for_integer_crops():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(20, 72, 72, 3), dtype=np.uint8)
    means = spatial_mean(frames, TOOLBOX)
    assert means.dtype == np.float32
    assert np.array_equal(means, ref.spatial_mean(frames))
    # integer partial sums below 2^24 are exact: the float32 mean is the correctly rounded mean
    assert np.array_equal(means, frames.mean(axis=(1, 2), dtype=np.float64).astype(np.float32))
    default = spatial_mean(frames)
    assert default.dtype == np.float64
    np.testing.assert_allclose(default, frames.astype(np.float64).mean(axis=(1, 2)), rtol=1e-14)


def test_spatial_mean_toolbox_accumulates_like_the_toolbox_for_fractional_pixels():
    frames = np.random.default_rng(1).uniform(0, 255, size=(300, 40, 30, 3)).astype(np.float32)
    means = spatial_mean(frames, TOOLBOX)
    assert np.array_equal(means, ref.spatial_mean(frames))
    assert not np.array_equal(means, frames.mean(axis=(1, 2), dtype=np.float64).astype(np.float32))


# --- the toolbox profile against the transcription ---------------------------------------

def _reference(method: str, means: np.ndarray, fs: float) -> np.ndarray:
    return {
        "pos": lambda: ref.pos(means, fs),
        "chrom": lambda: ref.chrom(means, fs),
        "ica": lambda: ref.ica(means, fs),
        "green": lambda: ref.green(means),
        "lgi": lambda: ref.lgi(means),
        "pbv": lambda: ref.pbv(means),
        "omit": lambda: ref.omit(means),
    }[method]()


@pytest.fixture(scope="module")
def case_means():
    return {case: rule_means(*case, seed=i)[0] for i, case in enumerate(CASES)}


_TOOLBOX_REFERENCES: dict[tuple[str, tuple[int, int]], np.ndarray] = {}


def toolbox_reference(method: str, case: tuple[int, int], means: np.ndarray) -> np.ndarray:
    """The transcription's output for a comparison case, computed once (it is slow)."""
    if (method, case) not in _TOOLBOX_REFERENCES:
        _TOOLBOX_REFERENCES[method, case] = _reference(method, means, case[0])
    return _TOOLBOX_REFERENCES[method, case]


@pytest.mark.parametrize("method", METHODS)
def test_toolbox_profile_matches_transcription(method, case_means):
    for (fs, n), means in case_means.items():
        expected = toolbox_reference(method, (fs, n), means)
        got = extract_from_means(method, means, fs, profile=TOOLBOX)
        assert got.shape == expected.shape == (output_length(method, n, fs, profile=TOOLBOX),)
        assert got.dtype == np.float64
        assert rel_err(got, expected) <= 1e-9, (method, fs, n)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "pbv"])
def test_toolbox_profile_follows_float32_means(method, case_means):
    """The toolbox's float32 driver: the same arithmetic on float32 means (PBV: below)."""
    for (fs, n), means in case_means.items():
        means32 = means.astype(np.float32)
        expected = _reference(method, means32, fs)
        got = extract_from_means(method, means32, fs, profile=TOOLBOX)
        assert got.dtype == expected.dtype == (np.float32 if method == "green" else np.float64)
        assert rel_err(got, expected) <= 1e-9, (method, fs, n)
        if method != "green":
            # the float32 means move the output by ~1e-5 (LGI, OMIT: their float32 SVD/QR too)
            assert 1e-8 < rel_err(got, toolbox_reference(method, (fs, n), means)) < 1e-3


def test_toolbox_frames_path_is_float32_means_then_method():
    rng = np.random.default_rng(2)
    frames = np.clip(rng.normal(128, 20, size=(120, 12, 16, 3)), 0, 255).astype(np.uint8)
    for method in METHODS:
        expected = _reference(method, ref.spatial_mean(frames), 30.0)
        got = extract(method, frames, 30.0, profile=TOOLBOX)
        if method == "pbv":  # float32 throughout: compared to float32 rounding
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3 * np.abs(expected).max())
        else:
            assert rel_err(got, expected) <= 1e-9, method


# --- the default profile against the transcription of docs/baselines.md ------------------

def _default_reference(method: str, means: np.ndarray, fs: float) -> np.ndarray:
    return {
        "pos": lambda: ref.pos(means, fs, paper_loop=True, guards=True),
        "chrom": lambda: ref.chrom_default(means, fs),
        "ica": lambda: ref.ica(means, fs, band_limited=True),
        "green": lambda: default_form(ref.green(means), -1),
        "lgi": lambda: default_form(ref.lgi(means), -1),
        "pbv": lambda: default_form(ref.pbv(means, centred=True), -1),
        "omit": lambda: default_form(ref.omit(means, first_frame=False), -1),
    }[method]()


@pytest.mark.parametrize("method", METHODS)
def test_default_profile_matches_its_transcription(method, case_means):
    for (fs, n), means in case_means.items():
        got = extract_from_means(method, means, fs)
        assert got.shape == (n,) and got.dtype == np.float64
        assert rel_err(got, _default_reference(method, means, fs)) <= 1e-9, (method, fs, n)
        # the default computes in float64 whatever the means' dtype
        assert np.array_equal(extract_from_means(method, means.astype(np.float32), fs),
                              extract_from_means(method, means.astype(np.float32).astype(np.float64), fs))


@pytest.mark.parametrize("method", METHODS)
def test_default_profile_rises_with_blood_volume(method, case_means):
    for (fs, n), means in case_means.items():
        _, pulse = rule_means(fs, n, CASES.index((fs, n)))
        got = extract_from_means(method, means, fs)
        assert abs(got.mean()) < 1e-9 * np.abs(got).max()
        assert corr(got, pulse, fs) > 0.5, (method, fs, n)


def test_toolbox_signs_differ_between_methods(case_means):
    means, (fs, n) = case_means[(30, 450)], (30, 450)
    _, pulse = rule_means(fs, n, CASES.index((fs, n)))
    # POS follows the brightness (against blood volume), CHROM the opposite
    assert corr(extract_from_means("pos", means, fs, profile=TOOLBOX), pulse, fs) < -0.5
    assert corr(extract_from_means("chrom", means, fs, profile=TOOLBOX), pulse, fs) > 0.5


# --- documented defects: present in the toolbox profile, absent in the default ------------

def test_pos_never_uses_the_last_frame_in_the_toolbox_profile():
    means, _ = rule_means(30, 300, 3)
    changed = means.copy()
    changed[-1] *= 0.5
    assert np.array_equal(extract_from_means("pos", means, 30, profile=TOOLBOX),
                          extract_from_means("pos", changed, 30, profile=TOOLBOX))
    assert not np.allclose(extract_from_means("pos", means, 30), extract_from_means("pos", changed, 30))


def test_pos_short_clip_is_silently_zero_in_the_toolbox_profile_and_an_error_by_default():
    means, _ = rule_means(30, 48, 0)
    assert np.array_equal(extract_from_means("pos", means, 30, profile=TOOLBOX), np.zeros(48))
    assert np.abs(extract_from_means("pos", means, 30)).max() > 0  # one full window
    with pytest.raises(ClipTooShortError, match="POS needs at least 48 frames"):
        extract_from_means("pos", means[:47], 30)


def test_pos_one_black_window_makes_everything_nan_in_the_toolbox_profile():
    means, pulse = rule_means(30, 600, 4)
    means[300:350] = 0.0
    assert np.isnan(extract_from_means("pos", means, 30, profile=TOOLBOX)).all()
    safe = extract_from_means("pos", means, 30)
    assert np.isfinite(safe).all()
    assert corr(safe[:250], pulse[:250], 30) > 0.8


@pytest.mark.parametrize("fs, n, expected", [(30, 450, 432), (24, 288, 280), (30, 40, 24), (30, 22, 0)])
def test_chrom_drops_the_tail_in_the_toolbox_profile(fs, n, expected):
    means, _ = rule_means(fs, n, 0)
    got = extract_from_means("chrom", means, fs, profile=TOOLBOX)
    assert len(got) == expected == output_length("chrom", n, fs, profile=TOOLBOX)
    if n < 2 * chrom.chrom_window(fs):
        assert not got.any()  # under two windows' worth: zeros, or nothing
    else:
        assert got[0] == 0 and got[-1] == 0  # the symmetric Hann's end points
    assert output_length("chrom", n, fs) == n


def test_chrom_default_covers_every_frame():
    means, pulse = rule_means(30, 450, 5)
    got = extract_from_means("chrom", means, 30)
    assert len(got) == 450
    assert corr(got[420:], pulse[420:], 30) > 0.8  # the tail the toolbox drops carries the pulse
    with pytest.raises(ClipTooShortError, match="CHROM needs at least 48 frames"):
        extract_from_means("chrom", means[:47], 30)


def test_ica_toolbox_selection_picks_an_out_of_band_artefact():
    fs, n = 30, 600
    t = np.arange(n) / fs
    for seed in range(3):
        means, pulse = rule_means(fs, n, seed)
        means += 0.5 * np.sin(2 * np.pi * 4.0 * t)[:, None] * np.array([1.0, -0.5, 0.8])
        assert abs(corr(extract_from_means("ica", means, fs, profile=TOOLBOX), pulse, fs)) < 0.3
        assert corr(extract_from_means("ica", means, fs), pulse, fs) > 0.9


def test_pbv_float32_solve_moves_the_output_by_percent():
    for (fs, n), seed in [((30, 450), 3), ((24, 288), 1)]:
        means, _ = rule_means(fs, n, seed)
        exact = extract_from_means("pbv", means, fs, profile=TOOLBOX)
        driver = extract_from_means("pbv", means.astype(np.float32), fs, profile=TOOLBOX)
        assert driver.dtype == np.float32
        assert rel_err(driver, exact) > 0.01
        # the default solves a centred, well-conditioned system in float64 either way
        assert rel_err(extract_from_means("pbv", means.astype(np.float32), fs),
                       extract_from_means("pbv", means.astype(np.float32).astype(np.float64), fs)) == 0


def test_omit_toolbox_projection_is_the_first_frames_colour():
    means, _ = rule_means(30, 300, 6)
    got = extract_from_means("omit", means, 30, profile=TOOLBOX)
    s = means[0] / np.linalg.norm(means[0])
    assert rel_err(got, means[:, 1] - s[1] * (means @ s)) < 1e-12
    # one first frame of another colour sets the projection, and here the sign, of the
    # whole clip; the default's mean colour barely moves (frame 0 itself is left out)
    _, pulse = rule_means(30, 300, 6)
    tinted = means.copy()
    tinted[0] = [60.0, 180.0, 60.0]
    r = {
        (profile, name): corr(extract_from_means("omit", m, 30, profile=profile)[1:], pulse[1:], 30)
        for profile in ("default", TOOLBOX)
        for name, m in (("plain", means), ("tinted", tinted))
    }
    assert r[TOOLBOX, "plain"] < -0.5 and r[TOOLBOX, "tinted"] > 0.5
    assert abs(r["default", "tinted"] - r["default", "plain"]) < 0.02


# --- degenerate input (outcomes at fs = 30) ---------------------------------------------

def _degenerate(kind: str) -> np.ndarray:
    means, _ = rule_means(30, 300, 7)
    if kind == "constant":
        return np.full((300, 3), 128.0)
    if kind == "zero channel":
        means[:, 2] = 0.0
    if kind == "black frames":
        means[100:150] = 0.0
    if kind == "grey":
        means[:, [0, 2]] = means[:, [1]]
    return means


#: outcome per method: "nan" (all NaN), "finite", "zero" (all ~0), "zero-or-nan" (each
#: sample) or "error"
TOOLBOX_OUTCOMES = {
    "constant": {"ica": "error", "pos": "nan", "chrom": "zero-or-nan", "green": "finite",
                 "lgi": "zero", "pbv": "error", "omit": "zero"},
    "zero channel": {"ica": "error", "pos": "nan", "chrom": "nan", "green": "finite",
                     "lgi": "finite", "pbv": "nan", "omit": "finite"},
    "black frames": {"ica": "finite", "pos": "nan", "chrom": "finite", "green": "finite",
                     "lgi": "finite", "pbv": "finite", "omit": "finite"},
}


@pytest.mark.parametrize("kind", list(TOOLBOX_OUTCOMES))
def test_degenerate_input_toolbox_outcomes(kind):
    means = _degenerate(kind)
    assert set(TOOLBOX_OUTCOMES[kind]) == set(METHODS)
    for method, outcome in TOOLBOX_OUTCOMES[kind].items():
        if outcome == "error":
            with pytest.raises(BaselineError):
                extract_from_means(method, means, 30, profile=TOOLBOX)
            continue
        got = extract_from_means(method, means, 30, profile=TOOLBOX)
        if outcome == "nan":
            assert np.isnan(got).all(), method
        elif outcome == "zero-or-nan":
            assert np.all(np.isnan(got) | (np.abs(got) < 1e-9)), method
        elif outcome == "zero":
            assert np.abs(got).max() < 1e-9 * 128, method
        else:
            assert np.isfinite(got).all(), method
    if kind == "constant":
        assert np.array_equal(extract_from_means("green", means, 30, profile=TOOLBOX), means[:, 1])


@pytest.mark.parametrize("kind", [*TOOLBOX_OUTCOMES, "grey"])
def test_degenerate_input_default_is_finite(kind):
    means = _degenerate(kind)
    _, pulse = rule_means(30, 300, 7)
    for method in METHODS:
        got = extract_from_means(method, means, 30)
        assert got.shape == (300,) and np.isfinite(got).all(), method
        if kind == "constant":
            assert np.abs(got).max() < 1e-9, method
    # the methods that can work without the missing colour information still find the pulse
    usable = {"zero channel": ("ica", "green", "lgi", "pbv", "omit"), "grey": ("ica", "green", "pbv")}
    for method in usable.get(kind, ()):
        assert corr(extract_from_means(method, means, 30), pulse, 30) > 0.5, (kind, method)


def test_short_clips_toolbox_and_default():
    means, _ = rule_means(30, 40, 0)
    assert np.isfinite(extract_from_means("ica", means[:22], 30, profile=TOOLBOX)).all()
    assert np.array_equal(extract_from_means("pos", means[:22], 30, profile=TOOLBOX), np.zeros(22))
    with pytest.raises(ClipTooShortError, match="ICA needs at least 22 frames"):
        extract_from_means("ica", means[:21], 30, profile=TOOLBOX)
    with pytest.raises(ClipTooShortError, match="POS needs at least 10 frames"):
        extract_from_means("pos", means[:9], 30, profile=TOOLBOX)
    for method in ("green", "lgi", "pbv", "omit"):
        assert extract_from_means(method, means[:5], 30).shape == (5,)


# --- errors ------------------------------------------------------------------------------

def test_unknown_method_lists_the_names():
    with pytest.raises(UnknownMethodError, match="choose one of") as info:
        extract_from_means("fastica", np.ones((100, 3)), 30)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert all(name in str(info.value) for name in METHODS)
    assert extract_from_means("POS", rule_means(30, 100, 0)[0], 30).shape == (100,)


def test_profiles():
    means = rule_means(30, 100, 0)[0]
    with pytest.raises(BaselineError, match="'mmrphys' defines no unsupervised baselines"):
        extract_from_means("pos", means, 30, profile="mmrphys")
    with pytest.raises(BaselineError, match=r"profile must be one of \['default', 'rppg-toolbox'\]"):
        extract("pos", np.ones((100, 4, 4, 3)), 30, profile="fast")


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.ones((100, 8, 8)), r"shape \(T, H, W, 3\) in RGB order, got shape \(100, 8, 8\)"),
        (np.ones((100, 8, 8, 4)), r"got shape \(100, 8, 8, 4\)"),
        (np.ones((100, 3, 72, 72)), r"got shape \(100, 3, 72, 72\)"),  # channels first
        (np.ones((0, 8, 8, 3)), "at least one frame"),
        (np.ones((100, 8, 8, 3), dtype=bool), "must hold real numbers"),
        (np.ones((100, 8, 8, 3)) * np.where(np.arange(100) == 7, np.nan, 1)[:, None, None, None],
         "NaN or inf in 1 frame.*the first at frame 7"),
        (-np.ones((100, 8, 8, 3)), "non-negative"),
    ],
)
def test_bad_frames(frames, message):
    with pytest.raises(BaselineError, match=message):
        extract("green", frames, 30)


@pytest.mark.parametrize(
    "means, message",
    [(np.ones((100, 4)), r"shape \(T, 3\)"), (np.ones(100), r"shape \(T, 3\)"), (np.full((100, 3), np.inf), "NaN or inf")],
)
def test_bad_means(means, message):
    with pytest.raises(BaselineError, match=message):
        extract_from_means("lgi", means, 30)


@pytest.mark.parametrize("fs", [0, -30, math.nan, math.inf, "30", True, None])
def test_bad_frame_rate(fs):
    with pytest.raises(BaselineError, match="fs must be"):
        extract_from_means("green", np.ones((100, 3)), fs)


def test_frame_rate_too_low_for_the_filters():
    means = rule_means(30, 200, 0)[0]
    with pytest.raises(BaselineError, match=r"CHROM .* fs=12.5 is too low"):
        extract_from_means("chrom", means, 12.5, profile=TOOLBOX)
    assert extract_from_means("chrom", means, 13.0, profile=TOOLBOX).size
    with pytest.raises(BaselineError, match=r"POS band-passes up to 3.0 Hz, which needs fs > 6.0 Hz"):
        extract_from_means("pos", means, 6.0)
    with pytest.raises(BaselineError, match=r"ICA band-passes up to 2.5 Hz"):
        extract_from_means("ica", means, 5.0)


# --- a rendered video with a known pulse -------------------------------------------------

@pytest.fixture(scope="module")
def video():
    config = SyntheticConfig(width=64, height=48, motion_episodes_per_minute=0.0, illumination_drift=0.0)
    recording = render(1, 600, 30.0, config)
    x, y, w, h = recording.face_boxes[0]
    return recording.rgb[:, y : y + h, x : x + w], recording.bvp


@pytest.mark.parametrize("profile", ["default", TOOLBOX])
@pytest.mark.parametrize("method", ["pos", "chrom"])
def test_pos_and_chrom_recover_the_heart_rate_of_a_video(video, method, profile):
    crops, bvp = video
    wave = extract(method, crops, 30.0, profile=profile)
    for eval_profile in ("default", TOOLBOX):
        label = waveform_rates(bvp, 30.0, profile=eval_profile)
        assert abs(waveform_rates(wave, 30.0, profile=eval_profile) - label) < 3.0


def test_every_default_method_follows_the_video_pulse(video):
    crops, bvp = video
    label = waveform_rates(bvp, 30.0)
    for method in METHODS:
        wave = extract(method, crops, 30.0)
        assert wave.shape == (len(crops),)
        assert corr(wave, bvp, 30.0) > 0.4, method
        assert abs(waveform_rates(wave, 30.0) - label) < 3.0, method
