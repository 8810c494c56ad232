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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mmrphys.config import IngestConfig
from mmrphys.data.chunking import check_chunk, chunk_starts, label_rate
from mmrphys.data.recording import DatasetError, Recording
from mmrphys.data.schema import CHUNK_SCHEMA, encode_clip, rows_to_table
from mmrphys.inference.preprocessing import FaceCrops, crop_boxes, crop_faces

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
    """Decode, crop, chunk, validate and write one recording. Returns its report entry.

    The frames stream through a window at a time (`_chunk_rows`), each chunk is written
    as it is complete, and the checks that need the frame counts run at the end; a
    DatasetError then discards the temporary shard.
    """
    entry: dict[str, Any] = {"warnings": [], "rejected_chunks": []}
    if not np.isfinite(recording.fps) or not 1.0 <= recording.fps <= 1000.0:
        raise DatasetError(f"{recording.source}: implausible frame rate {recording.fps} fps")
    labels = recording.load_labels()
    if "bvp" not in labels:
        raise DatasetError(f"{recording.source}: the recording has no BVP labels")
    quality = np.asarray(labels["quality"], np.float64) if "quality" in labels else None
    labels = {k: np.asarray(labels[k], np.float64) for k in ("bvp", "rsp") if k in labels}
    window = config.chunk_frames - config.overlap
    boxes = found = None
    if not recording.pre_cropped:
        own = recording.load_face_boxes() if recording.load_face_boxes is not None else None
        boxes, found = crop_boxes(recording.stream_rgb(window), config.preprocessing, boxes=own,
                                  where=str(recording.source))
    counts = {"rgb": 0, "thermal": 0, "rows": 0, "has_thermal": False}

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, CHUNK_SCHEMA) as writer:
            for row in _chunk_rows(recording, config, labels, quality, boxes, found, counts, entry):
                writer.write_table(rows_to_table([row]))
                counts["rows"] += 1
        _check_counts(recording, config, labels, boxes, found, counts, entry)

    atomic_write_bytes(shard, write)
    entry.update(
        status="accepted",
        chunks=counts["rows"],
        frames=counts["frames"],
        has_thermal=counts["has_thermal"],
        has_rsp="rsp" in labels,
    )
    return entry


