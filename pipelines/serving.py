"""The deployment format: an MLflow pyfunc model that wraps our own loader.

Its artifacts are the weights (a state dict, loaded with `torch.load(weights_only=True)`)
and the model config as JSON; `load_context` rebuilds MMRPhys through
`mmrphys.checkpoints`, so no pickled module or traced graph is ever loaded. The project's
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

from mmrphys.checkpoints import MODEL_CONFIG_FILE, WEIGHTS_FILE, read_model_config
from mmrphys.config import ModelConfig

#: what each task's waveform is reported as, per clip
RATE_OUTPUTS = {"bvp": "heart_rate_bpm", "rsp": "respiration_rate_bpm"}
#: frame rate assumed when the caller gives none (the synthetic data and most datasets)
DEFAULT_FPS = 30.0
#: frames in the logged input example: short, since the example is stored as JSON
EXAMPLE_FRAMES = 9


def predict_waveforms(model, clips: np.ndarray, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Eval-mode waveforms for raw clips (B, C, T or T+1, H, W), z-scored per clip."""
    import torch

    from mmrphys.losses import zscore

    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim == 4:
        clips = clips[None]
    outputs: dict[str, list[np.ndarray]] = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(clips), batch_size):
            predictions = model(torch.from_numpy(clips[start : start + batch_size]))
            for task, value in predictions.items():
                outputs.setdefault(task, []).append(zscore(value.float()).numpy())
    return {task: np.concatenate(parts) for task, parts in outputs.items()}


def clip_rates(waveforms: dict[str, np.ndarray], fps: float, profile: str = "default") -> dict[str, np.ndarray]:
    """Per-clip HR / RR (per minute) from (B, T) waveforms, by the evaluation profile's rules.

    NaN for a clip too short for the task's band (e.g. RR from a 6 s clip) or constant.
    """
    from mmrphys.metrics import waveform_rates

    rates = {}
    for task, values in waveforms.items():
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        out = waveform_rates(values, fps, task, profile=profile)
        rates[RATE_OUTPUTS[task]] = out
    return rates


class MMRPhysPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: clips in, waveforms and rates out."""

    def load_context(self, context) -> None:
        from mmrphys.checkpoints import load_model

        self.model, self.config = load_model(Path(context.artifacts["weights"]).parent)
        self.model.eval()

    # model_input has no type hint on purpose: MLflow would derive a second schema from it
    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """model_input: float32 clips (B, C, T or T+1, H, W); params: {"fps": frame rate}."""
        if isinstance(model_input, dict):
            model_input = model_input["video"]
        fps = float((params or {}).get("fps", DEFAULT_FPS))
        waveforms = predict_waveforms(self.model, model_input)
        return {**waveforms, **clip_rates(waveforms, fps)}


def signature_for(config: ModelConfig):
    """Tensor signature: (-1, C, -1, H, W) float32 clips in; waveforms and rates out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    f32 = np.dtype(np.float32)
    side = config.resolution
    inputs = Schema([TensorSpec(f32, (-1, config.in_channels, -1, side, side))])
    outputs = Schema(
        [TensorSpec(f32, (-1, -1), task) for task in config.tasks]
        + [TensorSpec(np.dtype(np.float64), (-1,), RATE_OUTPUTS[task]) for task in config.tasks]
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
    from pipelines.ray_session import PROJECT_ROOT

    paths = []
    for package in ("mmrphys", "pipelines"):
        destination = target / package
        shutil.copytree(PROJECT_ROOT / package, destination,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        paths.append(str(destination))
    return paths


def pip_requirements() -> list[str]:
    """What the model needs at load time (the CPU torch build's local tag dropped)."""
    import scipy
    import torch

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
            artifacts={"weights": str(model_dir / WEIGHTS_FILE), "config": str(model_dir / MODEL_CONFIG_FILE)},
            code_paths=_code_snapshot(Path(scratch)),
            signature=signature_for(config),
            input_example=(input_example(config), {"fps": DEFAULT_FPS}),
            pip_requirements=pip_requirements(),
            metadata={"mmrphys_model_config": config.to_dict()},
        )
        if with_onnx:
            from mmrphys.checkpoints import load_model
            from mmrphys.model import export_onnx

            model, _ = load_model(model_dir)
            onnx_path = Path(scratch) / "mmrphys.onnx"
            export_onnx(model, onnx_path)
            mlflow.log_artifact(str(onnx_path), artifact_path="onnx")
    return info
