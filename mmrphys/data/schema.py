"""The versioned Parquet schema of chunk shards: one row per fixed-length chunk.

Clips are stored as raw little-endian bytes (C order) with their dtype beside them, so a
reader rebuilds them with one `np.frombuffer` per batch:

- `rgb`: (frames, size, size, 3), RGB order, dtype `rgb_dtype` (uint8 or float16);
- `thermal` (null when the recording has none): (frames, size, size), dtype
  `thermal_dtype` (float16, or float32 for values too large for float16 to resolve),
  in `thermal_unit`.

Labels are float32 lists resampled to the frame times; `hr_bpm` / `rr_bpm` are the
label-derived rates for reporting. The version lives in the schema metadata
(`mmrphys.schema_version`) and in the manifest; a reader refuses other versions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmrphys.data.recording import DatasetError

SCHEMA_VERSION = 1
VERSION_KEY = b"mmrphys.schema_version"
CLIP_DTYPES = ("uint8", "float16", "float32")

CHUNK_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("session", pa.string(), nullable=False),
        pa.field("recording_id", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int64(), nullable=False),
        pa.field("start_frame", pa.int64(), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("size", pa.int32(), nullable=False),
        pa.field("rgb", pa.binary(), nullable=False),
        pa.field("rgb_dtype", pa.string(), nullable=False),
        pa.field("thermal", pa.binary()),
        pa.field("thermal_dtype", pa.string()),
        pa.field("thermal_unit", pa.string()),
        pa.field("bvp", pa.list_(pa.float32()), nullable=False),
        pa.field("rsp", pa.list_(pa.float32())),
        pa.field("hr_bpm", pa.float64()),
        pa.field("rr_bpm", pa.float64()),
        pa.field("face_found", pa.float32(), nullable=False),
    ],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)


class SchemaError(DatasetError):
    """A shard is unreadable, or was written with another schema version or layout."""


def rows_to_table(rows: list[dict]) -> pa.Table:
    """A table in CHUNK_SCHEMA from row dicts holding every column."""
    return pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA)


def check_shard(path: str | Path) -> pa.Schema:
    """Read a shard's footer and check it is this schema version with every column.

    Raises SchemaError naming the file and what is wrong.
    """
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise SchemaError(f"{path}: corrupt or unreadable Parquet shard: {err}") from err
    version = (schema.metadata or {}).get(VERSION_KEY)
    if version != str(SCHEMA_VERSION).encode():
        found = version.decode() if version else "none"
        raise SchemaError(f"{path}: shard schema version {found}, this code reads version {SCHEMA_VERSION}")
    for field in CHUNK_SCHEMA:
        if field.name not in schema.names:
            raise SchemaError(f"{path}: shard lacks column {field.name!r}")
        if not schema.field(field.name).type.equals(field.type):
            raise SchemaError(
                f"{path}: column {field.name!r} is {schema.field(field.name).type}, expected {field.type}"
            )
    return schema


def as_stored(clip: np.ndarray, dtype: str) -> np.ndarray:
    """A float clip in its storage precision (uint8 rounds and clips to 0..255): what a
    shard holds, and what serving feeds a model so that it sees what it trained on."""
    if dtype == "uint8":
        return np.clip(np.rint(clip), 0, 255).astype(np.uint8)
    if dtype in CLIP_DTYPES:
        return np.ascontiguousarray(clip, dtype=dtype)
    raise ValueError(f"clip dtype {dtype!r} is not one of {CLIP_DTYPES}")


def encode_clip(clip: np.ndarray, dtype: str) -> bytes:
    """Store a float clip as `dtype` bytes (see `as_stored`)."""
    return as_stored(clip, dtype).tobytes()


def decode_clips(blobs, dtypes, shape: tuple[int, ...]) -> np.ndarray:
    """Stack a batch of stored clips into (n, *shape), zero-copy in their stored dtype.

    blobs: the rows' bytes; dtypes: their dtype names (one per row). Rows sharing one
    dtype (the usual case) decode with a single frombuffer; mixed rows become float32.
    """
    dtypes = list(dtypes)
    if len(set(dtypes)) == 1:
        return np.frombuffer(b"".join(blobs), dtype=dtypes[0]).reshape((len(dtypes),) + tuple(shape))
    return np.stack([np.frombuffer(b, dtype=d).reshape(shape).astype(np.float32) for b, d in zip(blobs, dtypes)])
