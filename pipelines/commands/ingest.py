"""`mmrphys ingest`: turn a dataset into validated, subject-split Parquet chunk shards
with a manifest, on a Ray cluster (a local one unless RAY_ADDRESS names another)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrphys.config import ConfigError, IngestConfig, apply_overrides
from mmrphys.data.datasets import READERS
from pipelines.data.ingest import MANIFEST, IngestIncomplete, ingest

#: everyday flags -> the IngestConfig field each sets
FLAGS = {"chunk_frames": "chunk_frames", "size": "preprocessing.size", "folds": "folds", "seed": "seed"}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--dataset", required=True, choices=sorted(READERS), help="dataset reader")
    parser.add_argument("--root", required=True, type=Path, help="the raw dataset folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for shards/ and manifest.json")
    parser.add_argument("--config", type=Path, help="ingest YAML (IngestConfig fields; e.g. configs/ingest_ibvp.yaml)")
    parser.add_argument("--chunk-frames", type=int, help="frames per chunk (ingest.chunk_frames, default 180)")
    parser.add_argument("--size", type=int,
                        help="stored crop size in pixels (ingest.preprocessing.size, default 72): the largest "
                             "resolution a model of these shards can take")
    parser.add_argument("--split", metavar="TRAIN,VAL,TEST",
                        help="subject fractions (ingest.split, default 0.7,0.15,0.15; 0,0,1: all in test)")
    parser.add_argument("--folds", type=int, help="k >= 3: k subject folds instead of fractions (ingest.folds)")
    parser.add_argument("--seed", type=int, help="seed of the subject split (ingest.seed, default 0)")
    parser.add_argument("--overwrite", action="store_true", help="redo recordings already ingested")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="recordings decoded at once (default: one per CPU)")
    parser.add_argument("overrides", nargs="*", metavar="ingest.FIELD=VALUE",
                        help="any IngestConfig field, e.g. ingest.overlap=30 ingest.preprocessing.rgb_dtype=float16")


def ingest_config(args: argparse.Namespace) -> IngestConfig:
    """The IngestConfig from --config (else the defaults), the flags given and the overrides."""
    overrides = [f"ingest.{field}={getattr(args, flag)}" for flag, field in FLAGS.items()
                 if getattr(args, flag) is not None]
    if args.split is not None:
        try:
            split = [float(x) for x in args.split.split(",")]
        except ValueError as err:
            raise ConfigError(f"--split: expected three comma-separated fractions, got {args.split!r}") from err
        overrides.append(f"ingest.split={split}")
    base = IngestConfig.load_yaml(args.config) if args.config else IngestConfig()
    return apply_overrides({"ingest": base}, overrides + list(args.overrides))["ingest"]


def run(args: argparse.Namespace) -> int:
    """Ingest; print the counts, the rejections, the failures and where everything went.

    With failed recordings the report is printed, then the IngestIncomplete error (the CLI
    exits non-zero); running the same command again retries only those."""
    try:
        manifest, incomplete = ingest(args.dataset, args.root, args.out, config=ingest_config(args),
                                      overwrite=args.overwrite, concurrency=args.concurrency), None
    except IngestIncomplete as err:
        manifest, incomplete = err.manifest, err
    counts = manifest["counts"]
    print(
        f"{counts['chunks']} chunks from {counts['accepted_recordings']} of {counts['recordings']} recordings "
        f"({counts['subjects']} subjects); rejected: {counts['rejected_recordings']} recordings, "
        f"{counts['rejected_chunks']} chunks; failed: {counts['failed_recordings']} recordings"
    )
    splits = manifest.get("splits") or manifest["folds"][0]
    label = "splits" if "splits" in manifest else f"fold 0 of {len(manifest['folds'])}"
    print(f"{label}: " + ", ".join(f"{k} {len(v)} subjects" for k, v in splits.items()))
    for item in manifest["validation_report"][:10]:
        where = item["recording_id"] + (f" chunk {item['chunk_index']}" if item["chunk_index"] is not None else "")
        print(f"  rejected {where}: {item['reason']}")
    if len(manifest["validation_report"]) > 10:
        print(f"  ... {len(manifest['validation_report']) - 10} more in the manifest")
    for item in manifest["failures"]:
        print(f"  FAILED {item['recording_id']}: {item['reason']}")
    print(f"shards: {args.out / 'shards'}\nmanifest and validation report: {args.out / MANIFEST}")
    if incomplete is not None:
        raise incomplete
    return 0
