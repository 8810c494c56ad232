"""Frame transforms an architecture expects before its network (not inside it).

RhythmFormer was trained on "Standardized" frames: the whole clip z-scored with one
scalar mean and one scalar population std over every frame, pixel and channel, NaN -> 0
(docs/rhythmformer.md, "Input"). The training stream and inference apply
`input_transform` to raw clips before the model; the network itself matches the
reference network on the reference network's input.
"""

from __future__ import annotations

import numpy as np

from mmrphys.config import ModelConfig

#: architectures whose network expects clips through `standardize_frames`
STANDARDIZED_INPUT = frozenset({"rhythmformer"})


def input_transform(clips: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Raw clips (B, C, T, H, W) as the architecture's network expects them: standardized
    for RhythmFormer, unchanged (the same array) for the others, whose front end is inside
    the network. The one place this step runs for every clip that reaches a network: the
    training stream, `Predictor.predict_video` and the pyfunc model."""
    return standardize_frames(clips) if config.architecture in STANDARDIZED_INPUT else clips


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
