"""Ingest a dataset into validated, subject-split Parquet chunk shards with Ray Data.

One Ray task per recording decodes it, finds the face (the recording's own boxes, or the
Haar detector), crops and aligns RGB, thermal and labels, cuts chunks, validates them and
writes one shard per recording (`shards/<recording>.parquet`) with a sidecar
`<recording>.json` holding its outcome. `SHARDS_DIR/manifest.json` then gathers the
subject splits, counts, the ingest config and a validation report of every rejected
recording and chunk with its reason.

Resumable and idempotent: a recording whose sidecar matches the current shard settings is
not redone; shards, sidecars and the manifest are written to a temporary name and
renamed, so an interrupted ingest leaves no half-written file.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import pickle
import re
import traceback
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq

from mmrphys.config import Config, ConfigError
from mmrphys.data.chunking import check_chunk, chunk_starts, label_rate
from mmrphys.data.datasets import read_dataset
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.schema import SCHEMA_VERSION, encode_clip, rows_to_table
from mmrphys.data.video import NoFaceError, crop_resize, detect_faces, smooth_boxes, square_boxes, thermal_boxes
from pipelines.data import MANIFEST, SPLITS

SHARDS = "shards"
#: largest magnitude float16 stores with better than 1-unit resolution
_FLOAT16_EXACT_LIMIT = 2048.0


@dataclasses.dataclass(frozen=True)
class IngestConfig(Config):
    """How recordings become chunks, and how subjects are split.

    chunk_frames / overlap: chunk length and the frames consecutive chunks share.
    size: stored crop size (frames are resized to size x size once, at ingest).
    rgb_dtype: storage precision of RGB clips (see docs/data.md for the measurement).
    detect_every / box_scale / smooth_frames: Haar re-detection interval, square-box
        enlargement and the moving-average window of box smoothing.
    max_no_face: largest fraction of a chunk's frames without a detected face.
    max_frame_mismatch: RGB/thermal frame counts may differ by this much (both are then
        cut to the shorter); beyond it the recording is rejected.
    min_quality: for datasets with per-frame signal-quality labels (iBVP), the lowest mean
        quality a chunk may have (the reference drops frames at <= 0.3; we drop whole
        chunks, keeping every kept chunk continuous in time).
    split: train/val/test fractions of subjects (ignored when folds > 0).
    folds: k >= 3 gives k subject folds: fold i tests group i, validates on group i+1.
    seed: the subject shuffle of the split.
    """

    chunk_frames: int = 180
    overlap: int = 0
    size: int = 72
    rgb_dtype: Literal["uint8", "float16"] = "uint8"
    detect_every: int = 30
    box_scale: float = 1.5
    smooth_frames: int = 15
    max_no_face: float = 0.5
    max_frame_mismatch: int = 0
    min_quality: float = 0.3
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    folds: int = 0
    seed: int = 0

    def validate(self) -> None:
        if self.chunk_frames < 8:
            raise ConfigError(f"IngestConfig.chunk_frames: must be >= 8, got {self.chunk_frames}")
        if not 0 <= self.overlap < self.chunk_frames:
            raise ConfigError(f"IngestConfig.overlap: must be in [0, chunk_frames), got {self.overlap}")
        if self.size < 8:
            raise ConfigError(f"IngestConfig.size: must be >= 8, got {self.size}")
        if self.detect_every < 1 or self.smooth_frames < 1:
            raise ConfigError("IngestConfig.detect_every and smooth_frames: must be >= 1")
        if self.box_scale < 1.0:
            raise ConfigError(f"IngestConfig.box_scale: must be >= 1, got {self.box_scale}")
        if not 0.0 <= self.min_quality <= 1.0:
            raise ConfigError(f"IngestConfig.min_quality: must be in [0, 1], got {self.min_quality}")
        if not 0.0 <= self.max_no_face <= 1.0:
            raise ConfigError(f"IngestConfig.max_no_face: must be in [0, 1], got {self.max_no_face}")
        if self.max_frame_mismatch < 0:
            raise ConfigError("IngestConfig.max_frame_mismatch: must be >= 0")
        if len(self.split) != 3 or min(self.split) < 0 or self.split[0] <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(
                f"IngestConfig.split: expected three fractions train, val, test >= 0 summing to 1 "
                f"with train > 0, got {list(self.split)}"
            )
        if self.folds and self.folds < 3:
            raise ConfigError(f"IngestConfig.folds: 0 (use split fractions) or >= 3, got {self.folds}")

    def shard_key(self) -> str:
        """Hash of the settings that change shard contents (not the split)."""
        fields = {k: v for k, v in self.to_dict().items() if k not in ("split", "folds", "seed")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


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


# ---------------------------------------------------------------- one recording (a Ray task)


def shard_name(recording_id: str) -> str:
    """File-system-safe, unique name for a recording's shard."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", recording_id.replace("/", "__"))
    return f"{safe}-{hashlib.sha1(recording_id.encode()).hexdigest()[:8]}"


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write_json(path: Path, data: Any) -> None:
    _atomic_write_bytes(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def _face_boxes(recording: Recording, rgb: np.ndarray, config: IngestConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame crop boxes and a per-frame flag of whether a face was found."""
    n, height, width = rgb.shape[:3]
    if recording.pre_cropped:
        return np.tile([0.0, 0.0, width, height], (n, 1)), np.ones(n, bool)
    if recording.load_face_boxes is not None:
        boxes = np.asarray(recording.load_face_boxes(), np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) < n:
            raise DatasetError(f"{recording.source}: face boxes have shape {boxes.shape}, expected ({n}, 4)")
        boxes, found = boxes[:n], np.ones(n, bool)
    else:
        try:
            boxes, found = detect_faces(rgb, every=config.detect_every)
        except NoFaceError as err:
            raise NoFaceError(f"{recording.source}: {err}") from None
    return smooth_boxes(square_boxes(boxes, config.box_scale), config.smooth_frames), found


def _ingest_recording(recording: Recording, config: IngestConfig, shard: Path) -> dict:
    """Decode, crop, chunk, validate and write one recording. Returns its report entry."""
    entry: dict[str, Any] = {"warnings": [], "rejected_chunks": []}
    if not np.isfinite(recording.fps) or not 1.0 <= recording.fps <= 1000.0:
        raise DatasetError(f"{recording.source}: implausible frame rate {recording.fps} fps")
    rgb = recording.load_rgb()
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8 or len(rgb) == 0:
        raise DatasetError(f"{recording.source}: RGB frames must be uint8 (T, H, W, 3), got {rgb.dtype} {rgb.shape}")
    n = len(rgb)
    thermal = recording.load_thermal() if recording.load_thermal is not None else None
    if thermal is not None:
        if thermal.ndim != 3:
            raise DatasetError(f"{recording.source}: thermal frames must be (T, H, W), got {thermal.shape}")
        if len(thermal) != n:
            if abs(len(thermal) - n) > config.max_frame_mismatch:
                raise DatasetError(
                    f"{recording.source}: RGB has {n} frames, thermal has {len(thermal)} "
                    f"(allowed difference {config.max_frame_mismatch})"
                )
            entry["warnings"].append(f"RGB {n} and thermal {len(thermal)} frames: cut to the shorter")
            n = min(n, len(thermal))
    labels = recording.load_labels()
    if "bvp" not in labels:
        raise DatasetError(f"{recording.source}: the recording has no BVP labels")
    quality = np.asarray(labels["quality"], np.float64) if "quality" in labels else None
    labels = {k: np.asarray(labels[k], np.float64) for k in ("bvp", "rsp") if k in labels}
    for name, values in labels.items():
        # a label track may end up to one frame early (time-stamp rounding), not more
        if len(values) < n - 1:
            raise DatasetError(
                f"{recording.source}: {name} labels cover {len(values)} frames "
                f"({len(values) / recording.fps:.1f} s), the video has {n} ({n / recording.fps:.1f} s)"
            )
        if len(values) > n + recording.fps:
            entry["warnings"].append(f"{name} labels run {(len(values) - n) / recording.fps:.1f} s past the video: cut")
    n = min([n] + [len(v) for v in labels.values()])

    boxes, found = _face_boxes(recording, rgb[:n], config)
    entry["frames_without_face"] = int(n - found[:n].sum())
    rgb_shape = rgb.shape[1:3]
    clips = crop_resize(rgb[:n], boxes[:n], config.size)
    del rgb
    thermal_clips, thermal_dtype = None, None
    if thermal is not None:
        thermal_clips = crop_resize(thermal[:n], thermal_boxes(boxes[:n], rgb_shape, thermal.shape[1:3]), config.size)
        # float16 resolves temperatures in degrees finely; raw sensor counts need float32
        thermal_dtype = "float16" if np.nanmax(np.abs(thermal_clips)) < _FLOAT16_EXACT_LIMIT else "float32"
        del thermal

    rows = []
    for index, start in enumerate(chunk_starts(n, config.chunk_frames, config.overlap)):
        span = slice(start, start + config.chunk_frames)
        chunk_labels = {k: v[span] for k, v in labels.items()}
        reason = check_chunk(chunk_labels, found[span], config.max_no_face,
                             quality[span] if quality is not None else None, config.min_quality)
        if reason:
            entry["rejected_chunks"].append({"chunk_index": index, "start_frame": start, "reason": reason})
            continue
        rows.append({
            "dataset": recording.dataset,
            "subject": recording.subject,
            "session": recording.session,
            "recording_id": recording.recording_id,
            "chunk_index": index,
            "start_frame": start,
            "fps": float(recording.fps),
            "frames": config.chunk_frames,
            "size": config.size,
            "rgb": encode_clip(clips[span], config.rgb_dtype),
            "rgb_dtype": config.rgb_dtype,
            "thermal": encode_clip(thermal_clips[span], thermal_dtype) if thermal_clips is not None else None,
            "thermal_dtype": thermal_dtype,
            "thermal_unit": recording.thermal_unit if thermal_clips is not None else None,
            "bvp": chunk_labels["bvp"].astype(np.float32),
            "rsp": chunk_labels["rsp"].astype(np.float32) if "rsp" in chunk_labels else None,
            "hr_bpm": label_rate(chunk_labels["bvp"], recording.fps, "bvp"),
            "rr_bpm": label_rate(chunk_labels["rsp"], recording.fps, "rsp") if "rsp" in chunk_labels else None,
            "face_found": float(np.mean(found[span])),
        })
    total = len(rows) + len(entry["rejected_chunks"])
    if total == 0:
        raise DatasetError(
            f"{recording.source}: {n} usable frames, shorter than one chunk of {config.chunk_frames}"
        )
    if not rows:
        raise DatasetError(f"{recording.source}: all {total} chunks rejected (see rejected_chunks)")
    _atomic_write_bytes(shard, lambda tmp: pq.write_table(rows_to_table(rows), tmp))
    entry.update(
        status="accepted",
        chunks=len(rows),
        frames=n,
        has_thermal=thermal_clips is not None,
        has_rsp="rsp" in labels,
    )
    return entry


def ingest_recording(row: dict, config: dict, shards_dir: str) -> dict:
    """Ray Data map function: ingest the pickled Recording in `row`, write its shard and
    sidecar, and return the sidecar's content (as JSON text) for progress reporting.

    Bad input becomes a rejection with its reason; nothing escapes as a bare crash.
    """
    recording: Recording = pickle.loads(row["recording"])
    ingest_config = IngestConfig.from_dict(config)
    name = shard_name(recording.recording_id)
    shard = Path(shards_dir) / f"{name}.parquet"
    entry: dict[str, Any]
    try:
        entry = _ingest_recording(recording, ingest_config, shard)
    except DatasetError as err:
        entry = {"status": "rejected", "reason": str(err), "chunks": 0}
    except Exception as err:  # a bug or an unforeseen input: keep the context, reject the recording
        entry = {
            "status": "rejected",
            "reason": f"unexpected {type(err).__name__} while ingesting {recording.source}: {err}",
            "traceback": traceback.format_exc(),
            "chunks": 0,
        }
    entry.update(
        recording_id=recording.recording_id,
        dataset=recording.dataset,
        subject=recording.subject,
        session=recording.session,
        source=str(recording.source),
        fps=float(recording.fps),
        shard=f"{SHARDS}/{name}.parquet" if entry["status"] == "accepted" else None,
        shard_key=ingest_config.shard_key(),
    )
    entry.setdefault("warnings", [])
    entry.setdefault("rejected_chunks", [])
    if entry["status"] != "accepted":
        shard.unlink(missing_ok=True)
    _atomic_write_json(shard.with_suffix(".json"), entry)
    return {"entry": json.dumps(entry)}


# ---------------------------------------------------------------- the whole dataset


def _done(sidecar: Path, key: str) -> dict | None:
    """The finished entry of a recording, if its sidecar (and shard) match `key`."""
    try:
        entry = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if entry.get("shard_key") != key:
        return None
    if entry.get("status") == "accepted" and not (sidecar.parent.parent / entry["shard"]).is_file():
        return None
    return entry


def ingest(
    dataset: str,
    root: str | Path,
    out: str | Path,
    chunk_frames: int = 180,
    *,
    config: IngestConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    concurrency: int | None = None,
) -> dict:
    """Ingest dataset `dataset` under `root` into shards and a manifest under `out`.

    `config` gives every setting (its chunk_frames wins over the argument).
    `concurrency` caps the recordings decoded at once (each holds its whole video in
    memory); by default Ray Data runs one per free CPU. Returns the manifest. Raises DatasetError when the dataset has no recordings or every recording is
    rejected (the manifest with the validation report is written first).
    """
    import ray.data

    from pipelines.ray_session import ensure_ray

    config = config or IngestConfig(chunk_frames=chunk_frames)
    out = Path(out)
    shards_dir = out / SHARDS
    shards_dir.mkdir(parents=True, exist_ok=True)
    recordings = list(read_dataset(dataset, root))
    ids = [r.recording_id for r in recordings]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DatasetError(f"{root}: recording ids are not unique: {duplicates}")
    subjects = sorted({r.subject for r in recordings})
    folds = split_by_folds(subjects, config.folds, config.seed) if config.folds else None
    splits = None if folds else split_by_fraction(subjects, config.split, config.seed)

    key = config.shard_key()
    entries: dict[str, dict] = {}
    todo = []
    for recording in recordings:
        sidecar = shards_dir / f"{shard_name(recording.recording_id)}.json"
        done = None if overwrite else _done(sidecar, key)
        if done is not None:
            entries[recording.recording_id] = done
        else:
            todo.append({"recording": pickle.dumps(recording)})
    if progress:
        print(f"ingest: {len(recordings)} recordings of {len(subjects)} subjects; "
              f"{len(entries)} already done, {len(todo)} to process")
    if todo:
        ensure_ray()
        results = ray.data.from_items(todo, override_num_blocks=len(todo)).map(
            ingest_recording,
            fn_kwargs={"config": config.to_dict(), "shards_dir": str(shards_dir)},
            concurrency=concurrency,
        )
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="ingest", unit="recording")
        for row in results.iter_rows():
            entry = json.loads(row["entry"])
            entries[entry["recording_id"]] = entry
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{entry['recording_id']}: {entry['status']}")
        if bar is not None:
            bar.close()

    manifest = _manifest(dataset, root, config, [entries[i] for i in ids], folds, splits)
    _atomic_write_json(out / MANIFEST, manifest)
    if manifest["counts"]["accepted_recordings"] == 0:
        raise DatasetError(
            f"{root}: all {len(ids)} recordings were rejected; see the validation report in {out / MANIFEST}"
        )
    return manifest


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
        for e in entries if e["status"] != "accepted"
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
        "accepted_recordings": len(accepted),
        "rejected_recordings": len(entries) - len(accepted),
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
    return manifest
