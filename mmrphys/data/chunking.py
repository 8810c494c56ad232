"""Cutting aligned recordings into fixed-length chunks and validating them.

A chunk is rejected (with its reason) rather than silently dropped when its labels hold
NaN, are constant (z-scoring would divide by zero), or too few of its frames had a
detected face.
"""

from __future__ import annotations

import numpy as np

from mmrphys import signals
from mmrphys.profiles import get_profile


def chunk_starts(n_frames: int, length: int, overlap: int = 0) -> list[int]:
    """Start frames of every full chunk of `length` frames stepping by `length - overlap`."""
    if length < 1:
        raise ValueError(f"chunk length must be >= 1, got {length}")
    if not 0 <= overlap < length:
        raise ValueError(f"overlap must be in [0, {length}), got {overlap}")
    return list(range(0, n_frames - length + 1, length - overlap))


def label_rate(values: np.ndarray, fps: float, task: str) -> float:
    """Rate per minute of a chunk's label: the strongest periodogram peak inside the
    default evaluation profile's band for `task`, zero-padded to a 1/min grid at least;
    NaN when the chunk is too short for any bin to fall in the band."""
    x = np.asarray(values, np.float64)
    nfft = max(signals.next_pow2(len(x)), signals.next_pow2(int(np.ceil(60 * fps))))
    freqs, power = signals.periodogram(x - x.mean(), fps, nfft)
    try:
        return float(signals.spectral_peak_rate(freqs, power, *get_profile("default").task(task).band))
    except signals.SignalError:
        return float("nan")


def check_chunk(
    labels: dict[str, np.ndarray],
    face_found: np.ndarray | None,
    max_no_face: float,
    quality: np.ndarray | None = None,
    min_quality: float = 0.0,
) -> str | None:
    """The reason to reject a chunk, or None. `labels` are the chunk's label arrays;
    `quality` its per-frame signal quality in [0, 1] when the dataset has one."""
    for name, values in labels.items():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            return f"{name} labels have {bad} NaN/inf of {len(values)} samples"
        if np.ptp(values) == 0:
            return f"{name} labels are constant"
    if face_found is not None and len(face_found):
        missing = 1.0 - float(np.mean(face_found))
        if missing > max_no_face:
            return f"no face detected in {missing:.0%} of frames (limit {max_no_face:.0%})"
    if quality is not None and len(quality):
        mean_quality = float(np.nanmean(quality)) if np.isfinite(quality).any() else 0.0
        if mean_quality < min_quality:
            return f"signal quality {mean_quality:.2f} below {min_quality:.2f}"
    return None
