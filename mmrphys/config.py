"""Typed, validated configuration for every command, loadable from YAML and overridable
from the command line.

Each config is a frozen dataclass. `Config.from_dict` rejects unknown keys and bad values
before any work starts, naming the field and the allowed values; `with_overrides` applies
`section.field=value` strings (values parsed as YAML scalars), and `save_yaml` /
`load_yaml` round-trip a config to a file saved with every run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


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
            raise ConfigError(f"{_prefix}{err}" if _prefix and not str(err).startswith(_prefix) else str(err)) from None

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
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. model.resolution=9")
            key, raw = item.split("=", 1)
            value = yaml.safe_load(raw) if raw.strip() else None
            node = data
            parts = key.strip().split(".")
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
            raise ConfigError(f"{path}: cannot read config: {err}") from None
        try:
            config = cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        return config.with_overrides(overrides) if overrides else config


def _flatten(key: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{key}.{k}", v, out)
    else:
        out[key] = value


Resolution = Literal[72, 36, 9]
Modality = Literal["rgb", "thermal", "rgbt"]
Fusion = Literal["early", "per_task", "late"]
Task = Literal["bvp", "rsp"]
Attention = Literal["none", "fsam", "tsfm"]
FactorLayout = Literal["reference", "time_aligned"]
Constraint = Literal["target", "target_harmonics", "rbf"]
BasesInit = Literal["reference", "seeded"]
Kernels = Literal["auto", "fused", "stock"]

#: channels of the raw clip each modality feeds the model (RGB first, thermal last)
MODALITY_CHANNELS: dict[str, int] = {"rgb": 3, "thermal": 1, "rgbt": 4}


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """One MMRPhys variant. Every variant of the reference is a value of this config.

    resolution: input frame size (72 = the reference's L, 36 = M, 9 = S).
    modality / fusion: `early` (EF) feeds the chosen channels to both branches;
        `per_task` (NF) routes RGB to BVP and thermal to RSP; `late` (LF) keeps separate
        RGB and thermal streams joined before the heads. NF and LF need `rgbt`.
    tasks: which heads to build.
    attention: `none` (Base), `fsam` (unconstrained NMF) or `tsfm` (NMF constrained by the
        target signal during training).
    frames: T, the output length; the model takes T or T+1 input frames; a multiple of 4.
    nmf_steps / nmf_rank / rsp_nmf_rank: factorization iterations and ranks (the
        reference's MD_STEPS, MD_R and the RSP head's forced rank 4).
    factor_layout: `reference` reshapes (C, T, h, w) memory into the D x N matrix exactly
        as the reference does; `time_aligned` makes matrix row t hold frame t.
    constraint: TSFM dictionary: `target` (one column, the reference's Label mode),
        `target_harmonics` (target, its quadrature and harmonics), `rbf` (the reference's
        Gaussian bank).
    bases_init: `reference` (identical initial bases, as the reference) or `seeded`
        (distinct, seeded initial bases so that rank and steps matter).
    attention_at_inference: also run the factorization in eval mode (FSAM only needs no
        label; TSFM at inference uses the plain path unless this is set and labels given).
    kernels: how conv blocks run; the same function either way (float rounding aside).
        `stock` is the reference's op sequence with stock PyTorch modules; `fused` keeps
        activations channels-last and runs Tanh+InstanceNorm as one autograd function
        (faster training on CPU); `auto` fuses on CPU and stays stock elsewhere.
    """

    resolution: Resolution = 72
    modality: Modality = "rgbt"
    fusion: Fusion = "early"
    tasks: tuple[Task, ...] = ("bvp", "rsp")
    attention: Attention = "tsfm"
    frames: int = 180
    dropout: float = 0.1
    nmf_steps: int = 4
    nmf_rank: int = 1
    rsp_nmf_rank: int = 4
    factor_layout: FactorLayout = "reference"
    constraint: Constraint = "target"
    bases_init: BasesInit = "reference"
    harmonics: int = 2
    seed: int = 0
    attention_at_inference: bool = False
    kernels: Kernels = "auto"

    @property
    def in_channels(self) -> int:
        """Channels of the raw clip this model takes."""
        return MODALITY_CHANNELS[self.modality]

    def validate(self) -> None:
        if self.fusion != "early" and self.modality != "rgbt":
            raise ConfigError(
                f"ModelConfig.fusion: {self.fusion!r} needs modality 'rgbt' "
                f"(RGB and thermal streams), got modality {self.modality!r}"
            )
        if not self.tasks:
            raise ConfigError("ModelConfig.tasks: at least one of ['bvp', 'rsp'] is required")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"ModelConfig.tasks: duplicate task in {list(self.tasks)}")
        if self.frames <= 0 or self.frames % 4:
            raise ConfigError(f"ModelConfig.frames: must be a positive multiple of 4, got {self.frames}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ModelConfig.dropout: must be in [0, 1), got {self.dropout}")
        for name in ("nmf_steps", "nmf_rank", "rsp_nmf_rank", "harmonics"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ModelConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.attention == "fsam" and self.constraint != "target":
            raise ConfigError(
                "ModelConfig.constraint: FSAM is the unconstrained factorization; "
                f"constraint {self.constraint!r} needs attention 'tsfm'"
            )


Precision = Literal["auto", "fp32", "bf16"]
LossKind = Literal["smooth_l1", "neg_pearson"]
Scheduler = Literal["onecycle", "constant"]
RateMethod = Literal["fft", "peak"]


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Where the training data comes from.

    shards: folder of Parquet shards written by `mmrphys ingest` (its manifest beside them).
    train_split / val_split / test_split: split names in the manifest.
    fold: cross-validation fold for datasets ingested with folds (None: the plain splits).
    shuffle_buffer: rows each worker shuffles locally while streaming (0: stream order).
    """

    shards: str = ""
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    fold: int | None = None
    shuffle_buffer: int = 32

    def validate(self) -> None:
        if self.shuffle_buffer < 0:
            raise ConfigError(f"DataConfig.shuffle_buffer: must be >= 0, got {self.shuffle_buffer}")
        for name in ("train_split", "val_split", "test_split"):
            if not getattr(self, name):
                raise ConfigError(f"DataConfig.{name}: must name a split, got an empty string")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """The training recipe and its distribution over Ray Train workers.

    Defaults are the reference recipe: Adam at lr 1e-3, OneCycleLR stepped every batch,
    Smooth L1 on z-scored BVP and RSP with equal weights, batch 4.
    epochs / batch_size: per worker batch size; the global batch is batch_size x workers.
    bvp_weight / rsp_weight: task weights in the summed loss.
    workers / cpus_per_worker / use_gpu: the Ray Train scaling config.
    precision: `auto` is bf16 autocast on GPU and fp32 on CPU.
    grad_clip: max gradient norm (None: no clipping, as the reference in fp32).
    checkpoint_metric / checkpoint_mode: which reported metric ranks checkpoints.
    keep_checkpoints: how many of the best checkpoints to keep (the latest is always kept).
    max_failures: worker-group restarts from the last checkpoint before the run fails.
    init_from: a model reference (checkpoint folder, run folder or models:/...) whose
        weights start the run; it must be the same variant.
    simulate_worker_failure: fault-tolerance drill: the last worker exits abruptly once,
        at the end of this epoch (a marker in the run folder keeps it from repeating).
    reuse_host_memory: start the workers with glibc malloc keeping freed memory for reuse
        (mmrphys.host_memory): CPU steps 1.3-1.5x faster at 72x72 and 36x36; workers keep
        their peak memory (0-15% above the default's peak) until they exit.
    """

    epochs: int = 5
    batch_size: int = 4
    lr: float = 1e-3
    scheduler: Scheduler = "onecycle"
    loss: LossKind = "smooth_l1"
    bvp_weight: float = 1.0
    rsp_weight: float = 1.0
    workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    precision: Precision = "auto"
    grad_clip: float | None = None
    seed: int = 100
    checkpoint_metric: str = "val_rate_mae"
    checkpoint_mode: Literal["min", "max"] = "min"
    keep_checkpoints: int = 2
    max_failures: int = 2
    init_from: str = ""
    simulate_worker_failure: int | None = None
    reuse_host_memory: bool = True

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "workers", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"TrainConfig.lr: must be > 0, got {self.lr}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"TrainConfig.cpus_per_worker: must be > 0, got {self.cpus_per_worker}")
        if self.bvp_weight < 0 or self.rsp_weight < 0:
            raise ConfigError("TrainConfig.bvp_weight / rsp_weight: task weights must be >= 0")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"TrainConfig.grad_clip: must be > 0 or null, got {self.grad_clip}")
        if self.max_failures < -1:
            raise ConfigError(f"TrainConfig.max_failures: must be >= 0 (or -1: unlimited), got {self.max_failures}")
        if self.simulate_worker_failure is not None and not 0 <= self.simulate_worker_failure < self.epochs - 1:
            raise ConfigError(
                "TrainConfig.simulate_worker_failure: must be an epoch before the last "
                f"(0..{self.epochs - 2}), got {self.simulate_worker_failure}"
            )


@dataclasses.dataclass(frozen=True)
class TrackingConfig(Config):
    """MLflow tracking and registry.

    uri: tracking URI; empty means $MLFLOW_TRACKING_URI, else a SQLite store
        `mlflow.db` in the working directory.
    experiment: MLflow experiment name; run_name: the run's name (empty: the Ray run name).
    parent_run_id: nest this run under that run (a tuning search, for instance).
    register_as: registered model name to add a version to after training (empty: none).
    alias: alias to point at that new version (e.g. `champion`).
    log_model / log_onnx: log the pyfunc model / an ONNX export with the run.
    enabled: false runs without MLflow at all.
    """

    uri: str = ""
    experiment: str = "mmrphys"
    run_name: str = ""
    parent_run_id: str = ""
    register_as: str = ""
    alias: str = ""
    log_model: bool = True
    log_onnx: bool = True
    enabled: bool = True

    def validate(self) -> None:
        if self.alias and not self.register_as:
            raise ConfigError("TrackingConfig.alias: needs register_as (the registered model to alias)")
        if self.register_as and not self.log_model:
            raise ConfigError("TrackingConfig.register_as: needs log_model true (a version is a logged model)")
        if not self.enabled and (self.register_as or self.parent_run_id):
            raise ConfigError("TrackingConfig.enabled: false, but register_as / parent_run_id need MLflow")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Config):
    """How predicted waveforms become rates and metrics.

    profile: evaluation profile of `mmrphys.metrics` (`default`, or the ones reproducing
        rPPG-Toolbox and the MMRPhys reference).
    window_seconds: evaluation window; None evaluates each whole recording.
    method: rate estimator, FFT peak or peak counting.
    batch_size: inference batch size.
    """

    profile: str = "default"
    window_seconds: float | None = None
    method: RateMethod = "fft"
    batch_size: int = 8

    def validate(self) -> None:
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ConfigError(f"EvalConfig.window_seconds: must be > 0 or null, got {self.window_seconds}")
        if self.batch_size < 1:
            raise ConfigError(f"EvalConfig.batch_size: must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(Config):
    """Everything one training run needs; saved as YAML with every run."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    @property
    def task_weights(self) -> dict[str, float]:
        """Loss weight of each task the model predicts."""
        weights = {"bvp": self.train.bvp_weight, "rsp": self.train.rsp_weight}
        return {task: weights[task] for task in self.model.tasks}

    def validate(self) -> None:
        metric = self.train.checkpoint_metric
        allowed = reported_metric_names(self.model.tasks)
        if metric not in allowed:
            raise ConfigError(f"TrainConfig.checkpoint_metric: {metric!r} is not one of {sorted(allowed)}")


def reported_metric_names(tasks: tuple[str, ...]) -> set[str]:
    """Names of the per-epoch metrics training reports for these tasks."""
    names = {"train_loss", "val_loss"}
    rate = {"bvp": "hr", "rsp": "rr"}
    for task in tasks:
        names |= {f"train_{task}_loss", f"val_{task}_loss"}
        names |= {f"val_{rate[task]}_{m}" for m in ("mae", "rmse", "mape", "pearson", "snr", "macc")}
    names.add("val_rate_mae")
    return names
