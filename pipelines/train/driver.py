"""Distributed training with Ray Train, tracked in MLflow: the driver of a run.

Ray appears only at the edges: the training split streams into each worker through
`get_dataset_shard`, the model is wrapped for DDP by `prepare_model`, and every epoch ends
in `ray.train.report` with metrics and (from rank 0) a checkpoint. The per-worker loop is
`pipelines.train.worker`; the recipe itself is `mmrphys.training`. `train()` adds what
surrounds a run: checks before any work starts (`pipelines.train.checks`), the saved
config, the MLflow run, logging the best model (pyfunc + ONNX), its validation and test
reports and plots, and registration.

A run lives in `<storage_path>/<name>/`: `experiment.yaml`, Ray's `checkpoint_*` folders,
`best_model/` (the model artifact) and `val_report/`. Running again with the same
storage path and name resumes from the latest checkpoint (Ray Train restores it).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray.train
from ray.train.torch import TorchTrainer

from mmrphys.config import ExperimentConfig
from mmrphys.host_memory import reuse_env
from mmrphys.inference import read_artifact
from mmrphys.model.checkpoint import (
    EXPERIMENT_FILE,
    CheckpointError,
    check_same_variant,
)
from pipelines.data.shards import preprocessing_of, split_rows
from pipelines.data.stream import cache_small, decoded_mb, load_split, ordered_execution
from pipelines.ray_session import ensure_ray
from pipelines.serve.evaluate import evaluate
from pipelines.serve.pyfunc import log_pyfunc_model
from pipelines.tracking import RunLogger, register_model, start_run
from pipelines.train.progress import EpochPrinter
from pipelines.train.checks import (
    TrainingError,
    check_data,
    check_init_from,
    check_tracking,
    check_trainable,
    steps_per_epoch,
)
from pipelines.train.worker import train_loop_per_worker

MLFLOW_RUN_FILE = "mlflow_run.json"
HISTORY_FILE = "history.jsonl"
BEST_MODEL_DIR = "best_model"
VAL_REPORT_DIR = "val_report"


class TrainingFailed(RuntimeError):
    """A run that started did not finish (a worker error, or no checkpoint)."""


@dataclasses.dataclass
class TrainResult:
    """Where a finished run's outputs are and how it scored."""

    run_dir: Path
    best_checkpoint: Path
    model_dir: Path
    best_metrics: dict[str, Any]
    last_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None
    model_uri: str | None = None
    registered_version: str | None = None


def build_trainer(
    config: ExperimentConfig,
    *,
    storage_path: str,
    name: str,
    callbacks: Sequence[Any] = (),
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
):
    """A Ray TorchTrainer for this config: datasets, scaling, checkpoints, failure policy.

    With `mlflow_run_id`, rank 0 logs each epoch's metrics to that run. Call `.fit()`;
    calling it again with the same storage path and name resumes the run. A training split
    small enough for `data.cache_mb` is decoded here, before `.fit()` (`cache_small`).
    """
    storage = Path(storage_path).resolve()
    common = dict(config=config.model, fold=config.data.fold)
    train_rows = split_rows(config.data.shards, config.data.train_split, fold=config.data.fold)
    datasets = {
        "train": load_split(config.data.shards, config.data.train_split, **common),
        "val": load_split(config.data.shards, config.data.val_split, with_ids=True, **common),
    }
    for dataset in datasets.values():
        # the loop prints one line per epoch; Ray Data's bars from the workers would interleave with it
        dataset.context.enable_progress_bars = False
    datasets["train"] = cache_small(datasets["train"], decoded_mb(config.model, train_rows, config.model.tasks),
                                    config.data.cache_mb)
    resources = {"CPU": config.train.cpus_per_worker}
    if config.train.use_gpu:
        resources["GPU"] = 1
    loop_config = {
        "experiment": config.to_dict(),
        "steps_per_epoch": steps_per_epoch(config),
        "val_rows": split_rows(config.data.shards, config.data.val_split, fold=config.data.fold),
        # storage is shared by all workers (Ray needs that for checkpoints), so rank 0 can append here
        "history_file": str(storage / name / HISTORY_FILE),
        "tracking_uri": tracking_uri,
        "mlflow_run_id": mlflow_run_id,
        # what the checkpoints record as the model's preprocessing: the shards' own
        "preprocessing": preprocessing_of(config.data.shards).to_dict(),
    }
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.train.workers, use_gpu=config.train.use_gpu, resources_per_worker=resources,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=str(storage),
            callbacks=list(callbacks),
            failure_config=ray.train.FailureConfig(max_failures=config.train.max_failures),
            worker_runtime_env=worker_runtime_env(config),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=config.train.keep_checkpoints,
                checkpoint_score_attribute=config.train.checkpoint_metric,
                checkpoint_score_order=config.train.checkpoint_mode,
            ),
        ),
        datasets=datasets,
        # only the training split is divided among workers; rank 0 validates on all of val
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"], execution_options=ordered_execution()),
    )


def worker_runtime_env(config: ExperimentConfig) -> dict[str, Any] | None:
    """The training workers' runtime env: glibc tunables that keep freed memory for reuse
    (set at process start: the loop runs in a thread, which mallopt cannot reach)."""
    return {"env_vars": reuse_env()} if config.train.reuse_host_memory else None


