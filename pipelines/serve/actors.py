"""Ray Data inference actors: thin adapters over `mmrphys.inference`.

Each actor holds one network, built from a state dict and the artifact's configs that
travel through the object store (not a file path, so this works on a multi-node
cluster). They import neither MLflow nor anything that does: a worker that predicts
only needs the science core.

Columns: ids (`recording_id`, `chunk_index` or none, `fps`), `pred_<task>` waveforms and,
where the input has labels, `label_<task>`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmrphys.config import ModelConfig, PreprocessingConfig
from mmrphys.data.datasets import read_dataset
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.inference import Predictor, prepare_video
from mmrphys.model import build_model
from mmrphys.model.checkpoint import load_weights
from mmrphys.training import aligned_labels

PRED_PREFIX, LABEL_PREFIX = "pred_", "label_"


def model_kwargs(model: torch.nn.Module, config: ModelConfig) -> dict[str, Any]:
    """Constructor arguments that ship a model to the actors."""
    return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "model_config": config.to_dict()}


class _ModelActor:
    def __init__(self, state_dict: dict, model_config: dict):
        config = ModelConfig.from_dict(model_config)
        model = build_model(config)
        load_weights(model, state_dict, "inference model")
        self.predictor = Predictor(model, config)
        self.config = config


class ChunkPredictor(_ModelActor):
    """Per-chunk waveforms for decoded shard batches (from `pipelines.data.stream`), with
    the chunk's labels for every task the batch carries, cut to the prediction's length as
    validation cuts them (`mmrphys.training.aligned_labels`)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.predictor.batch_size = len(batch["video"])
        predictions = self.predictor.predict_clips(batch["video"], batch["fps"])
        out = {key: batch[key] for key in ("recording_id", "chunk_index", "fps")}
        labels = aligned_labels({t: np.asarray(batch[t], dtype=np.float32) for t in self.config.tasks if t in batch},
                                predictions)
        for task in self.config.tasks:
            out[PRED_PREFIX + task] = predictions[task]
            if task in labels:
                out[LABEL_PREFIX + task] = labels[task]
        return out


class RecordingPredictor(_ModelActor):
    """Whole-recording waveforms for raw recordings of a dataset folder, one per row,
    preprocessed exactly as the model's shards were."""

    def __init__(self, state_dict: dict, model_config: dict, preprocessing: dict, dataset: str, root: str):
        super().__init__(state_dict, model_config)
        self.preprocessing = PreprocessingConfig.from_dict(preprocessing)
        self.recordings = list_recordings(dataset, root)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows = [self._predict(self.recordings[int(i)]) for i in batch["position"]]
        return {key: [row.get(key) for row in rows] for key in rows[0]}

    def _predict(self, recording: Recording) -> dict[str, Any]:
        where = f"{recording.recording_id} ({recording.source})"
        rgb = recording.load_rgb()
        thermal = None
        if self.config.modality != "rgb":
            if recording.load_thermal is None:
                raise DatasetError(f"{where}: the model takes {self.config.modality!r} input, but it has no thermal video")
            thermal = recording.load_thermal()
        n = len(rgb) if thermal is None else min(len(rgb), len(thermal))
        boxes = recording.load_face_boxes()[:n] if recording.load_face_boxes is not None else None
        clip = prepare_video(rgb[:n], None if thermal is None else thermal[:n], self.preprocessing, self.config,
                             boxes=boxes, pre_cropped=recording.pre_cropped, where=where)
        waveforms = self.predictor.predict_video(clip, float(recording.fps))
        row: dict[str, Any] = {"recording_id": recording.recording_id, "fps": float(recording.fps)}
        labels = _labels_or_none(recording)
        for task in self.config.tasks:
            row[PRED_PREFIX + task] = waveforms[task]
            if labels is not None and task in labels:
                row[LABEL_PREFIX + task] = np.asarray(labels[task][:n], dtype=np.float32)
        return row


def list_recordings(dataset: str, root: str) -> list[Recording]:
    """A dataset folder's recordings in a stable order (the actors index into it)."""
    return sorted(read_dataset(dataset, root), key=lambda r: r.recording_id)


def _labels_or_none(recording: Recording) -> dict[str, np.ndarray] | None:
    """The recording's labels, or None when it has none (videos to predict, not to score)."""
    try:
        return recording.load_labels()
    except (DatasetError, OSError):
        return None
