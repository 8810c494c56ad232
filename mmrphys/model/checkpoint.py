"""Checkpoint files: weights-only reading, strict loading, the training state of a run,
and import of the reference implementations' released checkpoints.

Nothing here unpickles code: every file is read with `torch.load(weights_only=True)`.
A training checkpoint folder holds the model artifact (`mmrphys.inference.artifact`)
plus `training_state.pt` (optimizer, schedule, epoch, best metric) and
`experiment.yaml` (the whole run config). Released checkpoints: docs/model.md,
"Reference checkpoints"; docs/factorizephys.md and docs/rhythmformer.md for theirs.

The released `.pth` files are plain state dicts saved from a DataParallel wrapper (every
key starts with `module.`), without `bias1`, with an unused blood-pressure head in the
MMRPhys NF and LF files. `load_reference_checkpoint` recognises the architecture from the
keys (one recogniser per architecture, `RECOGNISERS`, MMRPhys last), infers the variant
from the keys and shapes, loads with `strict=True` semantics (a clear error for missing,
unexpected or misshapen entries), and returns the model in eval mode.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmrphys.config import ConfigError, ModelConfig, RhythmFormerOptions
from mmrphys.errors import UserError
from mmrphys.model.factorizephys import FactorizePhys
from mmrphys.model.factorizephys_keys import config_from_state_dict, is_factorizephys, to_authors_layout
from mmrphys.model.network import MMRPhys
from mmrphys.model.rhythmformer import (
    RhythmFormer,
    options_from_state_dict,
    rhythmformer_config,
)

log = logging.getLogger(__name__)

PREFIX = "module."
BP_HEAD = "rBP_head."
BVP_FIRST = "bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight"
RSP_FIRST = "rsp_feature_extractor.rsp_feature_extractor.0.conv_block_3d.0.weight"
LATE_FIRST = "rgb_bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight"
#: (BVP extractor input channels, RSP extractor input channels) -> (fusion, modality)
EARLY_OR_PER_TASK = {
    (3, 3): ("early", "rgb"),
    (1, 1): ("early", "thermal"),
    (4, 4): ("early", "rgbt"),
    (3, 1): ("per_task", "rgbt"),
}


TRAINING_STATE_FILE = "training_state.pt"
EXPERIMENT_FILE = "experiment.yaml"
#: ModelConfig fields that decide the network's layers and the input it takes
VARIANT_FIELDS = ("architecture", "resolution", "modality", "fusion", "tasks", "attention", "frames")


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be read, is of another variant, or matches no architecture."""


def resolution_from_name(path: Path) -> int | None:
    """Resolution from a reference file name such as `..._RGBx180x72_...` (72), or None."""
    match = re.search(r"x\d+x(72|36|9)(?!\d)", path.name)
    return int(match.group(1)) if match else None


def frames_from_name(path: Path) -> int | None:
    """Clip length from a reference file name such as `..._RGBx180x72_...` (180), or None."""
    match = re.search(r"x(\d+)x(?:72|36|9)(?!\d)", path.name)
    return int(match.group(1)) if match else None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot read as a weights-only torch checkpoint: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state dict (mapping of names to tensors), got {type(data).__name__}")
    return dict(data)


