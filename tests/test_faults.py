"""Fault tolerance, drilled from outside: a training worker is killed with SIGKILL in the
middle of an epoch, and the run finishes from the last checkpoint with every epoch once."""

from __future__ import annotations

import pytest

from pipelines.train.driver import HISTORY_FILE, train
from processes import kill_when
from train_fixtures import tiny_config

pytestmark = pytest.mark.ray


def test_a_worker_killed_mid_epoch_resumes_from_the_last_checkpoint(train_shards, tmp_path):
    config = tiny_config(train_shards, epochs=3, max_failures=1)
    history = tmp_path / "runs" / "faulty" / HISTORY_FILE

    def epoch_one_done() -> bool:
        return history.is_file() and len(history.read_text().splitlines()) >= 1

    kill = kill_when(epoch_one_done, "RayTrainWorker")
    result = train(config, storage_path=tmp_path / "runs", name="faulty")

    assert kill["killed"] is not None, "the drill found no training worker to kill"
    assert result.last_metrics["epoch"] == 2
    # the restarted worker group began after epoch 1: it resumed, it did not start over
    assert result.last_metrics["started_at_epoch"] >= 1
    epochs = [row["epoch"] for row in result.history]
    assert sorted(set(epochs)) == [0, 1, 2] and len(epochs) == len(set(epochs)), epochs
    assert result.best_checkpoint.is_dir()
