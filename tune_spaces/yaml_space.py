"""Search spaces written as YAML files, for searches that need no code.

Each top-level key is a dotted config field or a bundle name; each value is either a
fixed value, or a one-key mapping naming a distribution:

    model.resolution: {grid: [72, 36]}
    train.lr: {loguniform: [1.0e-4, 3.0e-3]}
    pairing:
      choice:
        - {model.modality: rgbt, model.fusion: early}
        - {model.modality: rgbt, model.fusion: late}
    model.dropout: 0.2

Distributions: `grid` (every value is tried), `choice` (one value drawn per sample),
`uniform` and `loguniform` ([low, high] floats), `randint` ([low, high), integers).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from tune_spaces.errors import SpaceError

_LISTS: dict[str, Callable[[list[Any]], Any]] = {
    "grid": tune.grid_search,
    "choice": tune.choice,
}
_RANGES: dict[str, Callable[[Any, Any], Any]] = {
    "uniform": tune.uniform,
    "loguniform": tune.loguniform,
    "randint": tune.randint,
}


def load_space(path: str | Path) -> dict[str, Any]:
    """Read a YAML space file into a Ray Tune param space."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SpaceError(f"{path}: cannot read search space: {err}") from err
    if not isinstance(data, dict) or not data:
        raise SpaceError(f"{path}: expected a non-empty mapping of config fields to values")
    return {str(key): _domain(path, str(key), value) for key, value in data.items()}


def _domain(path: Path, key: str, value: Any) -> Any:
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in {*_LISTS, *_RANGES}):
        return value
    kind, args = next(iter(value.items()))
    where = f"{path}: {key}.{kind}"
    if kind in _LISTS:
        if not isinstance(args, list) or not args:
            raise SpaceError(f"{where}: expected a non-empty list of values, got {args!r}")
        return _LISTS[kind](args)
    if (
        not isinstance(args, list)
        or len(args) != 2
        or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    ):
        raise SpaceError(f"{where}: expected [low, high] numbers, got {args!r}")
    low, high = args
    if not low < high:
        raise SpaceError(f"{where}: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"{where}: bounds must be positive, got {args!r}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise SpaceError(f"{where}: expected integer bounds, got {args!r}")
    return _RANGES[kind](low, high)
