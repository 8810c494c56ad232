"""Fault tolerance: a training worker dies mid-run and the run finishes from the last checkpoint."""

from __future__ import annotations

import pytest

from pipelines.train.driver import train
from train_fixtures import tiny_config

pytestmark = pytest.mark.ray


def test_a_killed_worker_restarts_from_the_last_checkpoint(train_shards, tmp_path):
    # worker 1 calls os._exit(1) right after epoch 2's report (once: a marker file guards it)
    config = tiny_config(train_shards, epochs=3, simulate_worker_failure=1, max_failures=1)
    result = train(config, storage_path=tmp_path / "runs", name="faulty")

    marker = tmp_path / "runs" / "faulty" / ".worker_failure_drill_epoch1"
    assert marker.is_file(), "the drill did not kill a worker"
    metrics = result.last_metrics
    assert metrics["epoch"] == 2
    # the restarted worker group began after epoch 0 at least: it resumed, not restarted from scratch
    assert metrics["started_at_epoch"] >= 1
    assert result.best_checkpoint.is_dir()

