"""Entries of a comparison: each a name for a model config, written as the
`section.field=value` overrides that turn the comparison's base experiment into it.

A model is one more entry (`ENTRIES` below, or a YAML file of the user's own passed to
`mmrphys compare --entries`). An entry sets only what its architecture needs; everything
else (epochs, batch, learning rate, the evaluation profile, an MMRPhys entry's resolution
and modality) comes from the base config, so every entry trains with the same recipe and
is scored with the same metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from mmrphys.baselines import METHODS
from mmrphys.config import ConfigError, ExperimentConfig
from mmrphys.errors import UserError

#: what every architecture other than MMRPhys fixes (mmrphys/config/model.py, ONLY)
_BVP_RGB = ("model.tasks=[bvp]", "model.modality=rgb", "model.fusion=early")

#: built-in entries: name -> overrides of the base experiment
ENTRIES: dict[str, tuple[str, ...]] = {
    # MMRPhys as the base config has it (the default: TSFM)
    "mmrphys": ("model.architecture=mmrphys",),
    # the attention variants the domain-shift benchmark compares (docs/model.md)
    "mmrphys-none": ("model.architecture=mmrphys", "model.attention=none"),
    "mmrphys-fsam": ("model.architecture=mmrphys", "model.attention=fsam"),
    "mmrphys-tsfm": ("model.architecture=mmrphys", "model.attention=tsfm"),
    # TSFM options that change results (docs/model.md, "Options that make steps and rank matter")
    "mmrphys-tsfm-aligned": ("model.architecture=mmrphys", "model.attention=tsfm",
                             "model.factor_layout=time_aligned"),
    "mmrphys-tsfm-harmonics": ("model.architecture=mmrphys", "model.attention=tsfm",
                               "model.constraint=target_harmonics"),
    # MMRPhys (TSFM) on FactorizePhys's input, 72x72 RGB: against `factorizephys` only the
    # network and the RSP task differ, not the pixels it sees
    "mmrphys-72-rgb": ("model.architecture=mmrphys", "model.attention=tsfm", "model.resolution=72",
                       "model.modality=rgb", "model.fusion=early"),
    # FactorizePhys's proposed model: 72x72 RGB, FSAM with residual (docs/factorizephys.md)
    "factorizephys": ("model.architecture=factorizephys", "model.resolution=72", "model.attention=fsam",
                      "model.constraint=target", *_BVP_RGB),
    # RhythmFormer at the smallest size its region partition tiles (docs/rhythmformer.md)
    "rhythmformer": ("model.architecture=rhythmformer", "model.resolution=64", "model.attention=none",
                     *_BVP_RGB),
    # the unsupervised methods (docs/baselines.md): the spatial mean is the same at any
    # area-resized size, so the cheapest one
    **{method: ("model.architecture=unsupervised", f"model.unsupervised.method={method}", "model.resolution=9",
                "model.attention=none", *_BVP_RGB) for method in METHODS},
}


class CompareError(UserError, ValueError):
    """A comparison cannot start as asked (an unknown entry, a config an entry breaks, ...)."""


def load_entries(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Entries from a YAML file: `name: [section.field=value, ...]` or `name: {section.field: value}`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise CompareError(f"{path}: cannot read entries: {err}") from err
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected a mapping of entry name -> overrides, got {type(data).__name__}")
    entries: dict[str, tuple[str, ...]] = {}
    for name, overrides in data.items():
        if isinstance(overrides, dict):
            entries[str(name)] = tuple(f"{key}={_yaml_scalar(value)}" for key, value in overrides.items())
        elif isinstance(overrides, list) and all(isinstance(item, str) for item in overrides):
            entries[str(name)] = tuple(overrides)
        else:
            raise CompareError(f"{path}: entry {name!r}: expected a list of SECTION.FIELD=VALUE strings "
                               f"or a mapping SECTION.FIELD: VALUE, got {overrides!r}")
    return entries


def _yaml_scalar(value: object) -> str:
    """A value as the right-hand side of an override (parsed back with YAML)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def resolve_entries(names: Sequence[str], extra: Mapping[str, Sequence[str]] = ()) -> dict[str, tuple[str, ...]]:
    """The overrides of each named entry, in the order given (`extra` adds or replaces entries)."""
    known = {**ENTRIES, **{name: tuple(o) for name, o in dict(extra).items()}}
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise CompareError(f"--models: no entries given; known entries: {', '.join(known)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CompareError(f"--models: entry {duplicates[0]!r} is given twice")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CompareError(f"--models: unknown entry {unknown[0]!r}; known entries: {', '.join(known)} "
                           "(or define it in an --entries YAML file)")
    return {name: known[name] for name in names}


def entry_configs(base: ExperimentConfig, entries: Mapping[str, Sequence[str]]) -> dict[str, ExperimentConfig]:
    """Each entry's experiment config, checked; a ConfigError names the entry at fault."""
    configs = {}
    for name, overrides in entries.items():
        try:
            configs[name] = base.with_overrides(list(overrides))
        except ConfigError as err:
            raise CompareError(f"entry {name!r} ({' '.join(overrides) or 'no overrides'}): {err}") from err
    return configs
