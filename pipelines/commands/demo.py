"""`mmrphys demo`: the main job, synthetic data to a registered model on one machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrphys.config import SyntheticConfig
from mmrphys.config.synthetic import PRESETS
from pipelines.demo import DEMO_PRESET, run_demo


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo command's arguments."""
    parser.add_argument("--quick", action="store_true", help="a few-minute version (3 subjects, 2 epochs)")
    parser.add_argument("--workdir", type=Path, default=Path("mmrphys-demo"),
                        help="where data, shards, runs and reports go (default ./mmrphys-demo)")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--preset", default=DEMO_PRESET, choices=sorted(PRESETS),
                        help=f"synthetic-data difficulty preset (default {DEMO_PRESET}; see docs/data.md section 1)")
    parser.add_argument("overrides", nargs="*", metavar="synthetic.FIELD=VALUE",
                        help="synthetic-data setting on top of the preset, e.g. synthetic.compression=lossless")


def run(args: argparse.Namespace) -> int:
    """Run the demo; the summary and locations are printed as it finishes."""
    synthetic = SyntheticConfig.from_preset(args.preset, args.overrides)
    run_demo(args.workdir, quick=args.quick, tracking_uri=args.tracking_uri, synthetic=synthetic)
    return 0
