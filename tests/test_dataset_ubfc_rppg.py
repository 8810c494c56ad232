"""UBFC-rPPG reader on tiny fixtures written in the DATASET_2 layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from dataset_fixtures import pulse, write_ubfc, write_ubfc_dataset1
from mmrphys.data.datasets import read_dataset
from mmrphys.data.datasets.ubfc_rppg import read
from mmrphys.data.recording import DatasetError


def test_reads_every_subject_with_frames_and_labels_per_frame(tmp_path: Path) -> None:
    video1, ppg1 = write_ubfc(tmp_path, "subject1", frames=20)
    write_ubfc(tmp_path, "subject10", frames=12)
    write_ubfc(tmp_path, "subject2", frames=12)
    (tmp_path / "notes").mkdir()  # not a subject folder

    recordings = list(read_dataset("ubfc-rppg", tmp_path))

    assert [r.recording_id for r in recordings] == [
        "ubfc-rppg/subject1/1", "ubfc-rppg/subject2/1", "ubfc-rppg/subject10/1"]
    first = recordings[0]
    assert first.fps == pytest.approx(30.0)
    assert first.load_thermal is None and not first.pre_cropped
    np.testing.assert_array_equal(first.load_rgb(), video1)  # lossless, RGB order
    labels = first.load_labels()
    assert set(labels) == {"bvp"}
    np.testing.assert_allclose(labels["bvp"], ppg1, atol=1e-8)


def test_recordings_survive_pickling(tmp_path: Path) -> None:
    video, ppg = write_ubfc(tmp_path, frames=10)
    recording = pickle.loads(pickle.dumps(next(read(tmp_path))))
    np.testing.assert_array_equal(recording.load_rgb(), video)
    np.testing.assert_allclose(recording.load_labels()["bvp"], ppg, atol=1e-8)


def test_labels_at_another_rate_are_resampled_to_frame_times(tmp_path: Path) -> None:
    label_times = np.arange(0, 1.2, 1 / 64)  # 64 Hz oximeter, 1.2 s; video 30 frames = 1 s
    write_ubfc(tmp_path, frames=30, label_times=label_times)
    bvp = next(read(tmp_path)).load_labels()["bvp"]
    assert bvp.shape == (30,)
    np.testing.assert_allclose(bvp, pulse(np.arange(30) / 30.0), atol=0.01)


def test_short_label_file_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=30, label_times=np.arange(15) / 30.0)
    with pytest.raises(DatasetError, match=r"ground_truth\.txt.*short"):
        next(read(tmp_path)).load_labels()


def test_missing_label_file_names_it(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    (tmp_path / "subject1" / "ground_truth.txt").unlink()
    with pytest.raises(DatasetError, match=r"subject1/ground_truth\.txt.*missing"):
        next(read(tmp_path)).load_labels()


def test_ground_truth_without_three_lines_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    gt = tmp_path / "subject1" / "ground_truth.txt"
    gt.write_text(gt.read_text().splitlines()[0] + "\n")
    with pytest.raises(DatasetError, match=r"ground_truth\.txt: expected 3 lines"):
        next(read(tmp_path)).load_labels()


def test_non_numeric_ground_truth_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    gt = tmp_path / "subject1" / "ground_truth.txt"
    gt.write_text(gt.read_text().replace("e-01", "e-0x", 1))
    with pytest.raises(DatasetError, match=r"ground_truth\.txt: line 1 \(PPG\) is not numeric"):
        next(read(tmp_path)).load_labels()


def test_nan_labels_are_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    gt = tmp_path / "subject1" / "ground_truth.txt"
    lines = gt.read_text().splitlines()
    values = lines[0].split()
    values[4] = "nan"
    gt.write_text("\n".join(["  ".join(values), *lines[1:]]) + "\n")
    with pytest.raises(DatasetError, match=r"ground_truth\.txt: PPG \(line 1\).*NaN.*sample 4"):
        next(read(tmp_path)).load_labels()


def test_truncated_video_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=30)
    video = tmp_path / "subject1" / "vid.avi"
    video.write_bytes(video.read_bytes()[: video.stat().st_size * 2 // 3])
    with pytest.raises(DatasetError, match=r"vid\.avi: truncated or corrupt video: the container declares 30 frames, only \d+ decoded"):
        next(read(tmp_path)).load_rgb()


def test_unreadable_video_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    (tmp_path / "subject1" / "vid.avi").write_bytes(b"this is not a video" * 20)
    recording = next(read(tmp_path))
    assert recording.fps == 30.0  # nominal; the loaders report the problem
    with pytest.raises(DatasetError, match=r"vid\.avi: OpenCV cannot open"):
        recording.load_rgb()
    with pytest.raises(DatasetError, match=r"vid\.avi: OpenCV cannot open"):
        recording.load_labels()


def test_missing_video_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    (tmp_path / "subject1" / "vid.avi").unlink()
    with pytest.raises(DatasetError, match=r"vid\.avi: video file does not exist"):
        next(read(tmp_path)).load_rgb()


def test_empty_dataset_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no UBFC-rPPG recordings found"):
        list(read(tmp_path))


def test_missing_dataset_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"UBFC-rPPG dataset folder is missing"):
        list(read(tmp_path / "absent"))


def test_dataset1_folders_are_read_beside_dataset2(tmp_path: Path) -> None:
    video, expected = write_ubfc_dataset1(tmp_path, "12-gt", frames=20, video_name="vid-12.avi")
    write_ubfc(tmp_path, "subject3", frames=5)

    recordings = list(read(tmp_path))

    assert [r.subject for r in recordings] == ["12-gt", "subject3"]
    first = recordings[0]
    assert first.fps == pytest.approx(28.7, abs=0.01)
    np.testing.assert_array_equal(first.load_rgb(), video)
    np.testing.assert_allclose(first.load_labels()["bvp"], expected, atol=1e-3)


def test_dataset1_bad_ground_truth_is_rejected(tmp_path: Path) -> None:
    write_ubfc_dataset1(tmp_path, frames=30, label_seconds=0.5)
    recording = next(read(tmp_path))
    with pytest.raises(DatasetError, match=r"gtdump\.xmp: labels cover .* short"):
        recording.load_labels()
    dump = tmp_path / "5-gt" / "gtdump.xmp"
    lines = dump.read_text().splitlines()
    dump.write_text("\n".join([lines[0], "33,72,98", *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"gtdump\.xmp: line 2 has 3 columns"):
        recording.load_labels()
    dump.write_text("\n".join([lines[0], "33,72,98,nan", *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"gtdump\.xmp: PPG \(column 4\) has 1 non-finite.*sample 1"):
        recording.load_labels()


def test_ground_truth_lines_of_different_lengths_are_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    gt = tmp_path / "subject1" / "ground_truth.txt"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([lines[0], lines[1], " ".join(lines[2].split()[:-2])]) + "\n")
    with pytest.raises(DatasetError, match=r"lines hold \[10, 10, 8\] values; they must be equally long"):
        next(read(tmp_path)).load_labels()


def test_video_without_frames_is_rejected(tmp_path: Path) -> None:
    write_ubfc(tmp_path, frames=10)
    video = tmp_path / "subject1" / "vid.avi"
    video.unlink()
    cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (16, 12)).release()
    recording = next(read(tmp_path))
    with pytest.raises(DatasetError, match=r"vid\.avi: no frame"):
        recording.load_rgb()
    with pytest.raises(DatasetError, match=r"vid\.avi: the video holds no frames"):
        recording.load_labels()
