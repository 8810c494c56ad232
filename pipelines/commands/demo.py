"""`mmrphys demo`: the main job, synthetic data to a registered model on one machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.demo import run_demo


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo command's arguments."""
    parser.add_argument("--quick", action="store_true", help="a few-minute version (3 subjects, 2 epochs)")
    parser.add_argument("--workdir", type=Path, default=Path("mmrphys-demo"),
                        help="where data, shards, runs and reports go (default ./mmrphys-demo)")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")


def run(args: argparse.Namespace) -> int:
    """Run the demo; the summary and locations are printed as it finishes."""
    run_demo(args.workdir, quick=args.quick, tracking_uri=args.tracking_uri)
    return 0
