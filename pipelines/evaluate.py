"""Evaluate a model on a split of the shards: batch inference with Ray Data, per-recording
HR/RR metrics with `mmrphys.metrics`, a report with plots, and MLflow logging.

Inference runs in a pool of Ray Data actors that each hold the model (its state dict
travels to them, not a file path, so this works on a multi-node cluster). Predictions
are z-scored per chunk, as the reference's test loop does, then concatenated in chunk
order per recording before rates are read.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmrphys.config import EvalConfig, ModelConfig
from mmrphys.training import ValidationOutput, evaluate_signals, recording_signals, summary_metrics

#: columns every evaluation row keeps besides the per-task predictions and labels
ID_COLUMNS = ("recording_id", "chunk_index", "fps")


@dataclasses.dataclass
class EvaluationResult:
    """An evaluation, its flat metrics and the files of its report."""

    evaluation: Any
    metrics: dict[str, float]
    files: dict[str, Path]
    out_dir: Path


class ChunkPredictor:
    """Ray Data actor: eval-mode waveforms for batches of raw clips."""

    def __init__(self, state_dict: dict, model_config: dict):
        from mmrphys.checkpoints import load_weights
        from mmrphys.model import MMRPhys

        self.config = ModelConfig.from_dict(model_config)
        self.model = MMRPhys(self.config).eval()
        load_weights(self.model, state_dict, "evaluation model")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipelines.serving import predict_waveforms

        predictions = predict_waveforms(self.model, batch["video"], batch_size=len(batch["video"]))
        out = {key: batch[key] for key in ID_COLUMNS}
        for task in self.config.tasks:
            out[f"pred_{task}"] = predictions[task]
            out[f"label_{task}"] = np.asarray(batch[task], dtype=np.float32)
        return out


def predict_split(model, config: ModelConfig, shards: str | Path, split: str, *,
                  batch_size: int = 8, fold: int | None = None, concurrency: int = 1) -> ValidationOutput:
    """Per-chunk predictions and labels for every chunk of `split`."""
    from pipelines.data import load_split
    from pipelines.ray_session import ensure_ray

    ensure_ray()
    dataset = load_split(shards, split, resolution=config.resolution, modality=config.modality,
                         tasks=config.tasks, fold=fold, with_ids=True)
    predicted = dataset.map_batches(
        ChunkPredictor,
        fn_constructor_kwargs={"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                               "model_config": config.to_dict()},
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=concurrency,
    )
    tasks = config.tasks
    out = ValidationOutput([], [], [], {t: [] for t in tasks}, {t: [] for t in tasks})
    for batch in predicted.iter_batches(batch_size=256, batch_format="numpy"):
        out.recording_ids += [str(r) for r in batch["recording_id"]]
        out.chunk_indices += [int(c) for c in batch["chunk_index"]]
        out.fps += [float(f) for f in batch["fps"]]
        for task in tasks:
            out.predictions[task] += list(batch[f"pred_{task}"])
            out.labels[task] += list(batch[f"label_{task}"])
        out.samples += len(batch["recording_id"])
    if out.samples == 0:
        raise ValueError(f"{shards}: split {split!r} yielded no chunks to evaluate")
    return out


def _active_logger():
    """A logger for the active MLflow run ($MLFLOW_RUN_ID or a fluent run), if any."""
    import mlflow

    from pipelines.tracking import RunLogger, resolve_tracking_uri

    run = mlflow.active_run()
    run_id = run.info.run_id if run is not None else os.environ.get("MLFLOW_RUN_ID")
    return RunLogger(resolve_tracking_uri(mlflow.get_tracking_uri() if run else ""), run_id) if run_id else None


def evaluate(
    model_ref: str | Path,
    shards: str | Path,
    split: str = "test",
    *,
    evaluation: EvalConfig = EvalConfig(),
    out_dir: str | Path = "evaluation",
    logger=None,
    fold: int | None = None,
    prefix: str | None = None,
    tracking_uri: str | None = None,
    concurrency: int = 1,
) -> EvaluationResult:
    """Evaluate `model_ref` on `split`; write the report to `out_dir`; log it when a run is active.

    Metrics are named `<prefix>_hr_mae`, `<prefix>_rr_mae`, ... (prefix: the split name).
    """
    from mmrphys.report import write_report
    from pipelines.models import resolve_model

    model, config = resolve_model(str(model_ref), tracking_uri=tracking_uri)
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
    return EvaluationResult(evaluation=result, metrics=metrics, files=files, out_dir=out_dir)


def format_summary(result: EvaluationResult, tasks: tuple[str, ...]) -> str:
    """A small text table of the headline metrics per task."""
    names = {"bvp": "HR (bpm)", "rsp": "RR (breaths/min)"}
    columns = ("MAE", "RMSE", "Pearson", "SNR")
    lines = [f"{'':18}" + "".join(f"{c:>10}" for c in columns)]
    for task in tasks:
        summary = {k.lower(): v for k, v in result.evaluation.summary[task].items()}
        cells = "".join(f"{float(summary.get(c.lower(), float('nan'))):>10.2f}" for c in columns)
        lines.append(f"{names[task]:18}{cells}")
    return "\n".join(lines)
