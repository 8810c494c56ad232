"""iBVP reader on tiny fixtures in the dataset's layout (BMP, raw uint16 thermal, CSV)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dataset_fixtures import HEIGHT, WIDTH, write_ibvp
from mmrphys.data.datasets import read_dataset
from mmrphys.data.datasets.ibvp import read
from mmrphys.data.recording import DatasetError


def test_reads_rgb_thermal_in_celsius_and_labels_with_quality(tmp_path: Path) -> None:
    expected = write_ibvp(tmp_path, "p01_a", frames=12)
    write_ibvp(tmp_path, "p01_b", frames=4)
    write_ibvp(tmp_path, "p10_a", frames=4)

    recordings = list(read_dataset("ibvp", tmp_path))

    assert [r.recording_id for r in recordings] == ["ibvp/p01/a", "ibvp/p01/b", "ibvp/p10/a"]
    first = pickle.loads(pickle.dumps(recordings[0]))
    assert first.fps == 30.0 and first.thermal_unit == "degC"
    np.testing.assert_array_equal(first.load_rgb(), expected["rgb"])  # frame 10 after frame 9
    thermal = first.load_thermal()
    assert thermal.dtype == np.float32 and thermal.shape == (12, HEIGHT, WIDTH)  # rows cut
    np.testing.assert_allclose(thermal, expected["thermal"], atol=1e-3)
    assert 30 <= thermal.min() and thermal.max() < 35  # skin-like degC, not counts or kelvin
    labels = first.load_labels()
    assert set(labels) == {"bvp", "quality"}
    np.testing.assert_allclose(labels["bvp"], expected["bvp"], atol=1e-6)
    np.testing.assert_allclose(labels["quality"], expected["quality"], atol=1e-5)


def test_timed_labels_are_interpolated_to_frame_times(tmp_path: Path) -> None:
    expected = write_ibvp(tmp_path, frames=15, label_hz=250.0)
    labels = next(read(tmp_path)).load_labels()
    assert labels["bvp"].shape == (15,)
    np.testing.assert_allclose(labels["bvp"], expected["bvp"], atol=2e-3)


def test_headerless_labels_at_a_higher_rate_are_stretched_to_the_frames(tmp_path: Path) -> None:
    expected = write_ibvp(tmp_path, frames=10, header=None, label_samples=37)
    labels = next(read(tmp_path)).load_labels()
    np.testing.assert_allclose(labels["bvp"], expected["bvp"], atol=1e-6)


def test_short_label_files_are_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, "p01_a", frames=10, label_samples=6)
    write_ibvp(tmp_path, "p01_b", frames=30, label_hz=60.0)
    csv = tmp_path / "p01_b" / "p01_b_bvp.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:30]) + "\n")
    untimed, timed = list(read(tmp_path))
    with pytest.raises(DatasetError, match=r"p01_a_bvp\.csv: 6 label samples for 10 video frames"):
        untimed.load_labels()
    with pytest.raises(DatasetError, match=r"p01_b_bvp\.csv: labels cover .* short"):
        timed.load_labels()


def test_missing_label_file_is_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path)
    (tmp_path / "p01_a" / "p01_a_bvp.csv").unlink()
    with pytest.raises(DatasetError, match=r"p01_a_bvp\.csv: iBVP label file is missing"):
        next(read(tmp_path)).load_labels()


def test_nan_and_non_numeric_labels_are_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=6)
    csv = tmp_path / "p01_a" / "p01_a_bvp.csv"
    lines = csv.read_text().splitlines()
    lines[3] = "nan," + lines[3].split(",", 1)[1]
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"p01_a_bvp\.csv: bvp has 1 non-finite.*sample 2"):
        next(read(tmp_path)).load_labels()
    lines[3] = "x" + lines[3]
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"p01_a_bvp\.csv: line 4 is not numeric"):
        next(read(tmp_path)).load_labels()


def test_quality_outside_unit_range_is_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=6)
    csv = tmp_path / "p01_a" / "p01_a_bvp.csv"
    lines = csv.read_text().splitlines()
    lines[2] = ",".join([*lines[2].split(",")[:2], "7.0"])
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"signal quality \(column 2\) spans .*expected values in \[0, 1\]"):
        next(read(tmp_path)).load_labels()


def test_rgb_thermal_frame_count_mismatch_is_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=6)
    (tmp_path / "p01_a" / "p01_a_t" / "5.raw").unlink()
    recording = next(read(tmp_path))
    for load in (recording.load_rgb, recording.load_thermal, recording.load_labels):
        with pytest.raises(DatasetError, match=r"p01_a_t: 5 thermal frames but .*p01_a_rgb has 6 RGB"):
            load()


def test_truncated_thermal_frame_is_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=4)
    raw = tmp_path / "p01_a" / "p01_a_t" / "2.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"2\.raw: 100 bytes but 0\.raw has \d+; truncated"):
        next(read(tmp_path)).load_thermal()


def test_thermal_frames_smaller_than_rgb_are_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=3, thermal_rows=HEIGHT - 4)
    with pytest.raises(DatasetError, match=r"0\.raw: \d+ bytes is not a uint16 frame as wide"):
        next(read(tmp_path)).load_thermal()


def test_missing_thermal_folder_and_corrupt_rgb_frame_are_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=3)
    (tmp_path / "p01_a" / "p01_a_rgb" / "1.bmp").write_bytes(b"BM broken")
    with pytest.raises(DatasetError, match=r"1\.bmp: unreadable image frame"):
        next(read(tmp_path)).load_rgb()
    for raw in (tmp_path / "p01_a" / "p01_a_t").iterdir():
        raw.unlink()
    (tmp_path / "p01_a" / "p01_a_t").rmdir()
    with pytest.raises(DatasetError, match=r"p01_a_t: iBVP thermal frame folder is missing"):
        next(read(tmp_path)).load_thermal()


def test_empty_dataset_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "unrelated").mkdir()
    with pytest.raises(DatasetError, match=r"no iBVP recordings found"):
        list(read(tmp_path))


def test_time_stamped_frames_pair_thermal_by_capture_time(tmp_path: Path) -> None:
    expected = write_ibvp(tmp_path, frames=12, stamped=True, drop_thermal=(4,))
    recording = next(read(tmp_path))
    thermal = recording.load_thermal()
    assert thermal.shape == (12, HEIGHT, WIDTH)  # one per RGB frame despite the drop
    others = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
    np.testing.assert_allclose(thermal[others], expected["thermal"][others], atol=1e-3)
    # the dropped frame 4 is bridged by its nearest neighbour, the rest stay in step
    assert any(np.allclose(thermal[4], expected["thermal"][k], atol=1e-3) for k in (3, 5))
    labels = recording.load_labels()  # one label per RGB frame: taken as it is
    np.testing.assert_allclose(labels["bvp"], expected["bvp"], atol=1e-6)


def test_a_gap_in_the_thermal_stream_is_rejected(tmp_path: Path) -> None:
    write_ibvp(tmp_path, frames=12, stamped=True, drop_thermal=(4, 5, 6))
    recording = next(read(tmp_path))
    for load in (recording.load_rgb, recording.load_thermal, recording.load_labels):
        with pytest.raises(DatasetError, match=r"_rgb/\d{13}\.bmp: the nearest thermal frame .* ms away, more than 50 ms"):
            load()


def test_epoch_millisecond_labels_meet_the_frames_capture_times(tmp_path: Path) -> None:
    expected = write_ibvp(tmp_path, frames=20, stamped=True, label_hz=250.0)
    bvp = next(read(tmp_path)).load_labels()["bvp"]
    # the frames' jitter (up to 4 ms) is honoured: compare at the true capture times
    np.testing.assert_allclose(bvp, expected["bvp"], atol=2e-3)


@pytest.mark.parametrize("text, problem", [
    ("", r"empty label file"),
    ("BVP,SQ1,SQ2\n", r"label file has a header but no samples"),
    ("BVP,SQ1,SQ2\n0.1,0.5,0.5\n0.2,0.5\n", r"line 3 has 2 columns; expected at least 3"),
    ("0.1,0.5,0.5\n0.2,0.5,0.5,7\n", r"rows have different numbers of columns"),
])
def test_malformed_label_files_are_rejected(tmp_path: Path, text: str, problem: str) -> None:
    write_ibvp(tmp_path, frames=2)
    (tmp_path / "p01_a" / "p01_a_bvp.csv").write_text(text)
    with pytest.raises(DatasetError, match=rf"p01_a_bvp\.csv: {problem}"):
        next(read(tmp_path)).load_labels()
