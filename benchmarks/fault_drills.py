"""Fault drills from outside: start the real thing, SIGKILL a process at a chosen moment,
check that nothing is lost and nothing is duplicated.

    python benchmarks/fault_drills.py [--only NAME ...] [--out DIR]

Every drill kills only descendants of a process it started (tests/processes.py): this
process (its local Ray cluster) or a `mmrphys` command it ran. Each prints one row of the
table recorded in BENCHMARKS.md ("Reliability"): what was killed, when, what was checked,
pass or fail. The cheap drills also run as tests (tests/test_faults.py).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from processes import descendants, kill_tree, kill_when  # noqa: E402  (tests/ helper)

from mmrphys.config import IngestConfig, SyntheticConfig  # noqa: E402
from mmrphys.data.synthetic import generate_dataset  # noqa: E402
from pipelines.train.worker import CHECKPOINT_SNAPSHOT  # noqa: E402

INGEST = IngestConfig(chunk_frames=40)
#: the CLI flags that give INGEST
INGEST_FLAGS = ["--chunk-frames", "40"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}


def raw_dataset(folder: Path, recordings: int = 8) -> Path:
    """Small synthetic recordings (6 s, 64x48): seconds each to ingest on 2 cores."""
    generate_dataset(folder, subjects=recordings, seconds=6.0, seed=4, config=SyntheticConfig(width=64, height=48))
    return folder


def _raw(folder: Path) -> Path:
    """`folder/raw`, generated unless the caller put a copy there."""
    return folder / "raw" if (folder / "raw").is_dir() else raw_dataset(folder / "raw")


def _tmp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))


def _same_shards(a: Path, b: Path) -> tuple[bool, int]:
    """Whether both ingests hold the same shard files with the same bytes; how many."""
    names = sorted(p.name for p in (a / "shards").glob("*.parquet"))
    other = sorted(p.name for p in (b / "shards").glob("*.parquet"))
    same = names == other and all(filecmp.cmp(a / "shards" / n, b / "shards" / n, shallow=False) for n in names)
    return same, len(names)


def _sidecars(out: Path) -> int:
    return len(list((out / "shards").glob("*.json"))) if (out / "shards").is_dir() else 0


def drill_ingest_task(folder: Path, reference: Path | None = None) -> dict:
    """SIGKILL one Ray task worker in the middle of ingesting a recording (in-process
    ingest on this process's Ray cluster); Ray retries the task."""
    from pipelines.data.ingest import ingest

    raw = _raw(folder)
    reference = reference or _reference(raw, folder / "reference")
    out = folder / "killed-task"
    kill = kill_when(lambda: _sidecars(out) >= 2, "ingest_recording", poll_s=0.05)
    manifest = ingest("synthetic", raw, out, config=INGEST, progress=False)
    same, shards = _same_shards(reference, out)
    checks = {
        "a task worker was killed": kill["killed"] is not None,
        "every recording accepted": manifest["counts"]["accepted_recordings"] == manifest["counts"]["recordings"],
        f"{shards} shards byte-identical to an uninterrupted run": same,
        "no temporary file left": not _tmp_files(out),
    }
    return _row("ingest task (Ray Data map task worker)", "after 2 recordings were done", checks)


def _reference(raw: Path, out: Path) -> Path:
    from pipelines.data.ingest import ingest

    ingest("synthetic", raw, out, config=INGEST, progress=False)
    return out


def drill_ingest_driver(folder: Path, reference: Path | None = None) -> dict:
    """SIGKILL the `mmrphys ingest` driver (and its local Ray cluster) mid-dataset, then
    run the same command again."""
    raw = _raw(folder)
    reference = reference or _reference(raw, folder / "reference")
    out = folder / "killed-driver"
    command = _cli("ingest", "--dataset", "synthetic", "--root", str(raw), "--out", str(out), *INGEST_FLAGS)
    driver = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_at_kill = None
    deadline = time.monotonic() + 600
    while driver.poll() is None and time.monotonic() < deadline:
        done_at_kill = _sidecars(out)
        if done_at_kill >= 2:
            kill_tree(driver.pid)
            break
        time.sleep(0.05)
    driver.wait()
    left = len(_tmp_files(out))
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True)
    same, shards = _same_shards(reference, out)
    checks = {
        "driver killed mid-dataset": driver.returncode == -9 and done_at_kill is not None
        and done_at_kill < shards,
        "re-run exits 0": rerun.returncode == 0,
        "re-run redid only the rest": f"{done_at_kill} already done" in rerun.stdout
        or "already done" in rerun.stdout,
        f"{shards} shards byte-identical to an uninterrupted run": same,
        f"temporary files removed ({left} left by the kill)": not _tmp_files(out),
    }
    return _row("ingest driver (`mmrphys ingest`) and its Ray cluster",
                f"after {done_at_kill} of {shards} recordings", checks)


