"""The reference's named variants (LEF, LNF, LLF, MEF, MNF, MLF, SEF, SNF, SLF) as configs.

A name is a size letter (L = 72x72, M = 36x36, S = 9x9) and a fusion (EF = early: the
chosen channels feed both branches; NF = per task: RGB to BVP, thermal to RSP; LF = late:
separate RGB and thermal streams joined before the heads).
"""

from __future__ import annotations

from typing import Any

from mmrphys.config import ConfigError, ModelConfig

SIZES: dict[str, int] = {"L": 72, "M": 36, "S": 9}
FUSIONS: dict[str, str] = {"EF": "early", "NF": "per_task", "LF": "late"}
VARIANTS: tuple[str, ...] = tuple(size + fusion for size in SIZES for fusion in FUSIONS)


def variant(name: str, modality: str | None = None, **overrides: Any) -> ModelConfig:
    """ModelConfig of a reference variant, e.g. `variant("LEF", modality="rgb")`.

    `modality` defaults to "rgbt" (the only choice for NF and LF); other ModelConfig
    fields (tasks, attention, frames, ...) may be given as keyword overrides. Raises
    ConfigError for an unknown name or an impossible name/modality pair.
    """
    key = name.strip().upper() if isinstance(name, str) else name
    if key not in VARIANTS:
        raise ConfigError(f"variant: unknown name {name!r}; expected one of {list(VARIANTS)}")
    fusion = FUSIONS[key[1:]]
    modality = "rgbt" if modality is None else modality
    if fusion != "early" and modality != "rgbt":
        raise ConfigError(
            f"variant {key}: {key[1:]} ({fusion} fusion) needs modality 'rgbt' (RGB and thermal), "
            f"got {modality!r}; use {key[0]}EF for single-modality models"
        )
    return ModelConfig(resolution=SIZES[key[0]], modality=modality, fusion=fusion, **overrides)


def variant_name(config: ModelConfig) -> str:
    """The reference's name of a config's architecture, e.g. "LEF"."""
    size = {v: k for k, v in SIZES.items()}[config.resolution]
    fusion = {v: k for k, v in FUSIONS.items()}[config.fusion]
    return size + fusion
