"""The streaming reader on real shards from a real ingest: tensor shapes for every
resolution and modality, area resampling, label z-scoring, ids, and DataError cases."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mmrphys.config import IngestConfig, SyntheticConfig
from mmrphys.data.synthetic import generate_dataset
from mmrphys.config import ModelConfig
from pipelines.data.shards import DataError, check_split, read_manifest
from pipelines.data.stream import DecodeChunks, load_split, ordered_execution
from pipelines.data.ingest import ingest

T = 40


@pytest.fixture(scope="module")
def shards(ray_cluster, tmp_path_factory):
    """Three synthetic subjects (train/val/test), plus one RGB-only, BVP-only recording."""
    root = tmp_path_factory.mktemp("raw")
    generate_dataset(root, subjects=3, seconds=3.0, seed=4, config=SyntheticConfig(width=64, height=48))
    plain = shutil.copytree(root / "S03_1", root / "S09_1")
    (plain / "thermal.npy").unlink()
    labels = np.loadtxt(plain / "labels.csv", delimiter=",", skiprows=1)
    np.savetxt(plain / "labels.csv", labels[:, :2], delimiter=",", header="time,bvp", comments="")
    (plain / "meta.json").write_text(json.dumps({**json.loads((plain / "meta.json").read_text()), "subject": "S09"}))
    out = tmp_path_factory.mktemp("shards")
    config = IngestConfig(chunk_frames=T, split=(0.5, 0.25, 0.25), seed=3)
    manifest = ingest("synthetic", root, out, config=config, progress=False)
    return out, manifest


def _split_with(manifest, subject):
    return next(name for name, subjects in manifest["splits"].items() if subject in subjects)


def _arrow_batch(path, n=2):
    """The first rows of a shard as the Arrow batch Ray Data hands the decode map."""
    return pq.read_table(path).slice(0, n)


@pytest.mark.parametrize("resolution", [72, 36, 9])
@pytest.mark.parametrize("modality, channels", [("rgb", 3), ("thermal", 1), ("rgbt", 4)])
def test_decode_map_gives_the_model_input_shape(shards, resolution, modality, channels):
    out, manifest = shards
    (rec,) = [r for r in manifest["recordings"] if r["subject"] == "S01"]
    decode = DecodeChunks(ModelConfig(resolution=resolution, modality=modality), ("bvp", "rsp"), with_ids=False)
    batch = decode(_arrow_batch(out / rec["shard"]))
    assert set(batch) == {"video", "bvp", "rsp", "fps"}
    assert batch["video"].shape == (2, channels, T, resolution, resolution) and batch["video"].dtype == np.float32
    assert batch["bvp"].shape == batch["rsp"].shape == (2, T) and batch["bvp"].dtype == np.float32


def test_decode_reads_mixed_dtypes_and_refuses_mixed_lengths(shards):
    out, manifest = shards
    (rec,) = [r for r in manifest["recordings"] if r["subject"] == "S01"]
    table = _arrow_batch(out / rec["shard"])
    column = table.schema.get_field_index
    decode = DecodeChunks(ModelConfig(resolution=9, modality="rgb"), ("bvp",), with_ids=False)
    plain = decode(table)
    # the second row stored as float16 instead of uint8: the slow path, the same values
    as_float16 = np.frombuffer(table.column("rgb")[1].as_py(), np.uint8).astype(np.float16).tobytes()
    mixed = table.set_column(column("rgb"), "rgb", pa.array([table.column("rgb")[0].as_py(), as_float16], pa.binary()))
    mixed = mixed.set_column(column("rgb_dtype"), "rgb_dtype", pa.array(["uint8", "float16"]))
    assert np.array_equal(decode(mixed)["video"], plain["video"])
    longer = table.set_column(column("frames"), "frames", pa.array([T, T + 1], pa.int32()))
    with pytest.raises(DataError, match="mixes chunk lengths"):
        decode(longer)
    short = table.set_column(column("bvp"), "bvp", pa.array([[0.0] * T, [0.0] * (T - 1)], pa.list_(pa.float32())))
    with pytest.raises(DataError, match="label column 'bvp': a row is missing or not 40 samples long"):
        decode(short)


def test_ray_stream_yields_torch_batches(shards):
    out, manifest = shards
    ds = load_split(out, _split_with(manifest, "S01"), config=ModelConfig(resolution=36, modality="rgbt"),
                    tasks=("bvp", "rsp"))
    batch = next(iter(ds.iter_torch_batches(batch_size=2)))
    assert set(batch) == {"video", "bvp", "rsp", "fps"}
    assert batch["video"].shape == (2, 4, T, 36, 36) and batch["video"].dtype == torch.float32
    assert batch["bvp"].shape == batch["rsp"].shape == (2, T)


def test_values_are_area_resampled_channels_rgb_then_thermal_and_labels_standardised(shards):
    out, manifest = shards
    (rec,) = [r for r in manifest["recordings"] if r["subject"] == "S01"]
    row = pq.read_table(out / rec["shard"]).slice(0, 1).to_pylist()[0]
    rgb = np.frombuffer(row["rgb"], np.uint8).reshape(T, 72, 72, 3).astype(np.float32)
    thermal = np.frombuffer(row["thermal"], np.float16).reshape(T, 72, 72).astype(np.float32)
    decode = DecodeChunks(ModelConfig(resolution=9, modality="rgbt"), ("bvp",), with_ids=True)
    batch = decode(_arrow_batch(out / rec["shard"]))
    i = list(zip(batch["recording_id"], batch["chunk_index"])).index((rec["recording_id"], 0))
    video = batch["video"][i]
    expected_rgb = np.stack([cv2.resize(f, (9, 9), interpolation=cv2.INTER_AREA) for f in rgb])
    expected_thermal = np.stack([cv2.resize(f, (9, 9), interpolation=cv2.INTER_AREA) for f in thermal])
    assert np.allclose(video[:3], expected_rgb.transpose(3, 0, 1, 2), atol=1e-3)
    assert np.allclose(video[3], expected_thermal, atol=1e-3)
    bvp = np.asarray(row["bvp"], np.float64)
    assert np.allclose(batch["bvp"][i], (bvp - bvp.mean()) / bvp.std(ddof=1), atol=1e-5)
    assert batch["fps"][i] == 30.0 and batch["chunk_index"].dtype == np.int64


def test_with_ids_yields_every_chunk_once_in_a_recoverable_order(shards):
    out, manifest = shards
    split = _split_with(manifest, "S02")
    ds = load_split(out, split, config=ModelConfig(resolution=9, modality="rgb"), tasks=("bvp",), with_ids=True)
    ids = [(r, c) for b in ds.iter_batches(batch_format="numpy") for r, c in zip(b["recording_id"], b["chunk_index"])]
    expected = sum(r["chunks"] for r in manifest["recordings"] if r["subject"] in manifest["splits"][split])
    assert len(ids) == len(set(ids)) == expected


def _split_ids(ds, workers: int) -> list[list[tuple[str, int]]]:
    """Chunk ids each of `workers` consumers of `streaming_split` receives, in order (the
    consumers run concurrently, as Ray Train's workers do)."""
    from concurrent.futures import ThreadPoolExecutor

    def consume(split):
        return [(r, int(c)) for b in split.iter_batches(batch_format="numpy", batch_size=1)
                for r, c in zip(b["recording_id"], b["chunk_index"])]

    splits = ds.streaming_split(workers, equal=True)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(consume, splits))