def _train_config(folder: Path, shards: Path, uri: str, epochs: int) -> Path:
    """A tiny experiment YAML (the test fixtures' 9x9 model) for the CLI drills."""
    from train_fixtures import tiny_config

    config = tiny_config(shards, uri, epochs=epochs)
    path = folder / "experiment.yaml"
    config.save_yaml(path)
    return path


def _epoch_checkpointed(run_dir: Path) -> bool:
    """Epoch 1 is recorded (so Ray has registered its checkpoint): the run is in epoch 2."""
    return len(_history_epochs(run_dir)) >= 1 and (run_dir / CHECKPOINT_SNAPSHOT).is_file()


def _history_epochs(run_dir: Path) -> list[int]:
    path = run_dir / "history.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] if path.is_file() else []


def _mlflow_steps(db: Path, run_id: str, key: str = "train_loss") -> list[int]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT step FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step",
                                  (run_id, key)).fetchall()
    return [row[0] for row in rows]


def drill_training_driver(folder: Path, shards: Path, epochs: int = 3) -> dict:
    """SIGKILL the `mmrphys train` driver (with its Ray cluster) in the middle of epoch 2,
    then `mmrphys train --resume RUN_DIR`."""
    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    config = _train_config(folder, shards, uri, epochs)
    run_dir = folder / "runs" / "drill"
    command = _cli("train", "--config", str(config), "--storage", str(folder / "runs"), "--name", "drill",
                   "--tracking-uri", uri)
    driver = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while driver.poll() is None and time.monotonic() < deadline and not _epoch_checkpointed(run_dir):
        time.sleep(0.1)
    kill_tree(driver.pid)
    driver.wait()
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    resumed = subprocess.run(_cli("train", "--resume", str(run_dir), "--tracking-uri", uri), env=_env(),
                             capture_output=True, text=True)
    after = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    steps = _mlflow_steps(db, run_id)
    history = _history_epochs(run_dir)
    checks = {
        "driver killed": driver.returncode == -9,
        "resume exits 0": resumed.returncode == 0,
        "same MLflow run": after == run_id,
        f"MLflow steps {steps}: each epoch once": steps == list(range(epochs)),
        f"history.jsonl epochs {history}: each once": sorted(history) == list(range(epochs))
        and len(history) == epochs,
        "best checkpoint complete": (run_dir / "best_model" / "model.pt").is_file(),
    }
    if resumed.returncode != 0:
        checks["resume stderr"] = resumed.stderr[-500:]
    return _row("training driver (`mmrphys train`) and its Ray cluster",
                "in epoch 2 (epoch 1 recorded and checkpointed)", checks)


def drill_training_worker(folder: Path, shards: Path, epochs: int = 3) -> dict:
    """SIGKILL a Ray Train worker in the middle of epoch 2 (in-process training)."""
    from pipelines.train.driver import train
    from train_fixtures import tiny_config

    config = tiny_config(shards, epochs=epochs, max_failures=1)
    kill = kill_when(lambda: _epoch_checkpointed(folder / "runs" / "worker"), "RayTrainWorker")
    result = train(config, storage_path=folder / "runs", name="worker")
    epochs_seen = [row["epoch"] for row in result.history]
    checks = {
        "a training worker was killed": kill["killed"] is not None,
        "run finished": result.last_metrics["epoch"] == epochs - 1,
        "resumed, not restarted": result.last_metrics["started_at_epoch"] >= 1,
        f"history epochs {epochs_seen}: each once": sorted(epochs_seen) == list(range(epochs))
        and len(epochs_seen) == epochs,
        "best checkpoint complete": (Path(result.best_checkpoint) / "model.pt").is_file()
        if result.best_checkpoint else False,
    }
    return _row("Ray Train worker", "in epoch 2 (epoch 1 recorded and checkpointed)", checks)


