"""The networks: every architecture built from a ModelConfig (MMRPhys and its variants,
FactorizePhys), the shared factorization attention, reference checkpoint import and ONNX
export."""

from mmrphys.model.architectures import ARCHITECTURES, build_model
from mmrphys.model.checkpoint import CheckpointError, load_reference_checkpoint
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.factorizephys import FactorizePhys, factorizephys_config
from mmrphys.model.network import InputError, MMRPhys
from mmrphys.model.onnx_export import export_onnx, run_onnx
from mmrphys.model.variants import VARIANTS, variant, variant_name

__all__ = [
    "ARCHITECTURES",
    "build_model",
    "CheckpointError",
    "load_reference_checkpoint",
    "FactorizePhys",
    "factorizephys_config",
    "FeaturesFactorizationModule",
    "InputError",
    "MMRPhys",
    "VARIANTS",
    "variant",
    "variant_name",
    "export_onnx",
    "run_onnx",
]
