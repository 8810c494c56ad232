"""Typed, validated configuration for every command, one module per section.

Every setting of every command (synthesis, ingest, model, training, tracking, evaluation,
search) is a field of a frozen dataclass here. A bad value fails before any work starts,
naming the field and the allowed values; a config loads from YAML, saves with every run,
and takes `section.field=value` overrides (values parsed as YAML scalars).

    config = ExperimentConfig.load_yaml("configs/demo.yaml", ["train.epochs=3"])
"""

from mmrphys.config.base import Config, ConfigError, apply_overrides
from mmrphys.config.factorizephys import FactorizePhysOptions, Transform
from mmrphys.config.experiment import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    LossKind,
    Precision,
    RateMethod,
    Scheduler,
    TrackingConfig,
    TrainConfig,
)
from mmrphys.config.ingest import IngestConfig, PreprocessingConfig
from mmrphys.config.model import (
    MODALITY_CHANNELS,
    RESOLUTIONS,
    Architecture,
    Attention,
    BasesInit,
    Constraint,
    FactorLayout,
    Fusion,
    Kernels,
    Modality,
    ModelConfig,
)
from mmrphys.config.rhythmformer import RhythmFormerOptions
from mmrphys.config.search import SearchConfig
from mmrphys.config.synthetic import SyntheticConfig
from mmrphys.config.unsupervised import UnsupervisedOptions
from mmrphys.tasks import TaskName as Task
from mmrphys.tasks import reported_metric_names

__all__ = [
    "Architecture", "Attention", "BasesInit", "Config", "ConfigError", "apply_overrides", "Constraint", "DataConfig",
    "EvalConfig", "ExperimentConfig", "FactorizePhysOptions", "FactorLayout", "Fusion", "IngestConfig", "Kernels",
    "LossKind", "MODALITY_CHANNELS", "Modality", "ModelConfig", "Precision", "PreprocessingConfig", "RateMethod",
    "RESOLUTIONS", "RhythmFormerOptions", "Scheduler", "SearchConfig", "SyntheticConfig", "Task", "TrackingConfig",
    "TrainConfig", "Transform", "UnsupervisedOptions",
    "reported_metric_names",
]
