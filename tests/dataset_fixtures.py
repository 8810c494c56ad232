"""Writers of tiny datasets in each real dataset's on-disk layout, for the reader tests.

Frames are a few 16x12 pixels. Every frame is distinct and its channels differ (red high,
green stepping with the frame index, blue low), so a test can tell a channel swap or a
reordered frame from a correct read.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import matplotlib
import numpy as np

HEIGHT, WIDTH = 12, 16


def rgb_frames(count: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames: R = 200, G = 7 * t + column, B = 30 + row."""
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = 200
    frames[..., 1] = (7 * np.arange(count)[:, None, None] + np.arange(width)[None, None, :]) % 256
    frames[..., 2] = 30 + np.arange(height)[None, :, None]
    return frames


def face_frames(count: int, size: int = 120) -> np.ndarray:
    """uint8 (T, size, size, 3) RGB frames of a real face photograph (Grace Hopper, public
    domain, shipped with matplotlib) drifting over a grey background: the Haar cascade
    finds it, as it would a dataset's face."""
    photo = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    face = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), (size * 5 // 6, size - 3), interpolation=cv2.INTER_AREA)
    frames = np.full((count, size, size, 3), 90, np.uint8)
    for index in range(count):
        shift = index % 8
        frames[index, 1 : size - 2, shift : shift + face.shape[1]] = face
    return frames


def pulse(times: np.ndarray, hz: float = 1.2) -> np.ndarray:
    """A smooth label waveform at `times` (s)."""
    return np.sin(2 * np.pi * hz * times)


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write RGB frames to an AVI with the lossless FFV1 codec (decodes bit-exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write FFV1 video"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_image(path: Path, frame: np.ndarray) -> None:
    """Write one RGB frame as an image file (BMP/PNG: lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def write_ubfc(root: Path, subject: str = "subject1", frames: int = 30, fps: float = 30.0,
               label_times: np.ndarray | None = None,
               video: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A UBFC-rPPG DATASET_2 subject: `vid.avi` + 3-line `ground_truth.txt` (PPG, HR, time).

    The video holds `video` (default: `frames` test-pattern frames); labels are sampled at
    `label_times` (default: one per frame). Returns (frames, ppg).
    """
    folder = root / subject
    video = rgb_frames(frames) if video is None else video
    frames = len(video)
    write_video(folder / "vid.avi", video, fps)
    times = np.arange(frames) / fps if label_times is None else label_times
    ppg = pulse(times)
    hr = np.full_like(times, 72.0)
    (folder / "ground_truth.txt").write_text(
        "\n".join("  ".join(f"{v:.9e}" for v in row) for row in (ppg, hr, times)) + "\n"
    )
    return video, ppg


def write_pure(root: Path, name: str = "01-01", frames: int = 12, fps: float = 30.0,
               label_hz: float = 60.0, label_seconds: float | None = None,
               nested: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A PURE session: `XX-YY/XX-YY/Image<ns>.png` frames + `XX-YY/XX-YY.json`.

    Frame capture times jitter by up to 3 ms around `fps`; the oximeter samples the
    waveform at `label_hz` for `label_seconds` (default: past the last frame).
    Returns (frames, frame times in s, the waveform interpolated at those times).
    """
    origin = 1_392_643_993_642_815_000  # a real PURE-sized ns timestamp: beyond float64 precision
    rng = np.random.default_rng(1)
    frame_times = np.arange(frames) / fps + rng.uniform(0, 0.003, frames)
    frame_ns = origin + np.round(frame_times * 1e9).astype(np.int64)
    video = rgb_frames(frames)
    folder = root / name / name if nested else root / name
    for frame, stamp in zip(video, frame_ns):
        write_image(folder / f"Image{stamp}.png", frame)
    seconds = frames / fps + 0.1 if label_seconds is None else label_seconds
    label_times = np.arange(0, seconds, 1 / label_hz)
    waveform = np.round(100 + 50 * pulse(label_times))
    package = [
        {"Timestamp": int(origin + round(t * 1e9)),
         "Value": {"pulseRate": 72, "o2saturation": 98, "signalStrength": 4, "waveform": int(w)}}
        for t, w in zip(label_times, waveform)
    ]
    document = {"/FullPackage": package, "/Image": [{"Timestamp": int(s)} for s in frame_ns]}
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / f"{name}.json").write_text(json.dumps(document))
    return video, frame_times, np.interp(frame_times, label_times, waveform)


def write_ubfc_dataset1(root: Path, name: str = "5-gt", frames: int = 30, fps: float = 28.7,
                        video_name: str = "vid.avi", label_hz: float = 62.0,
                        label_seconds: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A UBFC-rPPG DATASET_1 folder: a video + `gtdump.xmp` (headerless CSV of time in ms,
    HR, SpO2, PPG at `label_hz`). Returns (frames, the PPG at the frame times)."""
    folder = root / name
    video = rgb_frames(frames)
    write_video(folder / video_name, video, fps)
    seconds = frames / fps + 0.1 if label_seconds is None else label_seconds
    times = np.arange(0, seconds, 1 / label_hz)
    rows = [f"{1000 * t:.0f},72,98,{50 * pulse(t) + 120:.6f}" for t in times]
    (folder / "gtdump.xmp").write_text("\n".join(rows) + "\n")
    times_ms = np.round(1000 * times) / 1000  # the file keeps whole milliseconds
    return video, np.interp(np.arange(frames) / fps, times_ms, 50 * pulse(times) + 120)


def matlab_v73_header() -> bytes:
    """The 128-byte header MATLAB writes into the 512-byte HDF5 user block of a v7.3 file."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"


def write_matlab_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write arrays the way MATLAB's `save -v7.3` does: HDF5 behind a 512-byte user block,
    each array stored with its dimensions reversed (column-major), tagged with its class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as mat:
        for name, value in variables.items():
            value = np.atleast_2d(value) if np.ndim(value) < 2 else value
            dataset = mat.create_dataset(name, data=np.transpose(value))
            dataset.attrs["MATLAB_class"] = np.bytes_("uint8" if value.dtype == np.uint8 else "double")
    with open(path, "r+b") as handle:
        handle.write(matlab_v73_header())


def write_scamps(root: Path, name: str = "P000001", frames: int = 10,
                 layout: str = "THWC", rsp_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A SCAMPS file: `Xsub` floats in [0, 1] with MATLAB dims (T, H, W, 3) (or (H, W, 3, T)
    for layout "HWCT"), `d_ppg` and `d_br` as T x 1 column vectors. Returns the uint8 RGB
    frames the reader should produce, the PPG and the breathing signal."""
    video = rgb_frames(frames)
    matlab = video / 255.0 if layout == "THWC" else np.transpose(video, (1, 2, 3, 0)) / 255.0
    times = np.arange(frames) / 30.0
    ppg = pulse(times)[:, None]
    br = pulse(np.arange(frames if rsp_frames is None else rsp_frames) / 30.0, hz=0.25)[:, None]
    write_matlab_v73(root / f"{name}.mat", {"Xsub": matlab, "d_ppg": ppg, "d_br": br,
                                            "d_hr": np.full((frames, 1), 72.0)})
    return video, ppg[:, 0], br[:, 0]


def thermal_counts(count: int, rows: int, width: int = WIDTH) -> np.ndarray:
    """uint16 (T, rows, W) raw thermal counts near 30 degC, distinct per frame, row, column."""
    base = round((30.0 + 273.15) / 0.04)
    grid = 3 * np.arange(count)[:, None, None] + 5 * np.arange(rows)[None, :, None]
    return (base + grid + np.arange(width)[None, None, :]).astype(np.uint16)


def write_ibvp(root: Path, name: str = "p01_a", frames: int = 8, thermal_rows: int = HEIGHT + 2,
               header: str | None = "BVP,SQ1,SQ2", label_hz: float | None = None,
               label_samples: int | None = None, stamped: bool = False,
               drop_thermal: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """An iBVP session: `name_rgb/*.bmp`, `name_t/*.raw` (uint16, `thermal_rows` rows, the
    RGB width) and `name_bvp.csv` (BVP and two quality columns).

    Frames are named 0, 1, ... or, `stamped`, by their capture time in epoch milliseconds
    (RGB ~30 fps with jitter, thermal 5 ms later; `drop_thermal` leaves those thermal
    frames out). With `label_hz` the CSV samples at that rate and has a Time column (in
    epoch ms when `stamped`, else seconds); without, it holds `label_samples` samples
    (default: one per frame) spanning the video. Returns what the reader should give.
    """
    folder = root / name
    origin_ms = 1_675_944_284_729
    rng = np.random.default_rng(2)
    frame_times = np.arange(frames) / 30.0 + (rng.uniform(0, 0.004, frames) if stamped else 0)
    if stamped:  # capture times are whole milliseconds
        frame_times = np.round(1000 * frame_times) / 1000
    rgb_names = [str(origin_ms + round(1000 * t)) if stamped else str(i) for i, t in enumerate(frame_times)]
    thermal_names = [str(origin_ms + round(1000 * t) + 5) if stamped else str(i) for i, t in enumerate(frame_times)]
    video = rgb_frames(frames)
    for frame_name, frame in zip(rgb_names, video):
        write_image(folder / f"{name}_rgb" / f"{frame_name}.bmp", frame)
    counts = thermal_counts(frames, thermal_rows)
    (folder / f"{name}_t").mkdir(parents=True)
    for index, (frame_name, frame) in enumerate(zip(thermal_names, counts)):
        if index not in drop_thermal:
            frame.astype("<u2").tofile(folder / f"{name}_t" / f"{frame_name}.raw")
    if label_hz is None:
        samples = frames if label_samples is None else label_samples
        times = frame_times if samples == frames else np.linspace(frame_times[0], frame_times[-1], samples)
    else:
        times = np.arange(0, frames / 30.0 + 0.05, 1 / label_hz)
    bvp, quality = pulse(times), 0.5 + 0.4 * np.cos(times)
    stamps = origin_ms + 1000 * times if stamped else times
    lines = [header + (",Time" if label_hz else "")] if header else []
    for t, b, q in zip(stamps, bvp, quality):
        lines.append(f"{b:.9f},{q:.6f},{q:.6f}" + (f",{t:.6f}" if label_hz else ""))
    (folder / f"{name}_bvp.csv").write_text("\n".join(lines) + "\n")
    return {
        "rgb": video,
        "thermal": counts[:, :HEIGHT].astype(np.float64) * 0.04 - 273.15,
        "bvp": pulse(frame_times),
        "quality": 0.5 + 0.4 * np.cos(frame_times),
        "frame_times": frame_times,
    }


def write_bp4d(root: Path, name: str = "F001T1", frames: int = 8, size: int = 9,
               rgb_dtype: str = "uint8", label_rows: int | None = None) -> dict[str, np.ndarray]:
    """A preprocessed BP4D+ task: `RGB/` and `Thermal/` per-frame .npy files (face crops of
    `size` x `size`) and `labels.npy` with the reference's 10 columns. `rgb_dtype` "float01"
    or "float255" writes float frames on that scale. Returns what the reader should give."""
    folder = root / name
    (folder / "RGB").mkdir(parents=True)
    (folder / "Thermal").mkdir()
    video = rgb_frames(frames, size, size)
    stored = {"uint8": video, "float01": video / 255.0, "float255": video.astype(np.float32)}[rgb_dtype]
    thermal = (34.0 + 0.01 * thermal_counts(frames, size, size).astype(np.float32) % 1.0)
    for index in range(frames):
        np.save(folder / "RGB" / f"{index:05d}.npy", stored[index])
        np.save(folder / "Thermal" / f"{index:05d}.npy", thermal[index])
    times = np.arange(frames if label_rows is None else label_rows) / 25.0
    table = np.zeros((times.size, 10))
    table[:, 0], table[:, 1] = pulse(times), pulse(times, hz=0.3)
    table[:, 4:9] = 72.0, 15.0, 120.0, 90.0, 80.0
    np.save(folder / "labels.npy", table)
    return {"rgb": video, "thermal": thermal, "bvp": table[:, 0], "rsp": table[:, 1]}
