"""The networks: every architecture built from a ModelConfig (MMRPhys and its variants,, FactorizePhys, RhythmFormer, the unsupervised methods), the shared factorization
attention, input transforms, reference checkpoint import and ONNX export."""

from mmrphys.model.architectures import ARCHITECTURES, build_model
from mmrphys.model.checkpoint import CheckpointError, load_reference_checkpoint
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.factorizephys import FactorizePhys, factorizephys_config
from mmrphys.model.network import InputError, MMRPhys
from mmrphys.model.input_transforms import input_transform, standardize_frames
from mmrphys.model.onnx_export import export_onnx, run_onnx
from mmrphys.model.rhythmformer import RhythmFormer, rhythmformer_config
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
    "RhythmFormer",
    "rhythmformer_config",
    "standardize_frames",
    "input_transform",
    "VARIANTS",
    "variant",
    "variant_name",
    "export_onnx",
    "run_onnx",
]
