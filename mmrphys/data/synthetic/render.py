"""Render one synthetic recording: a subject's face, moving and animated, under changing
light, seen by an RGB camera with noise and frame glitches and by an uncooled thermal
camera, with its BVP and RSP labels and face boxes.

The nuisances of `SyntheticConfig` each draw from their own child of the recording's
random generator, so turning one on leaves every other draw as it was (and `clean`, with
all of them off, renders what the generator rendered before they existed).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import camera, light, motion, thermal
from mmrphys.data.synthetic.face import ALPHA, BREATH, LAYERS, PULSE, RGB, SKIN_PULSATILITY, TEMPERATURE, make_face, smooth_texture
from mmrphys.data.synthetic_waveforms import RateChanges, Waveforms, parametric_waveforms

#: frames warped and composited at a time (bounds the working memory)
BLOCK = 32


@dataclasses.dataclass(frozen=True)
class SyntheticRecording:
    """One rendered recording: frames, labels, face boxes and the rates it was drawn with.

    frame_index: the scene moment (label sample) each RGB frame shows; it differs from
    the frame's own index after dropped or duplicated frames.
    """

    rgb: np.ndarray  # uint8 (T, H, W, 3)
    thermal: np.ndarray  # float32 (T, H, W), degrees C
    face_boxes: np.ndarray  # int32 (T, 4): x, y, w, h
    bvp: np.ndarray  # float64 (T,)
    rsp: np.ndarray  # float64 (T,)
    fps: float
    hr_bpm: float | None
    rr_bpm: float | None
    frame_index: np.ndarray  # int64 (T,)


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


def _smooth_drift(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Unit-variance illumination drift with a time scale of tens of seconds."""
    knots = rng.standard_normal(int(n / fps / 10) + 3)
    return np.interp(np.arange(n) / fps / 10, np.arange(len(knots)), knots)


