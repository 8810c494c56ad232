"""Ingest a dataset into validated, subject-split Parquet chunk shards with Ray Data.

One Ray task per recording (`pipelines.data.ingest_recording`) decodes it, finds the face (the
recording's own boxes, or the Haar detector), crops and aligns RGB, thermal and labels,
cuts chunks, validates them and writes one shard per recording (`shards/<recording>.parquet`) with a sidecar
`<recording>.json` holding its outcome. `SHARDS_DIR/manifest.json` then gathers the
subject splits, counts, the ingest config and a validation report of every rejected
recording and chunk with its reason, and the recordings that failed.

Resumable and idempotent: an accepted or rejected recording whose sidecar matches the
current shard settings is not redone; a failed one always is. Shards, sidecars and the
manifest are written to a temporary name and renamed, so an interrupted ingest leaves no
half-written file, and the temporary files of a killed run are removed by the next.
An ingest that ends with failed recordings writes its manifest, then raises
`IngestIncomplete`.
"""

from __future__ import annotations

import datetime
import json
import pickle
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import ray.data
from tqdm import tqdm

from mmrphys.config import IngestConfig
from mmrphys.data.datasets import read_dataset
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.schema import SCHEMA_VERSION
from mmrphys.errors import UserError
from pipelines.data.ingest_recording import (
    SHARDS,
    TASK_RETRIES,
    TRANSIENT,
    atomic_write_json,
    ingest_recording,
    remove_partial_files,
    shard_name,
)
from pipelines.data.shards import MANIFEST, SPLITS
from pipelines.ray_session import ensure_ray, task_pool

#: the outcomes a recording can have (docs/data.md, "Outcomes")
OUTCOMES = ("accepted", "rejected", "failed")


class IngestIncomplete(UserError, RuntimeError):
    """Some recordings failed (not for bad data); the manifest is written, a re-run retries them."""

    def __init__(self, message: str, manifest: dict):
        super().__init__(message)
        self.manifest = manifest

# ---------------------------------------------------------------- subject splits


