"""The deployment format: an MLflow pyfunc model that wraps our own loader.

Its artifacts are the files of the model artifact (weights as a state dict, loaded with
`torch.load(weights_only=True)`, and the model, preprocessing and evaluation configs as
JSON); `load_context` rebuilds the network through `mmrphys.inference.load_model`, so no
pickled module or traced graph is ever loaded. The project's
code travels with the model (`code_paths`), so `mlflow.pyfunc.load_model` works where the
package is not installed.

    model = mlflow.pyfunc.load_model("models:/mmrphys@champion")
    out = model.predict(clips, params={"fps": 30.0})
    out["bvp"], out["rsp"]                   # (B, T) waveforms, z-scored per clip
    out["heart_rate_bpm"], out["respiration_rate_bpm"]   # (B,) per clip
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import scipy
import torch
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

from mmrphys.config import ModelConfig
from mmrphys.inference import Predictor, clip_rates, load_model
from mmrphys.inference.artifact import (
    EVALUATION_FILE,
    MODEL_CONFIG_FILE,
    PREPROCESSING_FILE,
    WEIGHTS_FILE,
    read_model_config,
)
from mmrphys.model import export_onnx, input_transform
from mmrphys.tasks import TASKS
from pipelines.ray_session import PROJECT_ROOT

#: frame rate assumed when the caller gives none (the synthetic data and most datasets)
DEFAULT_FPS = 30.0
#: frames in the logged input example: short, since the example is stored as JSON
EXAMPLE_FRAMES = 9


class MMRPhysPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: clips in, waveforms and rates out (any architecture)."""

    def load_context(self, context) -> None:
        model, artifact = load_model(Path(context.artifacts["weights"]).parent)
        self.predictor = Predictor(model, artifact.config)
        self.profile = artifact.evaluation.profile

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """model_input: float32 clips (B, C, T or T+1, H, W); params: {"fps": frame rate}."""
        if isinstance(model_input, dict):
            model_input = model_input["video"]
        fps = float((params or {}).get("fps", DEFAULT_FPS))
        waveforms = self.predictor.predict_clips(
            input_transform(np.asarray(model_input, np.float32), self.predictor.config), fps)
        return {**waveforms, **clip_rates(waveforms, fps, self.profile)}


def signature_for(config: ModelConfig):
    """Tensor signature: (-1, C, -1, H, W) float32 clips in; waveforms and rates out."""
    f32 = np.dtype(np.float32)
    side = config.resolution
    inputs = Schema([TensorSpec(f32, (-1, config.in_channels, -1, side, side))])
    outputs = Schema(
        [TensorSpec(f32, (-1, -1), task) for task in config.tasks]
        + [TensorSpec(np.dtype(np.float64), (-1,), TASKS[task].rate_output) for task in config.tasks]
    )
    params = ParamSchema([ParamSpec("fps", "double", DEFAULT_FPS)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example(config: ModelConfig) -> np.ndarray:
    """A short random clip of the right channels and size."""
    rng = np.random.default_rng(0)
    shape = (1, config.in_channels, EXAMPLE_FRAMES, config.resolution, config.resolution)
    return rng.uniform(0, 255, shape).round().astype(np.float32)


def _code_snapshot(target: Path) -> list[str]:
    """Copies of `mmrphys/` and `pipelines/` without caches, for `code_paths`."""
    paths = []
    for package in ("mmrphys", "pipelines"):
        destination = target / package
        shutil.copytree(PROJECT_ROOT / package, destination,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        paths.append(str(destination))
    return paths


def pip_requirements() -> list[str]:
    """What the model needs at load time (the CPU torch build's local tag dropped)."""
    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"scipy=={scipy.__version__}",
        "PyYAML",
    ]


def log_pyfunc_model(logger, model_dir: str | Path, *, with_onnx: bool = True, name: str = "model"):
    """Log the model in `model_dir` to the logger's run as a pyfunc (+ ONNX file); returns ModelInfo."""
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    mlflow.set_tracking_uri(logger.uri)
    mlflow.set_registry_uri(logger.uri)
    with tempfile.TemporaryDirectory() as scratch, mlflow.start_run(run_id=logger.run_id):
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={"weights": str(model_dir / WEIGHTS_FILE), "config": str(model_dir / MODEL_CONFIG_FILE),
                       "preprocessing": str(model_dir / PREPROCESSING_FILE),
                       "evaluation": str(model_dir / EVALUATION_FILE)},
            code_paths=_code_snapshot(Path(scratch)),
            signature=signature_for(config),
            input_example=(input_example(config), {"fps": DEFAULT_FPS}),
            pip_requirements=pip_requirements(),
            metadata={"mmrphys_model_config": config.to_dict()},
        )
        if with_onnx:
            model, _ = load_model(model_dir)
            onnx_path = Path(scratch) / "mmrphys.onnx"
            export_onnx(model, onnx_path)
            mlflow.log_artifact(str(onnx_path), artifact_path="onnx")
    return info
