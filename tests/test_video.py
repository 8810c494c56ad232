"""Decoding, Haar face detection on a real face photo, boxes, crops, thermal alignment and
label resampling."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from mmrphys.data.recording import DatasetError
from mmrphys.data.video import (
    NoFaceError,
    crop_resize,
    detect_faces,
    read_frames,
    read_video,
    resample_labels,
    smooth_boxes,
    square_boxes,
    thermal_boxes,
)

# a real face photograph that ships with matplotlib (Grace Hopper, public domain)
FACE_PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _write_video(path: Path, frames: np.ndarray, fps: float = 30.0) -> Path:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def _face_frames(n: int, shift_per_frame: int = 1) -> tuple[np.ndarray, int, int]:
    """Frames of the face photo (scaled to 100x117) drifting right over a grey background."""
    face = cv2.cvtColor(cv2.imread(str(FACE_PHOTO)), cv2.COLOR_BGR2RGB)
    face = cv2.resize(face, (100, 117), interpolation=cv2.INTER_AREA)
    frames = np.full((n, 160, 200, 3), 90, np.uint8)
    for i in range(n):
        x = 20 + i * shift_per_frame
        frames[i, 20:137, x : x + 100] = face
    return frames, 20, 20


def test_read_video_round_trips_and_reports_fps(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
    decoded, fps = read_video(_write_video(tmp_path / "v.avi", frames, fps=25.0))
    assert fps == 25.0 and np.array_equal(decoded, frames)


def test_read_video_rejects_missing_unreadable_and_truncated_files(tmp_path):
    with pytest.raises(DatasetError, match="nope.avi: video file does not exist"):
        read_video(tmp_path / "nope.avi")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(DatasetError, match="garbage.avi"):
        read_video(garbage)
    frames = np.random.default_rng(1).integers(0, 256, (40, 48, 64, 3), dtype=np.uint8)
    path = _write_video(tmp_path / "cut.avi", frames)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.avi: truncated or corrupt video"):
        read_video(path)


def test_read_frames_in_name_order_and_bad_frames(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), frame[..., ::-1])
    assert np.array_equal(read_frames(tmp_path), frames)
    (tmp_path / "f999.png").write_bytes(b"broken")
    with pytest.raises(DatasetError, match="f999.png: unreadable image frame"):
        read_frames(tmp_path)
    with pytest.raises(DatasetError, match="no image frames"):
        read_frames(tmp_path / "missing")


def test_haar_detector_finds_a_real_face_and_tracks_it():
    frames, x0, y0 = _face_frames(40)
    boxes, found = detect_faces(frames, every=10)
    assert found.all()
    for i in (0, 10, 20, 30):
        x, y, w, h = boxes[i]
        # the cascade's box sits inside the photo, on the face
        assert x0 + i - 5 <= x <= x0 + i + 40 and y0 - 5 <= y <= y0 + 60 and 40 <= w <= 100
    # between detections the last good box is held
    assert np.array_equal(boxes[11], boxes[10])


def test_frames_without_a_face_fall_back_to_the_last_good_box():
    frames, _, _ = _face_frames(40, shift_per_frame=0)
    frames[20:] = 90  # the face leaves the picture
    boxes, found = detect_faces(frames, every=10)
    assert found[:20].all() and not found[20:].any()
    assert np.array_equal(boxes[35], boxes[10])


def test_no_face_anywhere_raises_no_face_error():
    noise = np.random.default_rng(3).integers(0, 256, (20, 120, 160, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="no face found in any of the 2 frames checked"):
        detect_faces(noise, every=10)


def test_square_and_smooth_boxes():
    boxes = np.array([[10.0, 20.0, 40.0, 60.0]])
    assert np.allclose(square_boxes(boxes, 1.5), [[-15.0, 5.0, 90.0, 90.0]])
    steps = np.repeat([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 10.0, 10.0]], 10, axis=0)
    smooth = smooth_boxes(steps, 5)
    assert smooth.shape == steps.shape
    assert np.all(np.diff(smooth[:, 0]) >= 0) and np.diff(smooth[:, 0]).max() <= 2.0 + 1e-9


def test_crop_resize_is_area_resampling_in_float():
    frames = np.zeros((2, 20, 20, 3), np.uint8)
    frames[:, 4:12, 4:12] = [10, 200, 31]
    out = crop_resize(frames, np.array([[4, 4, 8, 8]] * 2), size=4)
    assert out.dtype == np.float32 and out.shape == (2, 4, 4, 3)
    assert np.allclose(out, [10, 200, 31])
    # half of each output pixel covers the box edge: area resampling averages, not rounds
    frames2 = np.zeros((1, 4, 4), np.uint8)
    frames2[0, :, ::2] = 1
    assert np.allclose(crop_resize(frames2, np.array([[0, 0, 4, 4]]), size=2), 0.5)
    # boxes partly outside the frame are moved inside
    assert crop_resize(frames, np.array([[-5, 15, 8, 8]] * 2), size=4).shape == (2, 4, 4, 3)


def test_thermal_crop_is_aligned_with_the_rgb_box():
    rgb = np.zeros((1, 120, 160, 3), np.uint8)
    rgb[0, 40:80, 60:100] = 255
    thermal = np.zeros((1, 60, 80), np.float32)
    thermal[0, 20:40, 30:50] = 36.0  # the same square on a half-resolution camera
    box = np.array([[60.0, 40.0, 40.0, 40.0]])
    rgb_crop = crop_resize(rgb, box, 8)[..., 0] / 255
    thermal_crop = crop_resize(thermal, thermal_boxes(box, (120, 160), (60, 80)), 8) / 36.0
    assert np.allclose(rgb_crop, 1.0) and np.allclose(thermal_crop, 1.0)


def test_resample_labels_to_frame_times():
    times = np.array([0.0, 0.5, 1.0])
    values = np.array([0.0, 1.0, 0.0])
    out = resample_labels(times, values, fps=4.0)
    assert np.allclose(out, [0.0, 0.5, 1.0, 0.5, 0.0])
    with_nan = resample_labels(times, np.array([0.0, np.nan, 0.0]), fps=4.0)
    assert np.isnan(with_nan[1:4]).all() and with_nan[0] == 0.0
    with pytest.raises(DatasetError, match="labels.csv: labels start at 2.000 s"):
        resample_labels(times + 2.0, values, 4.0, where="labels.csv")
    with pytest.raises(DatasetError, match="strictly increasing"):
        resample_labels(np.array([0.0, 0.0, 1.0]), values, 4.0)
