"""SCAMPS reader on tiny .mat files written like MATLAB's `save -v7.3` (HDF5)."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from dataset_fixtures import write_matlab_v73, write_scamps
from mmrphys.data.datasets import read_dataset
from mmrphys.data.datasets.scamps import read
from mmrphys.data.recording import DatasetError


def test_reads_every_file_with_video_in_frame_order_and_both_labels(tmp_path: Path) -> None:
    video, ppg, br = write_scamps(tmp_path, "P000002", frames=10)
    write_scamps(tmp_path, "P000010", frames=6)
    write_scamps(tmp_path, "P000001", frames=6)

    recordings = list(read_dataset("scamps", tmp_path))

    assert [r.recording_id for r in recordings] == [
        "scamps/P000001/1", "scamps/P000002/1", "scamps/P000010/1"]
    second = pickle.loads(pickle.dumps(recordings[1]))
    assert second.fps == 30.0 and second.load_thermal is None
    with h5py.File(tmp_path / "P000002.mat") as mat:  # stored reversed, as MATLAB does
        assert mat["Xsub"].shape == (3, 16, 12, 10)
    frames = second.load_rgb()
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, video)
    labels = second.load_labels()
    np.testing.assert_allclose(labels["bvp"], ppg)
    np.testing.assert_allclose(labels["rsp"], br)


def test_frame_last_layout_is_accepted(tmp_path: Path) -> None:
    video, ppg, _ = write_scamps(tmp_path, frames=7, layout="HWCT")
    recording = next(read(tmp_path))
    np.testing.assert_array_equal(recording.load_rgb(), video)
    np.testing.assert_allclose(recording.load_labels()["bvp"], ppg)


def test_short_label_is_rejected(tmp_path: Path) -> None:
    write_scamps(tmp_path, frames=10, rsp_frames=8)
    with pytest.raises(DatasetError, match=r"P000001\.mat: d_br has 8 samples but Xsub has 10 frames"):
        next(read(tmp_path)).load_labels()


def test_video_and_label_length_mismatch_names_the_layouts(tmp_path: Path) -> None:
    video = np.zeros((10, 12, 16, 3))
    write_matlab_v73(tmp_path / "P000001.mat", {"Xsub": video, "d_ppg": np.zeros((9, 1)),
                                                "d_br": np.zeros((9, 1))})
    recording = next(read(tmp_path))
    for load in (recording.load_rgb, recording.load_labels):
        with pytest.raises(DatasetError, match=r"MATLAB shape \(10, 12, 16, 3\).*T = 9"):
            load()


def test_missing_label_variable_is_rejected(tmp_path: Path) -> None:
    write_matlab_v73(tmp_path / "P000001.mat", {"Xsub": np.zeros((4, 12, 16, 3)),
                                                "d_ppg": np.zeros((4, 1))})
    with pytest.raises(DatasetError, match=r"P000001\.mat: no 'd_br' array"):
        next(read(tmp_path)).load_labels()


def test_nan_labels_are_rejected(tmp_path: Path) -> None:
    ppg = np.zeros((4, 1))
    ppg[2] = np.nan
    write_matlab_v73(tmp_path / "P000001.mat", {"Xsub": np.zeros((4, 12, 16, 3)),
                                                "d_ppg": ppg, "d_br": np.zeros((4, 1))})
    with pytest.raises(DatasetError, match=r"P000001\.mat: d_ppg has 1 non-finite.*sample 2"):
        next(read(tmp_path)).load_labels()


def test_out_of_range_or_nan_pixels_are_rejected(tmp_path: Path) -> None:
    write_matlab_v73(tmp_path / "P000001.mat", {"Xsub": np.full((4, 12, 16, 3), 200.0),
                                                "d_ppg": np.zeros((4, 1)), "d_br": np.zeros((4, 1))})
    with pytest.raises(DatasetError, match=r"'Xsub' values span \[200, 200\]"):
        next(read(tmp_path)).load_rgb()
    write_matlab_v73(tmp_path / "P000001.mat", {"Xsub": np.full((4, 12, 16, 3), np.nan),
                                                "d_ppg": np.zeros((4, 1)), "d_br": np.zeros((4, 1))})
    with pytest.raises(DatasetError, match=r"'Xsub' holds NaN"):
        next(read(tmp_path)).load_rgb()


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    write_scamps(tmp_path, frames=10)
    path = tmp_path / "P000001.mat"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DatasetError, match=r"P000001\.mat: (not a readable MATLAB v7\.3|cannot read)"):
        next(read(tmp_path)).load_rgb()


def test_old_matlab_format_gets_a_helpful_error(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "P000001.mat", {"d_ppg": np.zeros(4)})
    with pytest.raises(DatasetError, match=r"MATLAB v5/v7 MAT-file.*-v7\.3"):
        next(read(tmp_path)).load_labels()


def test_empty_dataset_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no SCAMPS recordings found"):
        list(read(tmp_path))


def test_label_that_is_not_a_vector_is_rejected(tmp_path: Path) -> None:
    write_matlab_v73(tmp_path / "P000001.mat", {"Xsub": np.zeros((4, 12, 16, 3)),
                                                "d_ppg": np.zeros((4, 2)), "d_br": np.zeros((4, 1))})
    with pytest.raises(DatasetError, match=r"P000001\.mat: 'd_ppg' has shape \(2, 4\); expected a vector"):
        next(read(tmp_path)).load_labels()
