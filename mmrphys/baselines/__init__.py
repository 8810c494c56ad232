"""Classic unsupervised rPPG baselines (POS, CHROM, ICA, GREEN, LGI, PBV, OMIT) in NumPy.

`extract(method, frames, fs, profile=...)` turns face crops (T, H, W, 3, RGB) into a BVP
waveform; `extract_from_means` starts from the per-frame RGB means. Profile
"rppg-toolbox" reproduces rPPG-Toolbox's arithmetic, defects included; "default" is the
safe form: finite output of length T, oriented to rise with blood volume, zero mean.
See docs/baselines.md.
"""

from mmrphys.baselines.common import (
    BASELINE_PROFILES,
    BaselineError,
    ClipTooShortError,
    UnknownMethodError,
    spatial_mean,
    window_length,
)
from mmrphys.baselines.extraction import (
    METHODS,
    extract,
    extract_from_means,
    output_length,
)

__all__ = [
    "BASELINE_PROFILES",
    "METHODS",
    "BaselineError",
    "ClipTooShortError",
    "UnknownMethodError",
    "extract",
    "extract_from_means",
    "output_length",
    "spatial_mean",
    "window_length",
]
