"""MLflow tracking against a real SQLite store: URI resolution, experiments, runs."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest

from mmrphys.config import TrackingConfig
from pipelines.tracking import (
    RunLogger,
    TrackingError,
    check_tracking_uri,
    client,
    ensure_experiment,
    local_store_dir,
    resolve_tracking_uri,
    start_run,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_flag_beats_environment_beats_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///rel/store.db") == f"sqlite:///{tmp_path / 'rel' / 'store.db'}"
    assert resolve_tracking_uri("plain-folder") == (tmp_path / "plain-folder").as_uri()


def test_unreachable_server_is_refused_with_the_uri():
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(TrackingError, match=f"tracking URI {uri}: cannot connect"):
        check_tracking_uri(uri, timeout_s=2)


def test_unwritable_store_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(TrackingError, match="not writable"):
            check_tracking_uri(f"sqlite:///{locked / 'sub' / 'mlflow.db'}")
    finally:
        locked.chmod(0o700)


def test_unsupported_scheme_is_refused():
    with pytest.raises(TrackingError, match="unsupported scheme 'ftp'"):
        check_tracking_uri("ftp://example.invalid/store")


def test_experiment_artifacts_live_beside_the_database(mlflow_uri):
    experiment_id = ensure_experiment(mlflow_uri, "beside")
    assert ensure_experiment(mlflow_uri, "beside") == experiment_id
    location = client(mlflow_uri).get_experiment(experiment_id).artifact_location
    assert location == (local_store_dir(mlflow_uri) / "mlartifacts" / "beside").as_uri()


def test_runs_nest_under_a_parent_and_log_only_finite_metrics(mlflow_uri, tmp_path):
    tracking = TrackingConfig(uri=mlflow_uri, experiment="nesting")
    parent = start_run(mlflow_uri, tracking, run_name="search")
    child = start_run(mlflow_uri, tracking.replace(parent_run_id=parent), run_name="trial-1")
    logger = RunLogger(mlflow_uri, child)
    logger.log_params({"model.resolution": 9, "train.lr": 0.001})
    logger.log_params({"model.resolution": 9})  # logging the same params again is harmless
    logger.log_metrics({"val_hr_mae": 1.5, "val_hr_pearson": math.nan, "flag": True}, step=0)
    logger.log_metrics({"val_hr_mae": 1.0}, step=1)
    (tmp_path / "experiment.yaml").write_text("model: {}\n")
    logger.log_artifact(tmp_path / "experiment.yaml")
    logger.finish()

    run = client(mlflow_uri).get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params["model.resolution"] == "9"
    assert run.data.metrics == {"val_hr_mae": 1.0}
    history = client(mlflow_uri).get_metric_history(child, "val_hr_mae")
    assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 1.0)]
    assert run.info.status == "FINISHED"
    assert [a.path for a in client(mlflow_uri).list_artifacts(child)] == ["experiment.yaml"]
    artifact_dir = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifact_dir.is_relative_to(local_store_dir(mlflow_uri))


def test_a_missing_parent_run_is_refused(mlflow_uri):
    tracking = TrackingConfig(uri=mlflow_uri, parent_run_id="0123456789abcdef")
    with pytest.raises(TrackingError, match="parent_run_id: no run '0123456789abcdef'"):
        start_run(mlflow_uri, tracking, run_name="orphan")
