"""The synthetic-data section: what the embedded face-video generator draws, and its
named difficulty presets (`clean`, `realistic`, `hard`; see docs/data.md section 1)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from mmrphys.config.base import Config, ConfigError

Preset = Literal["clean", "realistic", "hard"]
Compression = Literal["lossless", "mjpeg", "mpeg4"]
ThermalStorage = Literal["float32", "float16"]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig(Config):
    """Everything the renderer draws, per recording, from the given ranges.

    Build one from a named preset with `SyntheticConfig.from_preset(name, overrides)`; the
    plain constructor gives `clean` (every nuisance off). `preset` records the preset a
    config started from; any field can be overridden on top of it. Each nuisance's unit,
    real-world range and source are in docs/data.md section 1.

    Physiology: hr_range / rr_range (bpm, breaths/min); hr_change_bpm: largest change of
    heart rate within a recording (rest to exercise or recovery), drawn in +-that;
    rr_change: largest relative step of the breathing rate; sighs_per_minute (breaths 2-3x
    deeper) and breath_holds_per_minute (pauses of 3-8 s).
    Skin: skin_types: Fitzpatrick range I..VI (1..6) drawn from; pulse_amplitude: green
    peak-to-peak pulse in levels of 255 on type I skin; melanin_pulse_attenuation:
    fraction of the relative pulse lost on type VI skin (linear in between).
    Rigid head motion: head_translation_mm (rms, a face is about 150 mm wide),
    head_roll_deg (in-plane, rms), head_yaw_deg (out-of-plane yaw and pitch, rms),
    head_scale (relative rms change of distance), head_speed_hz: bandwidth range of the
    motion (about 0.1 Hz still, 1-2 Hz talking); motion_episodes_per_minute / motion_px:
    occasional 1-3 s movements; breathing_motion_px: vertical sway at full breath.
    Non-rigid motion: talking_fraction of the recording, mouth_open_mm while talking (at
    3-6 syllables/s); blinks_per_minute (each 0.1-0.4 s).
    Illumination: illumination_drift (relative sd, tens of seconds);
    light_steps_per_minute / light_step_size (relative sd of a step); flicker_amplitude /
    flicker_hz (100 Hz light at 30 fps aliases to 10 Hz); light_colour_k: colour
    temperature range in kelvin, light_colour_drift_k its slow rms drift;
    auto_exposure_s / auto_white_balance_s: time constants of the camera's automatic
    exposure and white balance (0 = off).
    Camera: sensor_noise: read noise sd in levels; shot_noise_gain: levels of variance
    per level of signal (noise grows with brightness); compression: lossless FFV1,
    MJPEG at jpeg_quality, or MPEG-4 part 2; dropped_frame_rate / duplicated_frame_rate:
    fraction of frames the camera drops (the video skips ahead) or repeats.
    Face boxes: box_jitter (per-frame rms) and box_drift (slow rms), fractions of the
    face width, as from a detector rather than ground truth.
    Thermal (degrees C): thermal_breath_c: nostril/mouth swing over a breath;
    thermal_pulse_c; thermal_noise_c: NETD; thermal_drift_c: rms offset drift of an
    uncooled sensor between flat-field corrections every ffc_interval_s (0 = none; the
    frame freezes for 0.5 s at each); thermal_fpn_c: column fixed-pattern noise;
    nostril_occlusion_deg: head rotation that hides the nostrils (0 = never);
    thermal_storage: dtype of thermal.npy (float16 keeps 0.03 C steps, half the disk).
    """

    preset: Preset = "clean"
    width: int = 160
    height: int = 120
    hr_range: tuple[float, ...] = (45.0, 150.0)
    rr_range: tuple[float, ...] = (8.0, 24.0)
    hr_change_bpm: float = 0.0
    rr_change: float = 0.0
    sighs_per_minute: float = 0.0
    breath_holds_per_minute: float = 0.0
    skin_types: tuple[int, ...] = (1, 6)
    pulse_amplitude: tuple[float, ...] = (0.5, 2.0)
    melanin_pulse_attenuation: float = 0.0
    head_translation_mm: float = 0.0
    head_roll_deg: float = 0.0
    head_yaw_deg: float = 0.0
    head_scale: float = 0.0
    head_speed_hz: tuple[float, ...] = (0.1, 1.0)
    breathing_motion_px: float = 0.6
    motion_episodes_per_minute: float = 1.0
    motion_px: float = 5.0
    talking_fraction: float = 0.0
    mouth_open_mm: float = 0.0
    blinks_per_minute: float = 0.0
    illumination_drift: float = 0.02
    light_steps_per_minute: float = 0.0
    light_step_size: float = 0.0
    flicker_amplitude: float = 0.002
    flicker_hz: float = 10.0
    light_colour_k: tuple[float, ...] = (6500.0, 6500.0)
    light_colour_drift_k: float = 0.0
    auto_exposure_s: float = 0.0
    auto_white_balance_s: float = 0.0
    sensor_noise: tuple[float, ...] = (1.5, 3.0)
    shot_noise_gain: float = 0.0
    compression: Compression = "lossless"
    jpeg_quality: int = 75
    dropped_frame_rate: float = 0.0
    duplicated_frame_rate: float = 0.0
    box_jitter: float = 0.0
    box_drift: float = 0.0
    thermal_breath_c: tuple[float, ...] = (0.4, 1.0)
    thermal_pulse_c: float = 0.02
    thermal_noise_c: float = 0.05
    thermal_drift_c: float = 0.0
    ffc_interval_s: float = 0.0
    thermal_fpn_c: float = 0.0
    nostril_occlusion_deg: float = 0.0
    thermal_storage: ThermalStorage = "float32"

    def validate(self) -> None:
        if self.width < 64 or self.height < 48:
            raise ConfigError(f"SyntheticConfig.width/height: frames must be at least 64x48, got {self.width}x{self.height}")
        for name in ("hr_range", "rr_range", "pulse_amplitude", "sensor_noise", "thermal_breath_c", "light_colour_k",
                     "head_speed_hz", "skin_types"):
            value = getattr(self, name)
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ConfigError(f"SyntheticConfig.{name}: expected [low, high] with 0 <= low <= high, got {list(value)}")
        if not 1 <= self.skin_types[0] <= self.skin_types[1] <= 6:
            raise ConfigError(f"SyntheticConfig.skin_types: Fitzpatrick types are 1..6, got {list(self.skin_types)}")
        if not 1000.0 <= self.light_colour_k[0] <= self.light_colour_k[1] <= 20000.0:
            raise ConfigError(f"SyntheticConfig.light_colour_k: expected kelvin in [1000, 20000], got {list(self.light_colour_k)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"SyntheticConfig.jpeg_quality: expected 1..100, got {self.jpeg_quality}")
        for name in ("talking_fraction", "melanin_pulse_attenuation", "dropped_frame_rate", "duplicated_frame_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"SyntheticConfig.{name}: expected a fraction in [0, 1], got {getattr(self, name)}")
        scalars = [f.name for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), float)]
        negative = [name for name in scalars if getattr(self, name) < 0]
        if negative:
            raise ConfigError(f"SyntheticConfig.{negative[0]}: must be >= 0, got {getattr(self, negative[0])}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], _prefix: str = "") -> "SyntheticConfig":
        """As `Config.from_dict`; a mapping naming a `preset` takes its missing fields from it."""
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            data = {**PRESETS[data["preset"]], **data}
        return super().from_dict(data, _prefix)

    @classmethod
    def from_preset(cls, name: str, overrides: list[str] | tuple[str, ...] = ()) -> "SyntheticConfig":
        """The named preset with `FIELD=VALUE` (or `synthetic.FIELD=VALUE`) overrides on top."""
        if name not in PRESETS:
            raise ConfigError(f"SyntheticConfig.preset: {name!r} is not one of {sorted(PRESETS)}")
        config = cls(preset=name, **PRESETS[name])
        return config.with_overrides(overrides) if overrides else config

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> "SyntheticConfig":
        """As `Config.with_overrides`, plus: `preset=NAME` restarts from that preset (the
        other overrides apply on top, in any order) and a `synthetic.` prefix is accepted."""
        items = [o[len("synthetic."):] if o.strip().startswith("synthetic.") else o for o in overrides]
        presets = [o for o in items if o.split("=", 1)[0].strip() == "preset"]
        rest = [o for o in items if o not in presets]
        base: SyntheticConfig = self
        if presets:
            base = type(self).from_preset(presets[-1].split("=", 1)[1].strip())
        return Config.with_overrides(base, rest) if rest else base


#: each preset as the fields it changes from `clean` (the dataclass defaults); the ranges
#: and their sources are in docs/data.md section 1
PRESETS: dict[str, dict[str, Any]] = {
    "clean": {},
    "realistic": {
        "hr_range": (55.0, 110.0), "hr_change_bpm": 8.0, "rr_change": 0.1, "sighs_per_minute": 0.2, "breath_holds_per_minute": 0.1,
        "melanin_pulse_attenuation": 0.4,
        "head_translation_mm": 2.0, "head_roll_deg": 1.5, "head_yaw_deg": 1.5, "head_scale": 0.01,
        "head_speed_hz": (0.05, 0.5), "motion_episodes_per_minute": 2.0,
        "talking_fraction": 0.3, "mouth_open_mm": 8.0, "blinks_per_minute": 17.0,
        "illumination_drift": 0.03, "light_steps_per_minute": 0.5, "light_step_size": 0.05,
        "flicker_amplitude": 0.004, "light_colour_k": (3000.0, 6500.0), "light_colour_drift_k": 150.0,
        "auto_exposure_s": 1.0, "auto_white_balance_s": 3.0,
        "sensor_noise": (1.0, 2.5), "shot_noise_gain": 0.02, "compression": "mjpeg", "jpeg_quality": 85,
        "dropped_frame_rate": 0.002, "duplicated_frame_rate": 0.002,
        "box_jitter": 0.005, "box_drift": 0.005,
        "thermal_drift_c": 0.2, "ffc_interval_s": 60.0, "thermal_fpn_c": 0.05, "nostril_occlusion_deg": 35.0,
        "thermal_storage": "float16",
    },
    "hard": {
        "hr_range": (45.0, 160.0), "hr_change_bpm": 20.0, "rr_change": 0.3, "sighs_per_minute": 0.5,
        "breath_holds_per_minute": 0.5,
        "pulse_amplitude": (0.4, 1.8), "melanin_pulse_attenuation": 0.5,
        "head_translation_mm": 5.0, "head_roll_deg": 4.0, "head_yaw_deg": 8.0, "head_scale": 0.03,
        "head_speed_hz": (0.1, 1.5), "motion_episodes_per_minute": 4.0, "motion_px": 8.0,
        "talking_fraction": 0.6, "mouth_open_mm": 12.0, "blinks_per_minute": 25.0,
        "illumination_drift": 0.045, "light_steps_per_minute": 1.0, "light_step_size": 0.07,
        "flicker_amplitude": 0.006, "light_colour_k": (2700.0, 7500.0), "light_colour_drift_k": 300.0,
        "auto_exposure_s": 0.7, "auto_white_balance_s": 2.0,
        "sensor_noise": (1.5, 3.0), "shot_noise_gain": 0.03, "compression": "mjpeg", "jpeg_quality": 60,
        "dropped_frame_rate": 0.01, "duplicated_frame_rate": 0.01,
        "box_jitter": 0.015, "box_drift": 0.05,
        "thermal_noise_c": 0.1, "thermal_drift_c": 0.5, "ffc_interval_s": 30.0, "thermal_fpn_c": 0.1,
        "nostril_occlusion_deg": 25.0, "thermal_storage": "float16",
    },
}
