"""`mmrphys datasets`: listing and checking raw datasets from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_fixtures import write_bp4d, write_pure
from pipelines.cli import main


def test_lists_recordings_without_loading_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_bp4d(tmp_path, "F001T1", frames=4)
    write_bp4d(tmp_path, "F002T1", frames=4)
    (tmp_path / "F002T1" / "labels.npy").unlink()  # only --check looks at labels

    assert main(["datasets", "--dataset", "bp4d", "--root", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert "bp4d/F001/T1" in out and "RGB+thermal" in out and "25.00 fps" in out
    assert "2 recordings of 2 subjects" in out


def test_check_reports_each_bad_recording_with_its_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_pure(tmp_path, "01-01", frames=6)
    write_pure(tmp_path, "01-02", frames=6)
    labels = tmp_path / "01-02" / "01-02.json"
    document = json.loads(labels.read_text())
    document["/FullPackage"][1]["Value"]["waveform"] = float("nan")
    labels.write_text(json.dumps(document))

    assert main(["datasets", "--dataset", "pure", "--root", str(tmp_path), "--check"]) == 1

    out = capsys.readouterr().out
    assert "pure/01/01" in out and "6 frames  labels: bvp" in out
    assert "1 passed the check, 1 failed" in out
    assert f"{labels}: waveform has 1 non-finite" in out


def test_empty_or_missing_dataset_folder_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets", "--dataset", "scamps", "--root", str(tmp_path)]) == 2
    assert "no SCAMPS recordings found" in capsys.readouterr().err
    assert main(["datasets", "--dataset", "ibvp", "--root", str(tmp_path / "absent")]) == 2
    assert "dataset folder does not exist" in capsys.readouterr().err
