"""Synthetic RGB + thermal face video with known pulse and breathing: the embedded default.

Each recording is rendered from a static face (skin tone, shading, eyes, brows, mouth,
a map of where the pulse is strong) that moves with breathing and occasional motion
episodes, under drifting and flickering illumination and sensor noise:

- RGB: the blood-volume pulse darkens the skin in proportion to each channel's
  pulsatility (green strongest, as in real skin), at 0.5-2 intensity levels peak to peak
  in green: below the per-pixel sensor noise, as in real face video.
- Thermal (degrees Celsius): a warm face on a cooler background; the nostril/mouth region
  cools on inhale and warms on exhale; a weak pulse; its own noise.
- Labels: BVP and RSP at the frame times; the ground-truth face box of every frame.

`generate_dataset` writes the `folder` layout (see `mmrphys.data.datasets.folder`)
losslessly: RGB as an FFV1 video (bit-exact with the pinned OpenCV), thermal as float32
NumPy. Everything is deterministic given the seed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic_waveforms import (
    CsvWaveforms,
    Waveforms,
    parametric_waveforms,
)

#: skin base colours (RGB, 0-255) from light to dark
SKIN_TONES = np.array(
    [[233, 190, 165], [224, 172, 140], [198, 145, 110], [170, 118, 85], [132, 88, 62], [96, 64, 46]],
    dtype=np.float32,
)
#: relative pulsatility (AC/DC) of R, G, B in skin reflectance: green strongest
SKIN_PULSATILITY = np.array([0.33, 0.77, 0.53], dtype=np.float32)
THERMAL_UNIT = "celsius"
#: file names of the folder layout the generator writes
RGB_FILE, THERMAL_FILE, LABELS_FILE, BOXES_FILE, META_FILE = (
    "rgb.avi", "thermal.npy", "labels.csv", "face_boxes.csv", "meta.json"
)


@dataclasses.dataclass(frozen=True)
class SyntheticRecording:
    """One rendered recording: frames, labels, face boxes and the rates it was drawn with."""

    rgb: np.ndarray  # uint8 (T, H, W, 3)
    thermal: np.ndarray  # float32 (T, H, W), degrees C
    face_boxes: np.ndarray  # int32 (T, 4): x, y, w, h
    bvp: np.ndarray  # float64 (T,)
    rsp: np.ndarray  # float64 (T,)
    fps: float
    hr_bpm: float | None
    rr_bpm: float | None


@dataclasses.dataclass(frozen=True)
class _Face:
    """A subject's static appearance: layers in face-centred canvas coordinates."""

    rgb: np.ndarray  # (H, W, 3) skin and features
    alpha: np.ndarray  # (H, W) face mask with soft edge
    pulse_map: np.ndarray  # (H, W) relative pulse strength on skin, mean 1
    temperature: np.ndarray  # (H, W) face temperature, degrees C
    breath_map: np.ndarray  # (H, W) nostril/mouth airflow region, peak 1
    center: tuple[float, float]
    half_size: tuple[float, float]


def _blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _smooth_texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    noise = rng.standard_normal((h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), scale)
    return noise / (noise.std() + 1e-6)


