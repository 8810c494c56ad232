"""Shared fixtures: one local Ray cluster for the whole session, and MLflow stores.

All Ray tests share the in-process cluster (starting one costs seconds and gigabytes);
they run serially. 4 logical CPUs over the 2 real cores keep Ray Data from starving the
training workers (docs/cluster.md, "CPUs on a small machine").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real local Ray cluster shared by every test that asks for it."""
    import ray

    repo = str(Path(__file__).resolve().parents[1])
    # workers import this checkout's packages, whichever copy of the repo runs the tests
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH", "")) if p
    )
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            object_store_memory=512 * 1024**2,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow tracking and registry store for one test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return uri


@pytest.fixture(scope="session")
def train_shards(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny ingested synthetic RGB+thermal shards for the training tests (train_fixtures.py)."""
    from train_fixtures import make_shards

    return make_shards(tmp_path_factory.mktemp("train-shards"))


@pytest.fixture(scope="session")
def trained_run(train_shards: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real 2-worker training run, logged and registered in its own MLflow store."""
    from train_fixtures import train_tiny

    return train_tiny(train_shards, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def cli_run(ray_cluster, train_shards: Path, tmp_path_factory: pytest.TempPathFactory):
    """`trained_run`'s settings trained again through the real CLI, in a subprocess whose
    stdout is not a terminal, on the session's cluster, with the training split streamed
    every epoch (`data.cache_mb=0`; `trained_run`'s is cached): (folder, CompletedProcess)."""
    import subprocess
    import sys

    from train_fixtures import tiny_cli_overrides

    folder = tmp_path_factory.mktemp("cli-run")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "PYTHONPATH": str(repo)}
    command = [
        sys.executable, "-m", "pipelines.cli", "train", "--data", str(train_shards), "--storage",
        str(folder / "runs"), "--name", "quiet", "--tracking-uri", f"sqlite:///{folder / 'store' / 'mlflow.db'}",
        "tracking.experiment=console", "data.cache_mb=0", *tiny_cli_overrides(),
    ]
    (folder / "cwd").mkdir()
    done = subprocess.run(command, cwd=folder / "cwd", env=env, capture_output=True, text=True, timeout=900)
    return folder, done
