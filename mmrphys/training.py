"""The training recipe for one worker, in plain PyTorch.

Optimizer, learning-rate schedule, one epoch over an iterable of batches, and validation
predictions turned into per-recording HR/RR metrics. Nothing here knows about Ray: the
Ray Train loop in `pipelines/train/worker.py` feeds these functions its dataset shards, and a
notebook or test can feed them any iterable of dict batches.

Batches are mappings with "video" (B, C, T, H, W) float32 raw frames and one (B, T)
float32 label per task, z-scored per chunk, and "fps" per row where the loss needs it
(RhythmFormer's hybrid loss). A network may return fewer samples than T (RhythmFormer:
8 * floor(T / 8)); its sample t is frame t, so labels are cut to the prediction's length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from mmrphys.config import EvalConfig, TrainConfig
from mmrphys.losses import multitask_loss
from mmrphys.metrics import assemble_recordings, evaluate_recordings
from mmrphys.signals import standardize_chunks
from mmrphys.tasks import HEADLINE_METRICS, metric_name


def build_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the reference's defaults (betas 0.9/0.999, eps 1e-8, no weight decay)."""
    return torch.optim.Adam(model.parameters(), lr=train.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """OneCycleLR over the whole run, stepped once per batch (None for a constant rate)."""
    if train.scheduler == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=train.lr, epochs=train.epochs, steps_per_epoch=max(1, steps_per_epoch)
    )


def step_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
    """Advance the schedule one batch, holding the final rate if the epoch ran long.

    Streaming shards can yield a batch more than the per-epoch estimate; OneCycleLR
    raises past its last step, so the extra steps keep the last rate instead.
    """
    if scheduler is None:
        return
    total = getattr(scheduler, "total_steps", None)
    if total is not None and scheduler.last_epoch + 1 >= total:
        return
    scheduler.step()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU for precision `auto` or `bf16`; full precision otherwise."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for one purpose of a run, e.g. `derive_seed(seed, epoch, rank)`.

    NumPy's SeedSequence mixes the keys, so neighbouring seeds, epochs and ranks give
    unrelated streams (seed + epoch + rank would give epoch 1 of rank 0 the stream of
    epoch 0 of rank 1).
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every GPU), NumPy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def use_deterministic_algorithms(enabled: bool) -> None:
    """`train.deterministic`: torch's deterministic kernels (an error where an op has none)
    and no cuDNN autotuning, so GPU runs repeat too (docs/training.md, "Reproducibility").

    cuBLAS needs a fixed workspace for repeatable matrix products; the variable is read when
    its first handle is created, so this must run before the first CUDA matmul.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled


def state_on_cpu(state: Any) -> Any:
    """A state dict (nested dicts/lists of tensors, as optimizers keep) with every tensor
    on the CPU, so checkpoints written on a GPU load anywhere. GPU tensors are copied;
    CPU tensors are shared, not cloned (write the checkpoint before the next step)."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, Mapping):
        return {key: state_on_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(state_on_cpu(value) for value in state)
    return state


@dataclasses.dataclass
class EpochStats:
    """Sample-weighted mean losses of one pass over a worker's batches.

    `sums` is the same on the batches' device, float64: [loss x samples, samples,
    task loss x samples per task], what workers all-reduce before dividing.
    """

    loss: float
    task_losses: dict[str, float]
    samples: int
    batches: int
    sums: torch.Tensor


class _LossMeter:
    """Sums on the device, read once per epoch: reading a GPU scalar every batch would
    wait for the GPU every step. float64 keeps the sums exact over long epochs."""

    def __init__(self, tasks: Iterable[str], device: torch.device):
        self.tasks = tuple(tasks)
        self.sums = torch.zeros(2 + len(self.tasks), dtype=torch.float64, device=device)
        self.batches = 0

    def add(self, total: torch.Tensor, per_task: Mapping[str, torch.Tensor], n: int) -> None:
        values = torch.stack([total.detach(), *(per_task[t].detach() for t in self.tasks)]).double() * n
        self.sums[0] += values[0]
        self.sums[1] += n
        self.sums[2:] += values[1:]
        self.batches += 1

    def stats(self) -> EpochStats:
        total, samples, *per_task = self.sums.tolist()
        n = max(samples, 1.0)
        return EpochStats(total / n, {t: v / n for t, v in zip(self.tasks, per_task)}, int(samples), self.batches,
                          self.sums)


def _labels(batch: Mapping[str, Any], tasks: Iterable[str], device: torch.device) -> dict[str, torch.Tensor]:
    return {task: torch.as_tensor(batch[task], dtype=torch.float32).to(device, non_blocking=True) for task in tasks}


def aligned_labels(labels: Mapping[str, Any], predictions: Mapping[str, Any]) -> dict[str, Any]:
    """(B, T) labels, torch or NumPy, cut to their task's prediction length: a network
    may drop the clip's last frames, and its sample t is frame t."""
    return {task: label[:, : predictions[task].shape[-1]] for task, label in labels.items()}


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    tasks: tuple[str, ...],
    weights: Mapping[str, float],
    train: TrainConfig,
    device: torch.device,
) -> EpochStats:
    """One pass over `batches`: forward with labels (TSFM uses them), loss, step per batch.

    Batches already on `device` (Ray's `iter_torch_batches(device=...)`) stay where they
    are. The forward runs under `autocast` (bf16 on GPU by default); the loss, its sums
    and the optimizer's state stay float32 or wider.
    """
    model.train()
    meter = _LossMeter(tasks, device)
    for batch in batches:
        video = torch.as_tensor(batch["video"], dtype=torch.float32).to(device, non_blocking=True)
        labels = _labels(batch, tasks, device)
        with autocast(device, train.precision):
            predictions = model(video, labels=labels)
        predictions = {task: predictions[task].float() for task in tasks}
        labels = aligned_labels(labels, predictions)
        total, per_task = multitask_loss(predictions, labels, dict(weights), kind=train.loss, fps=batch.get("fps"))
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"training loss became {float(total)} at batch {meter.batches}; "
                "lower train.lr or set train.grad_clip"
            )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        step_scheduler(scheduler)
        meter.add(total, per_task, video.shape[0])
    return meter.stats()


