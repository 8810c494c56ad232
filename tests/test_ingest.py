"""Ingest on the shared local Ray cluster: shards, manifest, subject splits, the
validation report for every kind of bad recording, resumability and atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pyarrow.parquet as pq
import pytest

from mmrphys.config import ConfigError
from mmrphys.data.recording import DatasetError
from mmrphys.data.schema import check_shard
from mmrphys.config import IngestConfig, PreprocessingConfig, SyntheticConfig
from mmrphys.data.synthetic import generate_dataset
from pipelines.data.ingest import ingest, split_by_fraction, split_by_folds
from pipelines.data.ingest_recording import atomic_write_bytes

CONFIG = IngestConfig(chunk_frames=40, preprocessing=PreprocessingConfig(detect_every=10))
GOOD = ["S01", "S02", "S03", "S04"]


def _variant(root: Path, source: str, subject: str) -> Path:
    """A copy of recording `source` under a new subject id."""
    folder = shutil.copytree(root / source, root / f"{subject}_1")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "subject": subject}))
    return folder


def _bad_recordings(root: Path) -> None:
    """One recording per kind of bad input, each its own subject."""
    data = (_variant(root, "S01_1", "Btrunc") / "rgb.avi").read_bytes()
    (root / "Btrunc_1" / "rgb.avi").write_bytes(data[: len(data) // 2])

    (_variant(root, "S01_1", "Bnolabels") / "labels.csv").unlink()

    labels = _variant(root, "S01_1", "Bshort") / "labels.csv"
    labels.write_text("\n".join(labels.read_text().splitlines()[:60]))

    labels = _variant(root, "S01_1", "Bnan") / "labels.csv"
    lines = labels.read_text().splitlines()
    for i in range(5, 15):  # frames 4..13 lie in chunk 0 only
        t, _, rsp = lines[i].split(",")
        lines[i] = f"{t},,{rsp}"
    labels.write_text("\n".join(lines))

    thermal = _variant(root, "S01_1", "Bmismatch") / "thermal.npy"
    np.save(thermal, np.load(thermal)[:170])

    meta = _variant(root, "S01_1", "Bfps") / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "fps": 25.0}))

    noface = _variant(root, "S01_1", "Bnoface")
    (noface / "face_boxes.csv").unlink()
    noise = np.random.default_rng(0).integers(0, 256, (180, 48, 64, 3), dtype=np.uint8)
    np.save(noface / "rgb.npy", noise)
    (noface / "rgb.avi").unlink()

    # a real face photograph (shipped with matplotlib) and no boxes: the Haar detector's turn
    detect = _variant(root, "S02_1", "Ddetect")
    for name in ("face_boxes.csv", "rgb.avi", "thermal.npy"):
        (detect / name).unlink()
    photo = cv2.cvtColor(cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    frames = np.full((180, 120, 120, 3), 90, np.uint8)
    frames[:, 2:119, 10:110] = cv2.resize(photo, (100, 117), interpolation=cv2.INTER_AREA)
    np.save(detect / "rgb.npy", frames)


@pytest.fixture(scope="module")
def ingested(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    generate_dataset(root, subjects=len(GOOD), seconds=6.0, seed=2, config=SyntheticConfig(width=64, height=48))
    _bad_recordings(root)
    out = tmp_path_factory.mktemp("shards")
    manifest = ingest("synthetic", root, out, config=CONFIG, progress=False)
    return root, out, manifest


def _reasons(manifest: dict, subject: str) -> list[str]:
    return [r["reason"] for r in manifest["validation_report"] if r["recording_id"] == f"synthetic/{subject}/1"]


def test_manifest_counts_and_subject_splits(ingested):
    _, out, manifest = ingested
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["schema_version"] == 1 and manifest["ingest_config"]["chunk_frames"] == 40
    splits = manifest["splits"]
    assert set(splits) == {"train", "val", "test"}
    everyone = [s for subjects in splits.values() for s in subjects]
    # every subject in exactly one split
    assert sorted(everyone) == sorted(set(everyone)) and len(everyone) == manifest["counts"]["subjects"] == 12
    counts = manifest["counts"]
    # 180 frames -> 4 chunks of 40; S01-S04, Ddetect accepted whole, Bnan loses chunk 0
    assert counts["accepted_recordings"] == 6 and counts["rejected_recordings"] == 6
    assert counts["chunks"] == 5 * 4 + 3 and counts["rejected_chunks"] == 1
    assert sum(counts["chunks_per_split"].values()) == counts["chunks"]


@pytest.mark.parametrize(
    "subject, reason",
    [
        ("Btrunc", r"rgb.avi: truncated or corrupt video"),
        ("Bnolabels", r"labels.csv: label file is missing"),
        ("Bshort", r"Bshort_1: bvp labels cover \d+ frames \(\d.\d s\), the video has 180"),
        ("Bmismatch", r"RGB has 180 frames, thermal has 170"),
        ("Bfps", r"rgb.avi: wrong fps: the video declares 30 fps, meta.json says 25"),
        ("Bnoface", r"Bnoface_1: no face found in any of the 18 frames checked"),
        ("Bnan", r"bvp labels have \d+ NaN/inf of 40 samples"),
    ],
)
def test_bad_input_is_rejected_with_its_reason(ingested, subject, reason):
    import re

    reasons = _reasons(ingested[2], subject)
    assert len(reasons) == 1 and re.search(reason, reasons[0]), reasons


def test_nan_labels_reject_only_the_chunk_they_touch(ingested):
    _, out, manifest = ingested
    (entry,) = [r for r in manifest["validation_report"] if r["recording_id"] == "synthetic/Bnan/1"]
    assert entry["chunk_index"] == 0 and entry["start_frame"] == 0
    (rec,) = [r for r in manifest["recordings"] if r["subject"] == "Bnan"]
    table = pq.read_table(out / rec["shard"], columns=["chunk_index"])
    assert table.column("chunk_index").to_pylist() == [1, 2, 3]


def test_recording_without_boxes_goes_through_the_haar_detector(ingested):
    (rec,) = [r for r in ingested[2]["recordings"] if r["subject"] == "Ddetect"]
    assert rec["status"] == "accepted" and rec["chunks"] == 4
    assert rec["frames_without_face"] == 0


def test_shards_follow_the_schema(ingested):
    _, out, manifest = ingested
    for rec in manifest["recordings"]:
        if rec["status"] != "accepted":
            assert rec["shard"] is None
            continue
        check_shard(out / rec["shard"])
        table = pq.read_table(out / rec["shard"])
        row = table.slice(0, 1).to_pylist()[0]
        assert row["recording_id"] == rec["recording_id"] and row["frames"] == 40 and row["size"] == 72
        assert len(row["rgb"]) == 40 * 72 * 72 * 3 and row["rgb_dtype"] == "uint8"
        if rec["has_thermal"]:
            assert len(row["thermal"]) == 40 * 72 * 72 * 2 and row["thermal_dtype"] == "float16"
            assert row["thermal_unit"] == "celsius"
        else:  # the photo recording has no thermal camera
            assert row["thermal"] is None and row["thermal_unit"] is None
        assert len(row["bvp"]) == len(row["rsp"]) == 40
        assert 30 <= row["hr_bpm"] <= 200


def test_rerun_skips_finished_recordings_and_redoes_missing_ones(ingested, capsys):
    root, out, manifest = ingested
    shards = sorted((out / "shards").glob("*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    again = ingest("synthetic", root, out, config=CONFIG)
    assert "12 already done, 0 to process" in capsys.readouterr().out
    assert {k: v for k, v in again.items() if k != "created"} == {k: v for k, v in manifest.items() if k != "created"}
    assert all(p.stat().st_mtime_ns == stamps[p] for p in shards)

    redo = out / next(r["shard"] for r in manifest["recordings"] if r["status"] == "accepted")
    redo.with_suffix(".json").unlink()
    # what a SIGKILLed run leaves: a half-written shard and manifest under temporary names
    orphans = [redo.with_name(f".{redo.name}.0123abcd.tmp"), out / ".manifest.json.4567ef.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    ingest("synthetic", root, out, config=CONFIG)
    printed = capsys.readouterr().out
    assert "11 already done, 1 to process; removed 2 partial files of an interrupted run" in printed
    assert redo.stat().st_mtime_ns != stamps[redo]
    assert all(p.stat().st_mtime_ns == stamps[p] for p in shards if p != redo)
    # no temporary file survives
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_failure_is_reported_apart_from_rejections_never_cached_and_retried(ray_cluster, tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.data.ingest import IngestIncomplete
    from pipelines.data.ingest_recording import TASK_RETRIES

    root, out = tmp_path / "raw", tmp_path / "out"
    generate_dataset(root, subjects=3, seconds=3.0, seed=2, config=SyntheticConfig(width=64, height=48))
    thermal = root / "S02_1" / "thermal.npy"
    kept = thermal.read_bytes()
    # not bad data but an OS error reading it (here: a folder where the file should be)
    thermal.unlink()
    thermal.mkdir()
    (_variant(root, "S01_1", "Bnolabels") / "labels.csv").unlink()
    args = ["ingest", "--dataset", "synthetic", "--root", str(root), "--out", str(out),
            "--chunk-frames", "40", "ingest.preprocessing.detect_every=10"]

    assert main(args) == 2
    captured = capsys.readouterr()
    assert "failed: 1 recordings" in captured.out and "rejected: 1 recordings" in captured.out
    assert "FAILED synthetic/S02/1: IsADirectoryError" in captured.out
    assert "1 of 4 recordings failed" in captured.err and "run the same ingest again" in captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert (counts["accepted_recordings"], counts["rejected_recordings"], counts["failed_recordings"]) == (2, 1, 1)
    [failure] = manifest["failures"]
    assert failure["recording_id"] == "synthetic/S02/1" and str(thermal) in failure["reason"]
    assert failure["attempts"] == TASK_RETRIES + 1  # Ray retried the transient error, then gave up
    assert [r["recording_id"] for r in manifest["validation_report"]] == ["synthetic/Bnolabels/1"]
    sidecars = {json.loads(p.read_text())["recording_id"]: json.loads(p.read_text())
                for p in (out / "shards").glob("*.json")}
    assert sidecars["synthetic/S02/1"]["status"] == "failed" and sidecars["synthetic/S02/1"]["shard"] is None
    assert "Traceback" in sidecars["synthetic/S02/1"]["traceback"]

    # the cause goes away: only the failed recording is redone, the rejection stays cached
    thermal.rmdir()
    thermal.write_bytes(kept)
    manifest = ingest("synthetic", root, out, config=CONFIG)
    assert "3 already done, 1 to process" in capsys.readouterr().out
    counts = manifest["counts"]
    assert (counts["accepted_recordings"], counts["rejected_recordings"], counts["failed_recordings"]) == (3, 1, 0)
    assert manifest["failures"] == []

    thermal.unlink()
    thermal.mkdir()
    with pytest.raises(IngestIncomplete, match="1 of 4 recordings failed") as failed:
        ingest("synthetic", root, out, config=CONFIG, overwrite=True, progress=False)
    assert failed.value.manifest["counts"]["failed_recordings"] == 1


def test_shard_settings_not_the_split_decide_what_is_redone():
    # a recording is skipped only when its sidecar has the same shard key
    assert CONFIG.shard_key() == CONFIG.replace(split=(0.5, 0.25, 0.25), seed=9, folds=3).shard_key()
    assert CONFIG.shard_key() != CONFIG.replace(chunk_frames=60).shard_key()
    float16 = CONFIG.replace(preprocessing=CONFIG.preprocessing.replace(rgb_dtype="float16"))
    assert CONFIG.shard_key() != float16.shard_key()


def test_an_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "shard.parquet"

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a shard")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, crash)
    assert list(tmp_path.iterdir()) == []


def test_empty_dataset_fails_before_any_work(tmp_path):
    with pytest.raises(DatasetError, match="no recording folders"):
        ingest("folder", tmp_path, tmp_path / "out", config=CONFIG, progress=False)
    assert not (tmp_path / "out").exists()  # nothing is created before the input is validated


def test_fraction_split_is_deterministic_and_disjoint():
    subjects = [f"P{i}" for i in range(10)]
    a = split_by_fraction(subjects, (0.7, 0.15, 0.15), seed=1)
    assert a == split_by_fraction(list(reversed(subjects)), (0.7, 0.15, 0.15), seed=1)
    assert [len(a[k]) for k in ("train", "val", "test")] == [7, 2, 1] or [len(a[k]) for k in ("train", "val", "test")] == [7, 1, 2]
    assert sorted(sum(a.values(), [])) == sorted(subjects)
    # few subjects: each wanted split still gets one
    assert [len(v) for v in split_by_fraction(["a", "b", "c"], (0.8, 0.1, 0.1), 0).values()] == [1, 1, 1]
    assert split_by_fraction(["a", "b"], (1.0, 0.0, 0.0), 0) == {"train": ["a", "b"], "val": [], "test": []}


def test_folds_test_every_subject_exactly_once_and_never_overlap():
    subjects = [f"P{i}" for i in range(7)]
    folds = split_by_folds(subjects, 3, seed=0)
    assert sorted(s for f in folds for s in f["test"]) == sorted(subjects)
    for fold in folds:
        parts = [set(fold[k]) for k in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert set().union(*parts) == set(subjects)
    with pytest.raises(DatasetError, match="3 folds need at least 3 subjects"):
        split_by_folds(["a", "b"], 3, 0)
    with pytest.raises(ConfigError, match="IngestConfig.folds"):
        IngestConfig(folds=2)
    with pytest.raises(ConfigError, match="IngestConfig.split"):
        IngestConfig(split=(0.5, 0.5))


def test_ingest_command_prints_counts_rejections_and_paths(ingested, capsys):
    from pipelines.cli import main

    root, out, _ = ingested
    # same settings as the fixture: nothing to redo, so no Ray work
    assert main(["ingest", "--dataset", "synthetic", "--root", str(root), "--out", str(out),
                 "--chunk-frames", "40", "ingest.preprocessing.detect_every=10"]) == 0
    printed = capsys.readouterr().out
    assert "23 chunks from 6 of 12 recordings (12 subjects)" in printed
    assert "failed: 0 recordings" in printed
    assert "rejected synthetic/Bnan/1 chunk 0: bvp labels have" in printed
    assert f"manifest and validation report: {out / 'manifest.json'}" in printed
    assert main(["ingest", "--dataset", "folder", "--root", str(out / "nothing"), "--out", str(out)]) == 2
    assert "dataset folder does not exist" in capsys.readouterr().err
    assert main(["ingest", "--dataset", "folder", "--root", str(root), "--out", str(out), "model.frames=8"]) == 2
    assert "unknown section 'model'" in capsys.readouterr().err
