"""Careless input to every command: a clear error (exit 2, the file and the problem named),
and nothing created before the input was validated. Each test backs a row of
docs/bad_input.md; rows backed by tests elsewhere name those tests there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmrphys.config import EvalConfig, ModelConfig, PreprocessingConfig, SyntheticConfig
from mmrphys.data.datasets import read_dataset
from mmrphys.data.recording import DatasetError
from mmrphys.data.synthetic import generate_dataset
from mmrphys.inference import save_model
from mmrphys.model import build_model
from pipelines.cli import main
from pipelines.train.checks import TrainingError
from pipelines.train.driver import train
from train_fixtures import tiny_config

STORE_MESSAGE = "no tracking store at sqlite:///{cwd}/mlflow.db (looked in {cwd}); pass --tracking-uri"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with no tracking store and no MLFLOW_TRACKING_URI."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return work


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short synthetic recording (rgb.avi, thermal.npy, labels.csv, face_boxes.csv)."""
    root = tmp_path_factory.mktemp("raw")
    generate_dataset(root, subjects=1, seconds=12.0, seed=2, config=SyntheticConfig(width=64, height=48))
    return next(p for p in root.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def rgbt_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 9x9 RGB+thermal model folder: bad input is refused before it matters."""
    config = ModelConfig(resolution=9, modality="rgbt", frames=64)
    return save_model(tmp_path_factory.mktemp("model") / "m", build_model(config).state_dict(), config,
                      PreprocessingConfig(), EvalConfig())


@pytest.mark.parametrize("command", [
    ["predict", "video.avi", "--model", "models:/mmrphys-demo@champion"],
    ["predict", "--model", "models:/mmrphys-demo@champion"],
    ["evaluate", "--model", "models:/mmrphys-demo/1", "--data", "shards"],
    ["export", "--model", "models:/mmrphys-demo@champion"],
    ["register", "--run", "0123abcd", "--name", "x"],
    ["register", "--version", "1", "--alias", "champion", "--name", "x"],
])
def test_an_unresolvable_model_reference_names_the_store_and_creates_nothing(elsewhere, capsys, command):
    assert main(command) == 2
    assert STORE_MESSAGE.format(cwd=elsewhere) in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []  # no mlflow.db, no mlartifacts/, no output folder


def test_predict_with_a_folder_that_is_not_a_model_says_so(elsewhere, capsys):
    assert main(["predict", "--model", str(elsewhere)]) == 2
    assert f"model reference {elsewhere}: {elsewhere} is not a model" in capsys.readouterr().err


@pytest.mark.parametrize("video, content, message", [
    ("missing.avi", None, "missing.avi: video file does not exist"),
    ("empty.avi", b"", "empty.avi: OpenCV cannot open this video"),
    ("junk.avi", b"\x00" * 4096, "junk.avi: OpenCV cannot open this video"),
])
def test_predict_refuses_a_bad_video_and_writes_nothing(elsewhere, capsys, video, content, message):
    if content is not None:
        (elsewhere / video).write_bytes(content)
    assert main(["predict", video, "--model", "pos", "--out", "out"]) == 2
    assert message in capsys.readouterr().err
    assert not (elsewhere / "out").exists()


def test_predict_refuses_a_truncated_video(elsewhere, capsys, recording):
    data = (recording / "rgb.avi").read_bytes()
    (elsewhere / "cut.avi").write_bytes(data[: len(data) // 3])
    assert main(["predict", "cut.avi", "--model", "pos", "--out", "out"]) == 2
    assert "cut.avi: truncated or corrupt video" in capsys.readouterr().err
    assert not (elsewhere / "out").exists()


@pytest.mark.parametrize("fps", ["0", "-25", "nan"])
def test_predict_refuses_a_wrong_frame_rate(elsewhere, capsys, recording, fps):
    assert main(["predict", str(recording / "rgb.avi"), "--model", "pos", "--fps", fps, "--out", "out"]) == 2
    assert f"--fps {float(fps):g}: expected a positive frame rate" in capsys.readouterr().err
    assert not (elsewhere / "out").exists()


def test_predict_refuses_thermal_of_another_length_or_unreadable(elsewhere, capsys, recording, rgbt_model):
    thermal = np.load(recording / "thermal.npy")
    np.save(elsewhere / "short.npy", thermal[: len(thermal) // 2])
    base = ["predict", str(recording / "rgb.avi"), "--model", str(rgbt_model), "--pre-cropped", "--out", "out"]
    assert main([*base, "--thermal", "short.npy"]) == 2
    assert f"short.npy: {len(thermal) // 2} thermal frames for {len(thermal)} RGB frames" in capsys.readouterr().err
    (elsewhere / "cut.npy").write_bytes((recording / "thermal.npy").read_bytes()[:200])
    assert main([*base, "--thermal", "cut.npy"]) == 2
    assert "cut.npy: unreadable thermal array" in capsys.readouterr().err
    assert main(base) == 2
    assert "the model takes 'rgbt' input: pass the thermal video with --thermal" in capsys.readouterr().err
    assert not (elsewhere / "out").exists()


def test_predict_refuses_bad_face_boxes(elsewhere, capsys, recording):
    (elsewhere / "boxes.csv").write_text("frame,x,y,w,h\n0,1,2,3,4\n")
    assert main(["predict", str(recording / "rgb.avi"), "--model", "pos", "--face-boxes", "boxes.csv",
                 "--out", "out"]) == 2
    assert "boxes.csv: expected 360 rows of frame,x,y,w,h, got shape (1, 5)" in capsys.readouterr().err
    assert not (elsewhere / "out").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:], "time stamps must be finite and strictly increasing"),
    (lambda lines: lines[:4] + [lines[3]] + lines[4:], "time stamps must be finite and strictly increasing"),
    (lambda lines: lines[:3] + ["nan" + lines[3][lines[3].index(","):]] + lines[4:],
     "time stamps must be finite and strictly increasing"),
])
def test_label_times_unsorted_duplicated_or_nan_name_the_file(tmp_path, recording, edit, message):
    copy = shutil.copytree(recording, tmp_path / "root" / recording.name)
    labels = copy / "labels.csv"
    labels.write_text("\n".join(edit(labels.read_text().splitlines())) + "\n")
    (rec,) = read_dataset("folder", tmp_path / "root")
    with pytest.raises(DatasetError, match=f"labels.csv: {message}"):
        rec.load_labels()


# -- training, tuning and evaluation inputs: real shards (Ray Data ingest) --------------------

def _broken_copy(train_shards: Path, tmp_path: Path, split: str = "train") -> tuple[Path, dict, Path]:
    copy = Path(shutil.copytree(train_shards, tmp_path / "shards"))
    manifest = json.loads((copy / "manifest.json").read_text())
    subject = manifest["splits"][split][0]
    (rec,) = [r for r in manifest["recordings"] if r["subject"] == subject]
    return copy, manifest, copy / rec["shard"]


def _nothing_made(tmp_path: Path) -> None:
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store").exists()


@pytest.mark.ray
def test_a_corrupt_shard_in_the_train_split_fails_before_training_naming_the_file(train_shards, tmp_path):
    copy, _, shard = _broken_copy(train_shards, tmp_path)
    shard.write_bytes(shard.read_bytes()[:-100])  # the footer is gone
    config = tiny_config(copy, f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    with pytest.raises(TrainingError, match=f"{shard.name}: corrupt or unreadable Parquet shard"):
        train(config, storage_path=tmp_path / "runs", name="x")
    _nothing_made(tmp_path)


@pytest.mark.ray
def test_an_edited_manifest_fails_before_training_naming_the_shard(train_shards, tmp_path):
    copy, manifest, shard = _broken_copy(train_shards, tmp_path)
    rows = pq.read_metadata(shard).num_rows
    for rec in manifest["recordings"]:
        if rec["shard"] == str(shard.relative_to(copy)):
            rec["chunks"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    config = tiny_config(copy, f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    with pytest.raises(TrainingError, match=f"{shard.name}: holds {rows} chunks, the manifest says {rows + 1}"):
        train(config, storage_path=tmp_path / "runs", name="x")
    (copy / "manifest.json").write_text("{\"recordings\": [")
    with pytest.raises(TrainingError, match="manifest.json: unreadable manifest"):
        train(config, storage_path=tmp_path / "runs", name="x")
    _nothing_made(tmp_path)


@pytest.mark.ray
def test_tune_refuses_a_corrupt_shard_before_any_trial(train_shards, tmp_path, capsys, monkeypatch):
    copy, _, shard = _broken_copy(train_shards, tmp_path)
    shard.write_bytes(b"")  # zero bytes
    monkeypatch.chdir(tmp_path)
    code = main(["tune", "--data", str(copy), "--space", "attention", "--storage", str(tmp_path / "searches"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"])
    assert code == 2
    assert f"{shard.name}: corrupt or unreadable Parquet shard" in capsys.readouterr().err
    assert not (tmp_path / "searches").exists() and not (tmp_path / "store").exists()


@pytest.mark.ray
def test_evaluate_refuses_a_corrupt_shard_and_writes_no_report(train_shards, rgbt_model, tmp_path, capsys):
    copy, _, shard = _broken_copy(train_shards, tmp_path, split="test")
    shard.write_bytes(shard.read_bytes()[: len(shard.read_bytes()) // 2])
    code = main(["evaluate", "--model", str(rgbt_model), "--data", str(copy), "--split", "test",
                 "--out", str(tmp_path / "report")])
    assert code == 2
    assert f"{shard.name}: corrupt or unreadable Parquet shard" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()
