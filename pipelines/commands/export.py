"""`mmrphys export`: write a model as an ONNX file (the inference path, no TSFM)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    """Add the export command's arguments."""
    parser.add_argument("--model", required=True,
                        help="run or checkpoint folder, models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--out", type=Path, default=Path("mmrphys.onnx"), help="output file (default ./mmrphys.onnx)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ references")


def run(args: argparse.Namespace) -> int:
    """Export and print where the file went."""
    from mmrphys.model import export_onnx
    from pipelines.models import ModelRefError, resolve_model

    try:
        model, config = resolve_model(args.model, tracking_uri=args.tracking_uri)
    except ModelRefError as err:
        print(f"error: {err}")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, args.out)
    print(f"wrote {args.out} ({config.modality} {config.resolution}x{config.resolution}, tasks {list(config.tasks)})")
    return 0
