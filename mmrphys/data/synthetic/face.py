"""A synthetic subject's static appearance, and the layers its face animation adds.

The face is drawn once per subject in frame coordinates (skin tone, shading, eyes, brows,
mouth, nostril shadow, where the pulse is strong, face temperature, where breath flows).
Talking and blinking are two extra layers, the change of every channel from a closed to
an open mouth and from open to closed eyes, scaled per frame by the animation.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mmrphys.config import SyntheticConfig

#: skin base colours (RGB, 0-255), Fitzpatrick types I (lightest) to VI (darkest)
SKIN_TONES = np.array(
    [[233, 190, 165], [224, 172, 140], [198, 145, 110], [170, 118, 85], [132, 88, 62], [96, 64, 46]],
    dtype=np.float32,
)
#: relative pulsatility (AC/DC) of R, G, B in skin reflectance: green strongest
SKIN_PULSATILITY = np.array([0.33, 0.77, 0.53], dtype=np.float32)
#: a face is about this wide (bizygomatic breadth, docs/data.md section 1); sets mm -> pixels
FACE_WIDTH_MM = 150.0
#: the mouth-open layer is drawn for this opening; talking scales it
MOUTH_REFERENCE_MM = 10.0
#: the layer stack: RGB, alpha, pulse map, temperature, breath map
LAYERS = 7
RGB, ALPHA, PULSE, TEMPERATURE, BREATH = slice(0, 3), 3, 4, 5, 6


@dataclasses.dataclass(frozen=True)
class Face:
    """A subject's appearance: layers (H, W, LAYERS) in frame coordinates, plus the
    changes (same shape) an open mouth and closed eyes make."""

    layers: np.ndarray
    mouth_open: np.ndarray
    eyes_closed: np.ndarray
    center: tuple[float, float]
    half_size: tuple[float, float]
    skin_type: int  # Fitzpatrick 1..6

    @property
    def px_per_mm(self) -> float:
        """Pixels per millimetre at the face."""
        return 2 * self.half_size[0] / FACE_WIDTH_MM


def blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """A Gaussian bump of peak 1 at (cx, cy) with widths (sx, sy)."""
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def smooth_texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Unit-variance spatial noise blurred at `scale` pixels."""
    noise = rng.standard_normal((h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), scale)
    return noise / (noise.std() + 1e-6)


def make_face(rng: np.random.Generator, config: SyntheticConfig) -> Face:
    """Draw one subject's face from `rng` (the appearance seed)."""
    h, w = config.height, config.width
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ry = rng.uniform(0.26, 0.32) * h
    rx = ry * rng.uniform(0.75, 0.85)
    cx = w / 2 + rng.uniform(-0.06, 0.06) * w
    cy = h / 2 + rng.uniform(-0.04, 0.04) * h
    u, v = (x - cx) / rx, (y - cy) / ry  # face coordinates, the ellipse is u^2 + v^2 <= 1
    r2 = u**2 + v**2
    alpha = np.clip((1.0 - np.sqrt(r2)) * rx / 1.5, 0.0, 1.0)

    skin_type = int(rng.integers(config.skin_types[0] - 1, config.skin_types[1])) + 1
    tone = SKIN_TONES[skin_type - 1] * rng.uniform(0.92, 1.08, size=3)
    shading = 1.05 - 0.25 * r2 + 0.03 * smooth_texture(rng, h, w, 3.0)
    skin = tone[None, None, :] * shading[..., None]
    # dark features a face detector and a model can lock on to; no pulse there
    eyes = blob(u, v, -0.38, -0.22, 0.16, 0.07) + blob(u, v, 0.38, -0.22, 0.16, 0.07)
    features = (
        eyes
        + 0.7 * blob(u, v, -0.38, -0.42, 0.2, 0.04) + 0.7 * blob(u, v, 0.38, -0.42, 0.2, 0.04)  # brows
        + 0.6 * blob(u, v, 0.0, 0.5, 0.28, 0.06)  # mouth
        + 0.25 * blob(u, v, 0.0, 0.2, 0.09, 0.05)  # nostril shadow
    )
    features = np.clip(features, 0, 1)
    rgb = skin * (1 - 0.9 * features[..., None])

    pulse = 0.5 + blob(u, v, 0, -0.55, 0.5, 0.18) + blob(u, v, -0.45, 0.15, 0.22, 0.22) + blob(u, v, 0.45, 0.15, 0.22, 0.22)
    pulse = pulse * (1 + 0.2 * smooth_texture(rng, h, w, 2.0)) * (1 - features) * alpha
    skin_area = alpha > 0.5
    pulse_map = np.clip(pulse / pulse[skin_area].mean(), 0, None)

    core = rng.uniform(34.0, 35.5)
    temperature = core - 1.2 * r2 - 0.8 * blob(u, v, 0, 0.1, 0.12, 0.15) + 0.15 * smooth_texture(rng, h, w, 3.0)
    breath_map = blob(u, v, 0, 0.32, 0.22, 0.1) + 0.6 * blob(u, v, 0, 0.5, 0.3, 0.08)
    layers = np.dstack([rgb, alpha, pulse_map, temperature, breath_map / breath_map.max()]).astype(np.float32)

    # an open mouth: a dark cavity below the lips, no pulse in it, warm breath
    opening = MOUTH_REFERENCE_MM * 2 * rx / FACE_WIDTH_MM / ry  # in face-height units
    cavity = np.clip(blob(u, v, 0.0, 0.5 + opening / 2, 0.22, max(opening / 2, 0.02)), 0, 1) * (alpha > 0)
    mouth_open = np.zeros_like(layers)
    mouth_open[..., RGB] = -0.8 * rgb * cavity[..., None]
    mouth_open[..., PULSE] = -pulse_map * cavity
    mouth_open[..., TEMPERATURE] = 1.0 * cavity
    # closed eyes: eyelid skin (a little darker than the cheeks) over the dark eye
    lids = np.clip(eyes, 0, 1)
    eyes_closed = np.zeros_like(layers)
    eyes_closed[..., RGB] = (0.85 * skin - rgb) * lids[..., None]
    return Face(
        layers=layers,
        mouth_open=mouth_open.astype(np.float32),
        eyes_closed=eyes_closed.astype(np.float32),
        center=(float(cx), float(cy)),
        half_size=(float(rx), float(ry)),
        skin_type=skin_type,
    )