def _make_face(rng: np.random.Generator, config: SyntheticConfig) -> _Face:
    h, w = config.height, config.width
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ry = rng.uniform(0.26, 0.32) * h
    rx = ry * rng.uniform(0.75, 0.85)
    cx = w / 2 + rng.uniform(-0.06, 0.06) * w
    cy = h / 2 + rng.uniform(-0.04, 0.04) * h
    u, v = (x - cx) / rx, (y - cy) / ry  # face coordinates, the ellipse is u^2 + v^2 <= 1
    r2 = u**2 + v**2
    alpha = np.clip((1.0 - np.sqrt(r2)) * rx / 1.5, 0.0, 1.0)

    tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08, size=3)
    shading = 1.05 - 0.25 * r2 + 0.03 * _smooth_texture(rng, h, w, 3.0)
    skin = tone[None, None, :] * shading[..., None]
    # dark features a face detector and a model can lock on to; no pulse there
    features = (
        _blob(u, v, -0.38, -0.22, 0.16, 0.07) + _blob(u, v, 0.38, -0.22, 0.16, 0.07)  # eyes
        + 0.7 * _blob(u, v, -0.38, -0.42, 0.2, 0.04) + 0.7 * _blob(u, v, 0.38, -0.42, 0.2, 0.04)  # brows
        + 0.6 * _blob(u, v, 0.0, 0.5, 0.28, 0.06)  # mouth
        + 0.25 * _blob(u, v, 0.0, 0.2, 0.09, 0.05)  # nostril shadow
    )
    features = np.clip(features, 0, 1)
    rgb = skin * (1 - 0.9 * features[..., None])

    pulse = 0.5 + _blob(u, v, 0, -0.55, 0.5, 0.18) + _blob(u, v, -0.45, 0.15, 0.22, 0.22) + _blob(u, v, 0.45, 0.15, 0.22, 0.22)
    pulse = pulse * (1 + 0.2 * _smooth_texture(rng, h, w, 2.0)) * (1 - features) * alpha
    skin_area = alpha > 0.5
    pulse_map = np.clip(pulse / pulse[skin_area].mean(), 0, None)

    core = rng.uniform(34.0, 35.5)
    temperature = core - 1.2 * r2 - 0.8 * _blob(u, v, 0, 0.1, 0.12, 0.15) + 0.15 * _smooth_texture(rng, h, w, 3.0)
    breath_map = _blob(u, v, 0, 0.32, 0.22, 0.1) + 0.6 * _blob(u, v, 0, 0.5, 0.3, 0.08)
    return _Face(
        rgb=rgb.astype(np.float32),
        alpha=alpha.astype(np.float32),
        pulse_map=pulse_map.astype(np.float32),
        temperature=temperature.astype(np.float32),
        breath_map=(breath_map / breath_map.max()).astype(np.float32),
        center=(float(cx), float(cy)),
        half_size=(float(rx), float(ry)),
    )


def _head_motion(rng: np.random.Generator, rsp: np.ndarray, fps: float, config: SyntheticConfig) -> np.ndarray:
    """(T, 2) head displacement in pixels: breathing sway, motion episodes, tremor."""
    n = len(rsp)
    offset = np.zeros((n, 2))
    offset[:, 1] = config.breathing_motion_px * rsp / (np.ptp(rsp) + 1e-9)
    episodes = rng.poisson(config.motion_episodes_per_minute * n / fps / 60.0)
    for _ in range(episodes):
        length = int(rng.uniform(1.0, 3.0) * fps)
        start = int(rng.integers(0, max(1, n - length)))
        angle = rng.uniform(0, 2 * np.pi)
        envelope = np.hanning(length)[: n - start] * config.motion_px * rng.uniform(0.5, 1.0)
        offset[start : start + len(envelope), 0] += envelope * np.cos(angle)
        offset[start : start + len(envelope), 1] += envelope * np.sin(angle)
    offset += 0.1 * rng.standard_normal((n, 2))
    return offset


def _scaled(x: np.ndarray) -> np.ndarray:
    """Map a waveform to roughly [-0.5, 0.5] (robust to outliers)."""
    low, high = np.percentile(x, [1, 99])
    return (x - (low + high) / 2) / max(high - low, 1e-9)


