"""`mmrphys compare` on tiny real data: two MMRPhys entries x 2 seeds and POS, real Ray
Train and Ray Data on the shared local cluster, a real SQLite MLflow store; and every bad
input it refuses before any work starts."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from mmrphys.config import ExperimentConfig
from pipelines.cli import main
from pipelines.compare import CompareError, EvalSet, load_entries, parse_test_set, resolve_entries, run_compare
from pipelines.compare.table import format_markdown, mean_sd

ENTRIES = ["mmrphys-none", "pos"]


@pytest.fixture
def base(train_shards: Path, mlflow_uri: str) -> ExperimentConfig:
    from train_fixtures import tiny_config

    config = tiny_config(train_shards, mlflow_uri, epochs=1, workers=1)
    return config.replace(tracking=config.tracking.replace(register_as="", alias="", log_model=False))


@pytest.mark.ray
@pytest.mark.slow
def test_compare_trains_scores_nests_runs_and_writes_the_table(
    ray_cluster, base: ExperimentConfig, train_shards: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    from pipelines.tracking import client

    result = run_compare(base, resolve_entries(ENTRIES), seeds=2, storage_path=tmp_path, name="cmp",
                         test_sets=[EvalSet("test", str(train_shards)), EvalSet("val", str(train_shards), "val")])
    # a trained entry x 2 seeds (CI time: one network is enough to check the seeds), POS once (deterministic)
    assert [(r.entry, r.seed) for r in result.runs] == [("mmrphys-none", 0), ("mmrphys-none", 1), ("pos", 0)]
    rows = {(r["entry"], r["test"]): r for r in result.rows}
    assert set(rows) == {(e, t) for e in ENTRIES for t in ("test", "val")}
    none, pos = rows["mmrphys-none", "test"], rows["pos", "test"]
    assert none["runs"] == 2 and pos["runs"] == 1
    assert math.isfinite(none["hr_mae_mean"]) and math.isfinite(none["hr_mae_sd"])
    assert math.isfinite(none["rr_mae_mean"])
    assert none["train_s_per_epoch"] > 0 and none["onnx_mb"] > 0 and none["latency_ms"] > 0
    # the two seeds are two different runs: their scores are the mean and sd of the seed runs
    seeds = [r.metrics["test"]["hr_mae"] for r in result.runs if r.entry == "mmrphys-none"]
    assert none["hr_mae_mean"] == pytest.approx(sum(seeds) / 2)
    assert none["parameters"] == 88_248  # 9x9 RGB+T early fusion without attention (docs/model.md, "Variants")
    # POS: BVP only, no weights, no training, no graph
    assert math.isfinite(pos["hr_mae_mean"]) and math.isnan(pos["hr_mae_sd"]) and math.isnan(pos["rr_mae_mean"])
    assert pos["parameters"] == 0 and math.isnan(pos["train_s_per_epoch"]) and math.isnan(pos["onnx_mb"])

    for kind in ("csv", "markdown", "plot", "per_recording"):
        assert result.files[kind].is_file() and result.files[kind].stat().st_size > 0
    assert "| mmrphys-none | test | 2 |" in result.files["markdown"].read_text()
    with result.files["per_recording"].open() as handle:
        per_recording = list(csv.DictReader(handle))
    test_subjects = {r["subject"] for r in per_recording if r["test"] == "test"}
    assert test_subjects and all(test_subjects)
    assert {(r["entry"], r["seed"]) for r in per_recording} == {("mmrphys-none", "0"), ("mmrphys-none", "1"), ("pos", "0")}

    store = client(mlflow_uri)
    parent = store.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["mmrphys-none.test.hr_mae_mean"] == pytest.approx(none["hr_mae_mean"])
    artifacts = {a.path for a in store.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/results.csv", "comparison/results.md", "comparison/results.png"} <= artifacts
    children = store.search_runs([parent.info.experiment_id],
                                 f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == ["mmrphys-none-seed0", "mmrphys-none-seed1", "pos"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert "test_hr_mae" in child.data.metrics and "val_hr_mae" in child.data.metrics
    seed_params = {c.info.run_name: c.data.params["train.seed"] for c in children if c.info.run_name != "pos"}
    assert seed_params["mmrphys-none-seed0"] != seed_params["mmrphys-none-seed1"]


@pytest.mark.ray
def test_cli_compare_prints_the_table(ray_cluster, train_shards: Path, mlflow_uri: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The command end to end with an unsupervised entry only (no training): the table and its files."""
    code = main(["compare", "--data", str(train_shards), "--models", "pos,green", "--seeds", "2",
                 "--storage", str(tmp_path), "--name", "cli", "--no-onnx", "model.frames=64"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| pos | test | 1 |" in out and "| green | test | 1 |" in out
    assert (tmp_path / "cli" / "results.csv").is_file() and "MLflow parent run:" in out


# ---------------------------------------------------------------------------------------
# bad input, refused before any work


def test_unknown_duplicate_and_missing_entries_are_refused() -> None:
    with pytest.raises(CompareError, match="unknown entry 'mmrphyz'.*mmrphys-tsfm"):
        resolve_entries(["mmrphyz"])
    with pytest.raises(CompareError, match="'pos' is given twice"):
        resolve_entries(["pos", "pos"])
    with pytest.raises(CompareError, match="no entries given"):
        resolve_entries([" "])


def test_entries_file_adds_entries_in_both_forms_and_rejects_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "entries.yaml"
    path.write_text(yaml.safe_dump({"tsfm-rbf": {"model.attention": "tsfm", "model.constraint": "rbf"},
                                    "small-lr": ["train.lr=0.0001"]}))
    entries = resolve_entries(["tsfm-rbf", "small-lr", "pos"], load_entries(path))
    assert entries["tsfm-rbf"] == ("model.attention=tsfm", "model.constraint=rbf")
    assert entries["small-lr"] == ("train.lr=0.0001",)
    path.write_text(yaml.safe_dump({"bad": 3}))
    with pytest.raises(CompareError, match="entry 'bad': expected a list"):
        load_entries(path)
    path.write_text("[1, 2]")
    with pytest.raises(CompareError, match="expected a mapping"):
        load_entries(path)
    with pytest.raises(CompareError, match="cannot read entries") as caught:
        load_entries(tmp_path / "missing.yaml")
    assert caught.value.__cause__ is not None


def test_an_entry_that_breaks_the_config_is_named(tmp_path: Path) -> None:
    entries = {"bad-fusion": ("model.modality=rgb", "model.fusion=late")}
    with pytest.raises(CompareError, match="entry 'bad-fusion'.*fusion") as caught:
        run_compare(ExperimentConfig(), entries, test_sets=[EvalSet("t", str(tmp_path))], storage_path=tmp_path)
    assert caught.value.__cause__ is not None


def test_test_set_specs(tmp_path: Path) -> None:
    assert parse_test_set(f"hard={tmp_path}:val") == EvalSet("hard", str(tmp_path.resolve()), "val")
    assert parse_test_set(str(tmp_path)) == EvalSet(tmp_path.name, str(tmp_path.resolve()), "test")
    with pytest.raises(CompareError, match="expected NAME=SHARDS"):
        parse_test_set("x=")
    with pytest.raises(CompareError, match="must be letters"):
        parse_test_set(f"a.b={tmp_path}")


def test_data_an_entry_cannot_use_and_bad_seeds_fail_first(ray_cluster, tmp_path: Path, mlflow_uri: str) -> None:
    from train_fixtures import make_shards, tiny_config

    rgb_only = make_shards(tmp_path / "rgb", subjects=3, seconds=10.0, split=(0.34, 0.33, 0.33), strip=True)
    base = tiny_config(rgb_only, mlflow_uri)
    with pytest.raises(CompareError, match="entry 'mmrphys-tsfm'.*(RSP labels|thermal frames)"):
        run_compare(base, resolve_entries(["pos", "mmrphys-tsfm"]), storage_path=tmp_path, name="x")
    with pytest.raises(CompareError, match="--seeds: must be >= 1"):
        run_compare(base, resolve_entries(["pos"]), seeds=0, storage_path=tmp_path, name="x")
    with pytest.raises(CompareError, match="test set names must differ"):
        run_compare(base, resolve_entries(["pos"]), storage_path=tmp_path, name="x",
                    test_sets=[EvalSet("a", str(rgb_only)), EvalSet("a", str(rgb_only), "val")])
    assert not (tmp_path / "x").exists()  # nothing was started


def test_cli_unknown_entry_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--models", "nope", "--data", "."]) == 2
    assert "unknown entry 'nope'" in capsys.readouterr().err


def test_mean_sd_and_markdown_cells() -> None:
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    mean, sd = mean_sd([2.0, math.nan])
    assert mean == 2.0 and math.isnan(sd)
    assert all(math.isnan(v) for v in mean_sd([]))
    row = {"entry": "e", "test": "t", "runs": 2, "parameters": 1234, "train_s_per_epoch": 1.5,
           "latency_ms": 2.25, "onnx_mb": math.nan,
           **{f"{m}_{s}": v for m in ("hr_mae", "hr_rmse", "hr_pearson", "hr_snr")
              for s, v in (("mean", 1.0), ("sd", 0.5))},
           **{f"{m}_{s}": math.nan for m in ("rr_mae", "rr_rmse", "rr_pearson", "rr_snr") for s in ("mean", "sd")}}
    table = format_markdown([row])
    assert "RR MAE" not in table  # no entry predicts RR
    assert "| e | t | 2 | 1.00 ± 0.50 |" in table and "| 1,234 | 1.50 | 2.2 | n/a |" in table


def test_compare_submits_as_a_ray_job() -> None:
    from pipelines.submit import entrypoint_for

    command = ["compare", "--data", "/shared/shards", "--models", "mmrphys,pos", "train.workers=8"]
    assert entrypoint_for(command) == "python -m pipelines.cli compare --data /shared/shards --models mmrphys,pos " \
                                      "train.workers=8"
