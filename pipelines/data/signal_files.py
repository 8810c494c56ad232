"""Read predicted or label waveforms from NumPy, CSV or Parquet files into
`{task: {recording_id: samples}}` for `mmrphys.metrics.evaluate_recordings`.

Layouts (task columns/keys are "bvp" and "rsp"):
- `.npz`: key `<task>` holding one recording (1-D) or one per row (2-D, ids "0", "1", ...),
  or keys `<task>/<recording_id>` holding 1-D arrays; optional key `fps`.
- `.npy`: one array (1-D or 2-D as above) for the single task asked for.
- `.csv` / `.parquet`, long: one row per sample, columns `recording_id` (optional),
  `chunk_index` (optional, chunks joined in index order), `fps` (optional), one column per task.
- `.parquet`, chunked: the same columns with list-valued task columns, one row per chunk
  (as batch prediction writes them); chunks are joined in `chunk_index` order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

from mmrphys.errors import UserError
from mmrphys.metrics import assemble_recordings
from mmrphys.profiles import TASKS


class SignalFileError(UserError, ValueError):
    """A signal file is missing, unreadable or laid out in a way we do not read."""


@dataclass
class SignalFile:
    """Waveforms per task and recording, and the sampling rate per recording when the file has one."""

    signals: dict[str, dict[str, np.ndarray]]
    fps: dict[str, float] | None


def _from_arrays(path: Path, arrays: dict[str, np.ndarray], tasks: tuple[str, ...] | None) -> SignalFile:
    if tasks is None:
        tasks = tuple(t for t in TASKS if t in arrays or any(k.startswith(f"{t}/") for k in arrays))
        if not tasks:
            raise SignalFileError(f"{path}: no task array ({list(TASKS)}, or '<task>/<recording_id>'); found {sorted(arrays)}")
    signals: dict[str, dict[str, np.ndarray]] = {}
    for task in tasks:
        per_recording = {key.split("/", 1)[1]: np.asarray(v) for key, v in arrays.items() if key.startswith(f"{task}/")}
        if task in arrays:
            values = np.asarray(arrays[task])
            if values.ndim not in (1, 2):
                raise SignalFileError(f"{path}: {task!r} must be 1-D (one recording) or 2-D (one per row), got shape {values.shape}")
            per_recording.update({str(i): row for i, row in enumerate(np.atleast_2d(values))})
        if not per_recording:
            raise SignalFileError(f"{path}: no {task!r} or '{task}/<recording_id>' array (found {sorted(arrays)})")
        signals[task] = per_recording
    fps = None
    if "fps" in arrays:
        rate = float(np.asarray(arrays["fps"]).reshape(-1)[0])
        fps = {rec: rate for task in signals for rec in signals[task]}
    return SignalFile(signals, fps)


def _from_table(path: Path, table: pa.Table, tasks: tuple[str, ...] | None) -> SignalFile:
    columns = table.column_names
    if tasks is None:
        tasks = tuple(t for t in TASKS if t in columns)
        if not tasks:
            raise SignalFileError(f"{path}: no task column ({list(TASKS)}); columns: {columns}")
    missing = [t for t in tasks if t not in columns]
    if missing:
        raise SignalFileError(f"{path}: no column {missing} (columns: {columns})")
    rows = table.num_rows
    if rows == 0:
        raise SignalFileError(f"{path}: the table has no rows")
    ids = [str(r) for r in table["recording_id"].to_pylist()] if "recording_id" in columns else ["0"] * rows
    chunks = table["chunk_index"].to_pylist() if "chunk_index" in columns else None
    signals: dict[str, dict[str, np.ndarray]] = {}
    for task in tasks:
        column = table[task]
        values = column.to_pylist()
        if any(v is None for v in values):
            raise SignalFileError(f"{path}: column {task!r} has empty (null) entries")
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
            order = chunks if chunks is not None else _appearance_order(ids)
            signals[task] = assemble_recordings(ids, order, [np.asarray(v, dtype=np.float64) for v in values])
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            signals[task] = _group_samples(ids, chunks, np.asarray(values, dtype=np.float64))
        else:
            raise SignalFileError(f"{path}: column {task!r} holds {column.type}, expected numbers or lists of numbers")
    fps = None
    if "fps" in columns:
        fps = {}
        for rec, rate in zip(ids, table["fps"].to_pylist()):
            if fps.setdefault(rec, float(rate)) != float(rate):
                raise SignalFileError(f"{path}: recording {rec!r} has more than one fps value")
    return SignalFile(signals, fps)


def _appearance_order(ids: list[str]) -> list[int]:
    seen: dict[str, int] = defaultdict(int)
    order = []
    for rec in ids:
        order.append(seen[rec])
        seen[rec] += 1
    return order


def _group_samples(ids: list[str], chunks: list[int] | None, values: np.ndarray) -> dict[str, np.ndarray]:
    """Long layout: samples of each recording in file order, stably sorted by chunk index if given."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(ids):
        out[rec].append(i)
    if chunks is not None:
        return {rec: values[sorted(rows, key=lambda i: chunks[i])] for rec, rows in out.items()}
    return {rec: values[rows] for rec, rows in out.items()}


def read_signals(path: str | Path, tasks: tuple[str, ...] | None = None) -> SignalFile:
    """Read the `tasks` waveforms (default: every task the file has) of every recording in `path`."""
    path = Path(path)
    if not path.is_file():
        raise SignalFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return _from_arrays(path, {k: data[k] for k in data.files}, tasks)
        if suffix == ".npy":
            if tasks is None or len(tasks) != 1:
                raise SignalFileError(f"{path}: a .npy file holds one task; name exactly one with --tasks")
            return _from_arrays(path, {tasks[0]: np.load(path, allow_pickle=False)}, tasks)
        if suffix == ".csv":
            return _from_table(path, pyarrow.csv.read_csv(path), tasks)
        if suffix == ".parquet":
            return _from_table(path, pyarrow.parquet.read_table(path), tasks)
    except (OSError, pa.ArrowException, ValueError) as err:
        if isinstance(err, SignalFileError):
            raise
        raise SignalFileError(f"{path}: cannot read it as {suffix[1:]}: {err}") from err
    raise SignalFileError(f"{path}: unsupported file type {suffix!r} (use .npz, .npy, .csv or .parquet)")
