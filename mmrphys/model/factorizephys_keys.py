"""FactorizePhys state dicts: recognising them, the two key layouts, and the configuration
their keys, shapes and file name imply (docs/factorizephys.md, "Checkpoints").

The authors' layout (also the rPPG-Toolbox's) has six extractor conv blocks
(`FeatureExtractor.{0,1,2,4,5,6}`) and three head blocks (`rppg_head.conv_block.{0,1,2}`).
The MMRPhys repository's copy moved the last two extractor blocks (and a dropout) to the
front of the head: `FeatureExtractor.5/.6` became `rppg_head.conv_block.0/.1` and the head's
`conv_block.0/1/2` became `conv_block.3/4/5`; the computation is the same sequence, so a
key remap turns one into the other. Big (128x128) files exist only in the authors' layout.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import torch

from mmrphys.config import FactorizePhysOptions, ModelConfig

KeyLayout = Literal["authors", "moved"]

EXTRACTOR = "rppg_feature_extractor.FeatureExtractor."
CONV = ".conv_block_3d.0.weight"
FIRST = f"{EXTRACTOR}0{CONV}"
FINAL = f"rppg_head.final_layer.0{CONV}"
#: moved-layout prefix -> authors'-layout prefix
MOVED_TO_AUTHORS = {
    "rppg_head.conv_block.0.": f"{EXTRACTOR}5.",
    "rppg_head.conv_block.1.": f"{EXTRACTOR}6.",
    "rppg_head.conv_block.3.": "rppg_head.conv_block.0.",
    "rppg_head.conv_block.4.": "rppg_head.conv_block.1.",
    "rppg_head.conv_block.5.": "rppg_head.conv_block.2.",
}
#: first conv's input channels -> modality
MODALITY_OF_CHANNELS = {3: "rgb", 1: "thermal", 4: "rgbt"}
#: checkpoint-name spelling of each matrix transform
TRANSFORM_NAMES = {"T-KAB": "T_KAB", "TK-AB": "TK_AB", "K-TAB": "K_TAB"}


def is_factorizephys(state: dict[str, torch.Tensor]) -> bool:
    """Whether a (prefix-stripped) state dict holds FactorizePhys weights, in either layout."""
    return FIRST in state


def key_layout(state: dict[str, torch.Tensor]) -> KeyLayout:
    """`authors` or `moved`; ValueError naming the keys when it is neither."""
    if f"{EXTRACTOR}5{CONV}" in state:
        return "authors"
    if f"rppg_head.conv_block.5{CONV}" in state:
        return "moved"
    raise ValueError(
        f"FactorizePhys keys in neither layout: expected {EXTRACTOR}5{CONV} (authors') or "
        f"rppg_head.conv_block.5{CONV} (MMRPhys repository's); first keys: {list(state)[:4]}"
    )


def to_authors_layout(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], KeyLayout]:
    """The state dict in the authors' key layout (what `FactorizePhys` holds), and the layout
    it came in."""
    layout = key_layout(state)
    if layout == "authors":
        return dict(state), layout
    remapped = {}
    for key, value in state.items():
        prefix = next((p for p in MOVED_TO_AUTHORS if key.startswith(p)), None)
        remapped[key if prefix is None else MOVED_TO_AUTHORS[prefix] + key[len(prefix):]] = value
    return remapped, layout


def attention_from_name(stem: str) -> dict[str, Any]:
    """The attention a reference file name states, which the weights do not: ModelConfig
    settings for `..._FSAM_Res_K-TAB` (fsam, residual, transform), `..._FSAM` (no
    residual) or `..._SFSAM_Label` (tsfm); empty when the name says nothing."""
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if re.search(r"SFSAM|SNMF", stem):
        if "RBF" in stem:
            raise ValueError(
                "the label-free RBF factorization (SFSAM_RBF) is not supported for FactorizePhys; "
                "pass attention='fsam' or attention='none' to load the weights (the eval path does not use them)"
            )
        settings["attention"] = "tsfm"
    elif match := re.search(r"FSAM(_Res)?", stem):
        settings["attention"] = "fsam"
        options["residual"] = match.group(1) is not None
    for name, transform in TRANSFORM_NAMES.items():
        if re.search(rf"(?<![A-Z]){name}(?![A-Z])", stem):
            options["transform"] = transform
    if options:
        settings["factorizephys"] = FactorizePhysOptions(**options)
    return settings


def config_from_state_dict(
    state: dict[str, torch.Tensor], stem: str, resolution: int | None, overrides: dict[str, Any]
) -> ModelConfig:
    """The ModelConfig of an authors'-layout state dict: modality from the first conv,
    standard or Big from the first final-layer kernel, attention `none` without FSAM
    weights, else the file name's (`fsam` with residual when it says nothing), 240 frames
    for `HighRes` names, else 160; overrides win. ValueError when `resolution` contradicts
    the weights."""
    channels = int(state[FIRST].shape[1])
    if channels not in MODALITY_OF_CHANNELS:
        raise ValueError(
            f"{FIRST} takes {channels} input channels; FactorizePhys takes one of {sorted(MODALITY_OF_CHANNELS)}"
        )
    implied = 128 if FINAL in state and tuple(state[FINAL].shape[-2:]) == (4, 4) else 72
    if resolution is not None and resolution != implied:
        raise ValueError(
            f"the weights are FactorizePhys {'Big' if implied == 128 else 'standard'} ({implied}x{implied}); "
            f"resolution={resolution} does not fit them"
        )
    settings: dict[str, Any] = dict(
        architecture="factorizephys", resolution=implied, modality=MODALITY_OF_CHANNELS[channels],
        tasks=("bvp",), attention="none", frames=240 if "HighRes" in stem else 160,
    )
    if any(k.startswith("rppg_head.fsam.") for k in state) and "attention" not in overrides:
        settings.update({"attention": "fsam", **attention_from_name(stem)})
    settings.update(overrides)
    return ModelConfig(**settings)
