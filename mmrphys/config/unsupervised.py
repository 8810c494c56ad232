"""The unsupervised methods' options (`ModelConfig.unsupervised`) and what such a "model"
supports of the fields the networks vary (docs/baselines.md)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from mmrphys.config.base import Config, ConfigError

Method = Literal["ica", "pos", "chrom", "green", "lgi", "pbv", "omit"]

#: ModelConfig fields a baseline fixes, with the one value it takes: RGB in, BVP out
UNSUPERVISED_ONLY: dict[str, object] = {
    "modality": "rgb", "fusion": "early", "attention": "none", "tasks": ("bvp",),
}


@dataclasses.dataclass(frozen=True)
class UnsupervisedOptions(Config):
    """Which classic method, computed how.

    method: one of POS, CHROM, ICA, GREEN, LGI, PBV, OMIT (lower case).
    profile: `default` (safe: finite output of one sample per frame) or `rppg-toolbox`
        (rPPG-Toolbox's arithmetic, defects included; docs/baselines.md). CHROM under
        `rppg-toolbox` drops its tail, so it cannot stand in for a model that predicts every
        frame; use `mmrphys.baselines.extract` for it.
    """

    method: Method = "pos"
    profile: Literal["default", "rppg-toolbox"] = "default"

    def check_method(self) -> None:
        """Refuse a method/profile pair whose output is shorter than its clip."""
        if self.method == "chrom" and self.profile == "rppg-toolbox":
            raise ConfigError(
                "ModelConfig.unsupervised.profile: 'rppg-toolbox' CHROM returns fewer samples than frames; "
                "as a model it needs profile 'default'"
            )
