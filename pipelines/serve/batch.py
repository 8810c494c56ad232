"""Batch inference for deployment: a model over many recordings with Ray Data.

`mmrphys predict --model models:/NAME@ALIAS --input DIR_OR_SHARDS --out DIR` lands here.
The input is either a shards folder written by `mmrphys ingest` (a `manifest.json`
beside the Parquet files), or a raw dataset folder that one of the dataset readers
understands (the generic folder layout by default, `--dataset` for the others).

- Shards: the chunks stream through `pipelines.data.stream.load_split`; a pool of
  `ChunkPredictor` actors predicts them; the chunks are put back together per recording
  in chunk order.
- Raw recordings: one Ray Data row per recording; a `RecordingPredictor` actor decodes
  it, crops the face with the model's own preprocessing (as `mmrphys predict VIDEO`
  does), predicts it chunk by chunk and stitches the whole waveform.

Outputs in `out`:
- `waveforms/` (Parquet, written by Ray Data): one row per recording with its id, frame
  rate, `pred_<task>` waveforms and, when the input has labels, `label_<task>`;
- `rates.parquet`: heart and respiration rate per recording, over the whole recording
  and per 30 s window;
- `summary.csv`: one line per recording with its rates (and label rates and absolute
  errors when labels exist).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray.data

from mmrphys.data.recording import DatasetError
from mmrphys.errors import UserError
from mmrphys.inference import ModelArtifact
from mmrphys.metrics import assemble_recordings, waveform_rates
from mmrphys.signals import SignalError
from mmrphys.tasks import TASKS
from pipelines.data.shards import MANIFEST, SPLITS, read_manifest, split_subjects
from pipelines.data.stream import load_split
from pipelines.ray_session import actor_pool, ensure_ray
from pipelines.serve.actors import (
    LABEL_PREFIX,
    PRED_PREFIX,
    ChunkPredictor,
    RecordingPredictor,
    list_recordings,
    model_kwargs,
)
from pipelines.serve.references import resolve_model

#: window of the per-window rates of long recordings
RATE_WINDOW_SECONDS = 30.0


class BatchPredictError(UserError, ValueError):
    """The input cannot be predicted as asked; the message names the folder or recording."""


@dataclasses.dataclass
class BatchPrediction:
    """Where a batch prediction went, and its per-recording summary rows."""

    out_dir: Path
    files: dict[str, Path]
    rows: list[dict[str, Any]]
    input_kind: str


def is_shards_folder(folder: Path) -> bool:
    """Whether `folder` holds shards written by `mmrphys ingest` (a manifest)."""
    return (folder / MANIFEST).is_file()


def _accepted(manifest: dict, split: str) -> list[dict]:
    subjects = set(split_subjects(manifest, split))
    return [r for r in manifest["recordings"] if r["subject"] in subjects and r["status"] == "accepted"]


def _shard_recordings(model, artifact: ModelArtifact, shards: Path, splits: list[str] | None, batch_size: int,
                      concurrency: int) -> Iterator[dict[str, Any]]:
    """Per-recording rows assembled from predicted shard chunks."""
    config = artifact.config
    manifest = read_manifest(shards)
    names = splits or [s for s in SPLITS if _accepted(manifest, s)]
    datasets = []
    for split in names:
        accepted = _accepted(manifest, split)
        # labels of every task the model predicts and every recording of the split has
        tasks = tuple(t for t in config.tasks if t == "bvp" or (accepted and all(r.get("has_rsp") for r in accepted)))
        datasets.append(load_split(shards, split, config=config, tasks=tasks, with_ids=True))
    if not datasets:
        raise BatchPredictError(f"{shards}: no split holds accepted recordings")
    dataset = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    predicted = dataset.map_batches(ChunkPredictor, fn_constructor_kwargs=model_kwargs(model, config),
                                    batch_size=batch_size, batch_format="numpy", compute=actor_pool(concurrency))
    columns: dict[str, list] = {}
    for batch in predicted.iter_batches(batch_size=256, batch_format="numpy"):
        for key, values in batch.items():
            columns.setdefault(key, []).extend(values)
    if not columns:
        raise BatchPredictError(f"{shards}: the splits {names} yielded no chunks")
    ids, chunks = [str(r) for r in columns["recording_id"]], [int(c) for c in columns["chunk_index"]]
    fps = dict(zip(ids, (float(f) for f in columns["fps"])))
    signals = {key: assemble_recordings(ids, chunks, columns[key])
               for key in columns if key.startswith((PRED_PREFIX, LABEL_PREFIX))}
    for recording_id in sorted(fps):
        yield {"recording_id": recording_id, "fps": fps[recording_id],
               **{key: values[recording_id].astype(np.float32) for key, values in signals.items()}}


def _raw_recordings(model, artifact: ModelArtifact, folder: Path, dataset: str,
                    concurrency: int) -> Iterator[dict[str, Any]]:
    """Per-recording rows predicted from a raw dataset folder, one Ray Data row each."""
    try:
        count = len(list_recordings(dataset, str(folder)))
    except DatasetError as err:
        raise BatchPredictError(f"{folder}: not shards (no {MANIFEST}) and not a {dataset!r} dataset: {err}") from err
    if count == 0:
        raise BatchPredictError(f"{folder}: no recordings found by the {dataset!r} reader")
    predicted = ray.data.from_items([{"position": i} for i in range(count)]).map_batches(
        RecordingPredictor,
        fn_constructor_kwargs={**model_kwargs(model, artifact.config), "preprocessing": artifact.preprocessing.to_dict(),
                               "dataset": dataset, "root": str(folder)},
        batch_size=1, batch_format="numpy", compute=actor_pool(concurrency),
    )
    for row in predicted.iter_rows():
        yield {key: value for key, value in row.items() if value is not None}


def recording_rates(row: dict[str, Any], tasks: tuple[str, ...], profile: str = "default") -> list[dict[str, Any]]:
    """Rates of one recording: the whole recording, then 30 s windows when it holds two or more."""
    fps, n = row["fps"], len(row[PRED_PREFIX + tasks[0]])
    size = int(RATE_WINDOW_SECONDS * fps)
    spans = [(0, n)] + ([(s, s + size) for s in range(0, n - size + 1, size)] if n >= 2 * size else [])
    out = []
    for start, end in spans:
        rates: dict[str, Any] = {"recording_id": row["recording_id"], "window": "all" if (start, end) == (0, n) else "30s",
                                 "start_s": start / fps, "end_s": end / fps}
        for task in tasks:
            name = TASKS[task].rate_output
            rates[name] = _rate(row[PRED_PREFIX + task][start:end], fps, task, profile)
            if LABEL_PREFIX + task in row:
                rates[LABEL_PREFIX + name] = _rate(row[LABEL_PREFIX + task][start:end], fps, task, profile)
        out.append(rates)
    return out


def _rate(waveform: np.ndarray, fps: float, task: str, profile: str) -> float:
    """Rate per minute of one waveform; NaN when it is too short or flat to read one."""
    try:
        return float(waveform_rates(waveform, fps, task, profile=profile))
    except (SignalError, ValueError):
        return math.nan


def summary_rows(rates: list[dict[str, Any]], tasks: tuple[str, ...]) -> list[dict[str, Any]]:
    """One line per recording: whole-recording rates, label rates and absolute errors."""
    rows = []
    for rate in rates:
        if rate["window"] != "all":
            continue
        row = {"recording_id": rate["recording_id"], "seconds": round(rate["end_s"], 2)}
        for task in tasks:
            name = TASKS[task].rate_output
            row[name] = rate[name]
            if LABEL_PREFIX + name in rate:
                row[LABEL_PREFIX + name] = rate[LABEL_PREFIX + name]
                row[f"{name}_abs_error"] = abs(rate[name] - rate[LABEL_PREFIX + name])
        rows.append(row)
    return rows


def _write(out_dir: Path, rows: list[dict[str, Any]], rates: list[dict[str, Any]],
           summary: list[dict[str, Any]]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"waveforms": out_dir / "waveforms", "rates": out_dir / "rates.parquet", "summary": out_dir / "summary.csv"}
    waveform_rows = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()} for row in rows]
    ray.data.from_items(waveform_rows).write_parquet(str(files["waveforms"]), mode="overwrite")
    pq.write_table(pa.Table.from_pylist(rates), files["rates"])
    columns = list(dict.fromkeys(k for row in summary for k in row))
    with files["summary"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(summary)
    return files


def batch_predict(
    model_ref: str,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    dataset: str = "folder",
    splits: list[str] | None = None,
    batch_size: int = 8,
    concurrency: int = 1,
    tracking_uri: str | None = None,
) -> BatchPrediction:
    """Predict every recording under `input_path` (shards or a raw dataset folder); rates
    use the evaluation profile the model was validated with."""
    folder = Path(input_path)
    if not folder.is_dir():
        raise BatchPredictError(f"{folder}: no such folder (expected shards or a dataset folder)")
    shards = is_shards_folder(folder)
    if splits and not shards:
        raise BatchPredictError(f"{folder}: --split applies to shards, and this folder has no {MANIFEST}")
    model, artifact = resolve_model(model_ref, tracking_uri=tracking_uri)
    ensure_ray()
    if shards:
        rows = list(_shard_recordings(model, artifact, folder, splits, batch_size, concurrency))
    else:
        rows = list(_raw_recordings(model, artifact, folder, dataset, concurrency))
    tasks = artifact.config.tasks
    rates = [rate for row in rows for rate in recording_rates(row, tasks, artifact.evaluation.profile)]
    summary = summary_rows(rates, tasks)
    files = _write(Path(out_dir), rows, rates, summary)
    return BatchPrediction(out_dir=Path(out_dir), files=files, rows=summary,
                           input_kind="shards" if shards else f"{dataset} recordings")
