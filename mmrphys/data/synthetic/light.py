"""Illumination and the camera's automatic exposure and white balance.

The light is one intensity times one colour per frame: slow drift, step changes (a lamp,
a cloud, a door), mains flicker, and a colour temperature with a slow drift. The camera
multiplies each channel by its exposure and white-balance gains, which follow the scene
with first-order lags (grey-world white balance on the frame mean), so a light step
shows as a jump that decays as the camera re-adapts.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic_waveforms import poisson_times, smooth_noise

#: wavelengths (nm) standing for the camera's R, G and B channels
CHANNEL_NM = np.array([610.0, 545.0, 465.0])
#: colour temperature the camera's fixed white balance is set for (daylight)
WHITE_K = 6500.0
#: Rec. 601 luma weights: what exposure metering averages
LUMA = np.array([0.299, 0.587, 0.114])


def colour_gains(kelvin: np.ndarray) -> np.ndarray:
    """(T, 3) relative R, G, B of black-body light at `kelvin` (T,), green = 1, and 1, 1, 1
    at `WHITE_K` (Planck's law at the channel wavelengths)."""
    second = 1.4388e7  # hc/k in nm K

    def planck(k: np.ndarray) -> np.ndarray:
        return 1.0 / (CHANNEL_NM**5 * (np.exp(second / (CHANNEL_NM * k[..., None])) - 1.0))

    rel = planck(np.asarray(kelvin, np.float64))
    white = planck(np.array([WHITE_K]))[0]
    return (rel / rel[..., 1:2]) / (white / white[1])


def _lag(x: np.ndarray, fps: float, time_constant_s: float) -> np.ndarray:
    """First-order causal low-pass along axis 0, started at the first value."""
    a = 1.0 - np.exp(-1.0 / (fps * time_constant_s))
    return signal.lfilter([a], [1, -(1 - a)], x, axis=0, zi=(1 - a) * x[:1])[0]


def light_steps(rng: np.random.Generator, n: int, fps: float, config: SyntheticConfig) -> np.ndarray:
    """(T,) relative change of light level from step changes (each over 0.2 s)."""
    t = np.arange(n) / fps
    level = np.zeros(n)
    for at in poisson_times(rng, config.light_steps_per_minute, t[-1]):
        level += rng.normal(0.0, config.light_step_size) * np.clip((t - at) / 0.2, 0.0, 1.0)
    return level


def camera_gains(
    rng: np.random.Generator, intensity: np.ndarray, scene_rgb: np.ndarray, fps: float, config: SyntheticConfig
) -> np.ndarray:
    """(T, 3) per-channel gain on the rendered scene: `intensity` (T,) of the light, its
    colour, and the camera's exposure and white balance reacting to `scene_rgb` (3,), the
    mean reflectance of the scene under white light."""
    n = len(intensity)
    low, high = config.light_colour_k
    kelvin = rng.uniform(low, high) + config.light_colour_drift_k * smooth_noise(rng, n, fps, 0.02)
    light = intensity[:, None] * colour_gains(np.clip(kelvin, 1000.0, 20000.0))
    gains = light
    if config.auto_white_balance_s > 0:
        # grey world: scale each channel so the frame's mean is grey, as the camera saw it
        seen = _lag(light * scene_rgb, fps, config.auto_white_balance_s)
        gains = gains * seen[:, 1:2] / seen
    if config.auto_exposure_s > 0:
        # exposure keeps the metered (luma) level of the first frame
        metered = _lag((gains * scene_rgb) @ LUMA, fps, config.auto_exposure_s)
        gains = gains * (metered[0] / metered)[:, None]
    return gains.astype(np.float32)
