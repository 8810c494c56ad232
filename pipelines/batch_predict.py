"""Batch inference for deployment: a model over many recordings with Ray Data.

`mmrphys predict --model models:/NAME@ALIAS --input DIR_OR_SHARDS --out DIR` lands here.
The input is either a shards folder written by `mmrphys ingest` (a `manifest.json`
beside the Parquet files), or a raw dataset folder that one of the dataset readers
understands (the generic folder layout by default, `--dataset` for the others).

- Shards: the chunks stream through `pipelines.data.load_split`; a pool of Ray Data
  actors, each holding the model, predicts them; the chunks are put back together per
  recording in chunk order.
- Raw recordings: one Ray Data row per recording; an actor decodes it, crops the face
  exactly as `mmrphys predict VIDEO` does, predicts it chunk by chunk and stitches the
  whole waveform.

The model travels to the actors as a state dict through the object store, so this runs
the same on a laptop and on a cluster (with shared storage for the input and output).

Outputs in `out`:
- `waveforms/` (Parquet, written by Ray Data): one row per recording with its id, frame
  rate, and the predicted waveforms (and the label waveforms when the input has them);
- `rates.parquet`: heart and respiration rate per recording, over the whole recording
  and per 30 s window;
- `summary.csv`: one line per recording with its rates (and label rates and absolute
  errors when labels exist).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.evaluate import ChunkPredictor
from pipelines.predict import RATE_WINDOW_SECONDS
from pipelines.serving import RATE_OUTPUTS

#: label waveforms are stored beside predictions under this prefix
LABEL_PREFIX = "label_"


class BatchPredictError(ValueError):
    """The input cannot be predicted as asked; the message names the folder or recording."""


@dataclasses.dataclass
class BatchPrediction:
    """Where a batch prediction went, and its per-recording summary rows."""

    out_dir: Path
    files: dict[str, Path]
    rows: list[dict[str, Any]]
    input_kind: str


# ---------------------------------------------------------------------------------------
# Ray Data actors


class ShardChunkPredictor(ChunkPredictor):
    """Per-chunk waveforms for decoded shard batches; labels kept when the batch has them."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipelines.serving import predict_waveforms

        predictions = predict_waveforms(self.model, batch["video"], batch_size=len(batch["video"]))
        out = {"recording_id": batch["recording_id"], "chunk_index": batch["chunk_index"], "fps": batch["fps"]}
        for task in self.config.tasks:
            out[task] = predictions[task]
            if task in batch:
                out[LABEL_PREFIX + task] = np.asarray(batch[task], dtype=np.float32)
        return out


class RecordingPredictor(ChunkPredictor):
    """Whole-recording waveforms for raw recordings, one recording per row."""

    def __init__(self, state_dict: dict, model_config: dict, dataset: str, root: str):
        super().__init__(state_dict, model_config)
        self.recordings = _list_recordings(dataset, root)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows = [self._predict(self.recordings[int(i)]) for i in batch["position"]]
        return {key: [row.get(key) for row in rows] for key in rows[0]}

    def _predict(self, recording) -> dict[str, Any]:
        from mmrphys.data.recording import DatasetError
        from pipelines.predict import crop_video, predict_clip_waveforms

        where = f"{recording.recording_id} ({recording.source})"
        try:
            rgb = recording.load_rgb()
            thermal = None
            if self.config.modality != "rgb":
                if recording.load_thermal is None:
                    raise DatasetError(f"the model takes {self.config.modality!r} input, but it has no thermal video")
                thermal = recording.load_thermal()
            n = len(rgb) if thermal is None else min(len(rgb), len(thermal))
            boxes = recording.load_face_boxes()[:n] if recording.load_face_boxes is not None else None
            clip = crop_video(rgb[:n], None if thermal is None else thermal[:n], self.config.resolution,
                              boxes=boxes, pre_cropped=recording.pre_cropped)
        except DatasetError as err:
            raise BatchPredictError(f"{where}: {err}") from None
        if self.config.modality == "thermal":
            clip = clip[3:]
        waveforms = predict_clip_waveforms(self.model, clip, self.config.frames)
        row: dict[str, Any] = {"recording_id": recording.recording_id, "fps": float(recording.fps)}
        labels = _labels_or_none(recording)
        for task in self.config.tasks:
            row[task] = waveforms[task].astype(np.float32)
            if labels is not None and task in labels:
                row[LABEL_PREFIX + task] = np.asarray(labels[task][:n], dtype=np.float32)
        return row


