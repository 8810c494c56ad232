"""Head and face motion: rigid pose per frame, talking and blinking, detector box noise.

Rigid motion is band-limited noise whose bandwidth is drawn per recording from
`head_speed_hz` (about 0.1 Hz for a still subject, 1-2 Hz for one talking and
gesturing); out-of-plane rotation is rendered in the image plane as foreshortening,
a shift of the face about the neck and a shading gradient across it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic.face import MOUTH_REFERENCE_MM, Face
from mmrphys.data.synthetic_waveforms import poisson_times, smooth_noise

#: out-of-plane rotation pivots about the neck, this far behind the face surface
PIVOT_MM = 100.0


@dataclasses.dataclass(frozen=True)
class Pose:
    """Per-frame rigid pose: translation (pixels), roll, yaw, pitch (radians), scale."""

    dx: np.ndarray
    dy: np.ndarray
    roll: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    scale: np.ndarray

    def rotation_deg(self) -> np.ndarray:
        """Out-of-plane rotation magnitude per frame, degrees."""
        return np.degrees(np.hypot(self.yaw, self.pitch))

    def matrices(self, center: tuple[float, float], origin: tuple[int, int]) -> np.ndarray:
        """(T, 2, 3) forward affine maps of the face layers, in the coordinates of a crop
        whose top-left frame pixel is `origin` (x0, y0)."""
        cx, cy = center[0] - origin[0], center[1] - origin[1]
        sx = self.scale * np.cos(self.yaw)
        sy = self.scale * np.cos(self.pitch)
        cos, sin = np.cos(self.roll), np.sin(self.roll)
        m = np.empty((len(self.dx), 2, 3), np.float32)
        m[:, 0, 0], m[:, 0, 1] = cos * sx, -sin * sy
        m[:, 1, 0], m[:, 1, 1] = sin * sx, cos * sy
        m[:, 0, 2] = cx + self.dx - (m[:, 0, 0] * cx + m[:, 0, 1] * cy)
        m[:, 1, 2] = cy + self.dy - (m[:, 1, 0] * cx + m[:, 1, 1] * cy)
        return m


def head_pose(rng: np.random.Generator, offsets: np.ndarray, fps: float, face: Face, config: SyntheticConfig) -> Pose:
    """The rigid pose of every frame: `offsets` (T, 2) pixels (breathing sway and motion
    episodes) plus the continuous motion of `config`, drawn from `rng`."""
    n = len(offsets)
    low, high = config.head_speed_hz
    speed = float(np.exp(rng.uniform(np.log(max(low, 1e-3)), np.log(max(high, 1e-3)))))
    draw = lambda rms: rms * smooth_noise(rng, n, fps, speed) if rms > 0 else np.zeros(n)  # noqa: E731
    mm = face.px_per_mm
    yaw = np.radians(draw(config.head_yaw_deg))
    pitch = np.radians(draw(config.head_yaw_deg))
    # turning about the neck moves the face sideways as well as foreshortening it
    dx = offsets[:, 0] + mm * (draw(config.head_translation_mm) + PIVOT_MM * np.sin(yaw))
    dy = offsets[:, 1] + mm * (draw(config.head_translation_mm) + PIVOT_MM * np.sin(pitch))
    return Pose(dx=dx, dy=dy, roll=np.radians(draw(config.head_roll_deg)), yaw=yaw, pitch=pitch,
                scale=1.0 + draw(config.head_scale))


def talking(rng: np.random.Generator, n: int, fps: float, config: SyntheticConfig) -> np.ndarray:
    """(T,) mouth opening in units of the face's reference opening: bouts of speech
    (2-8 s) covering `talking_fraction` of the time, at 3-6 syllables per second."""
    opening = np.zeros(n)
    if config.talking_fraction <= 0 or config.mouth_open_mm <= 0:
        return opening
    t = np.arange(n) / fps
    speaking = np.zeros(n, bool)
    fraction = config.talking_fraction
    position = -rng.uniform(0.0, 8.0)  # the recording may start mid-sentence
    while position < t[-1]:
        bout = rng.uniform(2.0, 8.0)
        speaking |= (t >= position) & (t < position + bout)
        # silences long enough on average that speech covers `fraction` of the time
        position += bout + rng.exponential(5.0 * (1.0 - fraction) / fraction) if fraction < 1 else bout
    rate = rng.uniform(3.0, 6.0) * (1 + 0.2 * smooth_noise(rng, n, fps, 0.5))
    syllables = np.maximum(0.0, np.sin(2 * np.pi * np.cumsum(rate) / fps))
    loudness = np.clip(0.75 + 0.25 * smooth_noise(rng, n, fps, 3.0), 0.3, 1.0)
    return speaking * syllables * loudness * config.mouth_open_mm / MOUTH_REFERENCE_MM


def blinks(rng: np.random.Generator, n: int, fps: float, config: SyntheticConfig) -> np.ndarray:
    """(T,) eyelid closure in [0, 1]: blinks at Poisson times, each 0.1-0.4 s."""
    closure = np.zeros(n)
    for at in poisson_times(rng, config.blinks_per_minute, n / fps):
        length = max(3, int(rng.uniform(0.1, 0.4) * fps))
        start = int(at * fps)
        closure[start : start + length] = np.maximum(closure[start : start + length], np.hanning(length)[: n - start])
    return closure


def detector_boxes(rng: np.random.Generator, boxes: np.ndarray, fps: float, config: SyntheticConfig) -> np.ndarray:
    """Ground-truth boxes (T, 4: x, y, w, h) as a face detector would give them: per-frame
    jitter and a slow drift, both as fractions of the face width."""
    n = len(boxes)
    width = boxes[:, 2:3]
    noisy = boxes.astype(np.float64)
    if config.box_jitter > 0:
        noisy += config.box_jitter * width * rng.standard_normal((n, 4))
    if config.box_drift > 0:
        noisy += config.box_drift * width * np.stack([smooth_noise(rng, n, fps, 0.05) for _ in range(4)], axis=1)
    noisy[:, 2:] = np.maximum(noisy[:, 2:], 8)
    return noisy
