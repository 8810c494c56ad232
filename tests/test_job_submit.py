"""`ray job submit` against a real local head started with `ray start --head`.

The head is a cluster of its own, apart from the in-process cluster the other Ray tests
share: its own --temp-dir, its own free ports (GCS, dashboard on 127.0.0.1, agents,
client server, workers), its own auth token passed in the environment (token auth is on
by default in Ray 2.60), and no RAY_ADDRESS inherited. Everything is driven through
subprocesses, so nothing in this pytest process connects to it.

It is stopped in `finally` by signalling the process group of `ray start --block`, then
by the ids of any process still naming its temp dir. `ray stop` is what stops a
cluster's own node (cluster/cluster.yaml runs it), but it kills every Ray process on the
machine by name: here that would take down the shared in-process cluster and anyone
else's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

#: client errors that happen before a job exists, so submitting again is safe
_NOT_SUBMITTED_YET = ("No available agent to submit job", "_upload_package_if_needed")


@dataclasses.dataclass(frozen=True)
class Head:
    """A running local head: its job API address and the environment clients need."""

    address: str
    env: dict[str, str]
    log: Path

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run a client command against this head; output captured as text.

        A head that has just started may not have its job agent yet (Ray answers "try
        again later"), and a loaded one may drop the connection while the working dir is
        being uploaded, before anything is submitted: both are retried for up to a minute.
        """
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                list(args), env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout
            )
            retry = any(mark in done.stderr for mark in _NOT_SUBMITTED_YET)
            if not retry or time.monotonic() > deadline:
                return done
            time.sleep(2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS") and k != "RAY_API_SERVER_ADDRESS"}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=str(REPO),
    )
    return env


@contextlib.contextmanager
def local_head(tmp: Path, num_cpus: int = 4) -> Iterator[Head]:
    """Start `ray start --head --block` in its own session; stop it, and only it, after."""
    # Ray's socket paths must stay under 107 bytes, which pytest's tmp_path can exceed
    temp_dir = Path(tempfile.mkdtemp(prefix="mmrphys-head-"))
    env = _client_env(secrets.token_hex(32))
    dashboard = _free_port()
    ports = {
        "--port": _free_port(),
        "--dashboard-port": dashboard,
        "--ray-client-server-port": _free_port(),
        "--dashboard-agent-listen-port": _free_port(),
        "--dashboard-agent-grpc-port": _free_port(),
        "--metrics-export-port": _free_port(),
        "--runtime-env-agent-port": _free_port(),
        "--node-manager-port": _free_port(),
        "--object-manager-port": _free_port(),
    }
    log = tmp / "head.log"
    command = [
        str(BIN / "ray"), "start", "--head", "--block",
        "--dashboard-host=127.0.0.1",
        f"--num-cpus={num_cpus}",
        f"--object-store-memory={512 * 1024**2}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    with open(log, "w") as out:
        head = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        address = f"http://127.0.0.1:{dashboard}"
        _wait_for_dashboard(address, head, log)
        yield Head(address, env, log)
    finally:
        _stop(head, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_dashboard(address: str, head: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start exited with {head.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without the token): it is up
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the dashboard at {address} did not come up in {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(head: subprocess.Popen, temp_dir: Path) -> None:
    """SIGTERM the head's process group (ray start --block stops its node), then clean up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=10)
    # anything that outlived the group but still names this cluster's temp dir
    for pid in _pids_naming(temp_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not _pids_naming(temp_dir), "processes of the test head survived"


def _pids_naming(temp_dir: Path) -> list[int]:
    """Processes whose command line contains `temp_dir` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(temp_dir).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


def _job_id(output: str) -> str:
    for word in output.split():
        word = word.strip("'\"")
        if word.startswith("raysubmit_"):
            return word
    raise AssertionError(f"no job id in:\n{output}")


def test_training_job_submitted_to_a_local_head(train_shards: Path, tmp_path: Path) -> None:
    """`ray job submit` a real small training run; check its MLflow run and registered model."""
    from pipelines.tracking import client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with local_head(tmp_path) as head:
        done = head.run(
            str(BIN / "ray"), "job", "submit",
            "--address", head.address,
            "--runtime-env", "cluster/runtime_env.yaml",
            "--",
            "python", "-m", "pipelines.cli", "train",
            "--data", str(train_shards), "--storage", str(tmp_path / "runs"), "--name", "job",
            "--tracking-uri", uri, "--register", "tiny-job", "--alias", "champion",
            "model.resolution=9", "model.frames=64", "train.epochs=1", "train.workers=1",
            "train.batch_size=2", "tracking.log_onnx=false",
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert f"Job '{_job_id(output)}' succeeded" in output

        # the wrapper, on the same head: streams the job's logs and exits 0 on success
        wrapped = head.run(
            sys.executable, "-m", "pipelines.cli", "submit", "--address", head.address,
            "--", "model", "--variant", "SEF", "--repeats", "1",
        )
        assert wrapped.returncode == 0, (wrapped.stdout + wrapped.stderr)[-4000:]
        assert ": SUCCEEDED" in wrapped.stdout and "python -m pipelines.cli model" in wrapped.stdout

    mlflow = client(uri)
    (run,) = mlflow.search_runs([mlflow.get_experiment_by_name("mmrphys").experiment_id])
    assert run.info.status == "FINISHED"
    assert "val_rate_mae" in run.data.metrics
    version = mlflow.get_model_version_by_alias("tiny-job", "champion")
    assert version.run_id == run.info.run_id
