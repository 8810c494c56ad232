"""Model references: one string names a model wherever a command takes `--model`.

Accepted forms:
- a model folder (`model.pt` + `model_config.json`), e.g. a Ray checkpoint folder;
- a training run folder (its `best_model/`, else its latest checkpoint);
- a saved MLflow model folder (the one holding `MLmodel`);
- `models:/NAME/VERSION`, `models:/NAME@ALIAS` (registry) or `runs:/RUN_ID/model`.

Every form ends as a local model folder loaded through `mmrphys.checkpoints`
(`torch.load(weights_only=True)`), never by unpickling a module.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mmrphys.checkpoints import CheckpointError, is_model_folder, load_model
from mmrphys.config import ModelConfig

#: subfolder of a logged pyfunc model that holds our weights and config
PYFUNC_ARTIFACTS = "artifacts"


class ModelRefError(ValueError):
    """A model reference names nothing loadable."""


def _local_model_folder(path: Path) -> Path:
    if is_model_folder(path):
        return path
    if (path / "MLmodel").is_file() and is_model_folder(path / PYFUNC_ARTIFACTS):
        return path / PYFUNC_ARTIFACTS
    if (path / "best_model").is_dir() and is_model_folder(path / "best_model"):
        return path / "best_model"
    checkpoints = sorted(p for p in path.glob("checkpoint_*") if is_model_folder(p))
    if checkpoints:
        return checkpoints[-1]  # Ray names checkpoints by time, so the last sorts latest
    raise ModelRefError(
        f"model reference {path}: no model here; expected model.pt and model_config.json, "
        "a training run folder, or an MLflow model folder"
    )


def fetch_model_folder(ref: str, tracking_uri: str | None = None) -> Path:
    """A local folder holding the referenced model's weights and config."""
    if ref.startswith(("models:/", "runs:/")):
        import mlflow

        from pipelines.tracking import resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri or "")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        target = Path(tempfile.mkdtemp(prefix="mmrphys-model-"))
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(target)))
        except Exception as err:  # MlflowException, or OSError from the artifact store
            raise ModelRefError(f"model reference {ref}: cannot fetch it from {uri}: {err}") from None
        return _local_model_folder(local)
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelRefError(
            f"model reference {ref}: no such folder; give a run or checkpoint folder, "
            "models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    return _local_model_folder(path)


def resolve_model(ref: str, tracking_uri: str | None = None, expected: ModelConfig | None = None):
    """Load the referenced model in eval mode; returns (MMRPhys, ModelConfig)."""
    folder = fetch_model_folder(ref, tracking_uri)
    try:
        model, config = load_model(folder, expected=expected)
    except CheckpointError as err:
        raise ModelRefError(f"model reference {ref}: {err}") from None
    return model.eval(), config
