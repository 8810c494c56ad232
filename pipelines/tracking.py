"""MLflow tracking and registry for training, evaluation and tuning runs.

Every function takes the tracking URI explicitly (resolved once by `resolve_tracking_uri`:
flag, then $MLFLOW_TRACKING_URI, then a SQLite store in the working directory), so the
driver and the Ray workers talk to the same store without relying on process-global
MLflow state. With a SQLite or file store, experiments get an explicit artifact location
beside the database: MLflow's default (`./mlruns` relative to whichever process creates
the experiment) would scatter artifacts into Ray's session folders.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._model_registry import fluent as registry_fluent

from mmrphys.config import ModelConfig, TrackingConfig
from mmrphys.errors import UserError

#: MLflow caps a param value at this many characters
_PARAM_VALUE_LIMIT = 6000


class TrackingError(UserError, RuntimeError):
    """The tracking store or registry cannot be used as asked."""


def resolve_tracking_uri(flag: str = "") -> str:
    """The tracking URI to use: `flag`, else $MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite).

    Relative SQLite and file paths are made absolute, because Ray workers run in other
    working directories.
    """
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if not path.startswith("/"):
            uri = f"sqlite:///{Path(path).resolve()}"
    elif "://" not in uri:
        uri = Path(uri).resolve().as_uri()
    return uri


def local_store_dir(uri: str) -> Path | None:
    """The folder holding a SQLite database or file store; None for a tracking server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent
    if uri.startswith("file://"):
        return Path(urllib.parse.urlparse(uri).path)
    return None


