"""Real Ray Train (2 CPU workers) on real shards, logged to a real MLflow SQLite store.

One training run (the session fixture `trained_run`) serves most tests; resuming it is
one more short fit. Every bad input is refused before Ray Train starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrphys.inference import is_model_folder
from pipelines.serve.references import resolve_model
from pipelines.tracking import client
from pipelines.data.shards import preprocessing_of
from pipelines.train.checks import TrainingError
from pipelines.train.driver import load_run_config, train
from train_fixtures import MODEL_NAME, make_shards, tiny_config

pytestmark = pytest.mark.ray


def test_run_folder_holds_config_checkpoints_best_model_and_report(trained_run):
    run_dir = trained_run.result.run_dir
    assert (run_dir / "experiment.yaml").is_file()
    assert load_run_config(run_dir) == trained_run.config
    checkpoints = sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())
    # keep_checkpoints=1 keeps the best; the latest is always kept too
    assert 1 <= len(checkpoints) <= 2
    assert all(is_model_folder(c) and (c / "training_state.pt").is_file() for c in checkpoints)
    assert is_model_folder(trained_run.result.model_dir)
    assert not (trained_run.result.model_dir / "training_state.pt").exists()
    assert (run_dir / "val_report").is_dir() and any((run_dir / "val_report").glob("*.png"))


def test_an_epoch_waits_for_the_checkpoint_ray_train_registered(trained_run):
    """The worker reads the snapshot Ray Train itself wrote for this run: it must see the
    last epoch as registered, and time out (False) for an epoch never reported."""
    from pipelines.train.worker import _wait_registered

    run_dir = trained_run.result.run_dir
    last = trained_run.result.history[-1]["epoch"]
    assert _wait_registered(run_dir, last, timeout_s=5.0)
    assert not _wait_registered(run_dir, last + 1, timeout_s=0.2)


def test_metrics_are_reported_per_epoch_with_their_names(trained_run):
    metrics = trained_run.result.last_metrics
    assert metrics["epoch"] == 1 and metrics["started_at_epoch"] == 0
    for name in ("train_loss", "val_loss", "val_hr_mae", "val_rr_mae", "val_rate_mae", "val_hr_rmse",
                 "val_hr_snr", "val_rr_pearson", "train_bvp_loss", "val_rsp_loss"):
        assert name in metrics, name
    assert metrics["val_rate_mae"] == pytest.approx(metrics["val_hr_mae"] + metrics["val_rr_mae"])
    assert np.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0


def test_mlflow_run_has_params_metric_history_artifacts_and_model(trained_run):
    mlflow_client = client(trained_run.tracking_uri)
    run = mlflow_client.get_run(trained_run.result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.resolution"] == "9" and run.data.params["train.workers"] == "2"
    # the workers really started with malloc's freed memory kept for reuse (mmrphys.host_memory)
    assert run.data.tags["host_memory_reuse"] == "True"
    history = mlflow_client.get_metric_history(run.info.run_id, "val_hr_mae")
    assert [m.step for m in history] == [0, 1]
    assert {"train_loss", "val_loss", "val_rr_mae", "val_rate_mae", "best_val_hr_mae"} <= set(run.data.metrics)
    top = {a.path for a in mlflow_client.list_artifacts(run.info.run_id)}
    assert {"experiment.yaml", "onnx", "evaluation"} <= top
    assert [a.path for a in mlflow_client.list_artifacts(run.info.run_id, "onnx")] == ["onnx/mmrphys.onnx"]
    plots = {Path(a.path).name for a in mlflow_client.list_artifacts(run.info.run_id, "evaluation/best_val")}
    assert {"bland_altman_bvp.png", "waveforms_rsp.png"} <= plots
    assert trained_run.result.model_uri.startswith("models:/")


def test_best_model_is_registered_with_its_alias(trained_run):
    mlflow_client = client(trained_run.tracking_uri)
    version = mlflow_client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(version.version) == trained_run.result.registered_version
    assert version.tags["mmrphys.resolution"] == "9" and version.tags["mmrphys.modality"] == "rgbt"


def test_every_model_reference_resolves_to_the_same_weights(trained_run):
    uri = trained_run.tracking_uri
    version = trained_run.result.registered_version
    refs = [str(trained_run.result.run_dir), str(trained_run.result.model_dir),
            f"models:/{MODEL_NAME}/{version}", f"models:/{MODEL_NAME}@champion",
            f"runs:/{trained_run.result.mlflow_run_id}/model"]
    reference = None
    for ref in refs:
        model, artifact = resolve_model(ref, tracking_uri=uri)
        assert artifact.config == trained_run.config.model, ref
        # the model carries the preprocessing of the shards it was trained on
        assert artifact.preprocessing == preprocessing_of(trained_run.config.data.shards), ref
        weights = model.state_dict()
        if reference is None:
            reference = weights
        assert all(torch.equal(weights[k], reference[k]) for k in reference), ref


def test_resume_continues_from_the_latest_checkpoint_into_the_same_mlflow_run(trained_run, tmp_path):
    # a copy, so the other tests keep the finished two-epoch run
    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(trained_run.result.run_dir, run_dir)
    config = load_run_config(run_dir, ["train.epochs=3", "tracking.register_as=''", "tracking.alias=''"])
    result = train(config, storage_path=run_dir.parent, name="tiny", resume=True)
    assert result.last_metrics["epoch"] == 2 and result.last_metrics["started_at_epoch"] == 2
    assert result.mlflow_run_id == trained_run.result.mlflow_run_id
    history = client(trained_run.tracking_uri).get_metric_history(result.mlflow_run_id, "train_loss")
    assert sorted(m.step for m in history) == [0, 1, 2]


def test_resume_refuses_to_change_the_model_variant(trained_run):
    with pytest.raises(TrainingError, match="cannot resume.*resolution 36"):
        load_run_config(trained_run.result.run_dir, ["model.resolution=36"])


def test_an_existing_run_folder_is_not_overwritten(trained_run):
    with pytest.raises(TrainingError, match="already holds a run"):
        train(trained_run.config, storage_path=trained_run.storage, name="tiny")


def _refused(config, tmp_path, match):
    with pytest.raises(TrainingError, match=match):
        train(config, storage_path=tmp_path / "runs", name="refused")
    assert not (tmp_path / "runs" / "refused").exists(), "nothing may be written before the checks pass"


def test_missing_shards_are_refused_before_training(tmp_path):
    _refused(tiny_config(tmp_path / "no-shards"), tmp_path, "no manifest")
    _refused(tiny_config(tmp_path).replace(data=tiny_config(tmp_path).data.replace(shards="")), tmp_path,
             "no shards folder given")


def test_unreachable_tracking_uri_is_refused_before_training(train_shards, tmp_path):
    config = tiny_config(train_shards, "http://127.0.0.1:9")
    _refused(config, tmp_path, "tracking URI http://127.0.0.1:9: cannot connect")


def test_registry_name_clash_is_refused_before_training(trained_run, tmp_path):
    config = tiny_config(trained_run.config.data.shards, trained_run.tracking_uri)
    config = config.replace(model=config.model.replace(resolution=36))
    _refused(config, tmp_path, f"registered model '{MODEL_NAME}'.*resolution 9 \\(this run: 36\\)")


def test_a_checkpoint_of_another_variant_is_refused_before_training(trained_run, tmp_path):
    config = tiny_config(trained_run.config.data.shards)
    config = config.replace(model=config.model.replace(modality="rgb"),
                            train=config.train.replace(init_from=str(trained_run.result.model_dir)))
    _refused(config, tmp_path, "init_from: .*another model variant: modality 'rgbt' \\(expected 'rgb'\\)")


@pytest.fixture(scope="module")
def rgb_only_shards(ray_cluster, tmp_path_factory):
    """Two subjects without thermal video or respiration labels, and no test split."""
    folder = tmp_path_factory.mktemp("rgb-only")
    return make_shards(folder, subjects=2, seconds=5.0, split=(0.5, 0.5, 0.0), strip=True)


def test_an_empty_split_is_refused_before_training(rgb_only_shards, tmp_path):
    config = tiny_config(rgb_only_shards)
    config = config.replace(model=config.model.replace(modality="rgb", tasks=("bvp",)),
                            data=config.data.replace(val_split="test"),
                            train=config.train.replace(checkpoint_metric="val_hr_mae"))
    _refused(config, tmp_path, "split 'test' is empty")


def test_a_split_without_rsp_labels_is_refused_for_an_rsp_task(rgb_only_shards, tmp_path):
    config = tiny_config(rgb_only_shards)
    config = config.replace(model=config.model.replace(modality="rgb"))
    _refused(config, tmp_path, "task 'rsp' needs RSP labels")


def test_a_modality_the_shards_lack_is_refused(rgb_only_shards, tmp_path):
    config = tiny_config(rgb_only_shards)
    config = config.replace(model=config.model.replace(tasks=("bvp",)),
                            train=config.train.replace(checkpoint_metric="val_hr_mae"))
    _refused(config, tmp_path, "modality 'rgbt' needs thermal frames")
