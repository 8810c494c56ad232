"""One recording becomes one Parquet shard: the Ray Data task of `pipelines.data.ingest`.

`ingest_recording` decodes a recording, finds the face (the recording's own boxes, or the
Haar detector), crops and aligns RGB, thermal and labels, cuts and validates chunks, and
writes `shards/<recording>.parquet` with a sidecar `<recording>.json` holding its outcome,
one of three (docs/data.md, "Outcomes"):

- `accepted`: the shard is written;
- `rejected`: the data is bad (a `DatasetError` naming the file and the reason); cached,
  a re-run does not retry it;
- `failed`: anything else (a flaky disk, a lost worker, a bug); never cached, the next run
  retries it. Transient errors (`TRANSIENT`) are re-raised so that Ray retries the task
  up to `TASK_RETRIES` times first.

Every file is written under a temporary name and renamed, so an interrupted ingest leaves
no half-written file; the temporary files a killed task leaves are removed by the next
attempt (`remove_partial_files`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mmrphys.config import IngestConfig
from mmrphys.data.chunking import check_chunk, chunk_starts, label_rate
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.schema import encode_clip, rows_to_table
from mmrphys.inference.preprocessing import crop_boxes, crop_faces

#: the folder under the output directory that holds the shards and their sidecars
SHARDS = "shards"
#: errors a later attempt can cure (a flaky or full disk, a network file system, memory
#: that other tasks held): the task fails and Ray runs it again
TRANSIENT: tuple[type[BaseException], ...] = (OSError, MemoryError)
#: further attempts Ray makes at one recording after a transient error or a lost worker;
#: bounded, so a recording that kills its worker every time ends as `failed`
TASK_RETRIES = 2


def shard_name(recording_id: str) -> str:
    """File-system-safe, unique name for a recording's shard."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", recording_id.replace("/", "__"))
    return f"{safe}-{hashlib.sha1(recording_id.encode()).hexdigest()[:8]}"


def _tmp_name(path: Path, tag: str) -> Path:
    """The temporary file `path` is written through: hidden, and never listed in a manifest."""
    return path.with_name(f".{path.name}.{tag}.tmp")


def remove_partial_files(folder: Path, name: str = "*") -> int:
    """Delete the temporary files a killed writer left in `folder` (those of the file `name`,
    or all of them); returns how many. Only one writer per file runs at a time, so any
    such file found is an orphan."""
    orphans = list(folder.glob(_tmp_name(folder / name, "*").name))
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return len(orphans)


def atomic_write_bytes(path: Path, write) -> None:
    """Write `path` through `write(tmp)` and a rename, so no reader sees half a file."""
    tmp = _tmp_name(path, uuid.uuid4().hex)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON to `path`, atomically."""
    atomic_write_bytes(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


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

    spec = config.preprocessing
    own_boxes = recording.load_face_boxes() if recording.load_face_boxes is not None and not recording.pre_cropped else None
    boxes, found = crop_boxes(rgb[:n], spec, boxes=own_boxes, pre_cropped=recording.pre_cropped,
                              where=str(recording.source))
    entry["frames_without_face"] = int(n - found[:n].sum())
    crops = crop_faces(rgb[:n], None if thermal is None else thermal[:n], boxes[:n], spec)
    del rgb, thermal
    clips, thermal_clips, thermal_dtype = crops.rgb, crops.thermal, crops.thermal_dtype

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
            "size": spec.size,
            "rgb": encode_clip(clips[span], spec.rgb_dtype),
            "rgb_dtype": spec.rgb_dtype,
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
    atomic_write_bytes(shard, lambda tmp: pq.write_table(rows_to_table(rows), tmp))
    entry.update(
        status="accepted",
        chunks=len(rows),
        frames=n,
        has_thermal=thermal_clips is not None,
        has_rsp="rsp" in labels,
    )
    return entry


def _attempts(sidecar: Path, run: str) -> int:
    """Attempts at this recording in ingest run `run` so far, as its failed sidecar counts them."""
    try:
        entry = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    return int(entry.get("attempts", 0)) if entry.get("status") == "failed" and entry.get("run") == run else 0


def ingest_recording(row: dict, config: dict, shards_dir: str, run: str) -> dict:
    """Ray Data map function: ingest the pickled Recording in `row`, write its shard and
    sidecar, and return the sidecar's content (as JSON text) for progress reporting.
    `run` names this ingest run, so that a failed sidecar counts the run's attempts.

    A `DatasetError` becomes `rejected`; any other error becomes `failed` (sidecar written
    with the traceback), and a transient one is then re-raised for Ray to retry the task.
    """

    recording: Recording = pickle.loads(row["recording"])
    ingest_config = IngestConfig.from_dict(config)
    name = shard_name(recording.recording_id)
    folder = Path(shards_dir)
    shard = folder / f"{name}.parquet"
    remove_partial_files(folder, f"{name}.*")
    entry: dict[str, Any]
    retry: BaseException | None = None
    try:
        entry = _ingest_recording(recording, ingest_config, shard)
    except DatasetError as err:
        entry = {"status": "rejected", "reason": str(err), "chunks": 0}
    except Exception as err:  # not the data's fault: report it, never cache it
        entry = {
            "status": "failed",
            "reason": f"{type(err).__name__} while ingesting {recording.source}: {err}",
            "traceback": traceback.format_exc(),
            "chunks": 0,
            "run": run,
            "attempts": _attempts(shard.with_suffix(".json"), run) + 1,
        }
        retry = err if isinstance(err, TRANSIENT) else None
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
    atomic_write_json(shard.with_suffix(".json"), entry)
    if retry is not None:
        raise retry
    return {"entry": json.dumps(entry)}