def test_ordered_execution_gives_each_worker_the_same_chunks_every_run(shards):
    out, manifest = shards
    runs = []
    for _ in range(2):
        ds = load_split(out, _split_with(manifest, "S01"), config=ModelConfig(resolution=9, modality="rgb"),
                        tasks=("bvp",), with_ids=True, batch_size=1)
        ds.context.execution_options = ordered_execution()
        runs.append(_split_ids(ds, 2))
    assert runs[0] == runs[1]
    assert all(runs[0]) and not set(runs[0][0]) & set(runs[0][1])


def test_a_small_split_is_cached_in_order_and_a_large_one_streamed(shards):
    import ray
    from ray.data.dataset import MaterializedDataset

    from pipelines.data.shards import split_rows
    from pipelines.data.stream import cache_small, decoded_mb

    out, manifest = shards
    split, config = _split_with(manifest, "S01"), ModelConfig(resolution=9, modality="rgb", frames=T)

    def load():
        return load_split(out, split, config=config, tasks=("bvp",), with_ids=True, batch_size=1)

    size = decoded_mb(config, split_rows(out, split), ("bvp",))
    cached = cache_small(load(), size, limit_mb=512)
    assert isinstance(cached, MaterializedDataset)
    # the estimate from the manifest is what the decoded blocks take (ids and fps aside)
    assert cached.size_bytes() / 1e6 == pytest.approx(size, rel=0.05)
    streamed = load()
    streamed.context.execution_options = ordered_execution()
    assert _split_ids(cached, 2) == _split_ids(streamed, 2)  # the same chunks to the same worker
    for limit in (0.0, size / 2):  # off, or too large for the limit
        assert not isinstance(cache_small(load(), size, limit_mb=limit), MaterializedDataset)
    free_mb = ray.available_resources()["object_store_memory"] / 1e6  # the bound is a quarter of it
    assert not isinstance(cache_small(load(), free_mb / 2, limit_mb=1e9), MaterializedDataset)


