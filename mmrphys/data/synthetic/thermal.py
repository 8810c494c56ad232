"""What an uncooled microbolometer adds to the thermal scene: temporal noise (NETD), an
offset that drifts between flat-field corrections (FFC, the shutter closing every so
often; the frame freezes while it is closed), residual column fixed-pattern noise that
changes at each FFC, and nostrils hidden from the camera when the head turns.
"""

from __future__ import annotations

import numpy as np

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic_waveforms import smooth_noise

#: how long the frame freezes at a flat-field correction, seconds
FFC_FREEZE_S = 0.5


def ffc_times(n: int, fps: float, config: SyntheticConfig) -> np.ndarray:
    """Frame indices of the flat-field corrections (none when the interval is 0)."""
    if config.ffc_interval_s <= 0:
        return np.empty(0, np.int64)
    return (np.arange(config.ffc_interval_s, n / fps, config.ffc_interval_s) * fps).astype(np.int64)


def sensor_offsets(rng: np.random.Generator, n: int, h: int, w: int, fps: float, config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """The frame offset (T,) degrees C, drifting and reset to zero at each FFC, and the
    column pattern (segments, W) with the segment index (T,) of every frame."""
    resets = ffc_times(n, fps, config)
    segment = np.searchsorted(resets, np.arange(n), side="right")
    drift = np.zeros(n)
    if config.thermal_drift_c > 0:
        # a random walk of the sensor offset (about a minute's time scale) that the FFC zeroes
        walk = config.thermal_drift_c * smooth_noise(rng, n, fps, 1 / 60.0)
        starts = np.concatenate([[0], resets])
        drift = walk - walk[starts[segment]]
    columns = np.zeros((len(resets) + 1, w), np.float32)
    if config.thermal_fpn_c > 0:
        columns = (config.thermal_fpn_c * rng.standard_normal((len(resets) + 1, w))).astype(np.float32)
    return drift.astype(np.float32), columns, segment


def freeze_map(n: int, fps: float, config: SyntheticConfig) -> np.ndarray:
    """(T,) index of the frame each stored thermal frame shows: frozen during each FFC."""
    index = np.arange(n)
    for at in ffc_times(n, fps, config):
        index[at : at + int(FFC_FREEZE_S * fps)] = max(at - 1, 0)
    return index


def nostril_visibility(rotation_deg: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """(T,) fraction of the nostril airflow the camera sees, 0 once the head has turned
    by `nostril_occlusion_deg` (1 always when that is 0)."""
    if config.nostril_occlusion_deg <= 0:
        return np.ones_like(rotation_deg)
    return np.clip(1.0 - rotation_deg / config.nostril_occlusion_deg, 0.0, 1.0)
