"""The per-worker Ray Train loop: restore, then train / validate / checkpoint each epoch.

`pipelines.train.build_trainer` hands `train_loop_per_worker` to a `TorchTrainer`. Every
worker trains on its shard of the training split; rank 0 also validates on the whole val
split, appends to the run's history, logs to MLflow and saves the epoch's checkpoint.
The recipe itself (optimizer, epoch, inference, metrics) is `mmrphys.training`.

Every tensor the loop makes lives on `ray.train.torch.get_device()` (NCCL, the GPU
backend, reduces CUDA tensors only); checkpoints are written from CPU copies. Random
streams are seeded per (seed, epoch, rank), so a resumed epoch draws what the
uninterrupted run would have drawn (docs/training.md, "Reproducibility").
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch

from mmrphys.config import ExperimentConfig, PreprocessingConfig
from mmrphys.data.recording import DatasetError
from mmrphys.host_memory import started_with_reuse
from mmrphys.inference import save_model
from mmrphys.inference.artifact import read_weights
from mmrphys.model import build_model
from mmrphys.model.checkpoint import (
    EXPERIMENT_FILE,
    load_weights,
    read_training_state,
    save_training_state,
)
from mmrphys.training import (
    ValidationOutput,
    build_optimizer,
    build_scheduler,
    derive_seed,
    predict_chunks,
    seed_everything,
    state_on_cpu,
    train_epoch,
    use_deterministic_algorithms,
    validation_metrics,
)
from pipelines.data.stream import decoded_mb
from pipelines.serve.references import fetch_model, resolve_model
from pipelines.tracking import SPOOL_FILE, RunLogger

#: training batches Ray Data formats (and copies to the GPU) ahead of the step
PREFETCH_BATCHES = 2
#: Ray Train V2's checkpoint manager snapshot in the run folder (its name in Ray 2.60)
CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"
#: how long rank 0 waits for Ray Train to register an epoch's checkpoint
REGISTER_TIMEOUT_S = 60.0


def _restore(model: torch.nn.Module, config: ExperimentConfig) -> dict[str, Any] | None:
    """Load the latest Ray checkpoint (after a failure or on resume), else the `init_from`
    weights (a model reference or a released `.pth`, checked by the driver)."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            load_weights(model, read_weights(folder), folder)
            return read_training_state(folder)
    if config.train.init_from:
        start, _ = resolve_model(str(fetch_model(config.train.init_from)))
        load_weights(model, start.state_dict(), config.train.init_from)
    return None