def test_ordered_execution_keeps_the_other_execution_options():
    import ray.data

    current = ray.data.DataContext.get_current().execution_options
    options = ordered_execution()
    assert options.preserve_order and options is not current
    assert options.resource_limits == current.resource_limits
    assert options.exclude_resources == current.exclude_resources


def test_check_split_names_what_is_missing(shards, tmp_path):
    out, manifest = shards
    plain_split = _split_with(manifest, "S09")
    with pytest.raises(DataError, match="task 'rsp' needs RSP labels.*synthetic/S09/1"):
        check_split(out, plain_split, modality="rgb", tasks=("bvp", "rsp"))
    with pytest.raises(DataError, match="modality 'thermal' needs thermal frames.*synthetic/S09/1"):
        check_split(out, plain_split, modality="thermal", tasks=("bvp",))
    assert check_split(out, plain_split, modality="rgb", tasks=("bvp",))
    with pytest.raises(DataError, match="unknown split 'training'"):
        check_split(out, "training", modality="rgb", tasks=("bvp",))
    with pytest.raises(DataError, match="split by fractions, not folds"):
        check_split(out, "train", modality="rgb", tasks=("bvp",), fold=0)
    with pytest.raises(DataError, match="manifest.json: no manifest"):
        read_manifest(tmp_path)
    small = shutil.copytree(out, tmp_path / "small")
    manifest = json.loads((small / "manifest.json").read_text())
    manifest["ingest_config"]["preprocessing"]["size"] = 9
    (small / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="store 9x9 crops, smaller than the model's resolution 36"):
        load_split(small, "train", config=ModelConfig(resolution=36, modality="rgb"), tasks=("bvp",))


def test_empty_split_is_an_error(shards, tmp_path):
    out, _ = shards
    copy = shutil.copytree(out, tmp_path / "copy")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["splits"]["val"] = ["nobody"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="split 'val' is empty"):
        check_split(copy, "val", modality="rgb", tasks=("bvp",))


def test_corrupt_and_mismatched_shards_are_named(shards, tmp_path):
    out, manifest = shards
    split = _split_with(manifest, "S01")
    (rec,) = [r for r in manifest["recordings"] if r["subject"] == "S01"]
    copy = shutil.copytree(out, tmp_path / "copy")
    shard = copy / rec["shard"]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{shard.name}: corrupt or unreadable Parquet shard"):
        check_split(copy, split, modality="rgb", tasks=("bvp",))

    table = pq.read_table(out / rec["shard"])
    pq.write_table(table.replace_schema_metadata({b"mmrphys.schema_version": b"0"}), shard)
    with pytest.raises(DataError, match=f"{shard.name}: shard schema version 0, this code reads version 1"):
        check_split(copy, split, modality="rgb", tasks=("bvp",))

    pq.write_table(table.drop_columns(["hr_bpm"]).replace_schema_metadata(table.schema.metadata), shard)
    with pytest.raises(DataError, match=f"{shard.name}: shard lacks column 'hr_bpm'"):
        check_split(copy, split, modality="rgb", tasks=("bvp",))

    bad = table.set_column(table.schema.get_field_index("fps"), "fps", pa.array(["x"] * len(table)))
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), shard)
    with pytest.raises(DataError, match="column 'fps' is string, expected double"):
        check_split(copy, split, modality="rgb", tasks=("bvp",))

    shard.unlink()
    with pytest.raises(DataError, match="shard listed in the manifest is missing"):
        check_split(copy, split, modality="rgb", tasks=("bvp",))
