"""`mmrphys predict`: HR, RR and waveforms for a user's own face video."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.commands.predict_batch import register_batch_arguments, run_batch


def register(parser: argparse.ArgumentParser) -> None:
    """Add the predict command's arguments."""
    parser.add_argument("video", type=Path, nargs="?", help="RGB face video (any format OpenCV reads)")
    parser.add_argument("--model", required=True,
                        help="run or checkpoint folder, models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--thermal", type=Path,
                        help="synchronized thermal video: .npy (T, H, W), a video file or a folder of 16-bit frames")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default ./predictions)")
    parser.add_argument("--fps", type=float, help="frame rate, if the container's is missing or wrong")
    parser.add_argument("--face-boxes", type=Path, help="CSV frame,x,y,w,h of face boxes (default: Haar detection)")
    parser.add_argument("--pre-cropped", action="store_true", help="frames are already cropped to the face")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ references")
    register_batch_arguments(parser)


def run_single(args: argparse.Namespace) -> int:
    """Predict one video and print its rates and output files."""
    from mmrphys.data.recording import DatasetError
    from pipelines.models import ModelRefError
    from pipelines.predict import predict_video

    try:
        result = predict_video(args.model, args.video, thermal=args.thermal, out_dir=args.out, fps=args.fps,
                               face_boxes=args.face_boxes, pre_cropped=args.pre_cropped,
                               tracking_uri=args.tracking_uri)
    except (DatasetError, ModelRefError) as err:
        print(f"error: {err}")
        return 1
    seconds = len(next(iter(result.waveforms.values()))) / result.fps
    print(f"{args.video}: {seconds:.1f} s at {result.fps:g} fps")
    for name, value in result.rates.items():
        print(f"  {name.replace('_', ' ')}: {value:.1f}")
    for kind, path in result.files.items():
        print(f"  {kind}: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch: many recordings with --input, else one video."""
    if args.input:
        return run_batch(args)
    if args.video is None:
        print("error: give a VIDEO, or --input DIR_OR_SHARDS for many recordings")
        return 2
    return run_single(args)
