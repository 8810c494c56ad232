"""Fault drills, from outside the process they kill (benchmarks/fault_drills.py runs them
all and prints the table in BENCHMARKS.md): each starts the real thing, SIGKILLs a
process at a chosen moment, and checks that nothing is lost or duplicated. The cheap
ones run here; CI keeps them small (8 tiny recordings, a 9x9 model, 3 epochs)."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest

from benchmarks import fault_drills
from pipelines.tracking import SPOOL_FILE, RunLogger, ensure_experiment
from processes import descendants, kill_tree, processes_named


def _assert_passed(row: dict) -> None:
    assert row["passed"], f"{row['killed']} ({row['when']}): failed {row['failed']}; {row['details']}"


def test_the_drill_helpers_see_only_descendants(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in descendants(os.getpid())
        assert processes_named("time.sleep(60)") == [child.pid]
        # a process this one did not start is never listed, even with a matching name
        assert processes_named("time.sleep(60)", root=child.pid) == []
        assert os.getppid() not in descendants(os.getpid())
    finally:
        kill_tree(child.pid)
        child.wait()
    assert child.returncode == -9


def test_a_store_that_goes_away_keeps_the_calls_and_sends_them_when_back(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    run_id = mlflow.MlflowClient(uri).create_run(ensure_experiment(uri, "drill")).info.run_id
    spool = tmp_path / SPOOL_FILE
    logger = RunLogger(uri, run_id, spool=spool)
    logger.log_metrics({"loss": 1.0}, step=0)

    db.rename(tmp_path / "away.db")
    db.mkdir()  # SQLite cannot open a folder: the store is unavailable
    logger.log_metrics({"loss": 0.5}, step=1)
    logger.set_tags({"note": "during the outage"})
    assert logger.held == 2 and len(spool.read_text().splitlines()) == 2
    assert "unavailable" in capsys.readouterr().err

    # a restarted worker picks the kept calls up from the spool
    again = RunLogger(uri, run_id, spool=spool)
    db.rmdir()
    (tmp_path / "away.db").rename(db)
    again.log_metrics({"loss": 0.25}, step=2)
    assert again.held == 0 and not spool.exists()
    assert "is back: 2 calls reached MLflow late" in capsys.readouterr().err
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert [m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")] == [0, 1, 2]
    assert run.data.tags["note"] == "during the outage" and "late" in run.data.tags["mmrphys.tracking_gap"]

    # without a spool a refused call still raises: commands like `register` must fail
    db.rename(tmp_path / "away.db")
    db.mkdir()
    with pytest.raises(Exception):
        RunLogger(uri, run_id).log_metrics({"loss": 0.1}, step=3)


@pytest.mark.ray
def test_an_ingest_task_killed_mid_recording_is_retried_byte_identical(ray_cluster, tmp_path):
    _assert_passed(fault_drills.drill_ingest_task(tmp_path))


@pytest.mark.ray
def test_the_ingest_driver_killed_mid_dataset_reruns_to_the_same_shards(ray_cluster, tmp_path):
    _assert_passed(fault_drills.drill_ingest_driver(tmp_path))


@pytest.mark.ray
def test_a_worker_killed_mid_epoch_resumes_from_the_last_checkpoint(train_shards, tmp_path):
    _assert_passed(fault_drills.drill_training_worker(tmp_path, train_shards, epochs=2))


@pytest.mark.ray
def test_training_goes_on_while_the_tracking_store_is_away(train_shards, tmp_path):
    _assert_passed(fault_drills.drill_mlflow_unavailable(tmp_path, train_shards))
