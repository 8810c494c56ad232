"""Import of the reference implementations' released checkpoints (spec section 8;
docs/factorizephys.md, "Checkpoints").

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

from mmrphys.config import ConfigError, ModelConfig
from mmrphys.model.factorizephys import FactorizePhys
from mmrphys.model.factorizephys_keys import config_from_state_dict, is_factorizephys, to_authors_layout
from mmrphys.model.network import MMRPhys

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


class CheckpointError(ValueError):
    """A checkpoint cannot be read or matches no variant of a known architecture."""


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
        raise CheckpointError(f"{path}: cannot read as a weights-only torch checkpoint: {err}") from None
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


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load with strict key and shape checks, raising CheckpointError listing the problems."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)})")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)})")
        raise CheckpointError(
            f"{source}: does not match {model.config.fusion}/{model.config.modality} {type(model).__name__}: " + "; ".join(parts)
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}"
            )
    model.load_state_dict(state, strict=True)


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
        raise CheckpointError(f"{path}: {err}") from None
    model = FactorizePhys(config)
    load_state_dict_strict(model, state, str(path))
    log.info(
        "%s: loaded FactorizePhys %d (%s, attention %s, %s key layout)",
        path, config.resolution, config.modality, config.attention, layout,
    )
    return model.eval()


#: recognisers of the architectures other than MMRPhys, tried in order on the state dict
#: (without `module.`): each returns the loaded model for weights it knows, else None
RECOGNISERS = (factorizephys_checkpoint,)


def load_reference_checkpoint(path: str | Path, resolution: int | None = None, **overrides: Any) -> nn.Module:
    """Load a reference `.pth` state dict into its network (MMRPhys, FactorizePhys) in eval mode.

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
    load_state_dict_strict(model, state, str(path))
    log.info("%s: loaded %s (%s, %s fusion, attention %s)", path, config.resolution, config.modality, config.fusion, config.attention)
    return model.eval()
