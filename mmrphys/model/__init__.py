"""MMRPhys model core: the network, its variants, factorization attention, reference
checkpoint import and ONNX export."""

from mmrphys.model.checkpoint import CheckpointError, load_reference_checkpoint
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.network import InputError, MMRPhys
from mmrphys.model.onnx_export import export_onnx, run_onnx
from mmrphys.model.variants import VARIANTS, variant, variant_name

__all__ = [
    "CheckpointError",
    "load_reference_checkpoint",
    "FeaturesFactorizationModule",
    "InputError",
    "MMRPhys",
    "VARIANTS",
    "variant",
    "variant_name",
    "export_onnx",
    "run_onnx",
]
