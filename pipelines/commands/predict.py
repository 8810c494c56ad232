"""`mmrphys predict`: HR, RR and waveforms for a user's own face video."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mmrphys.errors import UserError
from pipelines.commands.predict_batch import register_batch_arguments, run_batch
from pipelines.serve.predict import predict_video
from pipelines.serve.references import FORMS, fetch_model


def register(parser: argparse.ArgumentParser) -> None:
    """Add the predict command's arguments."""
    parser.add_argument("video", type=Path, nargs="?", help="RGB face video (any format OpenCV reads)")
    parser.add_argument("--model", required=True, help=f"the model: {FORMS}")
    parser.add_argument("--thermal", type=Path,
                        help="synchronized thermal video: .npy (T, H, W), a video file or a folder of 16-bit frames")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default ./predictions)")
    parser.add_argument("--name", help="name of the recording's output files (default: the video's file name)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs of the same name")
    parser.add_argument("--fps", type=float, help="frame rate, if the container's is missing or wrong")
    parser.add_argument("--face-boxes", type=Path, help="CSV frame,x,y,w,h of face boxes (default: Haar detection)")
    parser.add_argument("--pre-cropped", action="store_true", help="frames are already cropped to the face")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ references")
    register_batch_arguments(parser)


def run_single(args: argparse.Namespace) -> int:
    """Predict one video and print its rates and output files."""
    result = predict_video(args.model, args.video, thermal=args.thermal, out_dir=args.out, name=args.name,
                           overwrite=args.overwrite, fps=args.fps, face_boxes=args.face_boxes,
                           pre_cropped=args.pre_cropped, tracking_uri=args.tracking_uri)
    seconds = len(next(iter(result.waveforms.values()))) / result.fps
    print(f"{args.video}: {seconds:.1f} s at {result.fps:g} fps")
    for name, value in result.rates.items():
        shown = f"{value:.1f}" if math.isfinite(value) else "n/a (too short or flat)"
        print(f"  {name.replace('_', ' ')}: {shown}")
    print(f"  rates over time: {len(result.rates_over_time)} windows")
    for kind, path in result.files.items():
        print(f"  {kind}: {path.resolve()}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch: many recordings with --input, else one video."""
    if args.input:
        return run_batch(args)
    if args.video is None:
        fetch_model(args.model, args.tracking_uri)  # a reference that names no model says so first
        raise UserError("give a VIDEO, or --input DIR_OR_SHARDS for many recordings")
    return run_single(args)
