"""Which class builds each architecture: the one place a new network family is added."""

from __future__ import annotations

from torch import nn

from mmrphys.config import ModelConfig
from mmrphys.model.factorizephys import FactorizePhys
from mmrphys.model.network import MMRPhys
from mmrphys.model.rhythmformer import RhythmFormer
from mmrphys.model.unsupervised import UnsupervisedModel

#: architecture name (ModelConfig.architecture) -> the class built from a ModelConfig
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mmrphys": MMRPhys, "factorizephys": FactorizePhys, "rhythmformer": RhythmFormer, "unsupervised": UnsupervisedModel,
}


def build_model(config: ModelConfig) -> nn.Module:
    """The network a ModelConfig describes, freshly initialised, in training mode."""
    return ARCHITECTURES[config.architecture](config)
