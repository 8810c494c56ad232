"""The generic folder reader on fixtures written in each supported variant of its layout."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from mmrphys.data.datasets import read_dataset
from mmrphys.data.recording import DatasetError
from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import generate_dataset

SMALL = SyntheticConfig(width=64, height=48)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, subjects=2, seconds=1.0, seed=1, config=SMALL)
    return root


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_reads_what_the_generator_wrote(synthetic_root):
    recordings = list(read_dataset("synthetic", synthetic_root))
    assert [r.recording_id for r in recordings] == ["synthetic/S01/1", "synthetic/S02/1"]
    rec = recordings[0]
    assert rec.fps == 30.0 and rec.thermal_unit == "celsius" and not rec.pre_cropped
    rgb, thermal, labels, boxes = rec.load_rgb(), rec.load_thermal(), rec.load_labels(), rec.load_face_boxes()
    assert rgb.shape == (30, 48, 64, 3) and rgb.dtype == np.uint8
    assert thermal.shape == (30, 48, 64) and thermal.dtype == np.float32
    assert labels["bvp"].shape == (30,) and labels["rsp"].shape == (30,)
    assert boxes.shape == (30, 4)
    # the loaders pickle, so each recording can be decoded in its own Ray task
    import pickle

    assert np.array_equal(pickle.loads(pickle.dumps(rec)).load_rgb(), rgb)


def test_frame_folders_and_16_bit_thermal_with_scale(tmp_path):
    rec_dir = tmp_path / "root" / "alice_morning"
    (rec_dir / "rgb").mkdir(parents=True)
    (rec_dir / "thermal").mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 8, 10, 3), dtype=np.uint8)
    raw = rng.integers(29000, 31000, (5, 8, 10), dtype=np.uint16)
    for i in range(5):
        cv2.imwrite(str(rec_dir / "rgb" / f"{i:04d}.png"), rgb[i][..., ::-1])
        cv2.imwrite(str(rec_dir / "thermal" / f"{i:04d}.png"), raw[i])
    (rec_dir / "meta.json").write_text(json.dumps(
        {"subject": "alice", "fps": 10, "thermal_scale": 0.01, "thermal_offset": -273.15, "thermal_unit": "celsius"}))
    (rec_dir / "labels.csv").write_text("time,bvp,quality\n" + "\n".join(f"{t / 20},{t},0.5" for t in range(10)))
    (rec, ) = read_dataset("folder", tmp_path / "root")
    assert rec.recording_id == "folder/alice/alice_morning"
    assert np.array_equal(rec.load_rgb(), rgb)
    assert np.allclose(rec.load_thermal(), raw * 0.01 - 273.15, atol=1e-3)
    labels = rec.load_labels()
    assert set(labels) == {"bvp", "quality"} and np.allclose(labels["bvp"], [0, 2, 4, 6, 8])
    assert np.allclose(labels["quality"], 0.5)
    assert rec.load_face_boxes is None


def test_video_fps_must_agree_with_meta(synthetic_root, tmp_path):
    rec_dir = _copy(synthetic_root / "S01_1", tmp_path / "root" / "S01_1")
    meta = json.loads((rec_dir / "meta.json").read_text())
    (rec_dir / "meta.json").write_text(json.dumps({**meta, "fps": 25.0}))
    (rec,) = read_dataset("folder", tmp_path / "root")
    with pytest.raises(DatasetError, match="rgb.avi: wrong fps: the video declares 30 fps, meta.json says 25"):
        rec.load_rgb()
    # without fps in meta.json the container's rate is used
    (rec_dir / "meta.json").write_text(json.dumps({"subject": "S01"}))
    (rec,) = read_dataset("folder", tmp_path / "root")
    assert rec.fps == 30.0


def test_bad_layouts_name_the_file(synthetic_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty: no recording folders"):
        list(read_dataset("folder", empty))
    with pytest.raises(DatasetError, match="does not exist"):
        list(read_dataset("folder", tmp_path / "absent"))

    root = tmp_path / "root"
    rec_dir = _copy(synthetic_root / "S01_1", root / "S01_1")
    np.save(rec_dir / "rgb.npy", np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="exactly one RGB source.*rgb.npy, rgb.avi"):
        list(read_dataset("folder", root))
    (rec_dir / "rgb.npy").unlink()

    (rec_dir / "meta.json").write_text(json.dumps({"fps": 30}))
    with pytest.raises(DatasetError, match="meta.json: needs a 'subject'"):
        list(read_dataset("folder", root))
    (rec_dir / "meta.json").write_text(json.dumps({"subject": "S01", "fps": -3}))
    with pytest.raises(DatasetError, match="'fps' must be a positive number"):
        list(read_dataset("folder", root))
    (rec_dir / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match="meta.json: cannot read"):
        list(read_dataset("folder", root))


def test_label_file_problems_surface_when_loading(synthetic_root, tmp_path):
    root = tmp_path / "root"
    rec_dir = _copy(synthetic_root / "S01_1", root / "S01_1")
    labels = rec_dir / "labels.csv"
    text = labels.read_text()
    labels.unlink()
    (rec,) = read_dataset("folder", root)
    with pytest.raises(DatasetError, match="labels.csv: label file is missing"):
        rec.load_labels()
    labels.write_text("t,ppg\n0,1\n")
    with pytest.raises(DatasetError, match="header must name 'time' and 'bvp'"):
        rec.load_labels()
    lines = text.splitlines()
    lines[3] = "0.1,abc,0.2"
    labels.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match="labels.csv: line 4, column 'bvp': not a number: 'abc'"):
        rec.load_labels()
    # a NaN (empty) label is kept as NaN: the ingest rejects the chunks it touches
    lines[3] = "0.066667,,0.2"
    labels.write_text("\n".join(lines))
    assert np.isnan(rec.load_labels()["bvp"]).any()


def test_pre_cropped_flag_and_numpy_sources(tmp_path):
    rec_dir = tmp_path / "root" / "r1"
    rec_dir.mkdir(parents=True)
    np.save(rec_dir / "rgb.npy", np.zeros((4, 9, 9, 3), np.uint8))
    np.save(rec_dir / "thermal.npy", np.zeros((4, 9, 9), np.float16))
    (rec_dir / "meta.json").write_text(json.dumps({"subject": 7, "session": "a", "fps": 25, "pre_cropped": True}))
    (rec,) = read_dataset("folder", tmp_path / "root")
    assert rec.pre_cropped and rec.subject == "7" and rec.load_thermal().dtype == np.float32
    np.save(rec_dir / "rgb.npy", np.zeros((4, 9, 9), np.uint8))
    with pytest.raises(DatasetError, match="rgb.npy: expected uint8 \\(T, H, W, 3\\)"):
        rec.load_rgb()