def render(
    seed: int | np.random.SeedSequence,
    n_frames: int,
    fps: float = 30.0,
    config: SyntheticConfig = SyntheticConfig(),
    waveforms: Waveforms | None = None,
    appearance_seed: int | np.random.SeedSequence | None = None,
) -> SyntheticRecording:
    """Render one recording.

    seed: draws the physiology, motion, illumination and noise.
    appearance_seed: draws the face (a subject's sessions share it); defaults to `seed`.
    waveforms: driving BVP/RSP at the frame times; drawn from the parametric models
        when None.
    """
    rng = np.random.default_rng(seed)
    face = _make_face(np.random.default_rng(seed if appearance_seed is None else appearance_seed), config)
    if waveforms is None:
        waveforms = parametric_waveforms(rng, n_frames, fps, config.hr_range, config.rr_range)
    if len(waveforms.bvp) != n_frames or len(waveforms.rsp) != n_frames:
        raise ValueError(f"waveforms have {len(waveforms.bvp)} samples, expected {n_frames}")
    h, w = config.height, config.width
    t = np.arange(n_frames) / fps

    background = np.array(rng.uniform(40, 140, size=3), np.float32)
    grad = np.linspace(0.85, 1.15, w, dtype=np.float32)[None, :, None]
    bg_rgb = background * grad * (1 + 0.05 * _smooth_texture(rng, h, w, 6.0))[..., None]
    bg_temp = (rng.uniform(22.0, 26.0) + 0.3 * _smooth_texture(rng, h, w, 8.0)).astype(np.float32)

    green_pp = rng.uniform(*config.pulse_amplitude)
    mean_green = float((face.rgb[..., 1] * face.alpha).sum() / face.alpha.sum())
    # darkening per unit of blood volume, per channel, so green's peak-to-peak is green_pp
    pulse_rel = (green_pp / mean_green) * SKIN_PULSATILITY / SKIN_PULSATILITY[1]
    noise_std = rng.uniform(*config.sensor_noise)
    gain = (
        1.0
        + config.illumination_drift * _smooth_drift(rng, n_frames, fps)
        + config.flicker_amplitude * np.sin(2 * np.pi * config.flicker_hz * t + rng.uniform(0, 2 * np.pi))
    ).astype(np.float32)
    breath_c = rng.uniform(*config.thermal_breath_c)
    bvp_unit, rsp_unit = _scaled(waveforms.bvp).astype(np.float32), _scaled(waveforms.rsp).astype(np.float32)
    offsets = _head_motion(rng, waveforms.rsp, fps, config)

    # only the face region moves: warp and composite that region, on top of a static
    # background, a block of frames at a time
    cx, cy = face.center
    rx, ry = face.half_size
    pad = int(np.abs(offsets).max()) + 3
    y0, y1 = max(0, int(cy - ry) - pad), min(h, int(np.ceil(cy + ry)) + pad + 1)
    x0, x1 = max(0, int(cx - rx) - pad), min(w, int(np.ceil(cx + rx)) + pad + 1)
    layers = np.dstack([face.rgb, face.alpha, face.pulse_map, face.temperature, face.breath_map])[y0:y1, x0:x1]
    rgb = np.empty((n_frames, h, w, 3), np.uint8)
    thermal = np.empty((n_frames, h, w), np.float32)
    block = 32
    for b0 in range(0, n_frames, block):
        frames = range(b0, min(n_frames, b0 + block))
        moved = np.stack([
            cv2.warpAffine(
                layers,
                np.float32([[1, 0, offsets[i, 0]], [0, 1, offsets[i, 1]]]),
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            for i in frames
        ])
        alpha = moved[..., 3:4]
        bvp_b = bvp_unit[b0 : b0 + len(frames), None, None, None]
        skin = moved[..., :3] * (1.0 - pulse_rel * (moved[..., 4:5] * bvp_b))
        frame = np.repeat(bg_rgb[None], len(frames), axis=0)
        frame[:, y0:y1, x0:x1] += (skin - frame[:, y0:y1, x0:x1]) * alpha
        frame *= gain[b0 : b0 + len(frames), None, None, None]
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * noise_std
        np.rint(frame, out=frame)
        rgb[b0 : b0 + len(frames)] = np.clip(frame, 0, 255)

        face_temp = (
            moved[..., 5]
            - breath_c * moved[..., 6] * rsp_unit[b0 : b0 + len(frames), None, None]  # inhale cools the airway
            + config.thermal_pulse_c * moved[..., 4] * bvp_b[..., 0]
        )
        temp = np.repeat(bg_temp[None], len(frames), axis=0)
        temp[:, y0:y1, x0:x1] += (face_temp - temp[:, y0:y1, x0:x1]) * alpha[..., 0]
        temp += rng.standard_normal(temp.shape, dtype=np.float32) * config.thermal_noise_c
        thermal[b0 : b0 + len(frames)] = temp

    boxes = np.stack(
        [cx - rx + offsets[:, 0], cy - ry + offsets[:, 1], np.full(n_frames, 2 * rx), np.full(n_frames, 2 * ry)],
        axis=1,
    )
    return SyntheticRecording(
        rgb=rgb,
        thermal=thermal,
        face_boxes=np.rint(boxes).astype(np.int32),
        bvp=waveforms.bvp,
        rsp=waveforms.rsp,
        fps=fps,
        hr_bpm=waveforms.hr_bpm,
        rr_bpm=waveforms.rr_bpm,
    )


def _smooth_drift(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Unit-variance illumination drift with a time scale of tens of seconds."""
    knots = rng.standard_normal(int(n / fps / 10) + 3)
    return np.interp(np.arange(n) / fps / 10, np.arange(len(knots)), knots)


def write_recording(recording: SyntheticRecording, out_dir: Path, meta: dict) -> Path:
    """Write one recording in the folder layout; returns its folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = recording.rgb.shape[1:3]
    writer = cv2.VideoWriter(str(out_dir / RGB_FILE), cv2.VideoWriter_fourcc(*"FFV1"), recording.fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{out_dir / RGB_FILE}: OpenCV cannot write FFV1 video")
    for frame in recording.rgb:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    np.save(out_dir / THERMAL_FILE, recording.thermal)
    times = np.arange(len(recording.bvp)) / recording.fps
    np.savetxt(
        out_dir / LABELS_FILE,
        np.column_stack([times, recording.bvp, recording.rsp]),
        delimiter=",", header="time,bvp,rsp", comments="", fmt="%.6f",
    )
    np.savetxt(
        out_dir / BOXES_FILE,
        np.column_stack([np.arange(len(recording.face_boxes)), recording.face_boxes]),
        delimiter=",", header="frame,x,y,w,h", comments="", fmt="%d",
    )
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def generate_dataset(
    out_dir: str | Path,
    subjects: int = 10,
    seconds: float = 36.0,
    fps: float = 30.0,
    seed: int = 0,
    sessions: int = 1,
    config: SyntheticConfig = SyntheticConfig(),
    waveform_source: CsvWaveforms | None = None,
    progress: bool = False,
) -> list[Path]:
    """Render `subjects` x `sessions` recordings into `out_dir` in the folder layout.

    Recording folders are `S<NN>_<session>`; a subject's sessions share a face and differ
    in physiology, motion and noise. With `waveform_source`, BVP and RSP come from real
    recordings instead of the parametric models. Returns the recording folders.
    """
    if subjects < 1 or sessions < 1:
        raise ValueError(f"need at least one subject and one session, got {subjects} and {sessions}")
    n_frames = int(round(seconds * fps))
    if n_frames < 2:
        raise ValueError(f"seconds x fps must give at least 2 frames, got {seconds} x {fps}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.json").write_text(
        json.dumps(
            {"generator": "mmrphys.data.synthetic", "seed": seed, "fps": fps, "seconds": seconds,
             "config": config.to_dict(),
             "waveforms": [str(p) for p in waveform_source.paths] if waveform_source else "parametric"},
            indent=2,
        ) + "\n"
    )
    jobs = [(s, k) for s in range(subjects) for k in range(sessions)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="synth", unit="recording")
    folders = []
    for index, (subject, session) in enumerate(jobs):
        rng_seed = np.random.SeedSequence([seed, subject, session])
        waveforms = None
        if waveform_source is not None:
            waveforms = waveform_source.segment(index, np.random.default_rng([seed, subject, session, 1]), n_frames, fps)
        recording = render(rng_seed, n_frames, fps, config, waveforms, appearance_seed=np.random.SeedSequence([seed, subject]))
        meta = {
            "dataset": "synthetic",
            "subject": f"S{subject + 1:02d}",
            "session": str(session + 1),
            "fps": fps,
            "thermal_unit": THERMAL_UNIT,
            "hr_bpm": recording.hr_bpm,
            "rr_bpm": recording.rr_bpm,
        }
        folders.append(write_recording(recording, out / f"S{subject + 1:02d}_{session + 1}", meta))
    return folders
