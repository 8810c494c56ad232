"""`mmrphys evaluate`: batch inference on a split of the shards, metrics and a report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    """Add the evaluate command's arguments."""
    parser.add_argument("--model", required=True,
                        help="run or checkpoint folder, models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--data", required=True, help="shards folder from `mmrphys ingest`")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--fold", type=int, help="cross-validation fold, for shards ingested with folds")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="report folder (default ./evaluation)")
    parser.add_argument("--profile", default="default", help="evaluation profile (default, rppg-toolbox, mmrphys)")
    parser.add_argument("--window", type=float, help="evaluation window in seconds (default: whole recordings)")
    parser.add_argument("--method", choices=["fft", "peak"], default="fft", help="rate estimator")
    parser.add_argument("--batch-size", type=int, default=8, help="inference batch size")
    parser.add_argument("--concurrency", type=int, default=1, help="inference actors")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (models:/ references and logging)")
    parser.add_argument("--log-run", metavar="RUN_ID", help="log metrics and report into this MLflow run")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary table and where the report went."""
    from mmrphys.config import ConfigError, EvalConfig
    from pipelines.evaluate import evaluate, format_summary
    from pipelines.models import ModelRefError

    try:
        evaluation = EvalConfig(profile=args.profile, window_seconds=args.window, method=args.method,
                                batch_size=args.batch_size)
    except ConfigError as err:
        print(f"error: {err}")
        return 2
    logger = None
    if args.log_run:
        from pipelines.tracking import RunLogger, resolve_tracking_uri

        logger = RunLogger(resolve_tracking_uri(args.tracking_uri or ""), args.log_run)
    try:
        result = evaluate(args.model, args.data, args.split, evaluation=evaluation, out_dir=args.out,
                          logger=logger, fold=args.fold, tracking_uri=args.tracking_uri,
                          concurrency=args.concurrency)
    except (ModelRefError, ValueError) as err:
        print(f"error: {err}")
        return 1
    tasks = tuple(result.evaluation.summary)
    print(f"split {args.split!r}, profile {args.profile!r}:")
    print(format_summary(result, tasks))
    print(f"report: {args.out.resolve()}")
    for kind, path in sorted(result.files.items()):
        print(f"  {kind}: {path}")
    return 0
