"""`mmrphys submit` refuses bad submissions before contacting a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.submit import (
    DEFAULT_ADDRESS,
    SubmitError,
    entrypoint_for,
    load_runtime_env,
    resolve_address,
)

REPO = Path(__file__).resolve().parents[1]


def test_entrypoint_runs_the_uploaded_cli() -> None:
    assert entrypoint_for(["model"]) == "python -m pipelines.cli model"
    assert entrypoint_for(["model", "--config", "my run.yaml"]) == "python -m pipelines.cli model --config 'my run.yaml'"


@pytest.mark.parametrize("command, message", [([], "no command to submit"), (["nope"], "'nope': not an mmrphys command"), (["submit"], "'submit': not an mmrphys command")])
def test_bad_command_is_refused(command: list[str], message: str) -> None:
    with pytest.raises(SubmitError, match=message):
        entrypoint_for(command)


def test_runtime_env_resolves_working_dir_and_adds_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    env = load_runtime_env("cluster/runtime_env.yaml", {"MLFLOW_TRACKING_URI": "http://head:5000"})
    assert env["working_dir"] == str(REPO)
    assert env["env_vars"] == {"MLFLOW_TRACKING_URI": "http://head:5000"}
    assert ".venv" in env["excludes"]


def test_runtime_env_outside_the_project_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SubmitError, match="does not hold this project"):
        load_runtime_env(REPO / "cluster" / "runtime_env.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("- a\n", "expected a mapping"),
        ("working_dir: [\n", "cannot read"),
        ("excludes: .venv\n", "excludes.*must be of type List"),
    ],
)
def test_bad_runtime_env_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    with pytest.raises(SubmitError, match=message) as err:
        load_runtime_env(path)
    assert str(path) in str(err.value)


def test_address_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert resolve_address() == DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:8265")
    assert resolve_address() == "http://10.0.0.5:8265"
    assert resolve_address("http://head:8265") == "http://head:8265"


def test_cli_reports_errors_without_a_traceback(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["submit", "--env", "NOEQUALS", "--", "model"]) == 2
    assert "--env 'NOEQUALS': expected KEY=VALUE" in capsys.readouterr().err
    assert main(["submit", "--runtime-env", "missing.yaml", "--", "model"]) == 2
    assert "runtime env missing.yaml: cannot read" in capsys.readouterr().err


def test_unreachable_cluster_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(REPO)
    # a port nothing listens on: the client fails to connect, and says where
    assert main(["submit", "--address", "http://127.0.0.1:9", "--", "model"]) == 2
    assert "cannot reach the Ray job API at http://127.0.0.1:9" in capsys.readouterr().err