def _strip(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Remove `module.`, the BP head and `bias1` (logging what was skipped)."""
    stripped = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in state.items()}
    bp = [k for k in stripped if k.startswith(BP_HEAD)]
    if bp:
        values = sum(stripped[k].numel() for k in bp)
        log.info("%s: skipping %d blood-pressure head entries (%d values, rBP_head.*): not part of MMRPhys here", path, len(bp), values)
    bias = [k for k in stripped if k.endswith("bias1")]
    for key in bias:
        log.info("%s: skipping %s (the reference's constant fusion offset, always 1.0 here)", path, key)
    return {k: v for k, v in stripped.items() if k not in bp and k not in bias}


def infer_config(state: dict[str, torch.Tensor], resolution: int, frames: int = 180, **overrides: Any) -> ModelConfig:
    """The ModelConfig a (stripped) reference state dict was trained with.

    Fusion and modality come from the first conv of each extractor, the tasks from which
    heads exist, the attention from the factorization weights (`tsfm` when present; the
    reference's FSAM checkpoints have the same keys, pass attention="fsam" to say so).
    """
    tasks = tuple(t for t, head in (("bvp", "rppg_head."), ("rsp", "rBr_head.")) if any(k.startswith(head) for k in state))
    if not tasks:
        raise CheckpointError(
            "checkpoint matches no MMRPhys variant: no `rppg_head.*` (BVP) or `rBr_head.*` (RSP) entries; "
            f"first keys: {list(state)[:3]}"
        )
    if LATE_FIRST in state or any(k.startswith("rgb_rsp_feature_extractor.") for k in state):
        fusion, modality = "late", "rgbt"
    else:
        channels = []
        for key in (BVP_FIRST, RSP_FIRST):
            if key in state:
                channels.append(int(state[key].shape[1]))
        if len(channels) == 2:
            pair = tuple(channels)
        elif len(channels) == 1:
            pair = (channels[0], channels[0])
        else:
            raise CheckpointError(
                f"checkpoint matches no MMRPhys variant: missing the extractor input conv "
                f"({BVP_FIRST} or {RSP_FIRST})"
            )
        if pair not in EARLY_OR_PER_TASK:
            raise CheckpointError(
                f"checkpoint matches no MMRPhys variant: extractor input channels (BVP, RSP) = {pair}; "
                f"expected one of {sorted(EARLY_OR_PER_TASK)} (EF RGB, EF thermal, EF RGB+T, NF)"
            )
        fusion, modality = EARLY_OR_PER_TASK[pair]
    attention = "tsfm" if any(".fsam." in k for k in state) else "none"
    settings: dict[str, Any] = dict(
        resolution=resolution, modality=modality, fusion=fusion, tasks=tasks, attention=attention, frames=frames
    )
    settings.update(overrides)
    return ModelConfig(**settings)


def rhythmformer_checkpoint(state: dict[str, torch.Tensor], path: Path, resolution: int | None,
                            overrides: dict[str, Any]) -> RhythmFormer | None:
    """A RhythmFormer in eval mode if `state` (without `module.`) holds one, else None.

    Recognised by its fusion stem; the reference's unused `attn.qkv_linear.*` entries are
    skipped with a log line; layer options come from keys and shapes (docs/rhythmformer.md,
    "Reference checkpoints"), the resolution from the argument (default 128, the weights
    do not fix it), frames from overrides (default 160).
    """
    if "Fusion_Stem.stem11.0.weight" not in state:
        return None
    unused = [k for k in state if ".attn.qkv_linear." in k]
    if unused:
        values = sum(state[k].numel() for k in unused)
        log.info("%s: skipping %d unused attn.qkv_linear entries (%d values): never used by RhythmFormer", path, len(unused), values)
    state = {k: v for k, v in state.items() if k not in unused}
    try:
        options = options_from_state_dict(state, overrides.pop("rhythmformer", RhythmFormerOptions()))
        config = rhythmformer_config(resolution=resolution or 128, rhythmformer=options, **overrides)
    except (ValueError, ConfigError) as err:
        raise CheckpointError(f"{path}: {err}") from err
    model = RhythmFormer(config)
    load_weights(model, state, str(path))
    log.info("%s: loaded RhythmFormer (width %d, depths %s)", path, options.embed_dim, list(options.depths))
    return model.eval()


def factorizephys_checkpoint(
    state: dict[str, torch.Tensor], path: Path, resolution: int | None, overrides: dict[str, Any]
) -> FactorizePhys | None:
    """A FactorizePhys in eval mode if `state` (without `module.`) holds one, else None.

    Either key layout (the authors' or the MMRPhys repository's moved one, remapped);
    modality and standard/Big from the shapes, the attention from the file name
    (`factorizephys_keys.config_from_state_dict`); `resolution` need not be given.
    """
    if not is_factorizephys(state):
        return None
    try:
        state, layout = to_authors_layout(state)
        config = config_from_state_dict(state, path.stem, resolution, overrides)
    except (ValueError, ConfigError) as err:
        raise CheckpointError(f"{path}: {err}") from err
    model = FactorizePhys(config)
    load_weights(model, state, str(path))
    log.info(
        "%s: loaded FactorizePhys %d (%s, attention %s, %s key layout)",
        path, config.resolution, config.modality, config.attention, layout,
    )
    return model.eval()


#: recognisers of the architectures other than MMRPhys, tried in order on the state dict
#: (without `module.`): each returns the loaded model for weights it knows, else None
RECOGNISERS = (factorizephys_checkpoint, rhythmformer_checkpoint)


def load_reference_checkpoint(path: str | Path, resolution: int | None = None, **overrides: Any) -> nn.Module:
    """Load a reference `.pth` state dict into its network (MMRPhys, FactorizePhys,
    RhythmFormer) in eval mode.

    resolution: MMRPhys 72, 36 or 9; when None it is read from the file name
    (`...x180x72...`). Other architectures take it from the weights. overrides: other
    ModelConfig fields (e.g. attention="fsam" for an MMRPhys FSAM checkpoint, dropout); the
    variant, modality, tasks and attention are otherwise inferred. Uses
    `torch.load(weights_only=True)`; fp16 state dicts are cast to float32.
    """
    path = Path(path)
    state = _strip(_read_state_dict(path), path)
    for recognise in RECOGNISERS:
        model = recognise(state, path, resolution, dict(overrides))
        if model is not None:
            return model
    return mmrphys_checkpoint(state, path, resolution, overrides)


def mmrphys_checkpoint(
    state: dict[str, torch.Tensor], path: Path, resolution: int | None, overrides: dict[str, Any]
) -> MMRPhys:
    """An MMRPhys in eval mode from a (stripped) state dict; the resolution from the
    argument or the file name."""
    if resolution is None:
        resolution = resolution_from_name(path)
        if resolution is None:
            raise CheckpointError(
                f"{path}: cannot tell the resolution from the file name (expected e.g. 'x180x72'); "
                "pass resolution=72, 36 or 9"
            )
    if resolution not in (72, 36, 9):
        raise CheckpointError(f"{path}: resolution {resolution} is not one of [72, 36, 9]")
    overrides.setdefault("frames", frames_from_name(path) or 180)
    config = infer_config(state, resolution, **overrides)
    model = MMRPhys(config)
    load_weights(model, state, str(path))
    log.info("%s: loaded %s (%s, %s fusion, attention %s)", path, config.resolution, config.modality, config.fusion, config.attention)
    return model.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict file (tensors only; nothing is unpickled), with a clear error."""
    return _read_state_dict(Path(path))


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load `state` into `model`, with an error naming the mismatched keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)})")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)})")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise CheckpointError(f"{source}: weights do not fit this model variant: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def check_same_variant(expected: ModelConfig, found: ModelConfig, source: str) -> None:
    """Raise CheckpointError naming each variant field where `found` differs from `expected`."""
    differing = [
        f"{name} {getattr(found, name)!r} (expected {getattr(expected, name)!r})"
        for name in VARIANT_FIELDS
        if getattr(found, name) != getattr(expected, name)
    ]
    if differing:
        raise CheckpointError(f"{source}: checkpoint of another model variant: " + ", ".join(differing))


def save_training_state(folder: str | Path, state: dict[str, Any]) -> None:
    """Write optimizer/scheduler/epoch bookkeeping next to the model files."""
    torch.save(dict(state), Path(folder) / TRAINING_STATE_FILE)


def read_training_state(folder: str | Path) -> dict[str, Any]:
    """Read what `save_training_state` wrote (tensors and plain values only)."""
    path = Path(folder) / TRAINING_STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: missing; not a training checkpoint") from err
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"{path}: unreadable training state: {err}") from err
