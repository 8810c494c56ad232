"""What a user sees: a short training through the real CLI (the session's `cli_run`: a
subprocess, stdout not a terminal, on the session's Ray cluster) prints our lines once
each and nothing of Ray's; the model's validation SNR is one number in every file that
reports it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]


def test_a_successful_training_prints_each_line_once_and_nothing_of_ray(cli_run) -> None:
    tmp_path, done = cli_run
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    repeated = {line for line in lines if lines.count(line) > 1}
    assert not repeated, repeated
    epochs = [line for line in lines if line.startswith("[mmrphys] epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"]
    for noise in ("Traceback", "TrainingReport", "deprecat", " E ", "ERROR", "(RayTrainWorker", "logging_progress",
                  "torchvision", "Downloading artifacts", "Starting execution", "INFO"):
        assert noise.lower() not in output.lower(), (noise, output[-3000:])
    # it says where its outputs went, and leaves nothing in the folder it ran in
    assert f"run folder:      {tmp_path / 'runs' / 'quiet'}" in output
    assert not any((tmp_path / "cwd").iterdir())


def test_the_validation_snr_is_the_same_in_the_checkpoint_and_the_report(cli_run) -> None:
    tmp_path, done = cli_run
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "quiet"
    metrics = json.loads((run_dir / "best_model" / "metrics.json").read_text())
    with (run_dir / "val_report" / "summary.csv").open() as handle:
        summary = {row["task"]: row for row in csv.DictReader(handle)}
    for task, rate in (("bvp", "hr"), ("rsp", "rr")):
        for key in ("SNR", "MAE", "MACC"):
            assert float(summary[task][key]) == pytest.approx(metrics[f"val_{rate}_{key.lower()}"], rel=1e-9), (task, key)


def test_a_local_cluster_starts_quietly(tmp_path: Path) -> None:
    """The path `mmrphys demo` takes on a laptop: no RAY_ADDRESS, a local cluster of its own."""
    script = ("import ray\n"
              "from pipelines.ray_session import ensure_ray, set_verbose\n"
              "set_verbose(False)\n"
              "ensure_ray(2)\n"
              "print('rows', ray.data.range(50).map_batches(lambda b: b, batch_format='numpy').count())\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "rows 50"
    # one line is left, and known: Ray's C++ core logs that it read RAY_BACKEND_LOG_LEVEL
    # (the variable that silences its other lines) at INFO before that level applies
    noise = [line for line in done.stderr.splitlines()
             if line.strip() and not line.rstrip().endswith("from environment variable RAY_BACKEND_LOG_LEVEL to 3")]
    assert noise == [], done.stderr[-3000:]
