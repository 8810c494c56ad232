"""Each nuisance of the synthetic presets, measured in the generated video (or its labels
and boxes where those are what the nuisance changes), and determinism per seed."""

from __future__ import annotations

import numpy as np
import pytest

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import generate_dataset, render
from mmrphys.data.synthetic.face import FACE_WIDTH_MM
from mmrphys.data.synthetic.light import camera_gains, colour_gains
from mmrphys.data.video import read_video

FPS = 30.0
#: every motion and light change off: a still face under steady light
STILL = dict(motion_episodes_per_minute=0.0, illumination_drift=0.0, flicker_amplitude=0.0, breathing_motion_px=0.0)


def quiet(**fields) -> SyntheticConfig:
    """`clean` with nothing moving, plus `fields`."""
    return SyntheticConfig(**{**STILL, **fields})


def _spectrum(x: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    x = x - x.mean()
    return np.fft.rfftfreq(len(x), 1 / fps), np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2


def _peak_hz(x: np.ndarray, fps: float, band: tuple[float, float]) -> float:
    x = x - np.polyval(np.polyfit(np.arange(len(x)), x, 2), np.arange(len(x)))
    freqs = np.fft.rfftfreq(8192, 1 / fps)
    power = np.abs(np.fft.rfft(x - x.mean(), 8192)) ** 2
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return float(freqs[inside][power[inside].argmax()])


def _face_centroid(thermal: np.ndarray) -> np.ndarray:
    """(T, 2) centroid of the warm face in the thermal video, pixels."""
    mask = thermal > 30.0
    ys, xs = np.mgrid[0 : thermal.shape[1], 0 : thermal.shape[2]]
    area = mask.sum(axis=(1, 2))
    return np.stack([(mask * xs).sum(axis=(1, 2)) / area, (mask * ys).sum(axis=(1, 2)) / area], axis=1)


def _roi_mean(video: np.ndarray, boxes: np.ndarray, fx: tuple[float, float], fy: tuple[float, float]) -> np.ndarray:
    """Per-frame mean of a region given in fractions of each frame's face box."""
    out = []
    for frame, (x, y, w, h) in zip(video, boxes):
        x0, x1 = int(x + fx[0] * w), max(int(x + fx[1] * w), int(x + fx[0] * w) + 1)
        y0, y1 = int(y + fy[0] * h), max(int(y + fy[1] * h), int(y + fy[0] * h) + 1)
        out.append(frame[y0:y1, x0:x1].astype(np.float64).mean(axis=(0, 1)))
    return np.array(out)


@pytest.mark.parametrize("preset", ["clean", "realistic", "hard"])
def test_every_preset_is_deterministic_per_seed(preset, tmp_path):
    config = SyntheticConfig.from_preset(preset, ["width=64", "height=48"])
    a, b, c = render(7, 90, FPS, config), render(7, 90, FPS, config), render(8, 90, FPS, config)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.thermal, b.thermal)
    assert np.array_equal(a.face_boxes, b.face_boxes) and np.array_equal(a.bvp, b.bvp)
    assert not np.array_equal(a.rgb, c.rgb)
    # the stored files too, lossy codecs included
    first = generate_dataset(tmp_path / "a", subjects=1, seconds=2.0, seed=3, config=config)[0]
    second = generate_dataset(tmp_path / "b", subjects=1, seconds=2.0, seed=3, config=config)[0]
    for name in ("rgb.avi", "thermal.npy", "labels.csv", "face_boxes.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_turning_one_nuisance_on_leaves_the_other_draws_alone():
    base = render(4, 60, FPS, quiet(width=64, height=48))
    boxed = render(4, 60, FPS, quiet(width=64, height=48, box_jitter=0.05))
    assert np.array_equal(base.rgb, boxed.rgb) and not np.array_equal(base.face_boxes, boxed.face_boxes)
    assert np.array_equal(base.frame_index, np.arange(60))


def test_head_motion_has_the_amplitude_and_spectrum_asked_for():
    fields = dict(width=96, height=72, thermal_noise_c=0.0)
    slow = render(1, 600, FPS, quiet(head_translation_mm=6.0, head_speed_hz=(0.2, 0.2), **fields))
    fast = render(1, 600, FPS, quiet(head_translation_mm=6.0, head_speed_hz=(2.0, 2.0), **fields))
    for recording in (slow, fast):
        centre = _face_centroid(recording.thermal)
        px_per_mm = np.median(recording.face_boxes[:, 2]) / FACE_WIDTH_MM
        rms_mm = (centre - centre.mean(axis=0)).std(axis=0).mean() / px_per_mm
        assert 3.0 < rms_mm < 9.0
    def high_fraction(recording):  # noqa: E306
        freqs, power = _spectrum(_face_centroid(recording.thermal)[:, 0], FPS)
        return power[freqs > 0.5].sum() / power[freqs > 0].sum()
    assert high_fraction(slow) < 0.1 < 0.3 < high_fraction(fast)


def test_roll_and_scale_show_in_the_face_shape():
    recording = render(2, 300, FPS, quiet(width=96, height=72, head_roll_deg=8.0, head_scale=0.05,
                                         head_speed_hz=(0.5, 0.5), thermal_noise_c=0.0))
    mask = recording.thermal > 30.0
    ys, xs = np.mgrid[0:72, 0:96]
    angles, areas = [], mask.sum(axis=(1, 2)).astype(np.float64)
    for m in mask:
        x, y = xs[m] - xs[m].mean(), ys[m] - ys[m].mean()
        # the face ellipse is taller than wide: its long axis is vertical at roll 0
        angles.append(np.degrees(0.5 * np.arctan2(2 * (x * y).mean(), (y * y).mean() - (x * x).mean())))
    assert 4.0 < np.std(angles) < 14.0
    # area goes with scale squared: 5 % rms scale is about 10 % rms area
    assert 0.05 < areas.std() / areas.mean() < 0.2


def test_out_of_plane_rotation_shades_one_cheek_and_hides_the_nostrils():
    fields = dict(width=96, height=72, head_yaw_deg=15.0, head_speed_hz=(0.3, 0.3), sensor_noise=(0.5, 0.5))
    turning = render(5, 450, FPS, quiet(**fields))
    left = _roi_mean(turning.rgb, turning.face_boxes, (0.15, 0.35), (0.5, 0.7))[:, 1]
    right = _roi_mean(turning.rgb, turning.face_boxes, (0.65, 0.85), (0.5, 0.7))[:, 1]
    sideways = _face_centroid(turning.thermal)[:, 0]
    # turning moves the face about the neck and brightens the cheek turned to the light
    assert abs(np.corrcoef(right - left, sideways)[0, 1]) > 0.7

    def breath_correlation(recording):
        nostrils = _roi_mean(recording.thermal[..., None], recording.face_boxes, (0.4, 0.6), (0.6, 0.72))[:, 0]
        return -np.corrcoef(nostrils, recording.rsp)[0, 1]

    visible = breath_correlation(turning)
    hidden = breath_correlation(render(5, 450, FPS, quiet(nostril_occlusion_deg=1.0, **fields)))
    assert visible > 0.5 and hidden < visible - 0.3


def test_talking_moves_the_mouth_at_syllable_rate():
    fields = dict(width=96, height=72, sensor_noise=(0.5, 0.5))
    silent = render(3, 300, FPS, quiet(**fields))
    talking = render(3, 300, FPS, quiet(talking_fraction=1.0, mouth_open_mm=10.0, **fields))

    def syllable_power(recording):
        mouth = _roi_mean(recording.rgb, recording.face_boxes, (0.35, 0.65), (0.75, 0.9)).mean(axis=1)
        freqs, power = _spectrum(mouth, FPS)
        return power[(freqs >= 2.5) & (freqs <= 7.0)].sum()

    assert syllable_power(talking) > 20 * syllable_power(silent)
    assert np.array_equal(silent.rgb[:, :10], talking.rgb[:, :10])  # the background is untouched


def test_blinks_close_the_eyes_at_the_rate_asked_for():
    recording = render(6, 1800, FPS, quiet(blinks_per_minute=20.0, sensor_noise=(0.5, 0.5)))
    eyes = _roi_mean(recording.rgb, recording.face_boxes, (0.2, 0.4), (0.35, 0.45)).mean(axis=1)
    closed = eyes > np.median(eyes) + 0.5 * (eyes.max() - np.median(eyes))
    onsets = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 8 <= len(onsets) <= 35  # 20/min over 60 s, Poisson


def test_flicker_and_coloured_light_show_in_the_background():
    fields = dict(width=64, height=48, sensor_noise=(0.5, 0.5))
    flicker = render(1, 300, FPS, quiet(flicker_amplitude=0.02, flicker_hz=10.0, **fields))
    background = flicker.rgb[:, :, :6].reshape(300, -1).mean(axis=1)
    assert abs(_peak_hz(background, FPS, (0.5, 14.5)) - 10.0) < 0.2

    def red_over_blue(config):
        frames = render(1, 30, FPS, config).rgb[:, :, :6].astype(np.float64)
        return frames[..., 0].mean() / frames[..., 2].mean()

    daylight = red_over_blue(quiet(**fields))
    tungsten = red_over_blue(quiet(light_colour_k=(2700.0, 2700.0), **fields))
    balanced = red_over_blue(quiet(light_colour_k=(2700.0, 2700.0), auto_white_balance_s=0.01, **fields))
    assert tungsten > 2 * daylight  # warm light is redder
    assert abs(np.log(balanced / daylight)) < abs(np.log(tungsten / daylight)) / 3  # white balance undoes most of it


def test_black_body_gains_and_auto_exposure_react_with_their_time_constant():
    gains = colour_gains(np.array([3000.0, 6500.0, 10000.0]))
    assert np.allclose(gains[1], 1.0) and gains[0, 0] > 1.5 > gains[0, 2] * 3 and gains[2, 2] > 1.0
    intensity = np.where(np.arange(300) < 100, 1.0, 1.3)  # a light switched on at 3.33 s
    config = SyntheticConfig(auto_exposure_s=1.0)
    seen = camera_gains(np.random.default_rng(0), intensity, np.array([100.0, 100.0, 100.0]), FPS, config)[:, 1]
    assert seen[99] == pytest.approx(1.0) and seen[100] == pytest.approx(1.3, abs=0.02)
    # exposure pulls the level back: about 1/e of the jump left after one time constant
    assert (seen[130] - 1.0) / 0.3 == pytest.approx(np.exp(-1.0), abs=0.08)
    assert seen[-1] == pytest.approx(1.0, abs=0.01)


def test_light_steps_change_the_level_abruptly():
    recording = render(2, 1800, FPS, quiet(width=64, height=48, light_steps_per_minute=6.0, light_step_size=0.2))
    level = recording.rgb[:, :, :6].reshape(1800, -1).mean(axis=1)
    jumps = np.abs(level[15:] - level[:-15])  # change over 0.5 s
    assert jumps.max() > 5.0 and np.median(jumps) < 1.0


def test_skin_type_attenuates_the_pulse():
    def green_pulse(skin):
        config = quiet(skin_types=(skin, skin), melanin_pulse_attenuation=0.5, pulse_amplitude=(2.0, 2.0),
                       sensor_noise=(0.5, 0.5))
        recording = render(4, 300, FPS, config, appearance_seed=9)
        cheeks = _roi_mean(recording.rgb, recording.face_boxes, (0.15, 0.35), (0.5, 0.75))[:, 1]
        bvp = (recording.bvp - recording.bvp.mean()) / np.ptp(recording.bvp)
        return -np.polyfit(bvp, cheeks, 1)[0]

    assert green_pulse(6) / green_pulse(1) == pytest.approx(0.5, abs=0.12)


def test_shot_noise_grows_with_brightness_over_the_read_noise():
    config = quiet(width=64, height=48, sensor_noise=(1.0, 1.0), shot_noise_gain=0.05)
    frames = render(3, 200, FPS, config).rgb[:, :, :8].astype(np.float64)  # background: static
    mean, var = frames.mean(axis=0).ravel(), (np.diff(frames, axis=0).var(axis=0) / 2).ravel()
    slope, intercept = np.polyfit(mean, var, 1)
    assert slope == pytest.approx(0.05, rel=0.35) and intercept == pytest.approx(1.0 + 1 / 12, abs=0.8)


def test_lossy_codecs_compress_and_lossless_stays_exact(tmp_path):
    sizes, errors = {}, {}
    for codec in ("lossless", "mjpeg", "mpeg4"):
        config = SyntheticConfig(compression=codec, jpeg_quality=75)
        folder = generate_dataset(tmp_path / codec, subjects=1, seconds=2.0, seed=1, config=config)[0]
        frames, fps = read_video(folder / "rgb.avi")
        expected = render(np.random.SeedSequence([1, 0, 0]), 60, FPS, config,
                          appearance_seed=np.random.SeedSequence([1, 0]))
        assert fps == FPS and frames.shape == expected.rgb.shape
        sizes[codec] = (folder / "rgb.avi").stat().st_size
        errors[codec] = np.abs(frames.astype(np.float64) - expected.rgb).mean()
    assert errors["lossless"] == 0.0 and errors["mjpeg"] > 0.3 and errors["mpeg4"] > 0.3
    # bits per second of the stored video: lossless FFV1 is several Mbit/s at 160x120
    assert sizes["lossless"] > 3 * sizes["mjpeg"] > 3 * sizes["mpeg4"]


def test_thermal_storage_halves_the_bytes(tmp_path):
    wide = generate_dataset(tmp_path / "a", subjects=1, seconds=1.0, config=SyntheticConfig(width=64, height=48))[0]
    half = generate_dataset(tmp_path / "b", subjects=1, seconds=1.0,
                            config=SyntheticConfig(width=64, height=48, thermal_storage="float16"))[0]
    a, b = np.load(wide / "thermal.npy"), np.load(half / "thermal.npy")
    assert b.dtype == np.float16 and b.nbytes * 2 == a.nbytes and np.abs(a - b).max() < 0.02


def test_detector_boxes_jitter_and_drift_around_the_truth():
    config = quiet(width=96, height=72)
    truth = render(5, 900, FPS, config).face_boxes.astype(np.float64)
    width = truth[0, 2]
    jitter = render(5, 900, FPS, quiet(width=96, height=72, box_jitter=0.04)).face_boxes - truth
    drift = render(5, 900, FPS, quiet(width=96, height=72, box_drift=0.1)).face_boxes - truth
    assert jitter.std() / width == pytest.approx(0.04, rel=0.3)
    assert abs(np.corrcoef(jitter[1:, 0], jitter[:-1, 0])[0, 1]) < 0.2  # new every frame
    assert drift.std() / width > 0.04 and np.corrcoef(drift[1:, 0], drift[:-1, 0])[0, 1] > 0.9  # slow


def test_heart_rate_changes_within_the_recording_in_the_video():
    config = quiet(width=64, height=48, hr_range=(70.0, 70.0), hr_change_bpm=40.0, pulse_amplitude=(4.0, 4.0),
                   sensor_noise=(0.3, 0.3))
    changes = []
    for seed in range(3):
        recording = render(seed, 1800, FPS, config)
        cheeks = _roi_mean(recording.rgb, recording.face_boxes, (0.15, 0.35), (0.5, 0.75))[:, 1]
        first, last = (60 * _peak_hz(cheeks[s], FPS, (0.6, 3.3)) for s in (slice(0, 300), slice(-300, None)))
        changes.append(abs(last - first))
    assert max(changes) > 10.0
    steady = render(0, 1800, FPS, quiet(width=64, height=48, hr_range=(70.0, 70.0)))
    assert abs(steady.hr_bpm - 70.0) < 1e-9


def test_breath_holds_and_sighs_show_in_the_thermal_breathing():
    def spreads(**changes):
        config = quiet(width=64, height=48, rr_range=(15.0, 15.0), **changes)
        recording = render(8, 1800, FPS, config)
        nostrils = _roi_mean(recording.thermal[..., None], recording.face_boxes, (0.4, 0.6), (0.6, 0.72))[:, 0]
        window = int(3 * FPS)
        return np.array([np.ptp(nostrils[s : s + window]) for s in range(0, 1800 - window, 15)])

    steady = spreads()
    irregular = spreads(breath_holds_per_minute=4.0, sighs_per_minute=4.0)
    # a pause keeps the nostril temperature still for 3 s and more; a sigh swings it
    # further than the typical breath
    assert irregular.min() < 0.5 * steady.min()
    assert irregular.max() / np.median(irregular) > 1.3 * steady.max() / np.median(steady)


def test_rate_step_of_breathing():
    config = quiet(width=64, height=48, rr_range=(15.0, 15.0), rr_change=0.4)
    rates = []
    for seed in range(3):
        rsp = render(seed, 1800, FPS, config).rsp
        rates.append(abs(_peak_hz(rsp[:450], FPS, (0.1, 0.8)) - _peak_hz(rsp[-450:], FPS, (0.1, 0.8))) * 60)
    assert max(rates) > 2.5


def test_dropped_and_duplicated_frames():
    base = render(2, 900, FPS, quiet(width=64, height=48))
    glitched = render(2, 900, FPS, quiet(width=64, height=48, dropped_frame_rate=0.02, duplicated_frame_rate=0.02))
    repeats = np.all(glitched.rgb[1:] == glitched.rgb[:-1], axis=(1, 2, 3))
    assert 6 <= repeats.sum() <= 40  # 2 % of 900, and never by chance under sensor noise
    # every stored frame is the undisturbed video at the moment it shows; drops skip ahead
    assert all(np.array_equal(glitched.rgb[i], base.rgb[j]) for i, j in enumerate(glitched.frame_index))
    skips = np.diff(glitched.frame_index) == 2
    assert 6 <= skips.sum() <= 40 and len(glitched.rgb) == 900


def test_thermal_noise_drift_flat_field_and_fixed_pattern():
    config = quiet(width=64, height=48, thermal_noise_c=0.08, thermal_drift_c=0.5, ffc_interval_s=10.0,
                   thermal_fpn_c=0.1)
    thermal = render(4, 900, FPS, config).thermal.astype(np.float64)
    background = thermal[:, :, :6]
    moving = np.diff(background, axis=0)
    frozen = np.all(moving == 0, axis=(1, 2))
    # the shutter closes twice in 30 s, freezing the frame for 0.5 s each time
    assert 2 * (int(0.5 * FPS) - 1) <= frozen.sum() <= 2 * int(0.5 * FPS)
    live = moving[~frozen]
    assert np.median(np.abs(live)) / 0.6745 / np.sqrt(2) == pytest.approx(0.08, rel=0.3)  # NETD
    level = background.mean(axis=(1, 2))
    # the offset drifts between corrections and is reset to the same zero at each
    assert np.ptp(level) > 0.1
    assert abs(level[320] - level[0]) < 0.2 < abs(level[299] - level[0])
    # a new column pattern after each correction
    before, after = thermal[200:290].mean(axis=0), thermal[320:390].mean(axis=0)
    columns = (after - before).mean(axis=0)
    assert (columns - columns.mean()).std() == pytest.approx(0.1 * np.sqrt(2), rel=0.4)
