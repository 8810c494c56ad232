"""Evaluate a model on a split of the shards: batch inference with Ray Data, per-recording
HR/RR metrics with `mmrphys.metrics`, a report with plots, and MLflow logging.

Inference runs in a pool of Ray Data actors (`pipelines.serve.actors.ChunkPredictor`)
that each hold the model; predictions are z-scored per chunk by the one inference path
(`mmrphys.inference.Predictor`), then concatenated in chunk order per recording before
rates are read, as in training validation.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import mlflow

from mmrphys.config import EvalConfig, ModelConfig, apply_overrides
from mmrphys.data.recording import DatasetError
from mmrphys.report import write_report
from mmrphys.tasks import TASKS
from mmrphys.training import (
    ValidationOutput,
    evaluate_signals,
    recording_signals,
    summary_metrics,
)
from pipelines.data.stream import load_split
from pipelines.ray_session import actor_pool, ensure_ray
from pipelines.serve.actors import (
    LABEL_PREFIX,
    PRED_PREFIX,
    ChunkPredictor,
    model_kwargs,
)
from pipelines.serve.references import resolve_model
from pipelines.tracking import RunLogger, resolve_tracking_uri


@dataclasses.dataclass
class EvaluationResult:
    """An evaluation, its flat metrics and the files of its report."""

    evaluation: Any
    metrics: dict[str, float]
    files: dict[str, Path]
    out_dir: Path
    config: EvalConfig


def predict_split(model, config: ModelConfig, shards: str | Path, split: str, *,
                  batch_size: int = 8, fold: int | None = None, concurrency: int = 1) -> ValidationOutput:
    """Per-chunk predictions and labels for every chunk of `split`."""
    ensure_ray()
    dataset = load_split(shards, split, config=config, fold=fold, with_ids=True)
    predicted = dataset.map_batches(ChunkPredictor, fn_constructor_kwargs=model_kwargs(model, config),
                                    batch_size=batch_size, batch_format="numpy", compute=actor_pool(concurrency))
    tasks = config.tasks
    out = ValidationOutput([], [], [], {t: [] for t in tasks}, {t: [] for t in tasks})
    for batch in predicted.iter_batches(batch_size=256, batch_format="numpy"):
        out.recording_ids += [str(r) for r in batch["recording_id"]]
        out.chunk_indices += [int(c) for c in batch["chunk_index"]]
        out.fps += [float(f) for f in batch["fps"]]
        for task in tasks:
            out.predictions[task] += list(batch[PRED_PREFIX + task])
            out.labels[task] += list(batch[LABEL_PREFIX + task])
        out.samples += len(batch["recording_id"])
    if out.samples == 0:
        raise DatasetError(f"{shards}: split {split!r} yielded no chunks to evaluate")
    return out


def _active_logger() -> RunLogger | None:
    """A logger for the active MLflow run ($MLFLOW_RUN_ID or a fluent run), if any."""
    run = mlflow.active_run()
    run_id = run.info.run_id if run is not None else os.environ.get("MLFLOW_RUN_ID")
    return RunLogger(resolve_tracking_uri(mlflow.get_tracking_uri() if run else ""), run_id) if run_id else None


def evaluate(
    model_ref: str | Path,
    shards: str | Path,
    split: str = "test",
    *,
    evaluation: EvalConfig | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out_dir: str | Path = "evaluation",
    logger: RunLogger | None = None,
    fold: int | None = None,
    prefix: str | None = None,
    tracking_uri: str | None = None,
    concurrency: int = 1,
) -> EvaluationResult:
    """Evaluate `model_ref` on `split`; write the report to `out_dir`; log it when a run is active.

    `evaluation` defaults to the EvalConfig the model was validated with (its artifact);
    `overrides` (`eval.window_seconds=30`, ...) change it.
    Metrics are named `<prefix>_hr_mae`, `<prefix>_rr_mae`, ... (prefix: the split name).
    """
    model, artifact = resolve_model(str(model_ref), tracking_uri=tracking_uri)
    config = artifact.config
    evaluation = apply_overrides({"eval": evaluation or artifact.evaluation}, overrides)["eval"]
    output = predict_split(model, config, shards, split, batch_size=evaluation.batch_size,
                           fold=fold, concurrency=concurrency)
    predictions, labels, fps = recording_signals(output)
    result = evaluate_signals(predictions, labels, fps, evaluation, config.tasks)
    out_dir = Path(out_dir)
    waveforms = {task: {rid: (predictions[task][rid], labels[task][rid]) for rid in predictions[task]}
                 for task in config.tasks}
    files = write_report(result, out_dir, waveforms=waveforms, fs=fps)
    metrics = summary_metrics(result, config.tasks, prefix or split)
    logger = logger or _active_logger()
    if logger is not None:
        logger.log_metrics(metrics)
        logger.log_artifact(out_dir, f"evaluation/{prefix or split}")
    return EvaluationResult(evaluation=result, metrics=metrics, files=files, out_dir=out_dir, config=evaluation)


def format_summary(result: EvaluationResult, tasks: tuple[str, ...]) -> str:
    """A small text table of the headline metrics per task."""
    columns = ("MAE", "RMSE", "Pearson", "SNR")
    lines = [f"{'':20}" + "".join(f"{c:>10}" for c in columns)]
    for task in tasks:
        summary = {k.lower(): v for k, v in result.evaluation.summary[task].items()}
        cells = "".join(f"{float(summary.get(c.lower(), float('nan'))):>10.2f}" for c in columns)
        lines.append(f"{TASKS[task].rate_label:20}{cells}")
    return "\n".join(lines)
