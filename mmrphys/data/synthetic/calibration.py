"""Judge a preset's difficulty with a model that never saw synthetic data: write its
recordings in the folder layout (so lossy storage counts), read them back as any dataset
is read, run the model through the one inference path and score whole recordings.

Used by `benchmarks/calibrate_synthetic.py` (docs/data.md section 1, calibration).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmrphys.config import SyntheticConfig
from mmrphys.data.datasets.folder import read as read_folder
from mmrphys.data.synthetic.dataset import generate_dataset
from mmrphys.inference.artifact import ModelArtifact
from mmrphys.inference.predictor import Predictor
from mmrphys.inference.preprocessing import prepare_video
from mmrphys.metrics import Evaluation, evaluate_recordings


def predict_folder(model: torch.nn.Module, artifact: ModelArtifact, root: Path) -> tuple[dict, dict, dict]:
    """Whole-recording predictions, labels and frame rates of every recording under `root`
    ({task: {recording_id: waveform}} twice, {recording_id: fps})."""
    predictor = Predictor(model, artifact.config)
    tasks = artifact.config.tasks
    predictions: dict[str, dict[str, np.ndarray]] = {task: {} for task in tasks}
    labels: dict[str, dict[str, np.ndarray]] = {task: {} for task in tasks}
    rates: dict[str, float] = {}
    for recording in read_folder(root):
        rgb = recording.load_rgb()
        thermal = recording.load_thermal() if artifact.config.modality != "rgb" else None
        n = len(rgb) if thermal is None else min(len(rgb), len(thermal))
        boxes = recording.load_face_boxes()[:n]
        clip = prepare_video(rgb[:n], None if thermal is None else thermal[:n], artifact.preprocessing,
                             artifact.config, boxes=boxes, where=recording.recording_id)
        waveforms = predictor.predict_video(clip, recording.fps)
        truth = recording.load_labels()
        for task in tasks:
            predictions[task][recording.recording_id] = waveforms[task]
            labels[task][recording.recording_id] = np.asarray(truth[task][:n], np.float64)
        rates[recording.recording_id] = recording.fps
    return predictions, labels, rates


def score_folder(model: torch.nn.Module, artifact: ModelArtifact, root: Path, profile: str = "default") -> Evaluation:
    """Score the model on every recording under `root`, one window per recording."""
    predictions, labels, rates = predict_folder(model, artifact, root)
    return evaluate_recordings(predictions, labels, rates, tasks=artifact.config.tasks, profile=profile)


def score_preset(models: list[tuple[torch.nn.Module, ModelArtifact]], config: SyntheticConfig, root: Path, *,
                 recordings: int = 8, seconds: float = 30.0, seed: int = 0,
                 profile: str = "default") -> list[Evaluation]:
    """Render `recordings` subjects of `config` into `root` (a fresh folder) once and
    score each model on them under `profile`."""
    generate_dataset(root, subjects=recordings, seconds=seconds, seed=seed, config=config)
    return [score_folder(model, artifact, root, profile) for model, artifact in models]
