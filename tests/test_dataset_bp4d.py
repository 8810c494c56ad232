"""BP4D+ reader on tiny fixtures in the reference's preprocessed per-frame .npy layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dataset_fixtures import write_bp4d
from mmrphys.data.datasets import read_dataset
from mmrphys.data.datasets.bp4d import read
from mmrphys.data.recording import DatasetError


def test_reads_pre_cropped_rgb_thermal_and_both_labels(tmp_path: Path) -> None:
    expected = write_bp4d(tmp_path, "F001T1", frames=12)
    (tmp_path / "F001T1" / "RGB" / "._00003.npy").write_bytes(b"macOS resource fork")
    write_bp4d(tmp_path, "M012_T10", frames=4)
    write_bp4d(tmp_path, "F001T2", frames=4)

    recordings = list(read_dataset("bp4d", tmp_path))

    assert [r.recording_id for r in recordings] == ["bp4d/F001/T1", "bp4d/F001/T2", "bp4d/M012/T10"]
    first = pickle.loads(pickle.dumps(recordings[0]))
    assert first.fps == 25.0 and first.pre_cropped and first.thermal_unit == "degC"
    np.testing.assert_array_equal(first.load_rgb(), expected["rgb"])
    thermal = first.load_thermal()
    assert thermal.dtype == np.float32
    np.testing.assert_array_equal(thermal, expected["thermal"])
    labels = first.load_labels()
    assert set(labels) == {"bvp", "rsp"}
    np.testing.assert_array_equal(labels["bvp"], expected["bvp"])
    np.testing.assert_array_equal(labels["rsp"], expected["rsp"])


@pytest.mark.parametrize("rgb_dtype", ["float01", "float255"])
def test_float_frames_on_either_scale_become_uint8(tmp_path: Path, rgb_dtype: str) -> None:
    expected = write_bp4d(tmp_path, frames=3, rgb_dtype=rgb_dtype)
    np.testing.assert_array_equal(next(read(tmp_path)).load_rgb(), expected["rgb"])


def test_short_label_file_is_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=8, label_rows=5)
    with pytest.raises(DatasetError, match=r"labels\.npy: 5 label rows for 8 frames; the label file is short"):
        next(read(tmp_path)).load_labels()


def test_missing_or_single_column_label_file_is_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=4)
    labels = tmp_path / "F001T1" / "labels.npy"
    np.save(labels, np.zeros(4))
    with pytest.raises(DatasetError, match=r"labels\.npy: label array of shape \(4,\)"):
        next(read(tmp_path)).load_labels()
    labels.unlink()
    with pytest.raises(DatasetError, match=r"labels\.npy: BP4D\+ label file is missing"):
        next(read(tmp_path)).load_labels()


def test_nan_labels_are_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=6)
    labels = tmp_path / "F001T1" / "labels.npy"
    table = np.load(labels)
    table[3, 1] = np.nan
    np.save(labels, table)
    with pytest.raises(DatasetError, match=r"labels\.npy: RSP \(column 1\) has 1 non-finite.*sample 3"):
        next(read(tmp_path)).load_labels()


def test_rgb_thermal_frame_count_mismatch_is_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=6)
    (tmp_path / "F001T1" / "Thermal" / "00005.npy").unlink()
    recording = next(read(tmp_path))
    for load in (recording.load_rgb, recording.load_thermal, recording.load_labels):
        with pytest.raises(DatasetError, match=r"Thermal: 5 thermal frames but .*RGB has 6 RGB frames"):
            load()


def test_corrupt_or_pickled_frame_is_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=4)
    frame = tmp_path / "F001T1" / "RGB" / "00002.npy"
    frame.write_bytes(frame.read_bytes()[:40])
    with pytest.raises(DatasetError, match=r"00002\.npy: unreadable \.npy file"):
        next(read(tmp_path)).load_rgb()
    np.save(frame, np.array([{"not": "pixels"}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"00002\.npy: unreadable \.npy file"):
        next(read(tmp_path)).load_rgb()


def test_frames_of_different_shapes_are_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=4)
    np.save(tmp_path / "F001T1" / "Thermal" / "00001.npy", np.zeros((5, 5), np.float32))
    with pytest.raises(DatasetError, match=r"00001\.npy: float32 frame of shape \(5, 5\) differs"):
        next(read(tmp_path)).load_thermal()


def test_thermal_crop_must_match_rgb_crop(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=3)
    for index in range(3):
        np.save(tmp_path / "F001T1" / "Thermal" / f"{index:05d}.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(DatasetError, match=r"thermal frames are \(4, 4\) but RGB frames are \(9, 9\)"):
        next(read(tmp_path)).load_thermal()


def test_missing_frame_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "F002T3" / "RGB").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"F002T3/RGB: BP4D\+ RGB frame folder holds no \.npy"):
        next(read(tmp_path)).load_rgb()
    np.save(tmp_path / "F002T3" / "RGB" / "0.npy", np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"F002T3/thermal: BP4D\+ thermal frame folder is missing"):
        next(read(tmp_path)).load_rgb()


def test_empty_dataset_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "Physiology").mkdir()
    with pytest.raises(DatasetError, match=r"no BP4D\+ recordings found"):
        list(read(tmp_path))


def test_frames_of_the_wrong_shape_or_range_are_rejected(tmp_path: Path) -> None:
    write_bp4d(tmp_path, frames=2)
    task = tmp_path / "F001T1"
    for index in range(2):
        np.save(task / "RGB" / f"{index:05d}.npy", np.full((9, 9, 3), 300.0))
        np.save(task / "Thermal" / f"{index:05d}.npy", np.zeros((9, 9, 2), np.float32))
    recording = next(read(tmp_path))
    with pytest.raises(DatasetError, match=r"RGB: RGB values span \[300, 300\]"):
        recording.load_rgb()
    with pytest.raises(DatasetError, match=r"00000\.npy: thermal frame of shape \(9, 9, 2\); expected \(H, W\)"):
        recording.load_thermal()
    for index in range(2):
        np.save(task / "RGB" / f"{index:05d}.npy", np.zeros((9, 9), np.uint8))
    with pytest.raises(DatasetError, match=r"00000\.npy: RGB frame of shape \(9, 9\); expected \(H, W, 3\)"):
        recording.load_rgb()
