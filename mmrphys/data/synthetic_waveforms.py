"""Physiological driving waveforms for the synthetic video generator.

Two sources give the same thing, a blood-volume pulse (BVP) and a respiration (RSP)
waveform sampled at the video frame times:

- `parametric_waveforms`: a PPG model (systolic peak, dicrotic notch and diastolic wave
  per beat; heart rate with slow drift, respiratory sinus arrhythmia and beat-to-beat
  jitter) and a breathing model (asymmetric inhale/exhale, rate and depth variability);
- `CsvWaveforms`: segments of real contact recordings (e.g. PhysioKit's 250 Hz PPG and
  respiration-belt CSVs), resampled to the frame times by their timestamps.

Both return unit-free waveforms standardised to zero mean and unit variance; the video
renderer scales them to skin-colour and temperature changes.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
from pathlib import Path

import numpy as np
from scipy import signal

from mmrphys.data.recording import DatasetError


@dataclasses.dataclass(frozen=True)
class Waveforms:
    """BVP and RSP at the frame times, with the rates that generated them (when known)."""

    bvp: np.ndarray
    rsp: np.ndarray
    hr_bpm: float | None
    rr_bpm: float | None


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    std = x.std()
    return x / std if std > 0 else x


def smooth_noise(rng: np.random.Generator, n: int, fs: float, cutoff_hz: float) -> np.ndarray:
    """Zero-mean, unit-variance noise low-passed at `cutoff_hz` (for slow drifts)."""
    white = rng.standard_normal(n + 64)
    b, a = signal.butter(2, min(cutoff_hz / (fs / 2), 0.99))
    return _standardise(signal.filtfilt(b, a, white)[32 : 32 + n])


def ppg_beat(phase: np.ndarray, notch_depth: float) -> np.ndarray:
    """One PPG beat as a function of phase in [0, 1): a steep systolic wave and a later,
    smaller diastolic wave; the gap between them is the dicrotic notch."""
    systolic = np.exp(-0.5 * ((phase - 0.18) / 0.075) ** 2)
    diastolic = (0.35 + 0.3 * notch_depth) * np.exp(-0.5 * ((phase - 0.47) / 0.11) ** 2)
    # wrap the decaying tail of the previous beat so the waveform is continuous
    tail = np.exp(-0.5 * ((phase + 1.0 - 0.47) / 0.11) ** 2) * (0.35 + 0.3 * notch_depth)
    return systolic + diastolic + tail


@dataclasses.dataclass(frozen=True)
class RateChanges:
    """Changes of the rates within a recording (all off by default).

    hr_change_bpm: the heart rate moves by a value drawn in +-this, along a sigmoid of
        5-20 s (rest to exercise, or recovery).
    rr_change: the breathing rate steps by a fraction drawn in +-this, the same way.
    sighs_per_minute: breaths 2-3x deeper than the others (Poisson times).
    breath_holds_per_minute: pauses of 3-8 s in which the breathing stops (Poisson times).
    """

    hr_change_bpm: float = 0.0
    rr_change: float = 0.0
    sighs_per_minute: float = 0.0
    breath_holds_per_minute: float = 0.0


def _sigmoid_step(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """0 -> 1 along a sigmoid of 5-20 s centred in the middle 60 % of the recording."""
    centre = rng.uniform(0.2, 0.8) * t[-1]
    tau = rng.uniform(5.0, 20.0) / 4.0
    return 1.0 / (1.0 + np.exp(-(t - centre) / tau))


def poisson_times(rng: np.random.Generator, per_minute: float, duration_s: float) -> np.ndarray:
    """Times (s) of events at `per_minute` on average in [0, duration_s); none at rate 0."""
    if per_minute <= 0:
        return np.empty(0)
    return rng.uniform(0.0, duration_s, size=rng.poisson(per_minute * duration_s / 60.0))


def parametric_waveforms(
    rng: np.random.Generator,
    n_frames: int,
    fps: float,
    hr_range: tuple[float, float] = (45.0, 150.0),
    rr_range: tuple[float, float] = (8.0, 24.0),
    hr_variability: float = 0.04,
    changes: RateChanges = RateChanges(),
    changes_rng: np.random.Generator | None = None,
) -> Waveforms:
    """Draw a heart rate and a breathing rate and synthesise both waveforms.

    hr_variability: standard deviation of the slow heart-rate drift as a fraction of the
    mean rate; respiratory sinus arrhythmia adds about half as much again.
    changes: within-recording rate changes, drawn from `changes_rng` (default `rng`), so
    that turning them on leaves every other draw of `rng` as it was.
    With changes, the returned rates are the means over the recording.
    """
    t = np.arange(n_frames) / fps
    extra = rng if changes_rng is None else changes_rng
    hr = rng.uniform(*hr_range)
    rr = rng.uniform(*rr_range)

    # breathing: instantaneous rate drifts a little; inhale is shorter than exhale
    rr_inst = rr * (1.0 + 0.08 * smooth_noise(rng, n_frames, fps, 0.05))
    if changes.rr_change > 0:
        rr_inst = rr_inst * (1.0 + extra.uniform(-1, 1) * changes.rr_change * _sigmoid_step(extra, t))
    for start in poisson_times(extra, changes.breath_holds_per_minute, t[-1]):
        # the phase stops advancing for 3-8 s, with 0.5 s edges
        end = start + extra.uniform(3.0, 8.0)
        hold = np.clip(np.minimum(t - start, end - t) / 0.5, 0.0, 1.0)
        rr_inst = rr_inst * (1.0 - hold)
    resp_phase = 2 * np.pi * np.cumsum(rr_inst / 60.0) / fps + rng.uniform(0, 2 * np.pi)
    depth = 1.0 + 0.15 * smooth_noise(rng, n_frames, fps, 0.1)
    for at in poisson_times(extra, changes.sighs_per_minute, t[-1]):
        # one breath 2-3x deeper: a bump about one breath long
        depth = depth + extra.uniform(1.0, 2.0) * np.exp(-0.5 * ((t - at) / (0.4 * 60.0 / rr)) ** 2)
    rsp = depth * (np.sin(resp_phase) + 0.25 * np.sin(2 * resp_phase - np.pi / 2))

    # heart: slow drift + respiratory sinus arrhythmia + fast jitter
    hr_inst = hr * (
        1.0
        + hr_variability * smooth_noise(rng, n_frames, fps, 0.03)
        + 0.5 * hr_variability * np.sin(resp_phase)
        + 0.01 * smooth_noise(rng, n_frames, fps, 1.0)
    )
    if changes.hr_change_bpm > 0:
        hr_inst = hr_inst + extra.uniform(-1, 1) * changes.hr_change_bpm * _sigmoid_step(extra, t)
    beat_phase = np.cumsum(hr_inst / 60.0) / fps + rng.uniform(0, 1)
    notch = rng.uniform(0.3, 1.0)
    amplitude = 1.0 + 0.1 * np.sin(resp_phase) + 0.05 * smooth_noise(rng, n_frames, fps, 0.2)
    bvp = amplitude * ppg_beat(np.mod(beat_phase, 1.0), notch)
    bvp = bvp + 0.1 * smooth_noise(rng, n_frames, fps, 0.1)  # baseline wander
    if changes != RateChanges():
        hr, rr = hr_inst.mean(), rr_inst.mean()
    return Waveforms(_standardise(bvp), _standardise(rsp), float(hr), float(rr))


#: column names of PhysioKit's CSVs, the default real-waveform source
PHYSIOKIT_COLUMNS = {"ppg": "PPG Finger", "rsp": "Resp", "time": "arduino_ts"}


@dataclasses.dataclass(frozen=True)
class CsvWaveforms:
    """Real PPG and respiration recordings from CSV (optionally gzip) files.

    paths: the CSV files; synthetic recording i uses file i modulo their number, at a
        random offset.
    ppg_column / rsp_column / time_column: header names; `time_unit_s` converts the time
        column to seconds (PhysioKit's `arduino_ts` is in milliseconds).
    """

    paths: tuple[Path, ...]
    ppg_column: str = PHYSIOKIT_COLUMNS["ppg"]
    rsp_column: str = PHYSIOKIT_COLUMNS["rsp"]
    time_column: str = PHYSIOKIT_COLUMNS["time"]
    time_unit_s: float = 1e-3

    @classmethod
    def from_path(cls, path: str | Path, **kwargs) -> "CsvWaveforms":
        """A file, or a folder whose `*.csv` / `*.csv.gz` files are used in name order."""
        path = Path(path)
        if path.is_dir():
            files = tuple(sorted([*path.glob("*.csv"), *path.glob("*.csv.gz")]))
            if not files:
                raise DatasetError(f"{path}: no *.csv or *.csv.gz waveform files in this folder")
        elif path.is_file():
            files = (path,)
        else:
            raise DatasetError(f"{path}: waveform source does not exist")
        return cls(paths=files, **kwargs)

    def load(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(time in seconds, ppg, rsp) of one file, rows with missing values dropped."""
        columns = [self.time_column, self.ppg_column, self.rsp_column]
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader, [])
                missing = [c for c in columns if c not in header]
                if missing:
                    raise DatasetError(f"{path}: missing columns {missing}; header is {header}")
                index = [header.index(c) for c in columns]
                rows = [[row[i] for i in index] for row in reader if len(row) >= len(header)]
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
            raise DatasetError(f"{path}: cannot read waveform CSV: {err}") from None
        try:
            values = np.array([[float(v) if v.strip() else np.nan for v in r] for r in rows], np.float64)
        except ValueError as err:
            raise DatasetError(f"{path}: non-numeric value in columns {columns}: {err}") from None
        values = values.reshape(-1, 3)
        values = values[np.all(np.isfinite(values), axis=1)]
        time = values[:, 0] * self.time_unit_s
        if len(time) < 2 or np.any(np.diff(time) <= 0):
            raise DatasetError(f"{path}: column {self.time_column!r} must be strictly increasing")
        return time, values[:, 1], values[:, 2]

    def segment(self, index: int, rng: np.random.Generator, n_frames: int, fps: float) -> Waveforms:
        """A random segment of file `index % len(paths)`, resampled to the frame times."""
        path = self.paths[index % len(self.paths)]
        time, ppg, rsp = self.load(path)
        duration = n_frames / fps
        span = time[-1] - time[0]
        if span < duration:
            raise DatasetError(f"{path}: {span:.1f} s of waveform, need {duration:.1f} s")
        start = time[0] + rng.uniform(0, span - duration)
        frame_times = start + np.arange(n_frames) / fps
        # band-limit before resampling: the sensors' ADC noise would alias into the video
        fs_source = (len(time) - 1) / span
        ppg = _bandpass(ppg, fs_source, 0.5, 8.0)
        rsp = _bandpass(rsp, fs_source, 0.05, 1.0)
        return Waveforms(
            _standardise(np.interp(frame_times, time, ppg)),
            _standardise(np.interp(frame_times, time, rsp)),
            None,
            None,
        )


def _bandpass(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    sos = signal.butter(2, [low, min(high, 0.45 * fs)], btype="band", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x)
