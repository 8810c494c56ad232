"""`mmrphys ingest`: turn a dataset into validated, subject-split Parquet chunk shards
with a manifest, on a Ray cluster (a local one unless RAY_ADDRESS names another)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrphys.config import ConfigError
from mmrphys.data.datasets import READERS
from mmrphys.data.recording import DatasetError


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--dataset", required=True, choices=sorted(READERS), help="dataset reader")
    parser.add_argument("--root", required=True, type=Path, help="the raw dataset folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for shards/ and manifest.json")
    parser.add_argument("--chunk-frames", type=int, default=180, help="frames per chunk (default 180)")
    parser.add_argument("--overlap", type=int, default=0, help="frames shared by consecutive chunks (default 0)")
    parser.add_argument("--size", type=int, default=72, help="stored crop size in pixels (default 72)")
    parser.add_argument("--rgb-dtype", choices=["uint8", "float16"], default="uint8",
                        help="storage precision of RGB clips (default uint8; see docs/data.md)")
    parser.add_argument("--split", default="0.7,0.15,0.15", metavar="TRAIN,VAL,TEST",
                        help="subject fractions of the train/val/test splits (default 0.7,0.15,0.15)")
    parser.add_argument("--folds", type=int, default=0,
                        help="k >= 3: k subject folds instead of fractions (select one later with --fold)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject split (default 0)")
    parser.add_argument("--detect-every", type=int, default=30,
                        help="Haar face re-detection interval in frames, when a dataset has no boxes")
    parser.add_argument("--overwrite", action="store_true", help="redo recordings already ingested")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="recordings decoded at once (each holds its video in memory; default: one per CPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other IngestConfig field, e.g. max_no_face=0.3")


def run(args: argparse.Namespace) -> int:
    """Ingest; print the counts, the rejections and where everything went."""
    from mmrphys.config import IngestConfig
    from pipelines.ingest import MANIFEST, ingest

    try:
        split = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        print(f"mmrphys ingest: error: --split: expected three comma-separated fractions, got {args.split!r}")
        return 2
    try:
        config = IngestConfig(
            chunk_frames=args.chunk_frames, overlap=args.overlap, size=args.size, rgb_dtype=args.rgb_dtype,
            split=split, folds=args.folds, seed=args.seed, detect_every=args.detect_every,
        ).with_overrides(args.overrides)
        manifest = ingest(args.dataset, args.root, args.out, config=config, overwrite=args.overwrite,
                          concurrency=args.concurrency)
    except (ConfigError, DatasetError) as err:
        print(f"mmrphys ingest: error: {err}")
        return 2
    counts = manifest["counts"]
    print(
        f"{counts['chunks']} chunks from {counts['accepted_recordings']} of {counts['recordings']} recordings "
        f"({counts['subjects']} subjects); rejected: {counts['rejected_recordings']} recordings, "
        f"{counts['rejected_chunks']} chunks"
    )
    splits = manifest.get("splits") or manifest["folds"][0]
    label = "splits" if "splits" in manifest else f"fold 0 of {len(manifest['folds'])}"
    print(f"{label}: " + ", ".join(f"{k} {len(v)} subjects" for k, v in splits.items()))
    for item in manifest["validation_report"][:10]:
        where = item["recording_id"] + (f" chunk {item['chunk_index']}" if item["chunk_index"] is not None else "")
        print(f"  rejected {where}: {item['reason']}")
    if len(manifest["validation_report"]) > 10:
        print(f"  ... {len(manifest['validation_report']) - 10} more in the manifest")
    print(f"shards: {args.out / 'shards'}\nmanifest and validation report: {args.out / MANIFEST}")
    return 0