def _paired_windows(recording: Recording, window: int, counts: dict) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(RGB, thermal or None) windows of the same frames while both cameras have them;
    then the longer stream is read to its end only to count its frames (in `counts`)."""
    rgb_stream = recording.stream_rgb(window)
    thermal_stream = recording.stream_thermal(window) if recording.stream_thermal is not None else None
    for rgb in rgb_stream:
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise DatasetError(f"{recording.source}: RGB frames must be uint8 (T, H, W, 3), got {rgb.dtype} {rgb.shape}")
        counts["rgb"] += len(rgb)
        if thermal_stream is None:
            yield rgb, None
            continue
        thermal = next(thermal_stream, None)
        if thermal is None:
            break
        if thermal.ndim != 3:
            raise DatasetError(f"{recording.source}: thermal frames must be (T, H, W), got {thermal.shape}")
        counts["thermal"] += len(thermal)
        both = min(len(rgb), len(thermal))
        yield rgb[:both], thermal[:both]
    counts["rgb"] += sum(len(rgb) for rgb in rgb_stream)
    if thermal_stream is not None:
        counts["thermal"] += sum(len(thermal) for thermal in thermal_stream)


def _chunk_rows(recording: Recording, config: IngestConfig, labels: dict[str, np.ndarray],
                quality: np.ndarray | None, boxes: np.ndarray | None, found: np.ndarray | None,
                counts: dict, entry: dict) -> Iterator[dict]:
    """The accepted chunks of the recording as Parquet rows, in order; rejected chunks go
    to `entry`. Holds the crops of one chunk and one window, never the recording."""
    spec = config.preprocessing
    length, step = config.chunk_frames, config.chunk_frames - config.overlap
    # frames a chunk can cover: labels (and own or detected boxes) end somewhere
    usable = min([len(v) for v in labels.values()] + ([len(boxes)] if boxes is not None else []))
    rgb_held = thermal_held = None  # crops of frames [first, cropped)
    first = cropped = index = 0
    for rgb, thermal in _paired_windows(recording, step, counts):
        if index * step + length > usable:
            continue  # no further chunk fits: the rest is only counted
        if boxes is None:
            window_boxes, _ = crop_boxes(rgb, spec, pre_cropped=True)
        else:
            window_boxes = boxes[cropped : cropped + len(rgb)]
            rgb, thermal = rgb[: len(window_boxes)], None if thermal is None else thermal[: len(window_boxes)]
        crops = crop_faces(rgb, thermal, window_boxes, spec)
        cropped += len(rgb)
        rgb_held = crops.rgb if rgb_held is None else np.concatenate([rgb_held, crops.rgb])
        if crops.thermal is not None:
            thermal_held = crops.thermal if thermal_held is None else np.concatenate([thermal_held, crops.thermal])
        while index * step + length <= min(cropped, usable):
            start = index * step
            span = slice(start - first, start - first + length)
            clip = FaceCrops(rgb_held[span], None if thermal_held is None else thermal_held[span])
            row = _chunk_row(recording, config, labels, quality, found, index, start, clip, entry)
            if row is not None:
                counts["has_thermal"] = clip.thermal is not None
                yield row
            index += 1
        # keep only the frames a later chunk still needs
        drop = min(index * step, cropped) - first
        rgb_held = rgb_held[drop:]
        thermal_held = None if thermal_held is None else thermal_held[drop:]
        first += drop


def _chunk_row(recording: Recording, config: IngestConfig, labels: dict[str, np.ndarray],
               quality: np.ndarray | None, found: np.ndarray | None, index: int, start: int,
               clip: FaceCrops, entry: dict) -> dict | None:
    """Chunk `index` (frames from `start`) as a Parquet row, or None when it is rejected."""
    spec = config.preprocessing
    span = slice(start, start + config.chunk_frames)
    chunk_labels = {k: v[span] for k, v in labels.items()}
    chunk_found = found[span] if found is not None else np.ones(config.chunk_frames, bool)
    reason = check_chunk(chunk_labels, chunk_found, config.max_no_face,
                         quality[span] if quality is not None else None, config.min_quality)
    if reason:
        entry["rejected_chunks"].append({"chunk_index": index, "start_frame": start, "reason": reason})
        return None
    thermal_dtype = clip.thermal_dtype
    return {
        "dataset": recording.dataset,
        "subject": recording.subject,
        "session": recording.session,
        "recording_id": recording.recording_id,
        "chunk_index": index,
        "start_frame": start,
        "fps": float(recording.fps),
        "frames": config.chunk_frames,
        "size": spec.size,
        "rgb": encode_clip(clip.rgb, spec.rgb_dtype),
        "rgb_dtype": spec.rgb_dtype,
        "thermal": encode_clip(clip.thermal, thermal_dtype) if clip.thermal is not None else None,
        "thermal_dtype": thermal_dtype,
        "thermal_unit": recording.thermal_unit if clip.thermal is not None else None,
        "bvp": chunk_labels["bvp"].astype(np.float32),
        "rsp": chunk_labels["rsp"].astype(np.float32) if "rsp" in chunk_labels else None,
        "hr_bpm": label_rate(chunk_labels["bvp"], recording.fps, "bvp"),
        "rr_bpm": label_rate(chunk_labels["rsp"], recording.fps, "rsp") if "rsp" in chunk_labels else None,
        "face_found": float(np.mean(chunk_found)),
    }


def _check_counts(recording: Recording, config: IngestConfig, labels: dict[str, np.ndarray],
                  boxes: np.ndarray | None, found: np.ndarray | None, counts: dict, entry: dict) -> None:
    """The checks that need every frame counted: cameras and labels of one length, boxes
    for every frame, at least one accepted chunk. Sets counts["frames"]."""
    n = counts["rgb"]
    if n == 0:
        raise DatasetError(f"{recording.source}: the recording holds no RGB frames")
    if recording.stream_thermal is not None and counts["thermal"] != n:
        if abs(counts["thermal"] - n) > config.max_frame_mismatch:
            raise DatasetError(
                f"{recording.source}: RGB has {n} frames, thermal has {counts['thermal']} "
                f"(allowed difference {config.max_frame_mismatch})"
            )
        entry["warnings"].append(f"RGB {n} and thermal {counts['thermal']} frames: cut to the shorter")
        n = min(n, counts["thermal"])
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
    if boxes is not None and len(boxes) < n:
        raise DatasetError(f"{recording.source}: face boxes have shape {boxes.shape}, expected ({n}, 4)")
    entry["frames_without_face"] = int(n - found[:n].sum()) if found is not None else 0
    counts["frames"] = n
    total = counts["rows"] + len(entry["rejected_chunks"])
    if total == 0:
        raise DatasetError(
            f"{recording.source}: {n} usable frames, shorter than one chunk of {config.chunk_frames}"
        )
    if not counts["rows"]:
        raise DatasetError(f"{recording.source}: all {total} chunks rejected (see rejected_chunks)")


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