def check_store_exists(uri: str, what: str) -> None:
    """Refuse, naming the store, to look up `what` in a SQLite store that does not exist:
    MLflow would create an empty database there just to find nothing in it."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise TrackingError(
            f"{what}: no tracking store at {uri} (looked in {local_store_dir(uri)}); pass --tracking-uri "
            "or set MLFLOW_TRACKING_URI to the store that holds it"
        )


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail early, with the URI in the message, if the store cannot be reached or written."""
    scheme = urllib.parse.urlparse(uri).scheme
    store_dir = local_store_dir(uri)
    if store_dir is not None:
        probe = store_dir
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise TrackingError(f"tracking URI {uri}: folder {probe} is not writable")
        return
    if scheme in ("http", "https"):
        parsed = urllib.parse.urlparse(uri)
        port = parsed.port or (443 if scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
        except OSError as err:
            raise TrackingError(
                f"tracking URI {uri}: cannot connect to {parsed.hostname}:{port} ({err}); "
                "start the server, or unset MLFLOW_TRACKING_URI to use a local SQLite store"
            ) from err
        return
    if scheme not in ("databricks", "postgresql", "mysql", "mssql"):
        raise TrackingError(f"tracking URI {uri}: unsupported scheme {scheme!r}")


def client(uri: str):
    """An MlflowClient for tracking and registry on the same store."""
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    """The id of experiment `name`, created (with a local artifact folder) if missing."""
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    store_dir = local_store_dir(uri)
    location = (store_dir / "mlartifacts" / name).as_uri() if store_dir is not None else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def start_run(uri: str, tracking: TrackingConfig, *, run_name: str, tags: Mapping[str, str] = ()) -> str:
    """Create a run (nested under `tracking.parent_run_id` when set); returns its id."""
    mlflow_client = client(uri)
    all_tags = dict(tags)
    if tracking.parent_run_id:
        try:
            mlflow_client.get_run(tracking.parent_run_id)
        except Exception as err:  # MlflowException subclasses vary by store
            raise TrackingError(
                f"TrackingConfig.parent_run_id: no run {tracking.parent_run_id!r} in {uri} ({err})"
            ) from err
        all_tags["mlflow.parentRunId"] = tracking.parent_run_id
    experiment_id = ensure_experiment(uri, tracking.experiment)
    run = mlflow_client.create_run(experiment_id, run_name=tracking.run_name or run_name, tags=all_tags)
    return run.info.run_id


#: beside a training run's history: the MLflow calls the store refused, in order
SPOOL_FILE = "mlflow_spool.jsonl"
#: what a store that is down, locked, read-only or unreachable raises through MLflow
STORE_ERRORS = (MlflowException, OSError)


class RunLogger:
    """Logs to one existing run by id; safe to build inside a Ray worker.

    With `spool` (a file), the store being unavailable does not stop the caller: a call
    it refuses is appended to the spool and kept; before each later call the kept ones
    are sent first, in order (their metrics keep their own time and step), and once they
    are through the run gets a `mmrphys.tracking_gap` tag saying what came late. The
    outage and the recovery are printed on stderr. Without `spool`, a refused call raises.
    """

    def __init__(self, uri: str, run_id: str, spool: str | Path | None = None):
        self.uri = uri
        self.run_id = run_id
        self._client = client(uri)
        self._spool = Path(spool) if spool else None
        # calls kept from an earlier process (a restarted worker) go first
        self._held: list[dict] = []
        if self._spool is not None and self._spool.is_file():
            self._held = [json.loads(line) for line in self._spool.read_text().splitlines() if line.strip()]

    @property
    def held(self) -> int:
        """Calls refused by the store and not yet sent."""
        return len(self._held)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (a flattened config), skipping ones already logged."""
        self._call("params", {key: str(value)[:_PARAM_VALUE_LIMIT] for key, value in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite numeric metrics; NaN (e.g. Pearson of a constant) is skipped."""
        values = {
            key: float(value) for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        }
        if values:
            self._call("metrics", values, int(time.time() * 1000), step or 0)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or a folder's contents."""
        self._call("artifact", str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        self._call("tags", {key: str(value) for key, value in tags.items()})

    def reopen(self) -> None:
        """Mark a finished or failed run as running again (a resumed training run)."""
        self._call("status", "RUNNING")

    def finish(self, status: str = "FINISHED") -> None:
        """Close the run as FINISHED, FAILED or KILLED."""
        self._call("status", status)

    def _call(self, kind: str, *args: Any) -> None:
        if self._spool is None:
            self._send(kind, args)
            return
        call = {"kind": kind, "args": list(args)}
        try:
            self._send_held()
            self._send(kind, args)
        except STORE_ERRORS as err:
            if not self._held:
                print(f"[mmrphys] MLflow store {self.uri} unavailable ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}); training goes on, the calls it refuses "
                      f"are kept in {self._spool} and sent when it is back", file=sys.stderr, flush=True)
            self._held.append(call)
            with self._spool.open("a") as spool:
                spool.write(json.dumps(call) + "\n")

    def _send_held(self) -> None:
        """Send the kept calls in order; on success say what came late and clear the spool."""
        if not self._held:
            return
        count = len(self._held)
        while self._held:
            self._send(self._held[0]["kind"], self._held[0]["args"])
            self._held.pop(0)
            # what is sent leaves the spool at once: a kill now repeats nothing
            self._spool.write_text("".join(json.dumps(c) + "\n" for c in self._held))
        self._spool.unlink(missing_ok=True)
        gap = f"{count} calls reached MLflow late (the store was unavailable); they carry their own times and steps"
        self._send("tags", ({"mmrphys.tracking_gap": gap},))
        print(f"[mmrphys] MLflow store {self.uri} is back: {gap}", file=sys.stderr, flush=True)

    def _send(self, kind: str, args: Sequence[Any]) -> None:
        if kind == "metrics":
            values, timestamp, step = args
            batch = [Metric(key, value, timestamp, step) for key, value in values.items()]
            self._client.log_batch(self.run_id, metrics=batch)
        elif kind == "params":
            existing = self._client.get_run(self.run_id).data.params
            fresh = [Param(key, value) for key, value in args[0].items() if key not in existing]
            for start in range(0, len(fresh), 100):
                self._client.log_batch(self.run_id, params=fresh[start : start + 100])
        elif kind == "artifact":
            path, artifact_path = Path(args[0]), args[1]
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self._client.log_artifact(self.run_id, str(path), artifact_path)
        elif kind == "tags":
            for key, value in args[0].items():
                self._client.set_tag(self.run_id, key, value)
        elif args[0] == "RUNNING":
            self._client.update_run(self.run_id, status="RUNNING")
        else:
            self._client.set_terminated(self.run_id, status=args[0])


def model_input_tags(config: ModelConfig) -> dict[str, str]:
    """Tags describing what input a model takes, stored on each registered version."""
    return {
        "mmrphys.architecture": config.architecture,
        "mmrphys.resolution": str(config.resolution),
        "mmrphys.modality": config.modality,
        "mmrphys.frames": str(config.frames),
        "mmrphys.tasks": ",".join(config.tasks),
    }


def check_registry_name(uri: str, name: str, config: ModelConfig) -> None:
    """Raise TrackingError if `name` already holds models that take a different input.

    An alias such as `champion` is only useful if every version under the name can be
    swapped for another: same resolution, modality, clip length and outputs.
    """
    mlflow_client = client(uri)
    try:
        versions = mlflow_client.search_model_versions(f"name = '{name}'", max_results=5)
    except MlflowException as err:
        raise TrackingError(f"registry at {uri}: cannot look up model {name!r}: {err}") from err
    wanted = model_input_tags(config)
    for version in versions:
        held = {key: version.tags.get(key) for key in wanted}
        if all(value is None for value in held.values()):
            continue
        # a tag a version lacks (registered before the tag existed) does not count as a difference
        differing = {k.split(".", 1)[1]: (held[k], wanted[k]) for k in wanted
                     if held[k] is not None and held[k] != wanted[k]}
        if differing:
            detail = ", ".join(f"{k} {old} (this run: {new})" for k, (old, new) in differing.items())
            raise TrackingError(
                f"registered model {name!r} (version {version.version}) takes a different input: "
                f"{detail}; register under another name"
            )


@contextlib.contextmanager
def _without_mlflow_event_lines() -> Iterator[None]:
    """Hold back the two lines `mlflow.register_model` prints past its loggers
    ("Successfully registered model", "Created version"), unless MLflow's INFO logs are on
    (`--verbose`): every command that registers says what it registered in its own words.
    Only that module's `eprint` is replaced, so MLflow's warnings still reach the console."""
    original = registry_fluent.eprint
    if not logging.getLogger("mlflow").isEnabledFor(logging.INFO):
        registry_fluent.eprint = lambda *args, **kwargs: None
    try:
        yield
    finally:
        registry_fluent.eprint = original


def register_model(uri: str, model_uri: str, name: str, *, alias: str = "",
                   config: ModelConfig | None = None, run_id: str | None = None):
    """Create a new version of registered model `name` from `model_uri`; returns the ModelVersion."""
    if config is not None:
        check_registry_name(uri, name, config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow_client = client(uri)
    tags = model_input_tags(config) if config is not None else {}
    try:
        with _without_mlflow_event_lines():
            version = mlflow.register_model(model_uri, name, tags=tags)
    except mlflow.exceptions.MlflowException as err:
        raise TrackingError(f"cannot register {model_uri} as {name!r}: {err.message}") from err
    if alias:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    return version


def set_alias(uri: str, name: str, alias: str, version: str | int) -> None:
    """Point `alias` of registered model `name` at `version`."""
    try:
        client(uri).set_registered_model_alias(name, alias, str(version))
    except MlflowException as err:
        raise TrackingError(f"cannot set alias {alias!r} on {name} version {version}: {err.message}") from err