def _all_reduce_sum(sums: torch.Tensor) -> list[float]:
    """Sum a worker's float64 loss sums (on its device: NCCL reduces CUDA tensors only)
    across workers, read back once."""
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
    return sums.tolist()


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: restore, then train / validate / checkpoint each epoch."""
    config = ExperimentConfig.from_dict(loop_config["experiment"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    seed = config.train.seed
    use_deterministic_algorithms(config.train.deterministic)
    # every rank starts from the same weights (DDP would broadcast rank 0's anyway)
    seed_everything(derive_seed(seed))
    tasks, weights = config.model.tasks, config.task_weights

    preprocessing = PreprocessingConfig.from_dict(loop_config["preprocessing"])
    model = build_model(config.model)
    state = _restore(model, config)
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(model)
    bare_model = model.module if hasattr(model, "module") else model
    optimizer = build_optimizer(model, config.train)
    scheduler = build_scheduler(optimizer, config.train, loop_config["steps_per_epoch"])
    start_epoch, best = 0, None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = int(state["epoch"]) + 1, state.get("best_score")

    logger = None
    if rank == 0 and loop_config.get("mlflow_run_id"):
        # a store that goes away mid-run does not stop training (docs/training.md, "Tracking")
        logger = RunLogger(loop_config["tracking_uri"], loop_config["mlflow_run_id"],
                           spool=Path(loop_config["history_file"]).with_name(SPOOL_FILE))
        # what the worker process really started with (TrainConfig.reuse_host_memory)
        logger.set_tags({"host_memory_reuse": started_with_reuse()})
    if rank == 0:
        _settle_history(loop_config["history_file"], start_epoch, state, logger)

    train_shard = ray.train.get_dataset_shard("train")
    val_batches = _validation_batches(ray.train.get_dataset_shard("val"), config, loop_config["val_rows"]) \
        if rank == 0 else None
    metric, mode = config.train.checkpoint_metric, config.train.checkpoint_mode
    for epoch in range(start_epoch, config.train.epochs):
        started = time.perf_counter()
        epoch_seed = derive_seed(seed, epoch, rank)
        seed_everything(epoch_seed)
        batches = train_shard.iter_torch_batches(
            batch_size=config.train.batch_size,
            dtypes=torch.float32,
            device=device,
            pin_memory=device.type == "cuda",
            prefetch_batches=PREFETCH_BATCHES,
            local_shuffle_buffer_size=config.data.shuffle_buffer or None,
            local_shuffle_seed=epoch_seed if config.data.shuffle_buffer else None,
        )
        stats = train_epoch(model, batches, optimizer, scheduler, tasks=tasks, weights=weights,
                            train=config.train, device=device)
        train_seconds = time.perf_counter() - started
        sums = _all_reduce_sum(stats.sums)
        metrics: dict[str, Any] = {"epoch": epoch, "started_at_epoch": start_epoch}
        if rank == 0:
            samples = max(sums[1], 1.0)
            metrics["train_loss"] = sums[0] / samples
            metrics.update({f"train_{t}_loss": s / samples for t, s in zip(tasks, sums[2:])})
            metrics["lr"] = optimizer.param_groups[0]["lr"]
            metrics["train_seconds"] = train_seconds
            metrics["train_chunks_per_second"] = sums[1] / train_seconds
            # the whole val split on rank 0: an even split across workers would drop rows
            output = predict_chunks(bare_model, val_batches(), tasks=tasks, weights=weights,
                                    train=config.train, device=device)
            metrics.update(_validation_metrics(output, config))
            metrics["epoch_seconds"] = time.perf_counter() - started
            score = metrics[metric]
            if best is None or (score < best if mode == "min" else score > best):
                best = score
            metrics[f"best_{metric}"] = best
            with tempfile.TemporaryDirectory() as folder:
                save_model(folder, state_on_cpu(bare_model.state_dict()), config.model, preprocessing, config.eval)
                save_training_state(folder, {
                    "optimizer": state_on_cpu(optimizer.state_dict()),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "epoch": epoch,
                    "best_score": best,
                    "metrics": metrics,
                })
                config.save_yaml(Path(folder) / EXPERIMENT_FILE)
                (Path(folder) / "metrics.json").write_text(json.dumps(metrics, indent=2))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
            # recorded only once Ray Train has registered its checkpoint: a kill before
            # here redoes the epoch, and the epoch is then recorded once, by the run that
            # finishes it (MLflow cannot take a logged step back)
            if not _wait_registered(Path(loop_config["history_file"]).parent, epoch):
                print(f"[mmrphys] epoch {epoch + 1}: Ray Train did not confirm its checkpoint within "
                      f"{REGISTER_TIMEOUT_S:.0f} s; recording the epoch anyway", file=sys.stderr, flush=True)
            _record_epoch(loop_config["history_file"], metrics, logger)
        else:
            ray.train.report(metrics, checkpoint=None)


def _wait_registered(run_dir: Path, epoch: int, timeout_s: float = REGISTER_TIMEOUT_S) -> bool:
    """Wait until Ray Train's checkpoint manager has registered epoch `epoch`'s checkpoint.

    Ray Train V2 registers a reported checkpoint in its controller, after `report` has
    returned on the worker; a worker killed in between restarts from the checkpoint
    before. The controller's snapshot file in the run folder names the latest registered
    checkpoint with its metrics. False after `timeout_s` (e.g. storage this process
    cannot read): the caller says so and records the epoch anyway.
    """
    snapshot = run_dir / CHECKPOINT_SNAPSHOT
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
            if int(latest.get("metrics", {}).get("epoch", -1)) >= epoch:
                return True
        except (OSError, ValueError):  # not written yet, or caught mid-write
            pass
        time.sleep(0.05)
    return False


def _record_epoch(history_file: str, metrics: dict[str, Any], logger: RunLogger | None) -> None:
    """Append an epoch to history.jsonl and log it to MLflow."""
    with open(history_file, "a") as history:
        history.write(json.dumps(metrics) + "\n")
    if logger is not None:
        logger.log_metrics({k: v for k, v in metrics.items() if k not in ("epoch", "started_at_epoch")},
                           step=metrics["epoch"])


def _settle_history(history_file: str, start_epoch: int, state: dict[str, Any] | None,
                    logger: RunLogger | None) -> None:
    """Make history.jsonl hold each epoch before `start_epoch` exactly once: drop the
    epochs this run is about to redo, and record the checkpoint's own epoch when a kill
    came between its checkpoint and its record."""
    path = Path(history_file)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    kept = [row for row in rows if row["epoch"] < start_epoch]
    if len(kept) != len(rows):
        path.write_text("".join(json.dumps(row) + "\n" for row in kept))
    if state is not None and "metrics" in state and all(row["epoch"] != state["epoch"] for row in kept):
        _record_epoch(history_file, dict(state["metrics"]), logger)


def _validation_batches(shard, config: ExperimentConfig, rows: int):
    """A callable giving the val batches; a split within `data.cache_mb` is decoded once
    and kept in rank 0's memory.

    Re-streaming a small split every epoch costs more in Ray Data start-up than the
    inference itself; a large one streams so memory stays bounded.
    """
    def stream():
        return shard.iter_batches(batch_size=config.eval.batch_size, batch_format="numpy")

    if decoded_mb(config.model, rows, config.model.tasks) > config.data.cache_mb:
        return stream
    cached: list = []

    def cached_batches():
        if not cached:
            cached.extend(stream())
        return cached

    return cached_batches


def _validation_metrics(output: ValidationOutput, config: ExperimentConfig) -> dict[str, float]:
    if output.samples == 0:
        raise DatasetError(f"{config.data.shards}: split {config.data.val_split!r} yielded no chunks")
    return validation_metrics(output, config.eval, config.model.tasks)
