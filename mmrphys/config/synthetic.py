"""The synthetic-data section: what the embedded face-video generator draws."""

from __future__ import annotations

import dataclasses

from mmrphys.config.base import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class SyntheticConfig(Config):
    """Everything the renderer draws, per recording, from the given ranges.

    pulse_amplitude: green peak-to-peak pulse at the face's mean brightness, in levels of
        255 (drawn per recording).
    sensor_noise: per-pixel, per-frame Gaussian noise standard deviation in levels.
    illumination_drift: relative standard deviation of the slow light-level drift.
    flicker_amplitude / flicker_hz: relative mains flicker as seen by the camera
        (100 Hz light at 30 fps aliases to 10 Hz).
    breathing_motion_px: vertical head motion at full breath, pixels.
    motion_episodes_per_minute / motion_px: occasional head movements (1-3 s each).
    thermal_breath_c: nostril/mouth temperature swing over a breath, degrees C.
    thermal_pulse_c / thermal_noise_c: weak pulse and sensor noise (NETD) in degrees C.
    """

    width: int = 160
    height: int = 120
    hr_range: tuple[float, ...] = (45.0, 150.0)
    rr_range: tuple[float, ...] = (8.0, 24.0)
    pulse_amplitude: tuple[float, ...] = (0.5, 2.0)
    sensor_noise: tuple[float, ...] = (1.5, 3.0)
    illumination_drift: float = 0.02
    flicker_amplitude: float = 0.002
    flicker_hz: float = 10.0
    breathing_motion_px: float = 0.6
    motion_episodes_per_minute: float = 1.0
    motion_px: float = 5.0
    thermal_breath_c: tuple[float, ...] = (0.4, 1.0)
    thermal_pulse_c: float = 0.02
    thermal_noise_c: float = 0.05

    def validate(self) -> None:
        if self.width < 64 or self.height < 48:
            raise ConfigError(f"SyntheticConfig.width/height: frames must be at least 64x48, got {self.width}x{self.height}")
        for name in ("hr_range", "rr_range", "pulse_amplitude", "sensor_noise", "thermal_breath_c"):
            value = getattr(self, name)
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ConfigError(f"SyntheticConfig.{name}: expected [low, high] with 0 <= low <= high, got {list(value)}")
