"""Streaming chunk shards into training and evaluation with Ray Data.

`load_split` reads one split's shards with `ray.data.read_parquet` (only the columns the
modality and tasks need), and a batch map on the workers decodes the stored clips and
turns them into model input with `mmrphys.inference.model_input` (area resize to the
model's resolution, channels RGB then thermal, float32 (B, C, T, H, W)) and the
architecture's `input_transform`, and z-scores each chunk's labels. One set of shards serves every resolution and modality.

`ordered_execution` is what training streams with: blocks keep their order through the
map and the split between workers, so a seed repeats a run (docs/training.md,
"Reproducibility").
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import ray.data

from mmrphys.config import ModelConfig
from mmrphys.data.schema import decode_clips
from mmrphys.inference import model_input
from mmrphys.model import input_transform
from mmrphys.signals import standardize_chunks
from pipelines.data.shards import DataError, check_split, read_manifest


def ordered_execution() -> ray.data.ExecutionOptions:
    """The current Ray Data execution options with `preserve_order` set.

    Without it, blocks leave the read and map tasks in the order the tasks finish, and
    `streaming_split` hands each to whichever worker is ready (or local to it), so which
    worker trains on which chunk, in what order, varies between runs. Ordered, the split
    is a function of the block sizes alone; the training stream is far faster than the
    step (BENCHMARKS.md, "Data path"), so waiting for the next block in order costs
    little.
    """
    options = copy.deepcopy(ray.data.DataContext.get_current().execution_options)
    options.preserve_order = True
    return options


class DecodeChunks:
    """The streaming batch map: stored rows (an Arrow table) -> model-ready float32 arrays.

    It takes Ray's Arrow batches as they are: the clips and labels are read as views of
    the Arrow buffers, where NumPy batches would first copy every clip into a Python
    bytes object and then join them (two copies of each stored byte).
    """

    def __init__(self, config: ModelConfig, tasks: tuple[str, ...], with_ids: bool):
        self.config, self.tasks, self.with_ids = config, tasks, with_ids

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        lengths, sizes = batch.column("frames").to_numpy(), batch.column("size").to_numpy()
        frames, size = int(lengths[0]), int(sizes[0])
        if np.any(lengths != frames) or np.any(sizes != size):
            raise DataError("a batch mixes chunk lengths or sizes; ingest every shard with the same settings")
        modality = self.config.modality
        rgb = _clips(batch, "rgb", (frames, size, size, 3)) if modality in ("rgb", "rgbt") else None
        thermal = _clips(batch, "thermal", (frames, size, size, 1)) if modality in ("thermal", "rgbt") else None
        out = {"video": input_transform(model_input(rgb, thermal, self.config), self.config),
               "fps": batch.column("fps").to_numpy().astype(np.float64)}
        for task in self.tasks:
            out[task] = standardize_chunks(_labels(batch, task, frames))
        if self.with_ids:
            out["recording_id"] = np.asarray(batch.column("recording_id").to_pylist(), dtype=object)
            out["chunk_index"] = batch.column("chunk_index").to_numpy().astype(np.int64)
        return out


def _clips(batch: pa.Table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A batch's stored clips (n, *shape) in their stored dtype: a view of the binary
    column's data buffer when the rows share one dtype and size (what ingest writes),
    else `decode_clips` (mixed dtypes become float32)."""
    column, dtypes = batch.column(name).combine_chunks(), batch.column(f"{name}_dtype").to_pylist()
    if len(set(dtypes)) == 1 and column.null_count == 0:
        dtype = np.dtype(dtypes[0])
        width = np.int64 if pa.types.is_large_binary(column.type) else np.int32
        offsets = np.frombuffer(column.buffers()[1], width)[column.offset: column.offset + len(column) + 1]
        if np.all(np.diff(offsets) == dtype.itemsize * int(np.prod(shape))):
            data = np.frombuffer(column.buffers()[2], np.uint8)[offsets[0]: offsets[-1]]
            return data.view(dtype).reshape((len(column), *shape))
    return decode_clips(column.to_pylist(), dtypes, shape)


def _labels(batch: pa.Table, task: str, frames: int) -> np.ndarray:
    """(n, frames) label rows of one task: a view of the list column's values."""
    rows = batch.column(task).combine_chunks()
    if rows.null_count or np.any(np.diff(rows.offsets.to_numpy()) != frames):
        raise DataError(f"label column {task!r}: a row is missing or not {frames} samples long (the chunk length)")
    return rows.flatten().to_numpy(zero_copy_only=False).reshape(len(rows), frames)


def load_split(
    shards_dir: str | Path,
    split: str,
    *,
    config: ModelConfig,
    tasks: Iterable[str] | None = None,
    fold: int | None = None,
    with_ids: bool = False,
    batch_size: int = 8,
) -> ray.data.Dataset:
    """A `ray.data.Dataset` of one split, decoded for the model `config` describes.

    Rows hold "video" float32 (C, T, H, W) as the network takes it (its architecture's
    input transform applied), "fps", and one float32 (T,) z-scored label per task (the
    model's tasks unless `tasks` names others); with `with_ids` also "recording_id" and
    "chunk_index" (read those with `iter_batches(batch_format="numpy")`). `batch_size` is the decode map's batch, not
    the training batch.
    """
    tasks = tuple(config.tasks if tasks is None else tasks)
    files = check_split(shards_dir, split, modality=config.modality, tasks=tasks, fold=fold)
    size = read_manifest(shards_dir)["ingest_config"]["preprocessing"]["size"]
    if config.resolution > size:
        raise DataError(
            f"{shards_dir}: the shards store {size}x{size} crops, smaller than the model's resolution "
            f"{config.resolution}; re-ingest with preprocessing.size >= {config.resolution}"
        )
    columns = ["frames", "size", "fps", *tasks]
    if config.modality in ("rgb", "rgbt"):
        columns += ["rgb", "rgb_dtype"]
    if config.modality in ("thermal", "rgbt"):
        columns += ["thermal", "thermal_dtype"]
    if with_ids:
        columns += ["recording_id", "chunk_index"]
    dataset = ray.data.read_parquet([str(f) for f in files], columns=columns)
    return dataset.map_batches(DecodeChunks(config, tasks, with_ids), batch_format="pyarrow", batch_size=batch_size)


def decoded_mb(config: ModelConfig, rows: int, tasks: Iterable[str]) -> float:
    """What `rows` chunks of a `load_split` dataset for `config` take decoded, in MB: the
    float32 clips and labels (the fps and ids columns are left out: a few bytes a row)."""
    clip = config.in_channels * config.frames * config.resolution ** 2
    return rows * 4 * (clip + len(tuple(tasks)) * config.frames) / 1e6


def cache_small(dataset: ray.data.Dataset, size_mb: float, limit_mb: float) -> ray.data.Dataset:
    """`dataset` materialized in the object store when it takes at most `limit_mb` and a
    quarter of the object store still free; else `dataset` itself, streamed every epoch.

    Streaming re-reads and re-decodes the shards every epoch, and on a small split Ray
    Data's per-epoch start-up dominates: the tests' tiny run trained its second epoch in
    6.0 s streamed and 0.8 s cached (docs/training.md, "Small datasets are cached"). The
    free store, not the whole, bounds it: each concurrent Tune trial pins its own copy.
    It is materialized in order, so the split hands every worker the same chunks in every run.
    """
    free_mb = ray.available_resources().get("object_store_memory", 0.0) / 1e6
    if limit_mb <= 0 or size_mb > min(limit_mb, free_mb / 4):
        return dataset
    dataset.context.execution_options = ordered_execution()
    return dataset.materialize()