@dataclasses.dataclass
class ValidationOutput:
    """Per-chunk predictions and labels, plus summed losses (validation or evaluation)."""

    recording_ids: list[str]
    chunk_indices: list[int]
    fps: list[float]
    predictions: dict[str, list[np.ndarray]]
    labels: dict[str, list[np.ndarray]]
    loss_sum: float = 0.0
    task_loss_sums: dict[str, float] = dataclasses.field(default_factory=dict)
    samples: int = 0


@torch.no_grad()
def predict_chunks(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    tasks: tuple[str, ...],
    weights: Mapping[str, float],
    train: TrainConfig,
    device: torch.device,
) -> ValidationOutput:
    """Eval-mode predictions (no labels reach the model) and losses over id-carrying batches.

    Batches also hold "recording_id", "chunk_index" and "fps" per row. Losses are of the
    raw outputs; the kept predictions are z-scored per chunk and computed in full
    precision, as every serving path (`mmrphys.inference.Predictor`) gives them, so the
    checkpoint's validation metrics and the evaluation of that checkpoint agree (one SNR
    per model and window; tests/test_console.py).
    """
    model.eval()
    out = ValidationOutput([], [], [], {t: [] for t in tasks}, {t: [] for t in tasks},
                           task_loss_sums={t: 0.0 for t in tasks})
    for batch in batches:
        video = torch.as_tensor(np.asarray(batch["video"]), dtype=torch.float32).to(device, non_blocking=True)
        labels = _labels(batch, tasks, device)
        predictions = model(video)
        predictions = {task: predictions[task].float() for task in tasks}
        labels = aligned_labels(labels, predictions)
        total, per_task = multitask_loss(predictions, labels, dict(weights), kind=train.loss, fps=batch["fps"])
        n = video.shape[0]
        out.loss_sum += float(total) * n
        for task in tasks:
            out.task_loss_sums[task] += float(per_task[task]) * n
            out.predictions[task] += list(standardize_chunks(predictions[task].cpu().numpy()))
            out.labels[task] += list(labels[task].cpu().numpy())
        out.recording_ids += [str(r) for r in batch["recording_id"]]
        out.chunk_indices += [int(c) for c in batch["chunk_index"]]
        out.fps += [float(f) for f in batch["fps"]]
        out.samples += n
    return out


def recording_signals(out: ValidationOutput) -> tuple[dict[str, dict[str, np.ndarray]],
                                                       dict[str, dict[str, np.ndarray]], dict[str, float]]:
    """Chunks concatenated in order per recording: (predictions, labels, fps per recording)."""
    predictions = {t: assemble_recordings(out.recording_ids, out.chunk_indices, v) for t, v in out.predictions.items()}
    labels = {t: assemble_recordings(out.recording_ids, out.chunk_indices, v) for t, v in out.labels.items()}
    fps = dict(zip(out.recording_ids, out.fps))
    return predictions, labels, fps


def evaluate_signals(predictions: Mapping[str, Mapping[str, np.ndarray]], labels: Mapping[str, Mapping[str, np.ndarray]],
                     fps: Mapping[str, float], evaluation: EvalConfig, tasks: tuple[str, ...]):
    """Per-recording rates and summary metrics (an `Evaluation`) under the eval config."""
    return evaluate_recordings(
        predictions, labels, fps, tasks=tasks, window_seconds=evaluation.window_seconds,
        profile=evaluation.profile, method=evaluation.method,
    )


def evaluate_output(out: ValidationOutput, evaluation: EvalConfig, tasks: tuple[str, ...]):
    """The `Evaluation` of per-chunk output, chunks joined per recording."""
    return evaluate_signals(*recording_signals(out), evaluation, tasks)


def summary_metrics(evaluation: Any, tasks: tuple[str, ...], prefix: str = "val") -> dict[str, float]:
    """Flat metric names from an Evaluation: `val_hr_mae`, `val_rr_rmse`, ... and `val_rate_mae`.

    NaN stays NaN (e.g. no valid window); metrics the profile does not define are left out.
    """
    metrics: dict[str, float] = {}
    for task in tasks:
        summary = evaluation.summary[task]
        for key in HEADLINE_METRICS:
            if summary.get(key) is not None:
                metrics[metric_name(prefix, task, key)] = float(summary[key])
    metrics[f"{prefix}_rate_mae"] = sum(metrics[metric_name(prefix, t, "MAE")] for t in tasks)
    return metrics


def validation_metrics(out: ValidationOutput, evaluation: EvalConfig, tasks: tuple[str, ...]) -> dict[str, float]:
    """val_loss, per-task val losses and the rate metrics of merged validation output."""
    n = max(out.samples, 1)
    metrics = {"val_loss": out.loss_sum / n}
    metrics.update({f"val_{task}_loss": out.task_loss_sums[task] / n for task in tasks})
    metrics.update(summary_metrics(evaluate_output(out, evaluation, tasks), tasks))
    return metrics

