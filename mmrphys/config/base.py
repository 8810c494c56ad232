"""The config machinery every section shares: typed frozen dataclasses, validation,
YAML load/save and `section.field=value` overrides.

Each config is a frozen dataclass. `Config.from_dict` rejects unknown keys and bad values
before any work starts, naming the field and the allowed values; `with_overrides` applies
`section.field=value` strings (values parsed as YAML scalars), and `save_yaml` /
`load_yaml` round-trip a config to a file saved with every run.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from mmrphys.errors import UserError

C = TypeVar("C", bound="Config")

#: a number in exponent form without a dot, which YAML 1.1 leaves a string (`3e-3`)
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(UserError, ValueError):
    """A configuration value is missing, unknown or out of range."""


def parse_override(item: str) -> tuple[str, Any]:
    """`section.field=value` as (dotted key, value read as a YAML scalar; None if empty)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. model.resolution=9")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Coerce `value` to the annotated type `hint`, or raise ConfigError naming `where`."""
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(hint)
        item = args[0] if args else Any
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return hint.from_dict(value, _prefix=f"{where}.")
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            # YAML 1.1 reads `3e-3` (no dot) as a string; every user means the number
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {hint!r} for {where}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: subclasses declare typed fields and may override `validate`."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(getattr(self, f.name), hints[f.name], self._where(f.name))
            object.__setattr__(self, f.name, value)
        self.validate()

    def _where(self, name: str) -> str:
        return f"{type(self).__name__}.{name}"

    def validate(self) -> None:
        """Check constraints between fields; raise ConfigError naming the field."""

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], _prefix: str = "") -> C:
        """Build from a plain mapping, rejecting unknown keys."""
        if not isinstance(data, dict):
            raise ConfigError(f"{_prefix or cls.__name__}: expected a mapping, got {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{_prefix}{unknown[0]}: unknown field of {cls.__name__}; known fields: {sorted(names)}"
            )
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{_prefix}{err}" if _prefix and not str(err).startswith(_prefix) else str(err)) from err

    def to_dict(self) -> dict[str, Any]:
        """Plain nested mapping (tuples become lists) suitable for YAML and JSON."""

        def plain(v: Any) -> Any:
            if isinstance(v, Config):
                return v.to_dict()
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def flat(self, prefix: str = "") -> dict[str, Any]:
        """Flattened `a.b.c -> value` mapping (for experiment trackers' params)."""
        out: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            _flatten(f"{prefix}{key}", value, out)
        return out

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_overrides(self: C, overrides: list[str] | tuple[str, ...]) -> C:
        """Apply `field=value` or `section.field=value` strings; values are YAML scalars."""
        data = self.to_dict()
        for item in overrides:
            key, value = parse_override(item)
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {item!r}: {part!r} is not a config section")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"override {item!r}: unknown field {key!r}; known here: {sorted(node)}")
            node[parts[-1]] = value
        return type(self).from_dict(data)

    def save_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load_yaml(cls: type[C], path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> C:
        """Read a YAML file (missing fields take defaults), then apply overrides."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read config: {err}") from err
        try:
            config = cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err
        return config.with_overrides(overrides) if overrides else config


def _flatten(key: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{key}.{k}", v, out)
    else:
        out[key] = value


def apply_overrides(configs: dict[str, Config], overrides: list[str] | tuple[str, ...]) -> dict[str, Config]:
    """Apply `section.field=value` overrides to the configs of a command, by section.

    `configs` maps the section names a command takes to their configs, e.g.
    {"ingest": IngestConfig()} or {"experiment": ExperimentConfig(), "search": SearchConfig()}.
    An override names a section (`ingest.chunk_frames=160`, `search.num_samples=3`) or a
    section of one of the configs (`model.resolution=9` goes to the ExperimentConfig).
    """
    grouped: dict[str, list[str]] = {name: [] for name in configs}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected SECTION.FIELD=VALUE, e.g. model.resolution=9")
        head = item.split("=", 1)[0].strip().split(".", 1)[0]
        if head in configs and "." in item.split("=", 1)[0]:
            grouped[head].append(item.split(".", 1)[1])
            continue
        owners = [name for name, config in configs.items() if head in _sections(config)]
        if len(owners) != 1:
            sections = sorted(set(configs) | {s for c in configs.values() for s in _sections(c)})
            raise ConfigError(f"override {item!r}: unknown section {head!r}; this command takes "
                              f"SECTION.FIELD=VALUE with SECTION one of {sections}")
        grouped[owners[0]].append(item)
    return {name: config.with_overrides(grouped[name]) if grouped[name] else config for name, config in configs.items()}


def _sections(config: Config) -> set[str]:
    """Names of the fields of `config` that are configs themselves (its sections)."""
    return {f.name for f in dataclasses.fields(config) if isinstance(getattr(config, f.name), Config)}
