"""The classic unsupervised methods (POS, CHROM, ...) behind the network interface.

`UnsupervisedModel(config)` takes the same raw clips (B, 3, T or T+1, H, W) from the same
shards and face crops as a trained network and returns {"bvp": (B, T)}, so evaluation,
prediction, batch prediction and `compare` treat a baseline like any model. It has no
weights and is not trained; the method and its profile are `config.unsupervised`
(docs/baselines.md). Each clip is one call of `mmrphys.baselines.extract` on its frames:
the same per-chunk processing as the trained models, where rPPG-Toolbox runs a method
once per whole video (docs/baselines.md, "Interface for the inference path").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmrphys.baselines import extract
from mmrphys.config import ModelConfig
from mmrphys.model.network import InputError, check_clip_shape


class UnsupervisedModel(nn.Module):
    """A baseline method as a model: raw RGB clips and their frame rate in, BVP out."""

    #: the forward needs each clip's frame rate (`Predictor` passes it)
    needs_fps = True
    needs_labels = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.architecture != "unsupervised":
            raise TypeError(f"UnsupervisedModel needs architecture 'unsupervised', got {config.architecture!r}")
        self.config = config

    def forward(self, x: torch.Tensor, labels: dict | None = None,
                fps: float | np.ndarray | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"input clip: expected a 5-D tensor (B, C, T, H, W), got {shape}")
        frames = check_clip_shape(tuple(x.shape), self.config)
        if fps is None:
            raise InputError(f"the {self.config.unsupervised.method!r} baseline needs the frame rate of every clip")
        rates = np.broadcast_to(np.asarray(fps.cpu() if isinstance(fps, torch.Tensor) else fps, np.float64),
                                (x.shape[0],))
        clips = x[:, :, :frames].permute(0, 2, 3, 4, 1).detach().cpu().numpy()  # (B, T, H, W, 3)
        options = self.config.unsupervised
        waves = [extract(options.method, clip, float(rate), profile=options.profile) for clip, rate in zip(clips, rates)]
        return {"bvp": torch.from_numpy(np.stack(waves).astype(np.float32)).to(x.device)}