def _face_boxes(pose: motion.Pose, center: tuple[float, float], half_size: tuple[float, float]) -> np.ndarray:
    """(T, 4) float boxes x, y, w, h of the moved face ellipse."""
    a = half_size[0] * pose.scale * np.cos(pose.yaw)
    b = half_size[1] * pose.scale * np.cos(pose.pitch)
    cos, sin = np.cos(pose.roll), np.sin(pose.roll)
    half_w, half_h = np.hypot(a * cos, b * sin), np.hypot(a * sin, b * cos)
    x, y = center[0] + pose.dx, center[1] + pose.dy
    return np.stack([x - half_w, y - half_h, 2 * half_w, 2 * half_h], axis=1)


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
    # one child generator per nuisance family; spawning leaves `rng`'s own stream as it is
    changes_rng, pose_rng, face_rng, light_rng, box_rng, frame_rng, thermal_rng = rng.spawn(7)
    face = make_face(np.random.default_rng(seed if appearance_seed is None else appearance_seed), config)
    if waveforms is None:
        changes = RateChanges(config.hr_change_bpm, config.rr_change, config.sighs_per_minute,
                              config.breath_holds_per_minute)
        waveforms = parametric_waveforms(rng, n_frames, fps, config.hr_range, config.rr_range, changes=changes,
                                         changes_rng=changes_rng)
    if len(waveforms.bvp) != n_frames or len(waveforms.rsp) != n_frames:
        raise ValueError(f"waveforms have {len(waveforms.bvp)} samples, expected {n_frames}")
    h, w = config.height, config.width
    t = np.arange(n_frames) / fps

    background = np.array(rng.uniform(40, 140, size=3), np.float32)
    grad = np.linspace(0.85, 1.15, w, dtype=np.float32)[None, :, None]
    bg_rgb = background * grad * (1 + 0.05 * smooth_texture(rng, h, w, 6.0))[..., None]
    bg_temp = (rng.uniform(22.0, 26.0) + 0.3 * smooth_texture(rng, h, w, 8.0)).astype(np.float32)

    alpha_full = face.layers[..., ALPHA]
    green_pp = rng.uniform(*config.pulse_amplitude)
    # melanin absorbs light the blood would have modulated: less pulse on darker skin
    green_pp *= 1.0 - config.melanin_pulse_attenuation * (face.skin_type - 1) / 5.0
    mean_green = float((face.layers[..., 1] * alpha_full).sum() / alpha_full.sum())
    # darkening per unit of blood volume, per channel, so green's peak-to-peak is green_pp
    pulse_rel = (green_pp / mean_green) * SKIN_PULSATILITY / SKIN_PULSATILITY[1]
    noise_std = rng.uniform(*config.sensor_noise)
    intensity = (
        1.0
        + config.illumination_drift * _smooth_drift(rng, n_frames, fps)
        + config.flicker_amplitude * np.sin(2 * np.pi * config.flicker_hz * t + rng.uniform(0, 2 * np.pi))
        + light.light_steps(light_rng, n_frames, fps, config)
    )
    scene_rgb = (bg_rgb * (1 - alpha_full[..., None]) + face.layers[..., RGB] * alpha_full[..., None]).mean(axis=(0, 1))
    gains = light.camera_gains(light_rng, intensity, scene_rgb, fps, config)
    breath_c = rng.uniform(*config.thermal_breath_c)
    bvp_unit, rsp_unit = _scaled(waveforms.bvp).astype(np.float32), _scaled(waveforms.rsp).astype(np.float32)
    pose = motion.head_pose(pose_rng, _head_motion(rng, waveforms.rsp, fps, config), fps, face, config)
    talk = motion.talking(face_rng, n_frames, fps, config).astype(np.float32)
    blink = motion.blinks(face_rng, n_frames, fps, config).astype(np.float32)
    breath_seen = (breath_c * thermal.nostril_visibility(pose.rotation_deg(), config)).astype(np.float32)
    drift_c, columns, segment = thermal.sensor_offsets(thermal_rng, n_frames, h, w, fps, config)

    # only the face region moves: warp and composite that region, on top of a static
    # background, a block of frames at a time
    boxes = _face_boxes(pose, face.center, face.half_size)
    x0 = max(0, int(np.floor(boxes[:, 0].min())) - 4)
    y0 = max(0, int(np.floor(boxes[:, 1].min())) - 4)
    x1 = min(w, int(np.ceil((boxes[:, 0] + boxes[:, 2]).max())) + 5)
    y1 = min(h, int(np.ceil((boxes[:, 1] + boxes[:, 3]).max())) + 5)
    matrices = pose.matrices(face.center, (x0, y0))
    crop = (slice(y0, y1), slice(x0, x1))
    layers, mouth, eyes = face.layers[crop], face.mouth_open[crop], face.eyes_closed[crop]
    animated = bool(talk.any() or blink.any())
    shaded = config.head_yaw_deg > 0
    shot = config.shot_noise_gain > 0
    grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rgb = np.empty((n_frames, h, w, 3), np.uint8)
    temps = np.empty((n_frames, h, w), np.float32)
    for b0 in range(0, n_frames, BLOCK):
        frames = range(b0, min(n_frames, b0 + BLOCK))
        b = slice(b0, b0 + len(frames))
        if animated:
            stack = layers[None] + talk[b, None, None, None] * mouth[None] + blink[b, None, None, None] * eyes[None]
        else:
            stack = np.broadcast_to(layers, (len(frames), *layers.shape))
        moved = np.stack([
            cv2.warpAffine(np.ascontiguousarray(stack[j]), matrices[i], (x1 - x0, y1 - y0),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(y1 - y0, x1 - x0, LAYERS)
            for j, i in enumerate(frames)
        ])
        alpha = moved[..., ALPHA : ALPHA + 1]
        bvp_b = bvp_unit[b, None, None, None]
        skin = moved[..., RGB] * (1.0 - pulse_rel * (moved[..., PULSE : PULSE + 1] * bvp_b))
        if shaded:
            # the cheek turned towards the light brightens, the other darkens (Lambertian)
            u = (grid_x[None] - (face.center[0] + pose.dx[b, None, None])) / face.half_size[0]
            v = (grid_y[None] - (face.center[1] + pose.dy[b, None, None])) / face.half_size[1]
            shade = 1.0 + 0.5 * np.sin(pose.yaw[b, None, None]) * u + 0.5 * np.sin(pose.pitch[b, None, None]) * v
            skin = skin * shade[..., None].astype(np.float32)
        frame = np.repeat(bg_rgb[None], len(frames), axis=0)
        frame[:, y0:y1, x0:x1] += (skin - frame[:, y0:y1, x0:x1]) * alpha
        frame *= gains[b, None, None, :]
        read = rng.standard_normal(frame.shape, dtype=np.float32)
        if shot:
            # photon shot noise: variance grows with the signal, on top of the read noise
            frame += read * np.sqrt(noise_std**2 + config.shot_noise_gain * np.maximum(frame, 0.0))
        else:
            frame += read * noise_std
        np.rint(frame, out=frame)
        rgb[b] = np.clip(frame, 0, 255)

        face_temp = (
            moved[..., TEMPERATURE]
            - breath_seen[b, None, None] * moved[..., BREATH] * rsp_unit[b, None, None]  # inhale cools the airway
            + config.thermal_pulse_c * moved[..., PULSE] * bvp_b[..., 0]
        )
        temp = np.repeat(bg_temp[None], len(frames), axis=0)
        temp[:, y0:y1, x0:x1] += (face_temp - temp[:, y0:y1, x0:x1]) * alpha[..., 0]
        temp += rng.standard_normal(temp.shape, dtype=np.float32) * config.thermal_noise_c
        temps[b] = temp + drift_c[b, None, None] + columns[segment[b], None, :]

    shown = camera.frame_map(frame_rng, n_frames, config.dropped_frame_rate, config.duplicated_frame_rate)
    thermal_shown = camera.frame_map(frame_rng, n_frames, config.dropped_frame_rate, config.duplicated_frame_rate)
    thermal_shown = thermal_shown[thermal.freeze_map(n_frames, fps, config)]
    if not np.array_equal(shown, np.arange(n_frames)):
        rgb = rgb[shown]
    if not np.array_equal(thermal_shown, np.arange(n_frames)):
        temps = temps[thermal_shown]
    detected = motion.detector_boxes(box_rng, boxes[shown], fps, config)
    return SyntheticRecording(
        rgb=rgb,
        thermal=temps,
        face_boxes=np.rint(detected).astype(np.int32),
        bvp=waveforms.bvp,
        rsp=waveforms.rsp,
        fps=fps,
        hr_bpm=waveforms.hr_bpm,
        rr_bpm=waveforms.rr_bpm,
        frame_index=shown,
    )
