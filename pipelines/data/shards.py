"""What a shards folder holds: its manifest, subject splits, and checks that a split can
feed a model.

`check_split` fails with a `DataError` naming the problem before any data streams: no
manifest or shards, an empty split, a task or modality the split's recordings lack, a
corrupt or schema-mismatched shard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq

from mmrphys.config import ConfigError, PreprocessingConfig
from mmrphys.data.recording import DatasetError
from mmrphys.data.schema import SCHEMA_VERSION, SchemaError, check_shard
from mmrphys.tasks import TASKS

SPLITS = ("train", "val", "test")
MODALITIES = ("rgb", "thermal", "rgbt")
MANIFEST = "manifest.json"


class DataError(DatasetError):
    """Shards or a split cannot serve the request; the message names what is wrong."""


def read_manifest(shards_dir: str | Path) -> dict:
    """The manifest `ingest` wrote beside the shards, checked for its schema version."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no manifest; run `mmrphys ingest --out {shards_dir}` first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable manifest: {err}") from err
    if not isinstance(manifest, dict) or "recordings" not in manifest:
        raise DataError(f"{path}: not an mmrphys shard manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{path}: shards have schema version {manifest.get('schema_version')}, this code reads "
            f"{SCHEMA_VERSION}; re-run the ingest"
        )
    return manifest


def split_subjects(manifest: dict, split: str, fold: int | None = None) -> list[str]:
    """Subject ids of `split` (of fold `fold` for a k-fold ingest)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if manifest.get("split_mode") == "folds":
        folds = manifest["folds"]
        if fold is None or not 0 <= fold < len(folds):
            raise DataError(f"the shards were ingested with {len(folds)} folds: pass fold 0..{len(folds) - 1}, got {fold}")
        return list(folds[fold][split])
    if fold is not None:
        raise DataError(f"the shards were split by fractions, not folds: fold must be None, got {fold}")
    return list(manifest["splits"][split])


def check_split(
    shards_dir: str | Path,
    split: str,
    *,
    modality: str,
    tasks: Iterable[str],
    fold: int | None = None,
) -> list[Path]:
    """Check a split can feed a model of `modality` and `tasks`; return its shard files.

    Raises DataError naming the problem (and the file, for a bad shard).
    """
    shards_dir = Path(shards_dir)
    tasks = tuple(tasks)
    if modality not in MODALITIES:
        raise DataError(f"unknown modality {modality!r}; expected one of {list(MODALITIES)}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise DataError(f"tasks {list(tasks)}: expected a non-empty subset of {sorted(TASKS)}")
    manifest = read_manifest(shards_dir)
    subjects = set(split_subjects(manifest, split, fold))
    recordings = [r for r in manifest["recordings"] if r["subject"] in subjects and r["status"] == "accepted"]
    where = f"{shards_dir}: split {split!r}" + (f" of fold {fold}" if fold is not None else "")
    if not recordings:
        raise DataError(f"{where} is empty (subjects {sorted(subjects)}; no accepted recordings)")
    if "rsp" in tasks:
        lacking = [r["recording_id"] for r in recordings if not r["has_rsp"]]
        if lacking:
            raise DataError(f"{where}: task 'rsp' needs RSP labels, which {len(lacking)} recordings lack: {lacking[:5]}")
    if modality in ("thermal", "rgbt"):
        lacking = [r["recording_id"] for r in recordings if not r["has_thermal"]]
        if lacking:
            raise DataError(
                f"{where}: modality {modality!r} needs thermal frames, which {len(lacking)} recordings lack: {lacking[:5]}"
            )
    files = [shards_dir / r["shard"] for r in recordings]
    for file, recording in zip(files, recordings):
        if not file.is_file():
            raise DataError(f"{file}: shard listed in the manifest is missing")
        try:
            check_shard(file)
            rows = pq.read_metadata(file).num_rows
        except SchemaError as err:
            raise DataError(str(err)) from err
        # an edited manifest, or a shard swapped for another recording's, shows as a count that disagrees
        if rows != recording["chunks"]:
            raise DataError(f"{file}: holds {rows} chunks, the manifest says {recording['chunks']} for "
                            f"{recording['recording_id']}; the manifest was edited or the shard replaced: re-run the ingest")
    return files


def split_rows(shards: str | Path, split: str, fold: int | None = None) -> int:
    """Accepted chunks in `split`, counted from the manifest (no data is read)."""
    manifest = read_manifest(shards)
    subjects = set(split_subjects(manifest, split, fold))
    return sum(r["chunks"] for r in manifest["recordings"]
               if r["status"] == "accepted" and r["subject"] in subjects)


def preprocessing_of(shards: str | Path):
    """The PreprocessingConfig the shards were cut with (what their models must serve with)."""
    path = Path(shards) / MANIFEST
    try:
        return PreprocessingConfig.from_dict(read_manifest(shards)["ingest_config"]["preprocessing"])
    except (KeyError, TypeError, ConfigError) as err:
        raise DataError(f"{path}: no valid ingest_config.preprocessing ({err}); re-run the ingest") from err
