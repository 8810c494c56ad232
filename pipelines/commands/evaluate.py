"""`mmrphys evaluate`: batch inference on a split of the shards, metrics and a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.serve.evaluate import evaluate, format_summary
from pipelines.serve.references import FORMS
from pipelines.tracking import RunLogger, resolve_tracking_uri

#: everyday flags -> the EvalConfig field each sets
FLAGS = {"profile": "profile", "window": "window_seconds", "method": "method", "batch_size": "batch_size"}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the evaluate command's arguments."""
    parser.add_argument("--model", required=True, help=f"the model: {FORMS}")
    parser.add_argument("--data", required=True, help="shards folder from `mmrphys ingest`")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--fold", type=int, help="cross-validation fold, for shards ingested with folds")
    parser.add_argument("--out", type=Path, default=Path("evaluation"), help="report folder (default ./evaluation)")
    parser.add_argument("--profile", help="evaluation profile: default, rppg-toolbox, mmrphys "
                                          "(eval.profile; default: the one the model was validated with)")
    parser.add_argument("--window", type=float, help="evaluation window in seconds (eval.window_seconds)")
    parser.add_argument("--method", choices=["fft", "peak"], help="rate estimator (eval.method)")
    parser.add_argument("--batch-size", type=int, help="inference batch size (eval.batch_size)")
    parser.add_argument("--concurrency", type=int, default=1, help="inference actors")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (models:/ references and logging)")
    parser.add_argument("--log-run", metavar="RUN_ID", help="log metrics and report into this MLflow run")
    parser.add_argument("overrides", nargs="*", metavar="eval.FIELD=VALUE", help="any EvalConfig field")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary table and where the report went."""
    overrides = [f"eval.{field}={getattr(args, flag)}" for flag, field in FLAGS.items()
                 if getattr(args, flag) is not None] + list(args.overrides)
    logger = RunLogger(resolve_tracking_uri(args.tracking_uri or ""), args.log_run) if args.log_run else None
    result = evaluate(args.model, args.data, args.split, overrides=overrides, out_dir=args.out,
                      logger=logger, fold=args.fold, tracking_uri=args.tracking_uri, concurrency=args.concurrency)
    tasks = tuple(result.evaluation.summary)
    print(f"split {args.split!r}, profile {result.config.profile!r}:")
    print(format_summary(result, tasks))
    print(f"report: {args.out.resolve()}")
    for kind, path in sorted(result.files.items()):
        print(f"  {kind}: {path}")
    return 0