def drill_checkpoint_write(folder: Path, shards: Path, epochs: int = 3) -> dict:
    """SIGKILL a Ray Train worker while epoch 1's checkpoint is being written: a new
    checkpoint folder exists, its epoch is not yet recorded in history.jsonl."""
    from mmrphys.model.checkpoint import read_training_state
    from pipelines.train.driver import HISTORY_FILE, train
    from train_fixtures import tiny_config

    db = folder / "mlflow.db"
    config = tiny_config(shards, f"sqlite:///{db}", epochs=epochs, max_failures=1)
    run_dir = folder / "runs" / "checkpoint"
    history = run_dir / HISTORY_FILE

    def writing() -> str | None:
        # the window (storage copy of a few small files, then the history line) lasts
        # milliseconds: poll cheaply and often
        if not run_dir.is_dir() or (history.exists() and history.stat().st_size > 0):
            return None
        folders = [entry.path for entry in os.scandir(run_dir) if entry.name.startswith("checkpoint_")]
        if not folders:
            return None
        return ", ".join(sorted(os.listdir(folders[0]))) or "empty"

    kill = kill_when(writing, "RayTrainWorker", poll_s=0.0005)
    result = train(config, storage_path=folder / "runs", name="checkpoint")
    epochs_seen = [row["epoch"] for row in result.history]
    steps = _mlflow_steps(db, result.mlflow_run_id)
    best = Path(result.best_checkpoint) if result.best_checkpoint else None
    checks = {
        "a worker was killed while a checkpoint folder was new": kill["killed"] is not None,
        "run finished": result.last_metrics["epoch"] == epochs - 1,
        f"history epochs {epochs_seen}: each once": sorted(epochs_seen) == list(range(epochs))
        and len(epochs_seen) == epochs,
        f"MLflow steps {steps}: each once": steps == list(range(epochs)),
        "best checkpoint complete (weights and training state load)": best is not None
        and (best / "model.pt").is_file() and "epoch" in read_training_state(best),
    }
    row = _row("Ray Train worker", "while its first checkpoint was written", checks)
    row["details"]["checkpoint folder at the kill"] = kill["seen"]
    return row


def drill_mlflow_unavailable(folder: Path, shards: Path, epochs: int = 3) -> dict:
    """Take the SQLite tracking store away after epoch 1 (a folder where the file was:
    SQLite cannot open it) and bring it back after epoch 2; training must go on."""
    from pipelines.train.driver import HISTORY_FILE, train
    from pipelines.tracking import SPOOL_FILE
    from train_fixtures import tiny_config

    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    config = tiny_config(shards, uri, epochs=epochs)
    # the drill is about the epochs' calls; the model, logged after the store is back, is not checked
    config = config.replace(tracking=config.tracking.replace(log_model=False, register_as="", alias=""))
    history = folder / "runs" / "store" / HISTORY_FILE
    moments: dict = {}

    def outage() -> None:
        spool = history.with_name(SPOOL_FILE)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and "back" not in moments:
            lines = len(history.read_text().splitlines()) if history.is_file() else 0
            if lines >= 1 and "away" not in moments:
                db.rename(db.with_suffix(".away"))
                db.mkdir()
                moments["away"] = lines
            # back once epoch 2's metrics were refused (or, failing that, after epoch 3)
            refused = spool.is_file() and spool.read_text().strip()
            if "away" in moments and ((lines >= 2 and refused) or lines >= 3):
                db.rmdir()
                db.with_suffix(".away").rename(db)
                moments["back"] = lines
                moments["refused"] = len(spool.read_text().splitlines()) if refused else 0
            time.sleep(0.05)

    import threading

    threading.Thread(target=outage, daemon=True).start()
    result = train(config, storage_path=folder / "runs", name="store")
    run_dir = folder / "runs" / "store"
    steps = _mlflow_steps(db, result.mlflow_run_id) if db.is_file() else []
    with sqlite3.connect(db) as connection:
        gap = connection.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mmrphys.tracking_gap'",
                                 (result.mlflow_run_id,)).fetchall()
    checks = {
        f"store away after epoch 1, back after epoch 2 ({moments.get('refused')} calls refused meanwhile)":
        moments.get("away") == 1 and moments.get("back") == 2 and moments.get("refused", 0) >= 1,
        "training finished": result.last_metrics["epoch"] == epochs - 1,
        f"MLflow steps {steps}: every epoch, late ones included": steps == list(range(epochs)),
        "the gap is said (run tag)": bool(gap),
        "spool emptied": not (run_dir / SPOOL_FILE).exists(),
    }
    return _row("MLflow store (SQLite file replaced by a folder)", "from after epoch 1 to after epoch 2", checks)


