"""LGI (Pilz et al. 2018) and OMIT (Alvarez Casado & Bordallo Lopez 2023): the green row of
the RGB means after removing one colour direction s, G_t - s_G (s . x_t)
(docs/baselines.md, LGI and OMIT). They differ only in how s is found.
"""

from __future__ import annotations

import numpy as np

from mmrphys.baselines.common import pulse_convention

#: both outputs follow the skin's brightness when green pulses most, as skin does
SIGN = -1.0


def _green_without(means: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The green row of (I - s s^T) X for X the (3, T) means (a float64 projector)."""
    projector = np.identity(3) - np.outer(direction, direction)
    return projector[1] @ means.T


def lgi(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP (T,): s is the first left singular vector of the uncentred means.

    The reduced SVD gives the toolbox's full-matrices vector without its T x T factor;
    the sign of s cancels. faithful: the SVD in the means' dtype (float32 under the
    toolbox's driver) and the DC level kept; otherwise float64, default convention.
    """
    x = means.T if faithful else means.T.astype(np.float64)
    direction = np.linalg.svd(x, full_matrices=False)[0][:, 0]
    bvp = _green_without(x.T, direction)
    return bvp if faithful else pulse_convention(bvp, SIGN)


def omit(means: np.ndarray, fs: float, faithful: bool) -> np.ndarray:
    """BVP (T,): s is the first column of Q in X = QR, i.e. the first frame's colour.

    faithful: that QR (in the means' dtype), DC level kept. Otherwise s is the mean
    colour of the clip, so one dark or occluded first frame cannot spoil the whole
    projection, in float64 and the default convention.
    """
    if faithful:
        return _green_without(means, np.linalg.qr(means.T)[0][:, 0])
    x = means.astype(np.float64)
    colour = x.mean(axis=0)
    norm = np.linalg.norm(colour)
    direction = colour / norm if norm > 0 else np.zeros(3)
    return pulse_convention(_green_without(x, direction), SIGN)
