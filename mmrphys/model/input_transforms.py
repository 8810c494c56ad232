"""Frame transforms an architecture expects before its network (not inside it).

RhythmFormer was trained on "Standardized" frames: the whole clip z-scored with one
scalar mean and one scalar population std over every frame, pixel and channel, NaN -> 0
(docs/rhythmformer.md, "Input"). The training stream and inference apply
`standardize_frames` to raw clips before the model; the network itself matches the
reference network on the reference network's input.
"""

from __future__ import annotations

import numpy as np
import torch

#: architecture -> whether its network expects clips through `standardize_frames`
STANDARDIZED_INPUT = {"mmrphys": False, "rhythmformer": True}


def standardize_frames(clips: np.ndarray) -> np.ndarray:
    """Z-score each clip of a (B, C, T, H, W) batch over all its values; float32.

    Mean and population std of the clip (one scalar each, float64 accumulation); a
    constant clip gives zeros (the reference's 0/0 NaN set to 0). Non-finite frame values
    are an error rather than zeros.
    """
    clips = np.asarray(clips)
    if clips.ndim != 5:
        raise ValueError(f"standardize_frames: expected clips (B, C, T, H, W), got shape {clips.shape}")
    values = clips.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"standardize_frames: {int((~np.isfinite(values)).sum())} non-finite frame values")
    axes = (1, 2, 3, 4)
    mean = values.mean(axis=axes, keepdims=True)
    std = values.std(axis=axes, keepdims=True)
    return ((values - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def standardize_frames_tensor(clips: torch.Tensor) -> torch.Tensor:
    """`standardize_frames` for a torch batch (B, C, T, H, W), in its floating dtype."""
    if clips.dim() != 5:
        raise ValueError(f"standardize_frames_tensor: expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    if not clips.is_floating_point():
        clips = clips.float()
    if not torch.isfinite(clips).all():
        raise ValueError(f"standardize_frames_tensor: {int((~torch.isfinite(clips)).sum())} non-finite frame values")
    flat = clips.reshape(clips.shape[0], -1).double()
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True, unbiased=False)
    out = (flat - mean) / torch.where(std > 0, std, torch.ones_like(std))
    return out.to(clips.dtype).reshape(clips.shape)