def drill_tune_trial_worker(folder: Path, shards: Path) -> dict:
    """SIGKILL the training worker of one Tune trial (allowed no restart) after its first
    epoch; the other trial goes on and the search finishes."""
    import yaml

    from mmrphys.config import SearchConfig
    from pipelines.tune.search import run_search
    from train_fixtures import tiny_config

    db = folder / "mlflow.db"
    base = tiny_config(shards, f"sqlite:///{db}", epochs=2, workers=1)
    base = base.replace(tracking=base.tracking.replace(register_as="", alias="", log_onnx=False))
    space = folder / "space.yaml"
    space.write_text(yaml.safe_dump({"trial": {"grid": [
        {"model.modality": "rgb"},
        {"model.modality": "thermal", "train.max_failures": 0},
    ]}}))
    search_dir = folder / "runs" / "search"

    def thermal_trial_trained_an_epoch() -> bool:
        for config in search_dir.glob("train_runs/*/experiment.yaml"):
            history = config.with_name("history.jsonl")
            if "modality: thermal" in config.read_text() and history.is_file() and history.read_text().strip():
                return True
        return False

    kill = kill_when(thermal_trial_trained_an_epoch, "RayTrainWorker")
    # grace period = epochs, so ASHA never stops the trial whose worker is being killed
    result = run_search(base, SearchConfig(space=str(space), grace_period=2, reduction_factor=2),
                        storage_path=folder / "runs", name="search")
    errored = [r for r in result.rows if r["status"] == "error"]
    checks = {
        "the thermal trial's worker was killed": kill["killed"] is not None,
        "search finished with both trials ranked": len(result.rows) == 2,
        "the killed trial's error recorded (results, MLflow run)": len(errored) == 1
        and errored[0]["model.modality"] == "thermal" and bool(errored[0]["error"]) and bool(errored[0]["mlflow_run_id"]),
        "the other trial completed": any(r["status"] in ("completed", "stopped early") for r in result.rows
                                         if r["model.modality"] == "rgb"),
    }
    return _row("Ray Train worker of a Tune trial (max_failures 0)", "after the trial's epoch 1", checks)


def _row(what: str, when: str, checks: dict) -> dict:
    failed = [name for name, ok in checks.items() if ok is not True]
    return {"killed": what, "when": when, "checked": [n for n in checks if checks[n] is True or checks[n] is False],
            "failed": failed, "passed": not failed, "details": {k: v for k, v in checks.items() if not isinstance(v, bool)}}


DRILLS: dict[str, Callable[..., dict]] = {
    "ingest-task": drill_ingest_task,
    "ingest-driver": drill_ingest_driver,
    "train-worker": drill_training_worker,
    "checkpoint-write": drill_checkpoint_write,
    "train-driver": drill_training_driver,
    "mlflow-store": drill_mlflow_unavailable,
    "tune-trial": drill_tune_trial_worker,
}
NEEDS_SHARDS = {"train-worker", "checkpoint-write", "train-driver", "mlflow-store", "tune-trial"}


def main() -> None:
    """Run the drills asked for (default all) and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(DRILLS), help="drills to run (default: all)")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    import ray

    from pipelines.ray_session import ensure_ray
    from train_fixtures import make_shards

    names = args.only or list(DRILLS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        ensure_ray(min_cpus=2)
        me = os.getpid()
        rows = []
        shards = make_shards(folder / "train-shards") if NEEDS_SHARDS & set(names) else None
        reference = None
        for name in names:
            work = folder / name
            work.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            try:
                if name in NEEDS_SHARDS:
                    row = DRILLS[name](work, shards)
                else:
                    if reference is None:
                        reference = _reference(raw_dataset(folder / "raw"), folder / "reference")
                    shutil.copytree(folder / "raw", work / "raw", dirs_exist_ok=True)
                    row = DRILLS[name](work, reference)
            except Exception:  # a drill that crashes is a failed drill; the others still run
                row = _row(name, "-", {"drill ran": False})
                row["details"] = {"error": traceback.format_exc()[-800:]}
            row["seconds"] = time.monotonic() - started
            rows.append(row)
            print(json.dumps(row), flush=True)
        ray.shutdown()
        # nothing a drill started may outlive it
        print(f"\nprocesses left below this script: {len(descendants(me))}")
    load = os.getloadavg()[0]
    print(f"\n2 cores, load average {load:.1f} at the end\n")
    print("| killed (SIGKILL) | when | checked | result |")
    print("|---|---|---|---|")
    for row in rows:
        result = "pass" if row["passed"] else "FAIL: " + "; ".join(row["failed"])
        print(f"| {row['killed']} | {row['when']} | {'; '.join(row['checked'])} | {result} |")


if __name__ == "__main__":
    main()
