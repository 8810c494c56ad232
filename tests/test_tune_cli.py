"""`mmrphys tune` refuses bad searches before starting Ray, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main


def test_list_spaces(capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", "--list-spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("resolution_modality", "attention", "default", "architectures"):
        assert f"{name}\n" in out


def test_missing_shards_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", "--data", str(tmp_path / "nowhere"), "--space", "resolution_modality"]) == 2
    assert f"{tmp_path / 'nowhere' / 'manifest.json'}: no manifest" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nope"], "search space 'nope': not a built-in space"),
        (["--num-samples", "0"], "SearchConfig.num_samples: must be >= 1"),
        (["--register", "", "--alias", "champion"], "SearchConfig.alias: needs register_as"),
        (["model.resolution=48"], "ModelConfig.resolution: 48 is not one of"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    assert main(["tune", "--data", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_resume_needs_a_search(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", "--resume"]) == 2
    assert "--resume needs the --name" in capsys.readouterr().err
    assert main(["tune", "--resume", "--name", "gone", "--storage", str(tmp_path)]) == 2
    assert "holds no search started by `mmrphys tune`" in capsys.readouterr().err
