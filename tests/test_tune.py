"""A real search on the shared local Ray cluster: 2 trials x 2 epochs on tiny synthetic
shards, ASHA, nested MLflow runs, a ranked table and plot on the parent run, a champion
in the registry, and `resume` of a search whose trial failed (Tuner.restore)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from mmrphys.config import ExperimentConfig, SearchConfig
from pipelines.tune.search import SearchError, check_search, resume_search, run_search
from processes import kill_when

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: two trials over modality (9x9: CI time); the second, with no restarts allowed, has
#: its training worker killed from outside after epoch 1, so it errors once and
#: completes when the search is resumed
TRIALS = [
    {"model.resolution": 9, "model.modality": "rgb", "model.fusion": "early"},
    {"model.resolution": 9, "model.modality": "thermal", "model.fusion": "early", "train.max_failures": 0},
]


def _thermal_trial_trained_an_epoch(search_dir: Path):
    def ready() -> bool:
        for config in search_dir.glob("train_runs/*/experiment.yaml"):
            history = config.with_name("history.jsonl")
            if "modality: thermal" in config.read_text() and history.is_file() and history.read_text().strip():
                return True
        return False

    return ready


@pytest.fixture
def base(train_shards: Path, mlflow_uri: str) -> ExperimentConfig:
    from train_fixtures import tiny_config

    config = tiny_config(train_shards, mlflow_uri, epochs=2, workers=1)
    return config.replace(tracking=config.tracking.replace(register_as="", alias="", log_onnx=False))


def test_search_ranks_trials_nests_runs_registers_champion_and_resumes(
    ray_cluster, base: ExperimentConfig, mlflow_uri: str, tmp_path: Path
) -> None:
    from pipelines.serve.references import resolve_model
    from pipelines.tracking import client

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"trial": {"grid": TRIALS}}))
    # grace period = epochs: ASHA stopping the thermal trial at the moment its worker is
    # killed would make "errored" a race
    search = SearchConfig(space=str(space), register_as="tiny-tuned", grace_period=2, reduction_factor=2)
    kill = kill_when(_thermal_trial_trained_an_epoch(tmp_path / "runs" / "search"), "RayTrainWorker")
    first = run_search(base, search, storage_path=tmp_path / "runs", name="search")
    assert kill["killed"] is not None, "the drill found no training worker to kill"

    statuses = {r["trial_id"]: r["status"] for r in first.rows}
    errored = [r for r in first.rows if r["status"] == "error"]
    assert len(first.rows) == 2 and len(errored) == 1
    assert errored[0]["model.modality"] == "thermal" and errored[0]["rank"] == 2
    assert errored[0]["error"] and errored[0]["mlflow_run_id"]

    result = resume_search(tmp_path / "runs" / "search")
    rows = result.rows
    assert result.parent_run_id == first.parent_run_id
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert {r["trial_id"] for r in rows} == set(statuses)
    values = [r["best_val_rate_mae"] for r in rows]
    assert values == sorted(values) and [r["rank"] for r in rows] == [1, 2]

    with open(result.files["results"]) as handle:
        table = list(csv.DictReader(handle))
    assert [row["trial_id"] for row in table] == [r["trial_id"] for r in rows]
    assert {"model.resolution", "model.modality", "best_val_rate_mae", "mlflow_run_id"} <= set(table[0])
    assert result.files["plot"].stat().st_size > 10_000

    mlflow = client(mlflow_uri)
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.metric"] == "val_rate_mae"
    parent_files = {a.path for a in mlflow.list_artifacts(result.parent_run_id)}
    assert {"results.csv", "metric_by_resolution_modality.png"} <= parent_files
    children = mlflow.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert {c.info.run_id for c in children} == {r["mlflow_run_id"] for r in rows}
    for child in children:
        assert child.info.status in ("FINISHED", "KILLED")
        assert "model.resolution" in child.data.params
        assert "val_rate_mae" in child.data.metrics
        assert len(mlflow.get_metric_history(child.info.run_id, "val_rate_mae")) >= 1

    # the first pass registered its champion; the resumed search's best may take another
    # input, which the registry refuses under the same name (aliases must stay swappable)
    assert first.champion is not None and first.champion["version"] == "1"
    best = rows[0]
    first_config = resolve_model("models:/tiny-tuned/1", tracking_uri=mlflow_uri)[1].config
    if (first_config.resolution, first_config.modality) == (best["model.resolution"], best["model.modality"]):
        version = mlflow.get_model_version_by_alias("tiny-tuned", "champion")
        assert version.run_id == best["mlflow_run_id"] == result.champion["run_id"]
        config = resolve_model("models:/tiny-tuned@champion", tracking_uri=mlflow_uri)[1].config
        assert (config.resolution, config.modality) == (best["model.resolution"], best["model.modality"])
    else:
        assert result.champion is None
        assert "takes a different input" in mlflow.get_run(result.parent_run_id).data.tags["champion_error"]


def test_invalid_combination_and_unknown_metric_fail_before_any_trial(base: ExperimentConfig, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("model.modality: {grid: [rgb]}\nmodel.fusion: {grid: [early, late]}\n")
    with pytest.raises(SearchError, match="model.fusion='late'.*needs modality 'rgbt'"):
        check_search(base, SearchConfig(space=str(space)))
    with pytest.raises(SearchError, match="SearchConfig.metric: 'val_accuracy' is not reported"):
        check_search(base, SearchConfig(space="resolution_modality", metric="val_accuracy"))


def test_space_needing_data_the_shards_lack_is_refused(base: ExperimentConfig, tmp_path: Path) -> None:
    rsp_less = base.replace(data=base.data.replace(shards=str(tmp_path / "nowhere")))
    with pytest.raises(SearchError, match="nowhere"):
        check_search(rsp_less, SearchConfig(space="resolution_modality"))


def test_resume_needs_a_search_folder(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="holds no search started by `mmrphys tune`"):
        resume_search(tmp_path)
