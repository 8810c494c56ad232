"""`mmrphys synth`: write a synthetic RGB + thermal face-video dataset in the folder
layout, ready for `mmrphys ingest --dataset synthetic`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmrphys.config import ConfigError, SyntheticConfig
from mmrphys.config.synthetic import PRESETS
from mmrphys.data.synthetic import generate_dataset
from mmrphys.data.synthetic_waveforms import CsvWaveforms
from mmrphys.errors import UserError


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--out", required=True, type=Path, help="folder to write the dataset into")
    parser.add_argument("--subjects", type=int, default=10, help="number of subjects (default 10)")
    parser.add_argument("--sessions", type=int, default=1, help="recordings per subject (default 1)")
    parser.add_argument("--seconds", type=float, default=36.0,
                        help="length of each recording; >= 30 s lets FFT rates reach 2 bpm (default 36)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same dataset (default 0)")
    parser.add_argument("--waveforms", type=Path, default=None,
                        help="CSV file or folder of real PPG/respiration recordings to drive the video "
                             "(PhysioKit's columns by default) instead of the parametric models")
    parser.add_argument("--ppg-column", default=None, help="PPG column of the waveform CSVs")
    parser.add_argument("--rsp-column", default=None, help="respiration column of the waveform CSVs")
    parser.add_argument("--time-column", default=None, help="time-stamp column of the waveform CSVs")
    parser.add_argument("--time-unit-s", type=float, default=None,
                        help="seconds per unit of the time column (PhysioKit: 0.001)")
    parser.add_argument("--preset", default="clean", choices=sorted(PRESETS),
                        help="difficulty preset: clean (no nuisances, fast tests), realistic, hard "
                             "(see docs/data.md section 1; default clean)")
    parser.add_argument("overrides", nargs="*", metavar="synthetic.FIELD=VALUE",
                        help="any SyntheticConfig field on top of the preset, e.g. "
                             "synthetic.pulse_amplitude=[0.5,1.0] (docs/configuration.md)")


def run(args: argparse.Namespace) -> int:
    """Render the dataset; print where it went."""
    config = SyntheticConfig.from_preset(args.preset, args.overrides)
    source = None
    if args.waveforms is not None:
        options = {k: v for k, v in {
            "ppg_column": args.ppg_column, "rsp_column": args.rsp_column,
            "time_column": args.time_column, "time_unit_s": args.time_unit_s,
        }.items() if v is not None}
        source = CsvWaveforms.from_path(args.waveforms, **options)
    start = time.perf_counter()
    try:
        folders = generate_dataset(
            args.out, subjects=args.subjects, seconds=args.seconds, fps=args.fps, seed=args.seed,
            sessions=args.sessions, config=config, waveform_source=source, progress=True,
        )
    except ValueError as err:  # a subject, session or frame count that makes no dataset
        if isinstance(err, UserError):
            raise
        raise ConfigError(f"mmrphys synth: {err}") from err
    frames = len(folders) * round(args.seconds * args.fps)
    elapsed = time.perf_counter() - start
    print(f"wrote {len(folders)} recordings ({frames} frames, {frames / elapsed:.0f} frames/s, preset {config.preset}) "
          f"to {args.out}")
    print(f"next: mmrphys ingest --dataset synthetic --root {args.out} --out SHARDS_DIR")
    return 0
