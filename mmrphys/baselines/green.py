"""GREEN (Verkruysse et al. 2008): the green channel's spatial mean as the pulse
(docs/baselines.md, GREEN)."""

from __future__ import annotations

import numpy as np

from mmrphys.baselines.common import pulse_convention

#: the raw output is the skin's green brightness
SIGN = -1.0


def green(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP (T,) from per-frame RGB means (T, 3).

    faithful: the raw green mean in the means' dtype, DC level kept, as the toolbox
    returns it. Otherwise float64 in the default convention. Neither filters: `fs` is
    unused.
    """
    return means[:, 1].copy() if faithful else pulse_convention(means[:, 1], SIGN)