def split_by_fraction(subjects: list[str], fractions: tuple[float, ...], seed: int) -> dict[str, list[str]]:
    """Shuffle subjects (seeded) and cut them into train/val/test by `fractions`.

    Every split with a non-zero fraction gets at least one subject when there are enough.
    """
    order = list(np.random.default_rng(seed).permutation(sorted(subjects)))
    n = len(order)
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    counts = [int(np.floor(f * n)) for f in fractions]
    # largest remainders first, then make sure every wanted split is non-empty
    for i in sorted(wanted, key=lambda i: fractions[i] * n - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    for i in wanted:
        if counts[i] == 0 and n >= len(wanted):
            donor = max(range(3), key=lambda j: counts[j])
            counts[donor] -= 1
            counts[i] += 1
    bounds = np.cumsum([0] + counts)
    return {name: sorted(str(s) for s in order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLITS)}


def split_by_folds(subjects: list[str], folds: int, seed: int) -> list[dict[str, list[str]]]:
    """k subject groups; fold i tests group i, validates on group i+1, trains on the rest."""
    if len(subjects) < folds:
        raise DatasetError(f"{folds} folds need at least {folds} subjects, the dataset has {len(subjects)}")
    order = list(np.random.default_rng(seed).permutation(sorted(subjects)))
    groups = [sorted(str(s) for s in order[i::folds]) for i in range(folds)]
    out = []
    for i in range(folds):
        val = (i + 1) % folds
        train = sorted(s for j, g in enumerate(groups) if j not in (i, val) for s in g)
        out.append({"train": train, "val": groups[val], "test": groups[i]})
    return out


# ---------------------------------------------------------------- the whole dataset


def _sidecar(sidecar: Path, key: str) -> dict | None:
    """A recording's sidecar entry if it was written for the shard settings `key`."""
    try:
        entry = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return entry if entry.get("shard_key") == key else None


def _done(sidecar: Path, key: str) -> dict | None:
    """The finished entry of a recording: accepted (with its shard) or rejected, for `key`.
    A failed recording is never done: the next run retries it."""
    entry = _sidecar(sidecar, key)
    if entry is None or entry.get("status") not in ("accepted", "rejected"):
        return None
    if entry["status"] == "accepted" and not (sidecar.parent.parent / entry["shard"]).is_file():
        return None
    return entry


def _lost(recording: Recording, sidecar: Path, key: str) -> dict:
    """The entry of a recording whose task never returned: the `failed` sidecar its last
    attempt wrote, or (when every attempt's worker died) a failed entry said here."""
    entry = _sidecar(sidecar, key)
    if entry is not None and entry.get("status") == "failed":
        return entry
    entry = {
        "status": "failed",
        "reason": f"the ingest task of {recording.source} was lost {TASK_RETRIES + 1} times "
                  "(its worker process died: killed, or out of memory)",
        "chunks": 0, "recording_id": recording.recording_id, "dataset": recording.dataset,
        "subject": recording.subject, "session": recording.session, "source": str(recording.source),
        "fps": float(recording.fps), "shard": None, "shard_key": key, "warnings": [], "rejected_chunks": [],
    }
    atomic_write_json(sidecar, entry)
    return entry


def ingest(
    dataset: str,
    root: str | Path,
    out: str | Path,
    config: IngestConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    concurrency: int | None = None,
) -> dict:
    """Ingest dataset `dataset` under `root` into shards and a manifest under `out`.

    `config` gives every setting (defaults: `IngestConfig()`).
    `concurrency` caps the recordings decoded at once; by default Ray Data runs one per
    free CPU. Returns the manifest. Raises DatasetError when the dataset has no recordings
    or every recording is rejected, and IngestIncomplete when some failed (the manifest
    with the validation report is written first in both cases).
    """
    config = config or IngestConfig()
    out = Path(out)
    shards_dir = out / SHARDS
    recordings = list(read_dataset(dataset, root))
    if not recordings:
        raise DatasetError(f"{root}: the {dataset!r} reader found no recordings")
    ids = [r.recording_id for r in recordings]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DatasetError(f"{root}: recording ids are not unique: {duplicates}")
    subjects = sorted({r.subject for r in recordings})
    folds = split_by_folds(subjects, config.folds, config.seed) if config.folds else None
    splits = None if folds else split_by_fraction(subjects, config.split, config.seed)

    # only now that the dataset has recordings does anything get written
    shards_dir.mkdir(parents=True, exist_ok=True)
    # a killed run's half-written files; nothing reads them (only manifest-listed shards are)
    orphans = remove_partial_files(shards_dir) + remove_partial_files(out, MANIFEST)
    key = config.shard_key()
    entries: dict[str, dict] = {}
    todo = []
    for recording in recordings:
        sidecar = shards_dir / f"{shard_name(recording.recording_id)}.json"
        done = None if overwrite else _done(sidecar, key)
        if done is not None:
            entries[recording.recording_id] = done
        else:
            todo.append(recording)
    if progress:
        removed = f"; removed {orphans} partial files of an interrupted run" if orphans else ""
        print(f"ingest: {len(recordings)} recordings of {len(subjects)} subjects; "
              f"{len(entries)} already done, {len(todo)} to process{removed}")
    if todo:
        entries.update(_run_tasks(todo, config, shards_dir, concurrency, progress))
        for recording in todo:
            if recording.recording_id not in entries:
                sidecar = shards_dir / f"{shard_name(recording.recording_id)}.json"
                entries[recording.recording_id] = _lost(recording, sidecar, key)

    manifest = _manifest(dataset, root, config, [entries[i] for i in ids], folds, splits)
    atomic_write_json(out / MANIFEST, manifest)
    counts = manifest["counts"]
    if counts["failed_recordings"]:
        raise IngestIncomplete(
            f"{counts['failed_recordings']} of {len(ids)} recordings failed (not for bad data; "
            f"reasons in {out / MANIFEST} under 'failures'); run the same ingest again to retry them: "
            "accepted and rejected recordings are not redone",
            manifest,
        )
    if counts["accepted_recordings"] == 0:
        raise DatasetError(
            f"{root}: all {len(ids)} recordings were rejected; see the validation report in {out / MANIFEST}"
        )
    return manifest


def _run_tasks(todo: list[Recording], config: IngestConfig, shards_dir: Path, concurrency: int | None,
               progress: bool) -> dict[str, dict]:
    """One Ray Data task per recording; the entries of those whose task returned.

    A task that raises after its retries (a transient error every time, or a worker that
    died every time) loses only its own block: `max_errored_blocks` lets the others finish,
    and the caller reports the missing ones as failed.
    """
    ensure_ray()
    context = ray.data.DataContext.get_current()
    saved = context.max_errored_blocks
    context.max_errored_blocks = len(todo)
    entries: dict[str, dict] = {}
    try:
        items = ray.data.from_items([{"recording": pickle.dumps(r)} for r in todo], override_num_blocks=len(todo))
        with warnings.catch_warnings():
            # Ray 2.60 (pinned) deprecates **ray_remote_args but names no parameter for
            # max_retries/retry_exceptions; without them Ray Data retries a lost task
            # forever, and a recording that kills its worker every time would never end.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            results = items.map(
                ingest_recording,
                fn_kwargs={"config": config.to_dict(), "shards_dir": str(shards_dir), "run": uuid.uuid4().hex},
                compute=task_pool(concurrency),
                max_retries=TASK_RETRIES,
                retry_exceptions=list(TRANSIENT),
            )
        # disable=None: no bar when stderr is not a terminal (logs, `ray job submit`)
        bar = tqdm(total=len(todo), desc="ingest", unit="recording", disable=None) if progress else None
        for row in results.iter_rows():
            entry = json.loads(row["entry"])
            entries[entry["recording_id"]] = entry
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{entry['recording_id']}: {entry['status']}")
        if bar is not None:
            bar.close()
    finally:
        context.max_errored_blocks = saved
    return entries


