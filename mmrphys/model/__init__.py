"""MMRPhys model core: the network, its variants, factorization attention, reference
checkpoint import and ONNX export."""

from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.network import InputError, MMRPhys
from mmrphys.model.variants import VARIANTS, variant, variant_name

__all__ = [
    "FeaturesFactorizationModule",
    "InputError",
    "MMRPhys",
    "VARIANTS",
    "variant",
    "variant_name",
]