def _list_recordings(dataset: str, root: str) -> list:
    from mmrphys.data.datasets import read_dataset

    return sorted(read_dataset(dataset, root), key=lambda r: r.recording_id)


def _labels_or_none(recording) -> dict[str, np.ndarray] | None:
    """The recording's labels, or None when it has none (videos to predict, not to score)."""
    from mmrphys.data.recording import DatasetError

    try:
        return recording.load_labels()
    except (DatasetError, OSError):
        return None


# ---------------------------------------------------------------------------------------
# the two inputs


def is_shards_folder(folder: Path) -> bool:
    """Whether `folder` holds shards written by `mmrphys ingest` (a manifest)."""
    from pipelines.data import MANIFEST

    return (folder / MANIFEST).is_file()


def _shard_recordings(model, config, shards: Path, splits: list[str] | None, batch_size: int,
                      concurrency: int) -> Iterator[dict[str, Any]]:
    """Per-recording rows assembled from predicted shard chunks."""
    from mmrphys.metrics import assemble_recordings
    from pipelines.data import DataError, load_split, read_manifest, split_subjects

    manifest = read_manifest(shards)
    names = splits or [s for s in ("train", "val", "test") if _split_has_recordings(manifest, s)]
    datasets = []
    for split in names:
        subjects = set(split_subjects(manifest, split))
        accepted = [r for r in manifest["recordings"] if r["subject"] in subjects and r["status"] == "accepted"]
        # BVP is in every shard; predict RSP too, but only compare with labels that exist
        tasks = ("bvp", "rsp") if accepted and all(r.get("has_rsp") for r in accepted) else ("bvp",)
        try:
            datasets.append(load_split(shards, split, resolution=config.resolution, modality=config.modality,
                                       tasks=tasks, with_ids=True))
        except DataError as err:
            raise BatchPredictError(str(err)) from None
    if not datasets:
        raise BatchPredictError(f"{shards}: no split holds accepted recordings")
    dataset = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    predicted = dataset.map_batches(ShardChunkPredictor, fn_constructor_kwargs=_model_kwargs(model, config),
                                    batch_size=batch_size, batch_format="numpy", concurrency=concurrency)
    columns: dict[str, list] = {}
    for batch in predicted.iter_batches(batch_size=256, batch_format="numpy"):
        for key, values in batch.items():
            columns.setdefault(key, []).extend(values)
    if not columns:
        raise BatchPredictError(f"{shards}: the splits {names} yielded no chunks")
    ids, chunks = [str(r) for r in columns["recording_id"]], [int(c) for c in columns["chunk_index"]]
    fps = dict(zip(ids, (float(f) for f in columns["fps"])))
    signals = {key: assemble_recordings(ids, chunks, columns[key])
               for key in columns if key not in ("recording_id", "chunk_index", "fps")}
    for recording_id in sorted(fps):
        yield {"recording_id": recording_id, "fps": fps[recording_id],
               **{key: values[recording_id].astype(np.float32) for key, values in signals.items()}}


def _split_has_recordings(manifest: dict, split: str) -> bool:
    from pipelines.data import split_subjects

    subjects = set(split_subjects(manifest, split))
    return any(r["subject"] in subjects and r["status"] == "accepted" for r in manifest["recordings"])


