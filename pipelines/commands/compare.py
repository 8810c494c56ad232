"""`mmrphys compare`: train and evaluate several models on the same shards, splits, seeds
and metrics; print, write and log one table (docs/compare.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.commands.train import experiment_overrides, resolve_config
from pipelines.compare import ENTRIES, load_entries, parse_test_set, resolve_entries, run_compare


def register(parser: argparse.ArgumentParser) -> None:
    """Add the compare command's arguments."""
    parser.add_argument("--data", help="shards folder from `mmrphys ingest`: trains on its train/val splits and, "
                                       "without --test, scores its test split (sets data.shards)")
    parser.add_argument("--models", required=True,
                        help=f"comma-separated entries, e.g. mmrphys,factorizephys,pos; built in: {', '.join(ENTRIES)}")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per trainable entry (default 3)")
    parser.add_argument("--config", type=Path, help="base experiment YAML every entry starts from")
    parser.add_argument("--entries", type=Path, help="YAML of more entries: NAME: [SECTION.FIELD=VALUE, ...]")
    parser.add_argument("--test", action="append", default=[], metavar="NAME=SHARDS[:SPLIT]",
                        help="a test set (repeatable), e.g. realistic=shards-realistic:test for a domain shift; "
                             "default: the test split of --data")
    parser.add_argument("--storage", type=Path, default=Path("runs"), help="folder holding comparisons (default ./runs)")
    parser.add_argument("--name", help="comparison folder name (default: compare and a timestamp)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--no-onnx", action="store_true", help="skip exporting each entry to measure its ONNX size")
    parser.add_argument("overrides", nargs="*", metavar="SECTION.FIELD=VALUE",
                        help="base config overrides for every entry, e.g. model.resolution=9 train.epochs=3")


def run(args: argparse.Namespace) -> int:
    """Run the comparison; print the table and where its files went."""
    overrides = experiment_overrides(data=args.data, tracking_uri=args.tracking_uri) + list(args.overrides)
    base = resolve_config(args.config, overrides)
    entries = resolve_entries(args.models.split(","), load_entries(args.entries) if args.entries else {})
    result = run_compare(base, entries, seeds=args.seeds, test_sets=[parse_test_set(t) for t in args.test],
                         storage_path=args.storage, name=args.name, measure_onnx=not args.no_onnx)
    print(f"comparison folder: {result.compare_dir}")
    for kind, path in result.files.items():
        print(f"  {kind}: {path}")
    if result.parent_run_id:
        print(f"MLflow parent run: {result.parent_run_id} at {result.tracking_uri}")
    return 0
