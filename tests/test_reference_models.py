"""The released reference checkpoints (`../shared/checkpoints/`, real weights trained on
real faces) as model references: loaded through the one loader, run through the one
inference path, fine-tuned by one optimiser step, and taken by `export` and `register`."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest
import torch

from mmrphys.config import ExperimentConfig, TrainConfig
from mmrphys.inference import load_model
from mmrphys.inference.artifact import REFERENCE_PROFILES
from mmrphys.inference.predictor import Predictor
from mmrphys.training import build_optimizer, train_epoch
from pipelines.cli import main
from pipelines.serve.references import resolve_model

RELEASED = Path(__file__).resolve().parents[1].parent / "shared" / "checkpoints"
#: file -> (architecture, channels, frames, resolution, tasks) the README of that folder lists
EXPECTED = {
    "BP4D_MMRPhysSNF_BVP_RSP_RGBTx180x9_SFSAM_Label_Fold1_Epoch4.pth": ("mmrphys", 4, 181, 9, ("bvp", "rsp")),
    "BP4D_MMRPhysSEF_BVP_RSP_RGBx180x9_SFSAM_Label_Fold1_Epoch4.pth": ("mmrphys", 3, 181, 9, ("bvp", "rsp")),
    "SCAMPS_MMRPhysSEF_BVP_RSP_RGBx180x9_SFSAM_Label_Epoch0.pth": ("mmrphys", 3, 181, 9, ("bvp", "rsp")),
    "PURE_FactorizePhys_SFSAM_Label_Epoch9.pth": ("factorizephys", 3, 161, 72, ("bvp",)),
    "SCAMPS_FactorizePhys_SFSAM_Label_Epoch0.pth": ("factorizephys", 3, 161, 72, ("bvp",)),
}
SNF = RELEASED / "BP4D_MMRPhysSNF_BVP_RSP_RGBTx180x9_SFSAM_Label_Fold1_Epoch4.pth"


def _clips(channels: int, frames: int, resolution: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (batch, channels, frames, resolution, resolution)).astype(np.float32)


def test_every_released_file_is_listed_here():
    assert sorted(p.name for p in RELEASED.glob("*.pth")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_released_checkpoint_loads_and_predicts_with_the_reference_preprocessing(name):
    architecture, channels, frames, resolution, tasks = EXPECTED[name]
    model, artifact = load_model(RELEASED / name)
    assert artifact.config.architecture == architecture and artifact.config.resolution == resolution
    assert artifact.config.tasks == tasks and not model.training
    # the reference trainers crop a 1.5x box, re-detected every 30 frames, stored as uint8
    assert (artifact.preprocessing.box_scale, artifact.preprocessing.detect_every) == (1.5, 30)
    assert artifact.preprocessing.rgb_dtype == "uint8" and artifact.preprocessing.size == resolution
    assert artifact.evaluation.profile == REFERENCE_PROFILES[architecture]
    out = Predictor(model, artifact.config).predict_clips(_clips(channels, frames, resolution), fps=30.0)
    assert set(out) == set(tasks)
    for task in tasks:
        assert out[task].shape[0] == 2 and out[task].shape[1] >= frames - 1 - 8
        assert np.isfinite(out[task]).all() and out[task].std() > 0


def test_a_fine_tuning_step_from_a_released_checkpoint_changes_its_weights():
    model, artifact = load_model(SNF)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = TrainConfig(lr=1e-3)
    rng = np.random.default_rng(1)
    t = np.arange(180) / 30.0
    batch = {"video": torch.from_numpy(_clips(4, 181, 9)),
             "bvp": torch.from_numpy(np.stack([np.sin(2 * np.pi * 1.2 * t + p) for p in rng.uniform(0, 6, 2)])).float(),
             "rsp": torch.from_numpy(np.stack([np.sin(2 * np.pi * 0.25 * t + p) for p in rng.uniform(0, 6, 2)])).float()}
    stats = train_epoch(model, [batch], build_optimizer(model, train), None, tasks=artifact.config.tasks,
                        weights={"bvp": 1.0, "rsp": 1.0}, train=train, device=torch.device("cpu"))
    assert np.isfinite(stats.loss)
    changed = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    weights = [k for k, v in before.items() if v.dtype.is_floating_point and v.requires_grad is False and v.ndim > 1]
    assert len(changed) >= len(weights) // 2 > 0, changed


def test_train_init_from_accepts_a_released_checkpoint_of_the_same_variant():
    from pipelines.train.checks import TrainingError, check_init_from

    config = ExperimentConfig.from_dict({"model": {"resolution": 9, "modality": "rgbt", "fusion": "per_task"},
                                         "train": {"init_from": str(SNF)}})
    check_init_from(config)  # same variant: accepted
    wrong = config.replace(model=config.model.replace(fusion="early"))
    with pytest.raises(TrainingError, match="init_from"):
        check_init_from(wrong)


def test_export_command_takes_a_released_checkpoint(tmp_path, capsys):
    path = tmp_path / "snf.onnx"
    assert main(["export", "--model", str(SNF), "--out", str(path)]) == 0, capsys.readouterr().err
    clip = _clips(4, 181, 9, batch=1)
    session = onnxruntime.InferenceSession(str(path))
    onnx_out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"video": clip})))
    model, _ = resolve_model(str(SNF))
    with torch.no_grad():
        direct = model(torch.from_numpy(clip))
    np.testing.assert_allclose(onnx_out["bvp"], direct["bvp"].numpy(), atol=1e-4)


def test_register_command_takes_a_released_checkpoint(mlflow_uri, capsys):
    assert main(["register", "--model", str(SNF), "--name", "bp4d-snf", "--tracking-uri", mlflow_uri]) == 0, \
        capsys.readouterr().err
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    (version,) = client.search_model_versions("name='bp4d-snf'")
    model, artifact = resolve_model("models:/bp4d-snf/1", tracking_uri=mlflow_uri)
    assert int(version.version) == 1 and artifact.config.fusion == "per_task"
    assert artifact.preprocessing.box_scale == 1.5  # the reference's crop travelled with it