def _raw_recordings(model, config, folder: Path, dataset: str, concurrency: int) -> Iterator[dict[str, Any]]:
    """Per-recording rows predicted from a raw dataset folder, one Ray Data row each."""
    import ray.data

    from mmrphys.data.recording import DatasetError

    try:
        count = len(_list_recordings(dataset, str(folder)))
    except DatasetError as err:
        raise BatchPredictError(f"{folder}: not shards (no manifest.json) and not a {dataset!r} dataset: {err}") from None
    if count == 0:
        raise BatchPredictError(f"{folder}: no recordings found by the {dataset!r} reader")
    predicted = ray.data.from_items([{"position": i} for i in range(count)]).map_batches(
        RecordingPredictor,
        fn_constructor_kwargs={**_model_kwargs(model, config), "dataset": dataset, "root": str(folder)},
        batch_size=1, batch_format="numpy", concurrency=concurrency,
    )
    for row in predicted.iter_rows():
        yield {key: value for key, value in row.items() if value is not None}


def _model_kwargs(model, config) -> dict[str, Any]:
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "model_config": config.to_dict()}


# ---------------------------------------------------------------------------------------
# rates and outputs


def recording_rates(row: dict[str, Any], tasks: tuple[str, ...], profile: str = "default") -> list[dict[str, Any]]:
    """Rates of one recording: the whole recording, then 30 s windows when it holds two or more."""
    fps, n = row["fps"], len(row[tasks[0]])
    size = int(RATE_WINDOW_SECONDS * fps)
    spans = [(0, n)] + ([(s, s + size) for s in range(0, n - size + 1, size)] if n >= 2 * size else [])
    out = []
    for start, end in spans:
        rates: dict[str, Any] = {"recording_id": row["recording_id"], "window": "all" if (start, end) == (0, n) else "30s",
                                 "start_s": start / fps, "end_s": end / fps}
        for task in tasks:
            name = RATE_OUTPUTS[task]
            rates[name] = _rate(row[task][start:end], fps, task, profile)
            if LABEL_PREFIX + task in row:
                rates[LABEL_PREFIX + name] = _rate(row[LABEL_PREFIX + task][start:end], fps, task, profile)
        out.append(rates)
    return out


def _rate(waveform: np.ndarray, fps: float, task: str, profile: str) -> float:
    """Rate per minute of one waveform; NaN when it is too short or flat to read one."""
    from mmrphys.metrics import waveform_rates
    from mmrphys.signals import SignalError

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
            name = RATE_OUTPUTS[task]
            row[name] = rate[name]
            if LABEL_PREFIX + name in rate:
                row[LABEL_PREFIX + name] = rate[LABEL_PREFIX + name]
                row[f"{name}_abs_error"] = abs(rate[name] - rate[LABEL_PREFIX + name])
        rows.append(row)
    return rows


def _write(out_dir: Path, rows: list[dict[str, Any]], rates: list[dict[str, Any]],
           summary: list[dict[str, Any]]) -> dict[str, Path]:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.data

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
    profile: str = "default",
    tracking_uri: str | None = None,
) -> BatchPrediction:
    """Predict every recording under `input_path` (shards or a raw dataset folder)."""
    from pipelines.models import resolve_model
    from pipelines.ray_session import ensure_ray

    folder = Path(input_path)
    if not folder.is_dir():
        raise BatchPredictError(f"{folder}: no such folder (expected shards or a dataset folder)")
    model, config = resolve_model(model_ref, tracking_uri=tracking_uri)
    ensure_ray()
    shards = is_shards_folder(folder)
    if shards:
        rows = list(_shard_recordings(model, config, folder, splits, batch_size, concurrency))
    elif splits:
        raise BatchPredictError(f"{folder}: --split applies to shards, and this folder has no manifest.json")
    else:
        rows = list(_raw_recordings(model, config, folder, dataset, concurrency))
    rates = [rate for row in rows for rate in recording_rates(row, config.tasks, profile)]
    summary = summary_rows(rates, config.tasks)
    files = _write(Path(out_dir), rows, rates, summary)
    return BatchPrediction(out_dir=Path(out_dir), files=files, rows=summary,
                           input_kind="shards" if shards else f"{dataset} recordings")
