"""Batch inference of a registered model over many recordings with Ray Data: shards and
raw recording folders in, per-recording waveforms and rates (Parquet) and a summary CSV out."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.serve.batch import BatchPredictError, batch_predict
from pipelines.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CHAMPION = "models:/tiny@champion"


def test_shards_in_waveforms_rates_and_summary_out(ray_cluster, trained_run, train_shards: Path, tmp_path: Path) -> None:
    from pipelines.data.shards import read_manifest

    result = batch_predict(CHAMPION, train_shards, tmp_path / "out", tracking_uri=trained_run.tracking_uri)
    manifest = read_manifest(train_shards)
    accepted = {r["recording_id"]: r["chunks"] for r in manifest["recordings"] if r["status"] == "accepted"}
    assert result.input_kind == "shards"
    assert {r["recording_id"] for r in result.rows} == set(accepted)

    waveforms = pq.read_table(result.files["waveforms"]).to_pylist()
    assert {w["recording_id"] for w in waveforms} == set(accepted)
    frames = trained_run.config.model.frames
    for row in waveforms:
        assert len(row["pred_bvp"]) == len(row["pred_rsp"]) == accepted[row["recording_id"]] * frames
        assert len(row["label_bvp"]) == len(row["pred_bvp"]) and row["fps"] == 30.0

    rates = pq.read_table(result.files["rates"]).to_pylist()
    assert {r["recording_id"] for r in rates if r["window"] == "all"} == set(accepted)
    with open(result.files["summary"]) as handle:
        summary = list(csv.DictReader(handle))
    assert {"heart_rate_bpm", "label_heart_rate_bpm", "heart_rate_bpm_abs_error",
            "respiration_rate_bpm", "respiration_rate_bpm_abs_error"} <= set(summary[0])
    for row in summary:
        hr, label = float(row["heart_rate_bpm"]), float(row["label_heart_rate_bpm"])
        assert 30 <= label <= 200 and (math.isnan(hr) or 30 <= hr <= 240)
        assert math.isclose(float(row["heart_rate_bpm_abs_error"]), abs(hr - label), rel_tol=1e-6) or math.isnan(hr)


def test_raw_recordings_folder_and_cli(ray_cluster, trained_run, tmp_path: Path, capsys) -> None:
    from mmrphys.data.synthetic import generate_dataset

    raw = tmp_path / "raw"
    generate_dataset(raw, subjects=2, seconds=8.0, fps=30.0, seed=11)
    code = main(["predict", "--model", CHAMPION, "--input", str(raw), "--out", str(tmp_path / "out"),
                 "--tracking-uri", trained_run.tracking_uri])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "2 recordings (folder recordings)" in printed and "summary.csv" in printed
    waveforms = pq.read_table(tmp_path / "out" / "waveforms").to_pylist()
    assert len(waveforms) == 2
    for row in waveforms:
        # every frame covered: the last chunk is aligned to the end of the recording
        assert len(row["pred_bvp"]) == len(row["label_bvp"]) == 240


def test_bad_inputs_are_named(ray_cluster, trained_run, train_shards: Path, tmp_path: Path, capsys) -> None:
    uri = trained_run.tracking_uri
    with pytest.raises(BatchPredictError, match="no such folder"):
        batch_predict(CHAMPION, tmp_path / "missing", tmp_path / "out", tracking_uri=uri)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BatchPredictError, match="no recordings found|not shards"):
        batch_predict(CHAMPION, empty, tmp_path / "out", tracking_uri=uri)
    with pytest.raises(BatchPredictError, match="--split applies to shards"):
        batch_predict(CHAMPION, empty, tmp_path / "out", splits=["test"], tracking_uri=uri)
    assert main(["predict", "--model", "models:/no-such-model@champion", "--input", str(train_shards),
                 "--out", str(tmp_path / "out"), "--tracking-uri", uri]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["predict", "--model", CHAMPION, "--tracking-uri", uri]) == 2
    assert "give a VIDEO, or --input" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a model" in capsys.readouterr().err
