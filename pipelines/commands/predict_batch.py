"""The batch half of `mmrphys predict`: `--input DIR_OR_SHARDS --out DIR` runs a model
over many recordings with Ray Data (`pipelines.serve.batch`)."""

from __future__ import annotations

import argparse
import math

from pipelines.serve.batch import batch_predict


def register_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the batch arguments to the predict command."""
    group = parser.add_argument_group("batch (instead of VIDEO)")
    group.add_argument("--input", help="shards folder (with manifest.json) or a raw dataset folder")
    group.add_argument("--dataset", default="folder",
                       help="reader for a raw dataset folder (default: folder, the generic layout)")
    group.add_argument("--split", action="append", choices=["train", "val", "test"],
                       help="with shards: only this split (repeatable; default every split)")
    group.add_argument("--batch-size", type=int, default=8, help="chunks per inference batch (default 8)")
    group.add_argument("--concurrency", type=int, default=1, help="inference actors, each holding the model (default 1)")


def run_batch(args: argparse.Namespace) -> int:
    """Predict every recording under --input; print the summary and where the files went."""
    result = batch_predict(args.model, args.input, args.out, dataset=args.dataset, splits=args.split,
                           batch_size=args.batch_size, concurrency=args.concurrency, tracking_uri=args.tracking_uri)
    print(f"{len(result.rows)} recordings ({result.input_kind}) from {args.input}")
    errors = [k for k in result.rows[0] if k.endswith("_abs_error")] if result.rows else []
    for key in errors:
        values = [r[key] for r in result.rows if not math.isnan(r[key])]
        if values:
            print(f"  mean {key.replace('_abs_error', '').replace('_', ' ')} error: {sum(values) / len(values):.2f}")
    for kind, path in result.files.items():
        print(f"  {kind}: {path}")
    return 0
