"""Submit an `mmrphys` command to a Ray cluster as a Ray job (`mmrphys submit`).

The same as `ray job submit --address URL --runtime-env cluster/runtime_env.yaml --
python -m pipelines.cli COMMAND ...`, with the checks a submission should fail on before
anything is uploaded: the command exists, the working dir is this project, the runtime
env is one Ray accepts. The job runs `python -m pipelines.cli`, so it runs the uploaded
working dir's code rather than the copy installed in the cluster's image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from ray.job_submission import JobSubmissionClient
from ray.runtime_env import RuntimeEnv

from mmrphys.errors import UserError
from pipelines.cli import COMMANDS

#: the runtime env `mmrphys submit` uses unless told otherwise
DEFAULT_RUNTIME_ENV = Path("cluster") / "runtime_env.yaml"
#: the dashboard's job API when no address is given or set in the environment
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: environment variables Ray's job client reads the address from (they override its argument)
_ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
_FINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: what the job API answers while the head's job agent is still starting
_AGENT_NOT_READY = "No available agent to submit job"


class SubmitError(UserError, RuntimeError):
    """The job cannot be submitted as asked."""


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """A submitted job: its id, the address it went to, and its last known status."""

    job_id: str
    address: str
    status: str

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def resolve_address(address: str | None = None) -> str:
    """`address`, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS, else the local dashboard."""
    for candidate in (address, *(os.environ.get(v) for v in _ADDRESS_VARS)):
        if candidate:
            return candidate if "://" in candidate else f"http://{candidate}"
    return DEFAULT_ADDRESS


def load_runtime_env(path: str | Path, env_vars: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read a runtime env YAML file, resolve its working dir, and add `env_vars`.

    A relative `working_dir` is relative to the current directory, as with `ray job
    submit`; it must hold this project (`pipelines/cli.py`), since the job runs its CLI.
    """
    path = Path(path)
    try:
        env = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise SubmitError(f"runtime env {path}: cannot read: {err}") from err
    if not isinstance(env, dict):
        raise SubmitError(f"runtime env {path}: expected a mapping of runtime env fields, got {env!r}")
    working_dir = env.get("working_dir")
    if isinstance(working_dir, str) and "://" not in working_dir:
        folder = Path(working_dir).resolve()
        if not (folder / "pipelines" / "cli.py").is_file():
            raise SubmitError(
                f"runtime env {path}: working_dir {working_dir!r} resolves to {folder}, which does "
                "not hold this project (no pipelines/cli.py); run from the repository root"
            )
        env["working_dir"] = str(folder)
    if env_vars:
        env["env_vars"] = {**(env.get("env_vars") or {}), **env_vars}
    try:
        RuntimeEnv(**env)
    except (TypeError, ValueError) as err:
        raise SubmitError(f"runtime env {path}: {err}") from err
    return env


def entrypoint_for(command: Sequence[str]) -> str:
    """The job's shell entrypoint running `mmrphys COMMAND ...` from the working dir."""
    if not command:
        raise SubmitError(f"no command to submit; give one of {sorted(COMMANDS)} after `--`")
    if command[0] not in COMMANDS or command[0] == "submit":
        allowed = sorted(set(COMMANDS) - {"submit"})
        raise SubmitError(f"command {command[0]!r}: not an mmrphys command that runs as a job; one of {allowed}")
    return shlex.join(["python", "-m", "pipelines.cli", *command])


def submit(
    command: Sequence[str],
    *,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    job_id: str | None = None,
    wait: bool = True,
    timeout_s: float | None = None,
    log: TextIO = sys.stdout,
    poll_s: float = 1.0,
) -> JobOutcome:
    """Submit `mmrphys COMMAND ...` as a Ray job; with `wait`, stream its logs until it ends.

    Raises SubmitError when the cluster cannot be reached or refuses the submission.
    """
    entrypoint = entrypoint_for(command)
    address = resolve_address(address)
    with _explicit_address():
        client = _client(address)
        job_id = _submit_when_agent_ready(client, address, entrypoint, runtime_env, job_id)
        print(f"submitted job {job_id} to {address}: {entrypoint}", file=log, flush=True)
        if not wait:
            return JobOutcome(job_id, address, str(client.get_job_status(job_id)))
        status = _follow(client, job_id, log, poll_s, timeout_s)
    return JobOutcome(job_id, address, status)


def _client(address: str):

    try:
        return JobSubmissionClient(address)
    except Exception as err:  # connection, authentication and version errors all surface here
        hint = ""
        if "auth" in str(err).lower() or "token" in str(err).lower():
            hint = (
                " (token auth: set RAY_AUTH_MODE=token and provide the cluster's token in "
                "~/.ray/auth_token or $RAY_AUTH_TOKEN)"
            )
        raise SubmitError(f"cannot reach the Ray job API at {address}: {err}{hint}") from err


def _submit_when_agent_ready(client, address: str, entrypoint: str, runtime_env: dict[str, Any] | None,
                             job_id: str | None, wait_s: float = 60.0) -> str:
    """Submit; a head that has just started may not have its job agent yet, so retry that."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=job_id)
        except RuntimeError as err:
            if _AGENT_NOT_READY not in str(err) or time.monotonic() > deadline:
                raise SubmitError(f"job submission to {address} refused: {err}") from err
            time.sleep(2.0)


def _follow(client, job_id: str, log: TextIO, poll_s: float, timeout_s: float | None) -> str:
    """Print the job's new log text as it appears; return its final status."""
    printed = 0
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job_id))
        logs = client.get_job_logs(job_id)
        if len(logs) > printed:
            log.write(logs[printed:])
            log.flush()
            printed = len(logs)
        if status in _FINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            client.stop_job(job_id)
            raise SubmitError(f"job {job_id} still {status} after {timeout_s:.0f} s; stopped it")
        time.sleep(poll_s)


@contextlib.contextmanager
def _explicit_address() -> Iterator[None]:
    """Hide the address variables, which Ray's job client would prefer to its argument."""
    saved = {v: os.environ.pop(v) for v in _ADDRESS_VARS if v in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
