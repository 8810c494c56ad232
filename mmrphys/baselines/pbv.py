"""PBV, the blood-volume pulse signature method (de Haan & van Leest 2014), in the form
rPPG-Toolbox computes it (pyVHR's) and in a safe form (docs/baselines.md, PBV).

The means are divided by their whole-clip mean; the "signature" is the unit vector of
the channels' spreads, and the pulse is the projection c^T W / (pbv^T W) with
W = Q^-1 pbv.
"""

from __future__ import annotations

import numpy as np

from mmrphys.baselines.common import BaselineError, pulse_convention

#: the raw output follows the skin's brightness when the signature is the pulse's colour
SIGN = -1.0


def pbv(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP (T,) from per-frame RGB means (T, 3).

    faithful: everything in the means' dtype (float32 under the toolbox's driver, where
    the ill-conditioned solve moves the output by several percent), Q uncentred, no
    guards (a zero channel mean gives NaN; a constant clip makes Q singular and raises).
    Otherwise float64; Q is the covariance of the normalised traces, which removes the
    DC part that dominates the uncentred Q; flat channels carry no weight, a clip with
    no variation gives zeros; default convention.
    """
    x = np.ascontiguousarray(means.T if faithful else means.T.astype(np.float64))  # (3, T)
    level = x.mean(axis=1, keepdims=True)
    if faithful:
        with np.errstate(divide="ignore", invalid="ignore"):
            c = x / level
            spread = c.std(axis=1)
            signature = spread / np.sqrt(np.sum(spread**2))
        try:
            weights = np.linalg.solve(c @ c.T, signature)
        except np.linalg.LinAlgError as err:
            raise BaselineError(
                "PBV: the clip's normalised colour matrix is singular (e.g. a constant clip); "
                "rPPG-Toolbox raises LinAlgError here, the default profile returns zeros"
            ) from err
        with np.errstate(divide="ignore", invalid="ignore"):
            return (c.T @ weights) / (signature @ weights)
    c = np.where(level > 0, x / np.where(level > 0, level, 1.0), 1.0)
    spread = c.std(axis=1)
    if not spread.any():
        return np.zeros(x.shape[1])
    signature = spread / np.sqrt(np.sum(spread**2))
    centred = c - c.mean(axis=1, keepdims=True)
    weights = np.linalg.lstsq(centred @ centred.T, signature, rcond=None)[0]
    gain = signature @ weights
    if gain <= 0:
        return np.zeros(x.shape[1])
    return pulse_convention((c.T @ weights) / gain, SIGN)
