"""Turn search-space samples into validated configs, and check a whole space up front.

A trial's sample maps dotted config fields, or bundle names whose values map dotted
fields, to values. `trial_overrides` flattens it; `apply_overrides` builds the typed
config (validated by the config classes); `check_space` tries every categorical
combination of a space (and both ends of every numeric range) before any trial starts,
so a bad combination is reported by name instead of crashing a trial.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from mmrphys.config import Config, ConfigError
from tune_spaces.errors import SpaceError

C = TypeVar("C", bound=Config)

#: at most this many bad combinations are listed in one error
MAX_LISTED = 8


def trial_overrides(sample: dict[str, Any]) -> dict[str, Any]:
    """Flatten a sampled trial config to `dotted.field -> value`, expanding bundles."""
    out: dict[str, Any] = {}
    for key, value in sample.items():
        fields = value if isinstance(value, dict) else {key: value}
        for field, item in fields.items():
            if "." not in field:
                raise SpaceError(
                    f"search space key {key!r}: {field!r} is not a dotted config field "
                    "such as 'model.resolution'"
                )
            item = _plain(item)
            if field in out and out[field] != item:
                raise SpaceError(
                    f"search space key {key!r} sets {field} = {item!r}, "
                    f"but another key already set it to {out[field]!r}"
                )
            out[field] = item
    return out


def apply_overrides(config: C, overrides: dict[str, Any]) -> C:
    """`config` with the dotted fields replaced; raises SpaceError naming the bad value."""
    # JSON is a subset of YAML flow syntax, so every value survives the override parser.
    items = [f"{field}={json.dumps(value)}" for field, value in overrides.items()]
    try:
        return config.with_overrides(items)
    except ConfigError as err:
        raise SpaceError(f"{_describe(overrides)}: {err}") from err


def as_random(space: dict[str, Any]) -> dict[str, Any]:
    """The space for random search: every grid dimension becomes a uniform choice."""
    return {
        key: tune.choice(value["grid_search"]) if _is_grid(value) else value
        for key, value in space.items()
    }


def corner_points(space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every categorical combination, with numeric ranges at both ends."""
    keys = list(space)
    options = [_corner_values(key, space[key]) for key in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*options)]


def check_space(
    space: dict[str, Any],
    base: C,
    check: Callable[[C], None] | None = None,
) -> list[C]:
    """Build the config of every corner point; raise SpaceError listing the failures.

    `check` runs on each distinct config for constraints beyond the config's own (for
    example, that the shards hold the modality a trial asks for); it raises ValueError.
    Returns the distinct configs checked.
    """
    configs: dict[str, C] = {}
    failures: dict[str, str] = {}
    for point in corner_points(space):
        overrides = trial_overrides(point)
        try:
            config = apply_overrides(base, overrides)
            key = json.dumps(config.to_dict(), sort_keys=True)
            if key not in configs:
                configs[key] = config
                if check is not None:
                    check(config)
        except ValueError as err:
            failures.setdefault(str(err).splitlines()[0], _describe(overrides))
    if failures:
        listed = [f"  {where}: {why}" for why, where in list(failures.items())[:MAX_LISTED]]
        more = len(failures) - len(listed)
        raise SpaceError(
            f"{len(failures)} kind(s) of invalid combination in the search space "
            "(exclude them from the space or change the base config):\n"
            + "\n".join(listed)
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    return list(configs.values())


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def _corner_values(key: str, value: Any) -> list[Any]:
    if _is_grid(value):
        return list(value["grid_search"])
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Float):
        return [value.lower, value.upper]
    if isinstance(value, Integer):
        # randint's upper bound is exclusive
        return [value.lower, value.upper - 1]
    if isinstance(value, Domain):
        raise SpaceError(
            f"search space key {key!r}: {type(value).__name__} values cannot be checked "
            "before the search; use grid_search, choice, uniform, loguniform or randint"
        )
    return [value]


def _plain(value: Any) -> Any:
    # Tune samples NumPy scalars; the config and JSON want Python values
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


def _describe(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{field}={value!r}" for field, value in overrides.items()) or "(base config)"
