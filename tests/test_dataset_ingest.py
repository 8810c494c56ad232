"""The real-dataset readers through the real ingest on the shared Ray cluster: recordings
a reader can read become shards (through the Haar detector, or pre-cropped), and a
recording whose loader raises becomes a rejection in the validation report naming the
file and the problem, while the others go on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset_fixtures import face_frames, write_bp4d, write_ubfc
from pipelines.data.stream import load_split
from mmrphys.config import IngestConfig, ModelConfig, PreprocessingConfig
from pipelines.data.ingest import ingest

pytestmark = pytest.mark.ray

CONFIG = IngestConfig(chunk_frames=16, preprocessing=PreprocessingConfig(detect_every=8), split=(0.34, 0.33, 0.33))


def _report(manifest: dict) -> dict[str, str]:
    return {entry["recording_id"]: entry["reason"] for entry in manifest["validation_report"]}


def test_ubfc_videos_go_through_face_detection_and_a_bad_one_is_reported(ray_cluster, tmp_path: Path) -> None:
    video = face_frames(32)
    for subject in ("subject1", "subject2", "subject3"):
        write_ubfc(tmp_path / "raw", subject, video=video)
    gt = tmp_path / "raw" / "subject3" / "ground_truth.txt"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join(["nan " + lines[0].split(maxsplit=1)[1], *lines[1:]]) + "\n")

    manifest = ingest("ubfc-rppg", tmp_path / "raw", tmp_path / "shards", config=CONFIG, progress=False)

    assert manifest["counts"]["accepted_recordings"] == 2 and manifest["counts"]["chunks"] == 4
    accepted = [r for r in manifest["recordings"] if r["status"] == "accepted"]
    assert all(r["frames_without_face"] == 0 and not r["has_thermal"] for r in accepted)
    assert all(abs(r["fps"] - 30.0) < 1e-6 for r in accepted)
    reason = _report(manifest)["ubfc-rppg/subject3/1"]
    assert f"{gt}: PPG (line 1) has 1 non-finite value(s)" in reason


def test_bp4d_pre_cropped_rgb_thermal_streams_as_four_channels(ray_cluster, tmp_path: Path) -> None:
    for task in ("F001T1", "F002T1", "M003T2", "M004T1"):
        write_bp4d(tmp_path / "raw", task, frames=32)
    (tmp_path / "raw" / "M004T1" / "Thermal" / "00031.npy").unlink()

    manifest = ingest("bp4d", tmp_path / "raw", tmp_path / "shards", config=CONFIG, progress=False)

    assert manifest["counts"]["accepted_recordings"] == 3 and manifest["counts"]["chunks"] == 6
    assert all(r["has_thermal"] and r["has_rsp"] for r in manifest["recordings"] if r["status"] == "accepted")
    assert "31 thermal frames but" in _report(manifest)["bp4d/M004/T1"]
    train = load_split(tmp_path / "shards", "train", config=ModelConfig(resolution=36, modality="rgbt"), tasks=("bvp", "rsp"))
    batch = next(iter(train.iter_torch_batches(batch_size=2)))
    assert tuple(batch["video"].shape) == (2, 4, 16, 36, 36)
    assert tuple(batch["rsp"].shape) == (2, 16)
    assert np.isfinite(batch["video"].numpy()).all()


def test_every_frame_source_streams_the_frames_of_a_whole_load_a_window_at_a_time(tmp_path: Path) -> None:
    import cv2

    from mmrphys.config import SyntheticConfig
    from mmrphys.data.datasets import read_dataset
    from mmrphys.data.synthetic import generate_dataset

    [video] = generate_dataset(tmp_path / "raw", subjects=1, seconds=1.0, seed=1,
                               config=SyntheticConfig(width=64, height=48))
    frames = next(read_dataset("folder", tmp_path / "raw")).load_rgb()
    as_npy = Path(str(video).replace("S01_1", "S02_1"))
    as_npy.mkdir()
    for name in ("meta.json", "labels.csv"):
        (as_npy / name).write_bytes((video / name).read_bytes())
    np.save(as_npy / "rgb.npy", frames)
    thermal = np.load(video / "thermal.npy")
    (as_npy / "thermal").mkdir()
    for index, plane in enumerate(np.clip(thermal * 100, 0, 65535).astype(np.uint16)):
        cv2.imwrite(str(as_npy / "thermal" / f"{index:04d}.png"), plane)
    as_pngs = Path(str(video).replace("S01_1", "S03_1"))
    (as_pngs / "rgb").mkdir(parents=True)
    for name in ("meta.json", "labels.csv", "thermal.npy"):
        (as_pngs / name).write_bytes((video / name).read_bytes())
    for index, frame in enumerate(frames):
        cv2.imwrite(str(as_pngs / "rgb" / f"{index:04d}.png"), frame[..., ::-1])

    recordings = list(read_dataset("folder", tmp_path / "raw"))
    assert len(recordings) == 3
    for recording in recordings:
        for stream, whole in ((recording.stream_rgb, recording.load_rgb()),
                              (recording.stream_thermal, recording.load_thermal())):
            windows = list(stream(7))
            assert [len(w) for w in windows] == [7] * (len(whole) // 7) + ([len(whole) % 7] if len(whole) % 7 else [])
            np.testing.assert_array_equal(np.concatenate(windows), whole)
        np.testing.assert_array_equal(recording.load_rgb(), frames)
