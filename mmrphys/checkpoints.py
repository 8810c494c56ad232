"""Model and training-state files: what a checkpoint folder holds and how it loads.

A model folder holds `model.pt` (a plain state dict, loaded with `weights_only=True`, so
no pickled code runs) and `model_config.json` (the ModelConfig that rebuilds the
network). A training checkpoint adds `training_state.pt` (optimizer, schedule, epoch,
best metric) and `experiment.yaml` (the whole run config).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mmrphys.config import ConfigError, ModelConfig

WEIGHTS_FILE = "model.pt"
MODEL_CONFIG_FILE = "model_config.json"
TRAINING_STATE_FILE = "training_state.pt"
EXPERIMENT_FILE = "experiment.yaml"

#: ModelConfig fields that decide the network's layers and the input it takes
VARIANT_FIELDS = ("resolution", "modality", "fusion", "tasks", "attention", "frames")


class CheckpointError(ValueError):
    """A checkpoint folder is missing files, unreadable, or holds another variant."""


def save_model(folder: str | Path, state_dict: Mapping[str, torch.Tensor], config: ModelConfig) -> Path:
    """Write weights and model config into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, folder / WEIGHTS_FILE)
    (folder / MODEL_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    return folder


def is_model_folder(folder: str | Path) -> bool:
    """Whether `folder` holds model weights and their config."""
    folder = Path(folder)
    return (folder / WEIGHTS_FILE).is_file() and (folder / MODEL_CONFIG_FILE).is_file()


def read_model_config(folder: str | Path) -> ModelConfig:
    """The ModelConfig stored in a model folder."""
    path = Path(folder) / MODEL_CONFIG_FILE
    try:
        return ModelConfig.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a model folder holds {WEIGHTS_FILE} and {MODEL_CONFIG_FILE}") from None
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: not a valid model config: {err}") from None


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in a model folder (tensors only; nothing is unpickled)."""
    path = Path(folder) / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a model folder holds {WEIGHTS_FILE} and {MODEL_CONFIG_FILE}") from None
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"{path}: not a loadable state dict: {err}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return dict(state)


def check_same_variant(expected: ModelConfig, found: ModelConfig, source: str) -> None:
    """Raise CheckpointError naming each variant field where `found` differs from `expected`."""
    differing = [
        f"{name} {getattr(found, name)!r} (expected {getattr(expected, name)!r})"
        for name in VARIANT_FIELDS
        if getattr(found, name) != getattr(expected, name)
    ]
    if differing:
        raise CheckpointError(f"{source}: checkpoint of another model variant: " + ", ".join(differing))


def load_model(folder: str | Path, expected: ModelConfig | None = None):
    """Rebuild the MMRPhys network stored in `folder`; returns (model, config).

    With `expected`, a checkpoint of another variant is refused before loading weights.
    """
    from mmrphys.model import MMRPhys

    config = read_model_config(folder)
    if expected is not None:
        check_same_variant(expected, config, str(folder))
    model = MMRPhys(config)
    load_weights(model, read_weights(folder), str(Path(folder) / WEIGHTS_FILE))
    return model, config


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly load `state` into `model`, with an error naming the mismatched keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise CheckpointError(f"{source}: weights do not fit this model variant: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def save_training_state(folder: str | Path, state: Mapping[str, Any]) -> None:
    """Write optimizer/scheduler/epoch bookkeeping next to the model files."""
    torch.save(dict(state), Path(folder) / TRAINING_STATE_FILE)


def read_training_state(folder: str | Path) -> dict[str, Any]:
    """Read what `save_training_state` wrote (tensors and plain values only)."""
    path = Path(folder) / TRAINING_STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; not a training checkpoint") from None
    except Exception as err:
        raise CheckpointError(f"{path}: unreadable training state: {err}") from None
