"""The synthetic generator: deterministic, realistic pulse and breathing cues, lossless
folder output, and real driving waveforms from CSV."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mmrphys.config import ConfigError
from mmrphys.data.recording import DatasetError
from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import generate_dataset, render
from mmrphys.data.synthetic_waveforms import CsvWaveforms, parametric_waveforms
from mmrphys.data.video import read_video

FPS = 30.0
QUIET = SyntheticConfig(motion_episodes_per_minute=0.0, illumination_drift=0.0)


def _peak_bpm(x: np.ndarray, fps: float, band: tuple[float, float]) -> float:
    x = x - np.polyval(np.polyfit(np.arange(len(x)), x, 2), np.arange(len(x)))
    freqs = np.fft.rfftfreq(8192, 1 / fps)
    power = np.abs(np.fft.rfft(x, 8192)) ** 2
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return 60 * freqs[inside][power[inside].argmax()]


@pytest.fixture(scope="module")
def recording():
    return render(3, int(30 * FPS), FPS, QUIET)


def test_render_is_deterministic_by_seed():
    a, b, c = render(7, 20, FPS), render(7, 20, FPS), render(8, 20, FPS)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.thermal, b.thermal)
    assert not np.array_equal(a.rgb, c.rgb)


def test_shapes_and_ground_truth_boxes(recording):
    n = int(30 * FPS)
    assert recording.rgb.shape == (n, 120, 160, 3) and recording.rgb.dtype == np.uint8
    assert recording.thermal.shape == (n, 120, 160) and recording.thermal.dtype == np.float32
    assert recording.face_boxes.shape == (n, 4)
    x, y, w, h = recording.face_boxes[0]
    # the face is inside the frame and smaller than it, so cropping really crops
    assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 120 and w < 100


def test_pulse_is_realistic_in_amplitude_and_colour(recording):
    x, y, w, h = recording.face_boxes[0]
    cheeks = recording.rgb[:, y + h // 2 : y + 3 * h // 4, x + w // 6 : x + w // 3].astype(np.float64)
    means = cheeks.mean(axis=(1, 2))  # (T, 3)
    bvp = (recording.bvp - recording.bvp.mean()) / np.ptp(recording.bvp)
    slopes = np.array([np.polyfit(bvp, means[:, c], 1)[0] for c in range(3)])
    # blood darkens the skin; green changes most relative to its level
    assert np.all(slopes < 0)
    relative = -slopes / means.mean(axis=0)
    assert relative[1] == relative.max()
    # 0.5-2 levels peak to peak in green, under per-pixel sensor noise of a few levels
    assert 0.3 < -slopes[1] < 2.5
    pixel_noise = np.diff(cheeks[:, :, :, 1], axis=0).std() / np.sqrt(2)
    assert pixel_noise > -slopes[1]
    assert abs(_peak_bpm(means[:, 1], FPS, (0.6, 3.3)) - recording.hr_bpm) < 2.0


def test_breathing_is_visible_in_thermal_around_the_nostrils(recording):
    x, y, w, h = recording.face_boxes[0]
    nostrils = recording.thermal[:, y + int(0.62 * h) : y + int(0.72 * h), x + w // 2 - 4 : x + w // 2 + 4].mean(axis=(1, 2))
    # inhale (rising RSP) cools the airway
    assert np.corrcoef(nostrils, recording.rsp)[0, 1] < -0.8
    assert abs(_peak_bpm(nostrils, FPS, (0.1, 0.6)) - recording.rr_bpm) < 1.5


def test_parametric_ppg_has_dicrotic_notch_and_rate_in_range():
    waves = parametric_waveforms(np.random.default_rng(0), 3000, 100.0, (60.0, 60.0), (12.0, 12.0), hr_variability=0.0)
    assert waves.hr_bpm == 60.0
    beat = waves.bvp[1000:1100]
    # two local maxima per beat: the systolic peak and the diastolic wave after the notch
    peaks = np.flatnonzero((beat[1:-1] > beat[:-2]) & (beat[1:-1] > beat[2:]))
    assert len(peaks) >= 2


def test_generate_dataset_writes_a_lossless_folder_layout(tmp_path):
    config = SyntheticConfig(width=64, height=48)
    folders = generate_dataset(tmp_path, subjects=2, sessions=2, seconds=1.0, seed=5, config=config)
    assert [f.name for f in folders] == ["S01_1", "S01_2", "S02_1", "S02_2"]
    meta = json.loads((folders[0] / "meta.json").read_text())
    assert meta["subject"] == "S01" and meta["fps"] == 30.0 and meta["thermal_unit"] == "celsius"
    frames, fps = read_video(folders[0] / "rgb.avi")
    expected = render(np.random.SeedSequence([5, 0, 0]), 30, 30.0, config, appearance_seed=np.random.SeedSequence([5, 0]))
    # FFV1 round-trips bit-exactly: the pulse survives storage
    assert fps == 30.0 and np.array_equal(frames, expected.rgb)
    assert np.array_equal(np.load(folders[0] / "thermal.npy"), expected.thermal)
    # a subject's sessions share the face but not the physiology
    assert not np.allclose(np.loadtxt(folders[0] / "labels.csv", delimiter=",", skiprows=1),
                           np.loadtxt(folders[1] / "labels.csv", delimiter=",", skiprows=1))


def test_config_rejects_bad_ranges():
    with pytest.raises(ConfigError, match="pulse_amplitude"):
        SyntheticConfig(pulse_amplitude=(2.0, 1.0))
    with pytest.raises(ConfigError, match="width"):
        SyntheticConfig(width=10)


def _write_physiokit_like(path, seconds=40.0, fs=250.0, hr_hz=1.2, rr_hz=0.25):
    t = np.arange(int(seconds * fs)) / fs
    with gzip.open(path, "wt") as handle:
        handle.write("EDA,Resp,PPG Finger,PPG Ear,arduino_ts,event_code\n")
        for ti in t:
            ppg = 2000 + 50 * np.sin(2 * np.pi * hr_hz * ti)
            resp = 1700 + 30 * np.sin(2 * np.pi * rr_hz * ti)
            handle.write(f"1670,{resp:.1f},{ppg:.1f},0,{1000 * ti + 123456:.0f},\n")


def test_real_waveforms_from_csv_drive_the_labels(tmp_path):
    _write_physiokit_like(tmp_path / "P01_baseline.csv.gz")
    source = CsvWaveforms.from_path(tmp_path)
    folders = generate_dataset(tmp_path / "raw", subjects=1, seconds=30.0, config=SyntheticConfig(width=64, height=48),
                               waveform_source=source)
    labels = np.loadtxt(folders[0] / "labels.csv", delimiter=",", skiprows=1)
    assert abs(_peak_bpm(labels[:, 1], FPS, (0.6, 3.3)) - 72.0) < 1.0
    assert abs(_peak_bpm(labels[:, 2], FPS, (0.1, 0.6)) - 15.0) < 1.0


def test_waveform_csv_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,ppg\n0,1\n")
    with pytest.raises(DatasetError, match="bad.csv.*missing columns"):
        CsvWaveforms.from_path(bad).segment(0, np.random.default_rng(0), 30, 30.0)
    short = tmp_path / "short.csv.gz"
    _write_physiokit_like(short, seconds=2.0)
    with pytest.raises(DatasetError, match="short.csv.gz.*need 30.0 s"):
        CsvWaveforms.from_path(short).segment(0, np.random.default_rng(0), 900, 30.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: no \\*.csv"):
        CsvWaveforms.from_path(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        CsvWaveforms.from_path(tmp_path / "missing.csv")


def test_synth_command_writes_a_dataset_and_says_where(tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "raw"
    assert main(["synth", "--out", str(out), "--subjects", "2", "--seconds", "1",
                 "synthetic.width=64", "synthetic.height=48"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 2 recordings (60 frames" in printed and str(out) in printed
    assert sorted(p.name for p in out.iterdir()) == ["S01_1", "S02_1", "synthetic.json"]
    assert main(["synth", "--out", str(out), "synthetic.pulse_amplitude=[3,1]"]) == 2
    assert "error: SyntheticConfig.pulse_amplitude" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "none"), "--subjects", "0"]) == 2
    assert "need at least one subject" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_presets_are_named_and_any_field_overrides_them():
    assert SyntheticConfig.from_preset("clean") == SyntheticConfig()
    realistic = SyntheticConfig.from_preset("realistic", ["synthetic.compression=lossless", "head_roll_deg=3"])
    assert realistic.preset == "realistic" and realistic.compression == "lossless" and realistic.head_roll_deg == 3.0
    assert realistic.box_jitter == SyntheticConfig.from_preset("realistic").box_jitter > 0
    # `preset=NAME` restarts from that preset, whatever the order of the overrides
    hard = SyntheticConfig().with_overrides(["jpeg_quality=50", "preset=hard"])
    assert hard.preset == "hard" and hard.compression == "mjpeg" and hard.jpeg_quality == 50
    # a YAML mapping naming a preset takes its missing fields from it
    assert SyntheticConfig.from_dict({"preset": "hard", "box_jitter": 0.1}).jpeg_quality == 60
    with pytest.raises(ConfigError, match="preset.*not one of"):
        SyntheticConfig.from_preset("easy")
    with pytest.raises(ConfigError, match="skin_types"):
        SyntheticConfig(skin_types=(0, 3))
    with pytest.raises(ConfigError, match="head_roll_deg.*>= 0"):
        SyntheticConfig(head_roll_deg=-1.0)
    with pytest.raises(ConfigError, match="talking_fraction"):
        SyntheticConfig(talking_fraction=2.0)


def test_synth_command_takes_a_preset(tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "raw"
    assert main(["synth", "--out", str(out), "--subjects", "1", "--seconds", "1", "--preset", "realistic",
                 "width=64", "height=48"]) == 0
    assert "preset realistic" in capsys.readouterr().out
    assert json.loads((out / "synthetic.json").read_text())["config"]["preset"] == "realistic"
