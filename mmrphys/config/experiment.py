"""The sections of one training run (data, train, tracking, eval) and the experiment
that holds them with the model section; saved as YAML with every run."""

from __future__ import annotations

import dataclasses
from typing import Literal

from mmrphys.config.base import Config, ConfigError
from mmrphys.config.model import ModelConfig
from mmrphys.tasks import reported_metric_names

Precision = Literal["auto", "fp32", "bf16"]
LossKind = Literal["smooth_l1", "neg_pearson", "neg_pearson_across_batch", "rhythmformer_hybrid",
                   "rhythmformer_hybrid_corrected"]
Scheduler = Literal["onecycle", "constant"]
RateMethod = Literal["fft", "peak"]


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    """Where the training data comes from.

    shards: folder of Parquet shards written by `mmrphys ingest` (its manifest beside them).
    train_split / val_split / test_split: split names in the manifest.
    fold: cross-validation fold for datasets ingested with folds (None: the plain splits).
    shuffle_buffer: rows each worker shuffles locally while streaming (0: stream order).
    cache_mb: a training split whose decoded chunks take at most this many MB (and at most
        a quarter of the object store still free) is decoded once and kept in the object
        store for every epoch; a larger one is streamed from the shards each epoch (0:
        always stream). A validation split within it is kept in rank 0's memory.
        docs/training.md, "Small datasets are cached".
    """

    shards: str = ""
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    fold: int | None = None
    shuffle_buffer: int = 32
    cache_mb: float = 512.0

    def validate(self) -> None:
        if self.shuffle_buffer < 0:
            raise ConfigError(f"DataConfig.shuffle_buffer: must be >= 0, got {self.shuffle_buffer}")
        if not self.cache_mb >= 0:  # NaN too: it would compare false with every size
            raise ConfigError(f"DataConfig.cache_mb: must be >= 0, got {self.cache_mb}")
        for name in ("train_split", "val_split", "test_split"):
            if not getattr(self, name):
                raise ConfigError(f"DataConfig.{name}: must name a split, got an empty string")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """The training recipe and its distribution over Ray Train workers.

    Defaults are the reference recipe: Adam at lr 1e-3, OneCycleLR stepped every batch,
    Smooth L1 on z-scored BVP and RSP with equal weights, batch 4.
    epochs / batch_size: per worker batch size; the global batch is batch_size x workers.
    loss: `smooth_l1` (the MMRPhys reference), `neg_pearson` (1 - Pearson r per sample over
        time), `neg_pearson_across_batch` (the FactorizePhys reference's form: r across
        the batch at each time step, after a whole-batch z-score; degenerate for batches
        of 1 or 2; docs/factorizephys.md, "Loss"), or RhythmFormer's hybrid pulse loss
        (BVP only; needs each clip's fps): `rhythmformer_hybrid` (canonical) or
        `rhythmformer_hybrid_corrected` (its HR-distribution term made differentiable;
        docs/rhythmformer.md, "Loss").
    bvp_weight / rsp_weight: task weights in the summed loss.
    workers / cpus_per_worker / use_gpu: the Ray Train scaling config.
    precision: `auto` is bf16 autocast on GPU and fp32 on CPU; `bf16` autocasts on CPU
        too; `fp32` never autocasts. Losses, their sums and the optimizer stay float32+.
    seed: seeds the model's initialisation and, per (seed, epoch, rank), every epoch's
        random streams and local shuffle; with the same data and worker count a CPU run
        repeats its epoch metrics (docs/training.md, "Reproducibility").
    deterministic: torch's deterministic algorithms and no cuDNN autotuning, for runs
        that repeat on GPU too (slower there; CPU runs repeat without it).
    grad_clip: max gradient norm (None: no clipping, as the reference in fp32).
    checkpoint_metric / checkpoint_mode: which reported metric ranks checkpoints.
    keep_checkpoints: how many of the best checkpoints to keep (the latest is always kept).
    max_failures: worker-group restarts from the last checkpoint before the run fails.
    init_from: a model reference (checkpoint folder, run folder, models:/... or a released
        reference `.pth` checkpoint) whose weights start the run; it must be the same variant.
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
    deterministic: bool = False
    checkpoint_metric: str = "val_rate_mae"
    checkpoint_mode: Literal["min", "max"] = "min"
    keep_checkpoints: int = 2
    max_failures: int = 2
    init_from: str = ""
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
        if self.seed < 0:
            raise ConfigError(f"TrainConfig.seed: must be >= 0, got {self.seed}")
        if self.max_failures < -1:
            raise ConfigError(f"TrainConfig.max_failures: must be >= 0 (or -1: unlimited), got {self.max_failures}")


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
        if self.train.loss.startswith("rhythmformer_hybrid") and self.model.tasks != ("bvp",):
            raise ConfigError(
                f"TrainConfig.loss: {self.train.loss!r} is a pulse (BVP) loss; model.tasks must be ['bvp'], "
                f"got {list(self.model.tasks)}"
            )
