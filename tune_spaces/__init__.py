"""Named Ray Tune search spaces over the typed experiment config.

A space is a Ray Tune `param_space` whose keys are dotted config fields
(`model.resolution`, `train.lr`) or the name of a bundle (`pairing`, `attention`) whose
values are mappings of dotted fields set together, so that a choice like "RGB to BVP,
thermal to RSP" stays one value of the search. `get_space` returns a space by name (a
module here) or from a YAML file (see `tune_spaces.yaml_space`); `tune_spaces.overrides`
turns a trial's sample into a validated config.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from tune_spaces.errors import SpaceError
from tune_spaces.yaml_space import load_space

#: space name -> module defining `space()`; the module docstring documents the space
SPACES: dict[str, str] = {
    "resolution_modality": "tune_spaces.resolution_modality",
    "attention": "tune_spaces.attention",
    "default": "tune_spaces.default",
    "architectures": "tune_spaces.architectures",
}


def space_names() -> list[str]:
    """Names of the built-in spaces."""
    return list(SPACES)


def describe(name: str) -> str:
    """The documentation of a built-in space (its module docstring)."""
    return (_module(name).__doc__ or "").strip()


def get_space(name_or_path: str) -> dict[str, Any]:
    """A fresh Ray Tune param space: a built-in space by name, or a YAML space file."""
    if name_or_path in SPACES:
        return _module(name_or_path).space()
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):

        return load_space(path)
    raise SpaceError(
        f"search space {name_or_path!r}: not a built-in space {space_names()} "
        "nor a .yaml space file"
    )


def _module(name: str) -> Any:
    if name not in SPACES:
        raise SpaceError(f"search space {name!r}: unknown; built-in spaces: {space_names()}")
    return importlib.import_module(SPACES[name])
