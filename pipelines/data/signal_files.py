"""Read predicted or label waveforms from NumPy, CSV or Parquet files into
`{task: {recording_id: samples}}` for `mmrphys.metrics.evaluate_recordings`.

Layouts (task columns/keys are "bvp" and "rsp"):
- `.npz`: key `<task>` holding one recording (1-D) or one per row (2-D, ids "0", "1", ...),
  or keys `<task>/<recording_id>` holding 1-D arrays; optional key `fps`.
- `.npy`: one array (1-D or 2-D as above) for the single task asked for.
- `.csv` / `.parquet`, long: one row per sample, columns `recording_id` (optional),
  `chunk_index` (optional, chunks joined in index order), `fps` (optional), one column per task.
- `.parquet`, chunked: the same columns with list-valued task columns, one row per chunk;
  chunks are joined in `chunk_index` order.
- batch prediction's output (`mmrphys predict --input ... --out DIR`: the Parquet files of
  `DIR/waveforms/`, or that folder): `pred_<task>` and `label_<task>` columns. Read as
  predictions, a file's `pred_<task>` column is used; read as labels, its `label_<task>`
  column; a plain `<task>` column serves either role.
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

#: the column prefix each role reads in a table that holds both (batch prediction's output)
ROLE_PREFIX = {"predictions": "pred_", "labels": "label_"}


class SignalFileError(UserError, ValueError):
    """A signal file is missing, unreadable or laid out in a way we do not read."""


@dataclass
class SignalFile:
    """Waveforms per task and recording, and the sampling rate per recording when the file has one."""

    signals: dict[str, dict[str, np.ndarray]]
    fps: dict[str, float] | None
    #: the file, and the column or key each task was read from (to refuse scoring a file against itself)
    source: tuple[Path, dict[str, str]] | None = None


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
    return SignalFile(signals, fps, (path.resolve(), {task: task for task in signals}))


def _task_column(columns: list[str], task: str, role: str) -> str | None:
    """The column holding `task` for `role`: `pred_bvp` / `label_bvp` where the table has
    it, else plain `bvp`."""
    for name in (ROLE_PREFIX[role] + task, task):
        if name in columns:
            return name
    return None


def _from_table(path: Path, table: pa.Table, tasks: tuple[str, ...] | None, role: str) -> SignalFile:
    columns = table.column_names
    wanted = tasks or TASKS
    source = {t: c for t in wanted if (c := _task_column(columns, t, role)) is not None}
    expected = " or ".join(f"{ROLE_PREFIX[role]}<task>" if p else "<task>" for p in (True, False))
    if tasks is None:
        tasks = tuple(source)
        if not tasks:
            raise SignalFileError(f"{path}: no {role} column ({expected}, tasks {list(TASKS)}); columns: {columns}")
    missing = [t for t in tasks if t not in source]
    if missing:
        raise SignalFileError(f"{path}: no {role} column for {missing} ({expected}; columns: {columns})")
    rows = table.num_rows
    if rows == 0:
        raise SignalFileError(f"{path}: the table has no rows")
    ids = [str(r) for r in table["recording_id"].to_pylist()] if "recording_id" in columns else ["0"] * rows
    chunks = table["chunk_index"].to_pylist() if "chunk_index" in columns else None
    signals: dict[str, dict[str, np.ndarray]] = {}
    for task in tasks:
        column = table[source[task]]
        values = column.to_pylist()
        if any(v is None for v in values):
            raise SignalFileError(f"{path}: column {source[task]!r} has empty (null) entries")
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
            order = chunks if chunks is not None else _appearance_order(ids)
            signals[task] = assemble_recordings(ids, order, [np.asarray(v, dtype=np.float64) for v in values])
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            signals[task] = _group_samples(ids, chunks, np.asarray(values, dtype=np.float64))
        else:
            raise SignalFileError(f"{path}: column {source[task]!r} holds {column.type}, expected numbers or lists of numbers")
    fps = None
    if "fps" in columns:
        fps = {}
        for rec, rate in zip(ids, table["fps"].to_pylist()):
            if fps.setdefault(rec, float(rate)) != float(rate):
                raise SignalFileError(f"{path}: recording {rec!r} has more than one fps value")
    return SignalFile(signals, fps, (path.resolve(), {t: source[t] for t in tasks}))


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


def read_signals(path: str | Path, tasks: tuple[str, ...] | None = None, role: str = "predictions") -> SignalFile:
    """Read the `tasks` waveforms (default: every task the file has) of every recording in
    `path`, as `role` ("predictions" or "labels": which columns of a table holding both)."""
    path = Path(path)
    if path.is_dir() and any(path.glob("*.parquet")):
        try:
            return _from_table(path, pyarrow.parquet.read_table(path), tasks, role)
        except (OSError, pa.ArrowException) as err:
            raise SignalFileError(f"{path}: cannot read its Parquet files: {err}") from err
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
            return _from_table(path, pyarrow.csv.read_csv(path), tasks, role)
        if suffix == ".parquet":
            return _from_table(path, pyarrow.parquet.read_table(path), tasks, role)
    except (OSError, pa.ArrowException, ValueError) as err:
        if isinstance(err, SignalFileError):
            raise
        raise SignalFileError(f"{path}: cannot read it as {suffix[1:]}: {err}") from err
    raise SignalFileError(f"{path}: unsupported file type {suffix!r} (use .npz, .npy, .csv or .parquet)")


def check_not_self_scored(predictions: SignalFile, labels: SignalFile, tasks: tuple[str, ...]) -> None:
    """Refuse labels that are the very samples being scored: the same file read from the
    same column (or key) for a task."""
    if predictions.source is None or labels.source is None or predictions.source[0] != labels.source[0]:
        return
    same = [t for t in tasks if predictions.source[1].get(t) == labels.source[1].get(t)]
    if same:
        path, column = predictions.source[0], predictions.source[1][same[0]]
        raise SignalFileError(
            f"{path}: --predictions and --labels both read column {column!r}; that scores the predictions "
            "against themselves. Give the label file with --labels, or a file with label_<task> columns"
        )


def sampling_rates(flag: float | None, predictions: SignalFile, labels: SignalFile) -> float | dict[str, float]:
    """The rule for the sampling rate: `--fs` when given (it overrides the files); else the
    files' fps (column or key), which must agree where both files have one; else an error."""
    if flag is not None:
        if not flag > 0:
            raise SignalFileError(f"--fs {flag:g}: expected a positive sampling rate in Hz")
        return flag
    if labels.fps and predictions.fps:
        for rec, rate in labels.fps.items():
            other = predictions.fps.get(rec, rate)
            if not np.isclose(other, rate):
                raise SignalFileError(f"recording {rec!r}: fps {other:g} in the predictions, {rate:g} in the labels; "
                                      "fix the files or pass --fs")
    fps = labels.fps or predictions.fps
    if fps is None:
        raise SignalFileError("no sampling rate: neither file has an fps column (CSV/Parquet) or key (.npz); "
                              "pass --fs HZ")
    return fps