def _manifest(
    dataset: str,
    root: str | Path,
    config: IngestConfig,
    entries: list[dict],
    folds: list[dict[str, list[str]]] | None,
    splits: dict[str, list[str]] | None,
) -> dict:
    accepted = [e for e in entries if e["status"] == "accepted"]
    report = [
        {"recording_id": e["recording_id"], "source": e["source"], "chunk_index": None, "start_frame": None,
         "reason": e["reason"]}
        for e in entries if e["status"] == "rejected"
    ] + [
        {"recording_id": e["recording_id"], "source": e["source"], **c}
        for e in entries for c in e.get("rejected_chunks", [])
    ]

    def chunks_per_split(split: dict[str, list[str]]) -> dict[str, int]:
        return {name: sum(e["chunks"] for e in accepted if e["subject"] in set(subjects)) for name, subjects in split.items()}

    manifest: dict[str, Any] = {
        "format": "mmrphys-chunk-shards",
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "root": str(Path(root).resolve()),
        "ingest_config": config.to_dict(),
        "split_mode": "folds" if folds else "fractions",
    }
    if folds:
        manifest["folds"] = folds
    else:
        manifest["splits"] = splits
    manifest["counts"] = {
        "recordings": len(entries),
        **{f"{outcome}_recordings": sum(e["status"] == outcome for e in entries) for outcome in OUTCOMES},
        "subjects": len({e["subject"] for e in entries}),
        "chunks": sum(e["chunks"] for e in accepted),
        "rejected_chunks": sum(len(e.get("rejected_chunks", [])) for e in entries),
        "chunks_per_split": [chunks_per_split(f) for f in folds] if folds else chunks_per_split(splits),
    }
    manifest["recordings"] = [
        {k: e.get(k) for k in ("recording_id", "dataset", "subject", "session", "source", "status", "shard",
                                "chunks", "frames", "fps", "has_thermal", "has_rsp", "frames_without_face", "warnings")}
        for e in entries
    ]
    manifest["validation_report"] = report
    manifest["failures"] = [
        {"recording_id": e["recording_id"], "source": e["source"], "reason": e["reason"],
         "attempts": e.get("attempts")}
        for e in entries if e["status"] == "failed"
    ]
    return manifest
