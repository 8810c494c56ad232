"""The main job, end to end: `mmrphys demo --quick` on a fresh work folder."""

from __future__ import annotations

import math

import pytest

from pipelines.cli import main
from pipelines.tracking import client

pytestmark = pytest.mark.ray


def test_quick_demo_trains_evaluates_and_registers(ray_cluster, mlflow_uri, tmp_path, capsys):
    workdir = tmp_path / "demo"
    assert main(["demo", "--quick", "--workdir", str(workdir)]) == 0
    printed = capsys.readouterr().out

    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in printed
    assert "HR (beats/min)" in printed and "RR (breaths/min)" in printed
    assert f"mlflow ui --backend-store-uri {mlflow_uri}" in printed
    assert str(workdir / "shards") in printed

    version = client(mlflow_uri).get_model_version_by_alias("mmrphys-demo", "champion")
    run = client(mlflow_uri).get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert {"val_hr_mae", "val_rr_mae", "val_rate_mae", "train_loss"} <= set(run.data.metrics)
    assert math.isfinite(run.data.metrics["val_hr_mae"])
    assert any((workdir / "evaluation").glob("bland_altman_*.png"))
    assert list((workdir / "runs").glob("demo-*/best_model/model.pt"))