def default_run_name(config: ExperimentConfig) -> str:
    """A readable, unique run name: variant and a timestamp."""
    m = config.model
    return f"{m.architecture}-{m.modality}-{m.resolution}-{m.attention}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every epoch's reported metrics, in order (a resumed epoch appears again)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The config a run was started with, plus overrides that keep the model variant."""
    run_dir = Path(run_dir)
    path = run_dir / EXPERIMENT_FILE
    if not path.is_file():
        raise TrainingError(f"{run_dir}: not a training run folder (no {EXPERIMENT_FILE})")
    saved = ExperimentConfig.load_yaml(path)
    config = saved.with_overrides(list(overrides)) if overrides else saved
    try:
        check_same_variant(saved.model, config.model, f"{path} with overrides")
    except CheckpointError as err:
        raise TrainingError(f"cannot resume: {err}") from err
    return config


def train(
    config: ExperimentConfig,
    *,
    storage_path: str | Path = "runs",
    name: str | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Check, train, then log and register the best model. Returns where everything went.

    With `resume`, `<storage_path>/<name>` must be an earlier run: it continues from its
    latest checkpoint and logs into the same MLflow run.
    """
    storage = Path(storage_path).resolve()
    name = name or default_run_name(config)
    run_dir = storage / name
    if resume and not (run_dir / EXPERIMENT_FILE).is_file():
        raise TrainingError(f"cannot resume: {run_dir} is not a training run folder")
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise TrainingError(f"{run_dir} already holds a run; pick another name or resume it")
    check_trainable(config)
    check_data(config)
    check_init_from(config)
    uri = check_tracking(config)

    run_dir.mkdir(parents=True, exist_ok=True)
    config.save_yaml(run_dir / EXPERIMENT_FILE)
    logger = _open_mlflow_run(config, uri, run_dir, name, resume) if uri else None
    ensure_ray(config.train.workers * config.train.cpus_per_worker)
    try:
        # inside the try: building may already decode a small training split (cache_small)
        trainer = build_trainer(config, storage_path=str(storage), name=name, callbacks=callbacks,
                                tracking_uri=uri, mlflow_run_id=logger.run_id if logger else None)
        with EpochPrinter(run_dir / HISTORY_FILE, config.train.epochs):
            result = trainer.fit()
    except Exception as err:
        if logger is not None:
            logger.finish("FAILED")
        raise TrainingFailed(f"training run {run_dir} failed: {err}") from err
    if result.error is not None:
        if logger is not None:
            logger.finish("FAILED")
        raise TrainingFailed(f"training run {run_dir} failed: {result.error}") from result.error

    best = result.get_best_checkpoint(config.train.checkpoint_metric, config.train.checkpoint_mode) \
        or result.checkpoint
    if best is None:
        raise TrainingFailed(f"training run {run_dir} reported no checkpoint")
    best_path = Path(best.path)
    best_metrics = json.loads((best_path / "metrics.json").read_text())
    model_dir = run_dir / BEST_MODEL_DIR
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(best_path, model_dir, ignore=shutil.ignore_patterns("training_state.pt"))
    outcome = TrainResult(run_dir=run_dir, best_checkpoint=best_path, model_dir=model_dir,
                          best_metrics=best_metrics, last_metrics=dict(result.metrics or {}),
                          history=read_history(run_dir),
                          tracking_uri=uri)
    if logger is not None:
        _log_outcome(config, outcome, logger)
    return outcome


def _open_mlflow_run(config: ExperimentConfig, uri: str, run_dir: Path, name: str, resume: bool) -> RunLogger:
    record = run_dir / MLFLOW_RUN_FILE
    if resume and record.is_file():
        saved = json.loads(record.read_text())
        if saved["tracking_uri"] == uri:
            logger = RunLogger(uri, saved["run_id"])
            logger.reopen()
            return logger
    run_id = start_run(uri, config.tracking, run_name=name, tags={"mmrphys.run_dir": str(run_dir)})
    record.write_text(json.dumps({"tracking_uri": uri, "run_id": run_id}))
    logger = RunLogger(uri, run_id)
    logger.log_params(config.flat())
    logger.log_artifact(run_dir / EXPERIMENT_FILE)
    return logger


def _log_outcome(config: ExperimentConfig, outcome: TrainResult, logger) -> None:
    """Log the best model (pyfunc + ONNX) and its validation report; register it."""
    outcome.mlflow_run_id = logger.run_id
    try:
        logger.set_tags({"best_epoch": outcome.best_metrics["epoch"], "run_dir": outcome.run_dir})
        evaluate(outcome.model_dir, config.data.shards, config.data.val_split, evaluation=config.eval,
                 out_dir=outcome.run_dir / VAL_REPORT_DIR, logger=logger, fold=config.data.fold,
                 prefix="best_val")
        if config.tracking.log_model:
            info = log_pyfunc_model(logger, outcome.model_dir, with_onnx=config.tracking.log_onnx)
            outcome.model_uri = info.model_uri
            if config.tracking.register_as:
                version = register_model(logger.uri, info.model_uri, config.tracking.register_as,
                                         alias=config.tracking.alias,
                                         config=read_artifact(outcome.model_dir).config)
                outcome.registered_version = str(version.version)
    except Exception:
        logger.finish("FAILED")
        raise
    logger.finish("FINISHED")
