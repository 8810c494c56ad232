"""PURE reader on tiny fixtures written in the distributed layout (PNG frames + JSON)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dataset_fixtures import write_pure
from mmrphys.data.datasets import read_dataset
from mmrphys.data.datasets.pure import read
from mmrphys.data.recording import DatasetError


def test_reads_sessions_with_labels_at_frame_capture_times(tmp_path: Path) -> None:
    video, _, expected = write_pure(tmp_path, "01-02", frames=12)
    write_pure(tmp_path, "10-01", frames=6)

    recordings = list(read_dataset("pure", tmp_path))

    assert [r.recording_id for r in recordings] == ["pure/01/02", "pure/10/01"]
    first = recordings[0]
    assert first.fps == 30.0 and first.load_thermal is None
    np.testing.assert_array_equal(first.load_rgb(), video)
    bvp = first.load_labels()["bvp"]
    # exact interpolation needs the ns timestamps kept as integers, not float64
    np.testing.assert_allclose(bvp, expected, atol=1e-6)


def test_flat_layout_with_frames_beside_the_json(tmp_path: Path) -> None:
    video, _, expected = write_pure(tmp_path, "03-05", frames=8, nested=False)
    recording = pickle.loads(pickle.dumps(next(read(tmp_path))))
    np.testing.assert_array_equal(recording.load_rgb(), video)
    np.testing.assert_allclose(recording.load_labels()["bvp"], expected, atol=1e-6)


def test_short_label_file_is_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path, frames=30, label_seconds=0.5)
    with pytest.raises(DatasetError, match=r"01-01\.json: labels cover 0\.00-0\.4\d s .* short"):
        next(read(tmp_path)).load_labels()


def test_missing_label_file_is_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path)
    (tmp_path / "01-01" / "01-01.json").unlink()
    with pytest.raises(DatasetError, match=r"01-01\.json: PURE label JSON is missing"):
        next(read(tmp_path)).load_labels()


def test_invalid_json_is_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path)
    (tmp_path / "01-01" / "01-01.json").write_text('{"/FullPackage": [')
    with pytest.raises(DatasetError, match=r"01-01\.json: not valid JSON"):
        next(read(tmp_path)).load_labels()


def test_json_without_waveform_is_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path)
    path = tmp_path / "01-01" / "01-01.json"
    document = json.loads(path.read_text())
    del document["/FullPackage"][3]["Value"]["waveform"]
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"01-01\.json: /FullPackage entry 3 lacks"):
        next(read(tmp_path)).load_labels()
    path.write_text(json.dumps({"/Image": []}))
    with pytest.raises(DatasetError, match=r"01-01\.json: no '/FullPackage'"):
        next(read(tmp_path)).load_labels()


def test_nan_labels_are_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path)
    path = tmp_path / "01-01" / "01-01.json"
    document = json.loads(path.read_text())
    document["/FullPackage"][5]["Value"]["waveform"] = float("nan")
    path.write_text(json.dumps(document))  # json writes the NaN literal
    with pytest.raises(DatasetError, match=r"01-01\.json: waveform has 1 non-finite.*sample 5"):
        next(read(tmp_path)).load_labels()


def test_missing_frames_are_detected_against_the_json(tmp_path: Path) -> None:
    write_pure(tmp_path, frames=10)
    sorted((tmp_path / "01-01" / "01-01").iterdir())[4].unlink()
    with pytest.raises(DatasetError, match=r"/Image lists 10 frames but .* holds 9"):
        next(read(tmp_path)).load_labels()


def test_corrupt_frame_is_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path, frames=6)
    frame = sorted((tmp_path / "01-01" / "01-01").iterdir())[2]
    frame.write_bytes(frame.read_bytes()[:20])
    with pytest.raises(DatasetError, match=rf"{frame.name}: unreadable image frame"):
        next(read(tmp_path)).load_rgb()


def test_missing_frame_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "02-01").mkdir()
    (tmp_path / "02-01" / "02-01.json").write_text("{}")
    with pytest.raises(DatasetError, match=r"02-01: PURE frame folder holds no Image<ns>\.png"):
        next(read(tmp_path)).load_rgb()


def test_empty_dataset_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DatasetError, match=r"no PURE recordings found"):
        list(read(tmp_path))


def test_label_timestamps_that_do_not_increase_are_rejected(tmp_path: Path) -> None:
    write_pure(tmp_path)
    path = tmp_path / "01-01" / "01-01.json"
    document = json.loads(path.read_text())
    document["/FullPackage"][7]["Timestamp"] = document["/FullPackage"][6]["Timestamp"]
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"01-01\.json: label timestamps do not increase at sample 7"):
        next(read(tmp_path)).load_labels()
