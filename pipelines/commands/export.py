"""`mmrphys export`: write a model as an ONNX file (the inference path, no TSFM)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrphys.model import export_onnx
from pipelines.serve.references import FORMS, resolve_model


def register(parser: argparse.ArgumentParser) -> None:
    """Add the export command's arguments."""
    parser.add_argument("--model", required=True, help=f"the model: {FORMS}")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--out", type=Path, default=Path("mmrphys.onnx"), help="output file (default ./mmrphys.onnx)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ references")


def run(args: argparse.Namespace) -> int:
    """Export and print where the file went."""
    model, artifact = resolve_model(args.model, tracking_uri=args.tracking_uri)
    config = artifact.config
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, args.out)
    print(f"wrote {args.out.resolve()} ({config.architecture}, {config.modality} {config.resolution}x{config.resolution}, "
          f"tasks {list(config.tasks)})")
    return 0
