"""Model references: one string names a model wherever a command takes `--model`.

Accepted forms:
- a model folder (the artifact of `mmrphys.inference.artifact`), e.g. a Ray checkpoint;
- a training run folder (its `best_model/`, else its latest checkpoint);
- a saved MLflow model folder (the one holding `MLmodel`);
- a released checkpoint file of a reference implementation (`.pth`);
- `models:/NAME/VERSION`, `models:/NAME@ALIAS` (registry) or `runs:/RUN_ID/model`;
- the name of an unsupervised method (`pos`, `chrom`, ...): no weights, the default
  preprocessing and evaluation (docs/baselines.md).

Every form ends as a local model folder or `.pth` file loaded by
`mmrphys.inference.load_model` (`torch.load(weights_only=True)`), never by unpickling a
module.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import torch

from mmrphys.baselines import METHODS
from mmrphys.config import EvalConfig, ModelConfig, PreprocessingConfig, UnsupervisedOptions
from mmrphys.errors import UserError
from mmrphys.inference import ModelArtifact, is_model_folder, load_model, save_model
from mmrphys.inference.artifact import is_reference_checkpoint
from mmrphys.model import build_model
from mmrphys.model.checkpoint import CheckpointError
from pipelines.tracking import TrackingError, check_store_exists, resolve_tracking_uri

#: subfolder of a logged pyfunc model that holds our artifact
PYFUNC_ARTIFACTS = "artifacts"
#: the forms a reference may take, for error messages
FORMS = ("a model or run folder, a reference checkpoint .pth file, models:/NAME/VERSION, "
         f"models:/NAME@ALIAS, runs:/RUN_ID/model, or an unsupervised method ({', '.join(METHODS)})")


class ModelRefError(UserError, ValueError):
    """A model reference names nothing loadable."""


def _local_model(path: Path, ref: str) -> Path:
    if is_reference_checkpoint(path) or is_model_folder(path):
        return path
    if path.is_dir():
        if (path / "MLmodel").is_file() and is_model_folder(path / PYFUNC_ARTIFACTS):
            return path / PYFUNC_ARTIFACTS
        if is_model_folder(path / "best_model"):
            return path / "best_model"
        checkpoints = sorted(p for p in path.glob("checkpoint_*") if is_model_folder(p))
        if checkpoints:
            return checkpoints[-1]  # Ray names checkpoints by time, so the last sorts latest
    raise ModelRefError(f"model reference {ref}: {path} is not a model; expected {FORMS}")


def _fetch_from_mlflow(ref: str, tracking_uri: str | None) -> Path:

    uri = resolve_tracking_uri(tracking_uri or "")
    try:
        check_store_exists(uri, f"model reference {ref}")
    except TrackingError as err:
        raise ModelRefError(str(err)) from err
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    target = Path(tempfile.mkdtemp(prefix="mmrphys-model-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(target)))
    except Exception as err:  # MlflowException, or OSError from the artifact store
        raise ModelRefError(f"model reference {ref}: cannot fetch it from {uri}: {err}") from err
    return _local_model(local, ref)


def fetch_model(ref: str, tracking_uri: str | None = None) -> Path:
    """A local model folder or reference checkpoint file for `ref` (an unsupervised method
    has none: it is refused here, where weights are needed)."""
    if ref.lower() in METHODS:
        raise ModelRefError(f"model reference {ref}: an unsupervised method has no weights to fetch, "
                            "train from or register")
    if ref.startswith(("models:/", "runs:/")):
        return _fetch_from_mlflow(ref, tracking_uri)
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelRefError(f"model reference {ref}: no such file or folder; expected {FORMS}")
    return _local_model(path, ref)


def unsupervised_model(method: str) -> tuple[torch.nn.Module, ModelArtifact]:
    """An unsupervised method as a model: RGB in at 9x9 (the spatial mean is the same at
    any area-resized size), BVP out, the default face crop and evaluation."""
    config = ModelConfig(architecture="unsupervised", resolution=9, modality="rgb", tasks=("bvp",),
                         attention="none", unsupervised=UnsupervisedOptions(method=method))
    return build_model(config).eval(), ModelArtifact(config, PreprocessingConfig(), EvalConfig(), method)


def resolve_model(ref: str, tracking_uri: str | None = None,
                  expected: ModelConfig | None = None) -> tuple[torch.nn.Module, ModelArtifact]:
    """Load the referenced model in eval mode; returns (network, artifact)."""
    if ref.lower() in METHODS:
        return unsupervised_model(ref.lower())
    local = fetch_model(ref, tracking_uri)
    try:
        return load_model(local, expected=expected)
    except CheckpointError as err:
        raise ModelRefError(f"model reference {ref}: {err}") from err


def model_folder(ref: str, scratch: str | Path, tracking_uri: str | None = None) -> Path:
    """A model artifact folder for `ref`: the referenced folder itself, or for a released
    `.pth` checkpoint an artifact written into `scratch` (weights, inferred config and the
    reference's own preprocessing), for logging and registering it."""
    local = fetch_model(ref, tracking_uri)
    if not is_reference_checkpoint(local):
        return local
    model, artifact = resolve_model(str(local))
    return save_model(Path(scratch) / local.stem, model.state_dict(), artifact.config, artifact.preprocessing,
                      artifact.evaluation)
