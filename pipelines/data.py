"""Streaming chunk shards into training and evaluation with Ray Data.

`load_split` reads one split's shards with `ray.data.read_parquet` (only the columns the
modality and tasks need), and a batch map on the workers decodes the stored clips,
resizes them to the target resolution by area averaging, stacks the modality's channels
(RGB then thermal) into float32 (B, C, T, H, W) and z-scores each chunk's labels. One set
of 72x72 shards serves every resolution and modality.

`check_split` runs first and fails with a `DataError` naming the problem: no manifest or
shards, an empty split, a task or modality the split's recordings lack, a corrupt or
schema-mismatched shard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from mmrphys.data.chunking import standardise
from mmrphys.data.schema import SCHEMA_VERSION, SchemaError, check_shard, decode_clips

SPLITS = ("train", "val", "test")
MODALITIES = ("rgb", "thermal", "rgbt")
TASKS = ("bvp", "rsp")
MANIFEST = "manifest.json"


class DataError(ValueError):
    """Shards or a split cannot serve the request; the message names what is wrong."""


def read_manifest(shards_dir: str | Path) -> dict:
    """The manifest `ingest` wrote beside the shards, checked for its schema version."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no manifest; run `mmrphys ingest --out {shards_dir}` first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable manifest: {err}") from None
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
        raise DataError(f"tasks {list(tasks)}: expected a non-empty subset of {list(TASKS)}")
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
    for file in files:
        if not file.is_file():
            raise DataError(f"{file}: shard listed in the manifest is missing")
        try:
            check_shard(file)
        except SchemaError as err:
            raise DataError(str(err)) from None
    return files


def area_resize(clips: np.ndarray, size: int) -> np.ndarray:
    """Float32 (n, T, size, size, C) from stored clips (n, T, H, W, C) of any dtype, by
    area interpolation (exact block means when size divides H).

    OpenCV's INTER_AREA frame by frame is about ten times faster here than a NumPy
    block-mean reshape, and gives the same values.
    """
    n, t, h, w, c = clips.shape
    if size == h == w:
        return clips.astype(np.float32)
    frames = clips.reshape(n * t, h, w, c)
    out = np.empty((n * t, size, size, c), np.float32)
    for i, frame in enumerate(frames):
        resized = cv2.resize(frame.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        out[i] = resized.reshape(size, size, c)
    return out.reshape(n, t, size, size, c)


class DecodeChunks:
    """The streaming batch map: stored rows -> model-ready float32 arrays."""

    def __init__(self, resolution: int, modality: str, tasks: tuple[str, ...], with_ids: bool):
        self.resolution, self.modality, self.tasks, self.with_ids = resolution, modality, tasks, with_ids

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames, size = int(batch["frames"][0]), int(batch["size"][0])
        if np.any(batch["frames"] != frames) or np.any(batch["size"] != size):
            raise DataError("a batch mixes chunk lengths or sizes; ingest every shard with the same settings")
        channels = []
        if self.modality in ("rgb", "rgbt"):
            rgb = decode_clips(batch["rgb"], batch["rgb_dtype"], (frames, size, size, 3))
            channels.append(area_resize(rgb, self.resolution))
        if self.modality in ("thermal", "rgbt"):
            thermal = decode_clips(batch["thermal"], batch["thermal_dtype"], (frames, size, size, 1))
            channels.append(area_resize(thermal, self.resolution))
        video = np.concatenate(channels, axis=-1) if len(channels) > 1 else channels[0]
        out = {"video": np.ascontiguousarray(video.transpose(0, 4, 1, 2, 3))}
        for task in self.tasks:
            out[task] = standardise(np.stack(batch[task]))
        if self.with_ids:
            out["recording_id"] = np.asarray(batch["recording_id"], dtype=object)
            out["chunk_index"] = np.asarray(batch["chunk_index"], dtype=np.int64)
            out["fps"] = np.asarray(batch["fps"], dtype=np.float64)
        return out


def load_split(
    shards_dir: str | Path,
    split: str,
    *,
    resolution: int,
    modality: str,
    tasks: Iterable[str],
    fold: int | None = None,
    with_ids: bool = False,
    batch_size: int = 8,
):
    """A `ray.data.Dataset` of one split, decoded for a model of this resolution,
    modality and tasks.

    Rows hold "video" float32 (C, T, H, W) raw frame values (channels RGB then thermal)
    and one float32 (T,) z-scored label per task; with `with_ids` also "recording_id",
    "chunk_index" and "fps" (read those with `iter_batches(batch_format="numpy")`).
    `batch_size` is the decode map's batch, not the training batch.
    """
    import ray.data

    tasks = tuple(tasks)
    files = check_split(shards_dir, split, modality=modality, tasks=tasks, fold=fold)
    size = read_manifest(shards_dir)["ingest_config"]["size"]
    if resolution < 1 or size % resolution:
        raise DataError(f"resolution {resolution} must divide the stored frame size {size} (e.g. 72, 36, 9)")
    columns = ["frames", "size", *tasks]
    if modality in ("rgb", "rgbt"):
        columns += ["rgb", "rgb_dtype"]
    if modality in ("thermal", "rgbt"):
        columns += ["thermal", "thermal_dtype"]
    if with_ids:
        columns += ["recording_id", "chunk_index", "fps"]
    dataset = ray.data.read_parquet([str(f) for f in files], columns=columns)
    return dataset.map_batches(
        DecodeChunks(resolution, modality, tasks, with_ids),
        batch_format="numpy",
        batch_size=batch_size,
    )
