"""The model artifact: everything needed to run a model on a new video, in one folder.

    model.pt              the weights (a plain state dict, read with weights_only=True)
    model_config.json     the ModelConfig that rebuilds the network
    preprocessing.json    the PreprocessingConfig of the shards it was trained on
    evaluation.json       the EvalConfig it was validated with (profile, windows, method)

Training writes one per checkpoint; `load_model` reads a folder, or a released `.pth`
checkpoint of a reference implementation, for which the reference's own preprocessing
and evaluation profile are recorded (docs/inference.md lists them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from mmrphys.config import ConfigError, EvalConfig, ModelConfig, PreprocessingConfig
from mmrphys.model import build_model, load_reference_checkpoint
from mmrphys.model.checkpoint import (
    CheckpointError,
    check_same_variant,
    load_weights,
    read_state_dict,
)

WEIGHTS_FILE = "model.pt"
MODEL_CONFIG_FILE = "model_config.json"
PREPROCESSING_FILE = "preprocessing.json"
EVALUATION_FILE = "evaluation.json"
#: suffixes of a released reference checkpoint file
REFERENCE_SUFFIXES = (".pth", ".pt")
#: the evaluation profile each architecture's reference code scores with
REFERENCE_PROFILES = {"mmrphys": "mmrphys", "factorizephys": "rppg-toolbox", "rhythmformer": "rppg-toolbox"}


@dataclasses.dataclass(frozen=True)
class ModelArtifact:
    """What a model folder describes besides its weights."""

    config: ModelConfig
    preprocessing: PreprocessingConfig
    evaluation: EvalConfig
    source: str


def reference_preprocessing(config: ModelConfig) -> PreprocessingConfig:
    """The reference implementations' face crop: a 1.5x square box re-detected every 30
    frames, no smoothing, INTER_AREA straight to the model's resolution, uint8 frames."""
    return PreprocessingConfig(size=config.resolution, rgb_dtype="uint8", detect_every=30, box_scale=1.5,
                               smooth_frames=1)


def save_model(folder: str | Path, state_dict: Mapping[str, torch.Tensor], config: ModelConfig,
               preprocessing: PreprocessingConfig, evaluation: EvalConfig) -> Path:
    """Write a complete model artifact into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, folder / WEIGHTS_FILE)
    for name, section in ((MODEL_CONFIG_FILE, config), (PREPROCESSING_FILE, preprocessing),
                          (EVALUATION_FILE, evaluation)):
        (folder / name).write_text(json.dumps(section.to_dict(), indent=2) + "\n")
    return folder


def is_model_folder(folder: str | Path) -> bool:
    """Whether `folder` holds model weights and their config."""
    folder = Path(folder)
    return (folder / WEIGHTS_FILE).is_file() and (folder / MODEL_CONFIG_FILE).is_file()


def is_reference_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a single checkpoint file (a reference implementation's release)."""
    path = Path(path)
    return path.is_file() and path.suffix in REFERENCE_SUFFIXES


def _read_section(folder: Path, name: str, cls):
    path = folder / name
    try:
        return cls.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as err:
        raise CheckpointError(
            f"{path}: missing; a model folder holds {WEIGHTS_FILE}, {MODEL_CONFIG_FILE}, "
            f"{PREPROCESSING_FILE} and {EVALUATION_FILE}"
        ) from err
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: not a valid {cls.__name__}: {err}") from err


def read_model_config(folder: str | Path) -> ModelConfig:
    """The ModelConfig stored in a model folder."""
    return _read_section(Path(folder), MODEL_CONFIG_FILE, ModelConfig)


def read_artifact(folder: str | Path) -> ModelArtifact:
    """The configs stored in a model folder (no weights are read)."""
    folder = Path(folder)
    return ModelArtifact(
        config=read_model_config(folder),
        preprocessing=_read_section(folder, PREPROCESSING_FILE, PreprocessingConfig),
        evaluation=_read_section(folder, EVALUATION_FILE, EvalConfig),
        source=str(folder),
    )


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in a model folder."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a model folder holds {WEIGHTS_FILE} and {MODEL_CONFIG_FILE}")
    return read_state_dict(path)


def load_model(path: str | Path, expected: ModelConfig | None = None) -> tuple[torch.nn.Module, ModelArtifact]:
    """The network (eval mode) and artifact of a model folder or a reference `.pth` file.

    With `expected`, a model of another variant is refused before its weights load.
    """
    path = Path(path)
    if is_reference_checkpoint(path):
        model = load_reference_checkpoint(path)
        config = model.config
        artifact = ModelArtifact(config, reference_preprocessing(config),
                                 EvalConfig(profile=REFERENCE_PROFILES[config.architecture]), str(path))
    else:
        artifact = read_artifact(path)
        model = build_model(artifact.config)
    if expected is not None:
        check_same_variant(expected, artifact.config, str(path))
    if not is_reference_checkpoint(path):
        load_weights(model, read_weights(path), str(path / WEIGHTS_FILE))
    return model.eval(), artifact
