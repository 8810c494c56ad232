"""Checks a training run passes before any work starts, each failing with a
`TrainingError` that names the field, file or split at fault."""

from __future__ import annotations

from mmrphys.config import ExperimentConfig
from mmrphys.errors import UserError
from mmrphys.inference import read_artifact
from mmrphys.inference.artifact import is_reference_checkpoint
from mmrphys.model.checkpoint import CheckpointError, check_same_variant
from pipelines.data.shards import DataError, check_split, read_manifest, split_rows
from pipelines.serve.references import ModelRefError, fetch_model, resolve_model
from pipelines.tracking import (
    TrackingError,
    check_registry_name,
    check_tracking_uri,
    resolve_tracking_uri,
)


class TrainingError(UserError, RuntimeError):
    """A training run cannot start as configured."""


def check_trainable(config: ExperimentConfig) -> None:
    """Only networks train: an unsupervised method has no weights."""
    if config.model.architecture == "unsupervised":
        raise TrainingError(
            f"ModelConfig.architecture: 'unsupervised' ({config.model.unsupervised.method}) has nothing to train; "
            f"evaluate it with `mmrphys evaluate --model {config.model.unsupervised.method} --data SHARDS`"
        )


def check_data(config: ExperimentConfig) -> None:
    """Fail fast, naming the problem, if the train or val split cannot feed this model."""
    if not config.data.shards:
        raise TrainingError("DataConfig.shards: no shards folder given (use --data SHARDS_DIR)")
    try:
        for split in (config.data.train_split, config.data.val_split):
            check_split(config.data.shards, split, modality=config.model.modality,
                        tasks=config.model.tasks, fold=config.data.fold)
        ingest = read_manifest(config.data.shards)["ingest_config"]
    except DataError as err:
        raise TrainingError(str(err)) from err
    chunk, frames = ingest["chunk_frames"], config.model.frames
    if chunk not in (frames, frames + 1):
        raise TrainingError(
            f"ModelConfig.frames: {frames}, but the shards in {config.data.shards} hold {chunk}-frame chunks; "
            f"set model.frames={chunk - chunk % 4} or re-ingest with chunk_frames={frames}"
        )
    steps_per_epoch(config)


def check_init_from(config: ExperimentConfig) -> None:
    """A starting model (a model reference or a released `.pth`) must hold the variant
    this config trains."""
    if not config.train.init_from:
        return
    try:
        local = fetch_model(config.train.init_from)
        found = resolve_model(str(local))[1].config if is_reference_checkpoint(local) else read_artifact(local).config
        check_same_variant(config.model, found, config.train.init_from)
    except (ModelRefError, CheckpointError) as err:
        raise TrainingError(f"TrainConfig.init_from: {err}") from err


def check_tracking(config: ExperimentConfig) -> str | None:
    """Resolve and check the tracking URI and the registry name; returns the URI."""
    if not config.tracking.enabled:
        return None
    uri = resolve_tracking_uri(config.tracking.uri)
    try:
        check_tracking_uri(uri)
        if config.tracking.register_as:
            check_registry_name(uri, config.tracking.register_as, config.model)
    except TrackingError as err:
        raise TrainingError(str(err)) from err
    return uri


def steps_per_epoch(config: ExperimentConfig) -> int:
    """Batches each worker sees per epoch (the even split rounds rows down)."""
    rows = split_rows(config.data.shards, config.data.train_split, fold=config.data.fold)
    per_worker = rows // config.train.workers
    if per_worker < 1:
        raise TrainingError(
            f"{config.data.shards}: split {config.data.train_split!r} has {rows} chunks, "
            f"fewer than the {config.train.workers} training workers"
        )
    return -(-per_worker // config.train.batch_size)
