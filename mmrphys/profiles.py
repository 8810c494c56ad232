"""Named evaluation profiles: every parameter in which rPPG-Toolbox, the MMRPhys reference
and our default evaluation differ, in one table of frozen dataclasses.

"rppg-toolbox" and "mmrphys" reproduce the published evaluation code (docs/evaluation.md), bugs included where they change numbers; "default"
fixes them. `docs/evaluation.md` lists each difference and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# the pulse band both references use for filtering, FFT and SNR: 36-198 beats/min
PULSE_BAND = (0.6, 3.3)
# the references' breathing band: 7.8-30 breaths/min, which cuts off slow breathers
REFERENCE_BREATHING_BAND = (0.13, 0.5)
# our breathing band: 5-40 breaths/min, resting breathing of adults and children
BREATHING_BAND = (5.0 / 60.0, 40.0 / 60.0)
# the references' half-width of the SNR windows around the rate and its harmonic: 6/min
SNR_HALF_WIDTH = 6.0 / 60.0


@dataclass(frozen=True)
class TaskRules:
    """How one task's (BVP's or RSP's) windows are processed and scored."""

    band: tuple[float, float]
    """Band-pass edges and the range searched for the spectral peak, Hz."""
    filter_order: int
    """Butterworth order (the band-pass has twice as many poles)."""
    filter_form: Literal["ba", "sos"] = "ba"
    detrend_lambda: float | None = None
    """Fixed smoothness-priors lambda (the references use 100 whatever the frame rate)."""
    detrend_cutoff_hz: float | None = None
    """Or: the lambda whose 50% point is at this frequency for the window's fs."""
    zscore_before_rate: bool = False
    welch_rate_above_seconds: float | None = None
    """Rate from Welch (N//2 segments) for windows longer than this; else periodogram."""
    rate_resolution_per_min: float | None = None
    """Zero-pad the rate periodogram at least this finely; None = nextpow2(N) only."""
    snr_band: tuple[float, float] = PULSE_BAND
    snr_half_width: float = SNR_HALF_WIDTH
    snr_zscore: bool = False
    snr_squared_psd: bool = False
    snr_welch_from_samples: int | None = None
    """SNR spectrum from Welch (N//2) for windows of at least this many samples."""
    snr_no_noise_bins: float = 0.0
    """SNR returned when no noise power is left (0 in the references, NaN for us)."""
    macc: Literal["circular_abs", "signed_half_period"] | None = "circular_abs"
    peak_min_distance: bool = False
    """Peaks at least one shortest in-band period apart."""
    peak_min_prominence_std: float | None = None
    """Peaks at least this many standard deviations of the window prominent."""
    rmse_se: Literal["toolbox", "mmrphys", "bigsmall", "delta"] = "toolbox"
    whole_recording_each_window: bool = False
    """BigSmall RSP bug: every window scores the whole recording."""


@dataclass(frozen=True)
class Profile:
    """A complete evaluation recipe; `name` is recorded with every result."""

    name: str
    description: str
    bvp: TaskRules
    rsp: TaskRules
    skip_below_samples: int | None = None
    """Windows shorter than this are skipped, as the references' guard does (9)."""
    min_periods: float | None = None
    """Windows must cover this many periods of the band's lower edge."""
    min_tail_fraction: float | None = None
    """A trailing partial window shorter than this fraction of the window is skipped."""
    float32_cumsum: bool = False
    """Integrate diff-normalised signals in float32, as the references' torch tensors do."""
    undefined_is_nan: bool = False
    """NaN where a value is undefined: the rate, SNR and MACC of a constant prediction and
    the SNR of a window whose label has no rate (the references return numbers there)."""
    drop_invalid_windows: bool = False
    """summarize() drops windows without finite rates (counted) instead of returning NaN."""
    se_ddof: int = 0
    bland_altman_sign: Literal["label_minus_pred", "pred_minus_label"] = "label_minus_pred"
    bland_altman_loa_scale: float = math.sqrt(2.0)

    def task(self, task: str) -> TaskRules:
        """The rules for `task` ("bvp" or "rsp")."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        return getattr(self, task)


TASKS = ("bvp", "rsp")

TOOLBOX = Profile(
    name="rppg-toolbox",
    description="rPPG-Toolbox d807b017: post_process.py for BVP, BigSmall multitask code for RSP",
    bvp=TaskRules(band=PULSE_BAND, filter_order=1, detrend_lambda=100.0, rmse_se="toolbox"),
    rsp=TaskRules(
        band=REFERENCE_BREATHING_BAND,
        filter_order=1,
        detrend_lambda=100.0,
        snr_band=REFERENCE_BREATHING_BAND,
        macc=None,
        rmse_se="bigsmall",
        whole_recording_each_window=True,
    ),
    skip_below_samples=9,
    float32_cumsum=True,
)

MMRPHYS = Profile(
    name="mmrphys",
    description="MMRPhys reference eb6a65a0: calculate_metric_per_video / calculate_rsp_metrics_per_video",
    bvp=TaskRules(
        band=PULSE_BAND,
        filter_order=2,
        welch_rate_above_seconds=30.0,
        snr_zscore=True,
        snr_squared_psd=True,
        snr_welch_from_samples=256,
        rmse_se="mmrphys",
    ),
    rsp=TaskRules(
        band=REFERENCE_BREATHING_BAND,
        filter_order=2,
        zscore_before_rate=True,
        welch_rate_above_seconds=30.0,
        snr_band=(0.1, 0.54),
        snr_zscore=True,
        snr_squared_psd=True,
        snr_welch_from_samples=256,
        rmse_se="mmrphys",
    ),
    skip_below_samples=9,
    float32_cumsum=True,
)

DEFAULT = Profile(
    name="default",
    description="sound defaults: the reference pipeline with the known bugs fixed",
    bvp=TaskRules(
        band=PULSE_BAND,
        filter_order=2,
        filter_form="sos",
        detrend_cutoff_hz=PULSE_BAND[0] / 2,
        rate_resolution_per_min=0.25,
        snr_no_noise_bins=math.nan,
        macc="signed_half_period",
        peak_min_distance=True,
        peak_min_prominence_std=0.5,
        rmse_se="delta",
    ),
    rsp=TaskRules(
        band=BREATHING_BAND,
        filter_order=2,
        filter_form="sos",
        # no detrend: the band-pass removes drift, and a detrend with its cut-off far
        # enough below 5/min needs a badly conditioned lambda (~1e4 at 30 fps)
        rate_resolution_per_min=0.25,
        snr_band=BREATHING_BAND,
        # the references' 6/min windows swallow most of a 5-40/min band
        snr_half_width=3.0 / 60.0,
        snr_no_noise_bins=math.nan,
        macc="signed_half_period",
        peak_min_distance=True,
        peak_min_prominence_std=0.5,
        rmse_se="delta",
    ),
    min_periods=1.0,
    min_tail_fraction=0.5,
    undefined_is_nan=True,
    drop_invalid_windows=True,
    se_ddof=1,
    bland_altman_sign="pred_minus_label",
    bland_altman_loa_scale=1.0,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (DEFAULT, TOOLBOX, MMRPHYS)}


def get_profile(profile: str | Profile) -> Profile:
    """Look a profile up by name (a `Profile` passes through)."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError) as err:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}") from err
