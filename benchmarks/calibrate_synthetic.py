"""Calibrate the synthetic presets against released real-data checkpoints: every
checkpoint in ../shared/checkpoints/ on every preset, no training, whole recordings,
default evaluation profile; plus generation speed and disk use per preset.

Targets (docs/data.md section 1): on `realistic` the BP4D+ RGB+T 9x9 model's HR MAE is
about 1-6 bpm and its RR MAE about 1-4 breaths/min; on `hard` HR MAE about 6-20 bpm;
on `clean` near zero.

    nice -n 10 python benchmarks/calibrate_synthetic.py --workdir /tmp/calib
    python benchmarks/calibrate_synthetic.py --models BP4D_MMRPhysSNF --recordings 8

Writes `<workdir>/calibration.json` (summaries and per-recording errors) and prints the
Markdown tables that go into BENCHMARKS.md (## Synthetic data calibration).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from mmrphys.config import SyntheticConfig
from mmrphys.config.synthetic import PRESETS
from mmrphys.data.synthetic import render
from mmrphys.data.synthetic.calibration import score_preset
from mmrphys.inference.artifact import load_model

CHECKPOINTS = Path(__file__).resolve().parents[2] / "shared" / "checkpoints"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("calibrate-synthetic"))
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    parser.add_argument("--models", nargs="*", default=[], help="substrings of checkpoint names (default: all)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--recordings", type=int, default=8, help="recordings per preset (default 8)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override on every preset (for tuning)")
    parser.add_argument("--no-speed", action="store_true", help="skip the generation speed and disk measurement")
    return parser.parse_args()


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def speed_and_disk(presets: list[str], workdir: Path, seconds: float) -> list[dict]:
    """Frames per second of `render` alone and disk bytes per recording-minute, per preset,
    measured side by side in this run."""
    rows = []
    n = int(seconds * 30)
    for name in presets:
        config = SyntheticConfig.from_preset(name)
        render(0, 30, 30.0, config)  # warm-up
        start = time.perf_counter()
        render(1, n, 30.0, config)
        fps = n / (time.perf_counter() - start)
        folder = workdir / "data" / name
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        recordings = len(list(folder.glob("*/meta.json")))
        rows.append({"preset": name, "render_fps": fps,
                     "mb_per_recording_minute": size / 1e6 / recordings / (seconds / 60.0)})
    return rows


def main() -> None:
    args = parse_args()
    checkpoints = sorted(p for p in args.checkpoints.glob("*.pth")
                         if not args.models or any(m in p.name for m in args.models))
    if not checkpoints:
        raise SystemExit(f"no checkpoints matching {args.models} in {args.checkpoints}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    begun = time.perf_counter()
    models = [load_model(path) for path in checkpoints]
    for name in args.presets:
        config = SyntheticConfig.from_preset(name, args.overrides)
        root = args.workdir / "data" / name
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        # every checkpoint sees the same recordings
        evaluations = score_preset(models, config, root, recordings=args.recordings, seconds=args.seconds,
                                   seed=args.seed)
        for path, evaluation in zip(checkpoints, evaluations):
            row = {"checkpoint": path.name, "preset": name, "summary": evaluation.to_dict()["summary"],
                   "per_recording": evaluation.to_dict()["per_recording"]}
            results.append(row)
            parts = [f"{t} MAE {_fmt(s['MAE'])}" for t, s in row["summary"].items()]
            print(f"{name:9} {path.name[:48]:48} {', '.join(parts)}", flush=True)
        print(f"{name}: {time.perf_counter() - started:.0f}s for {len(models)} checkpoints", flush=True)
    speed = [] if args.no_speed else speed_and_disk(args.presets, args.workdir, args.seconds)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "configs": {name: SyntheticConfig.from_preset(name, args.overrides).to_dict() for name in args.presets},
        "results": results, "speed": speed, "wall_s": time.perf_counter() - begun,
    }
    (args.workdir / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    print_tables(results, speed, args)


def print_tables(results: list[dict], speed: list[dict], args: argparse.Namespace) -> None:
    """The Markdown tables for BENCHMARKS.md."""
    print(f"\n{args.recordings} recordings x {args.seconds:.0f} s per preset, seed {args.seed}, default profile\n")
    print("| checkpoint | preset | HR MAE | HR RMSE | HR r | HR SNR (dB) | RR MAE | RR RMSE | RR r | RR SNR (dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        cells = []
        for task in ("bvp", "rsp"):
            s = row["summary"].get(task)
            cells += ["-"] * 4 if s is None else [_fmt(s["MAE"]), _fmt(s["RMSE"]), _fmt(s["Pearson"]), _fmt(s["SNR"], 1)]
        print(f"| {row['checkpoint'].split('_SFSAM')[0]} | {row['preset']} | " + " | ".join(cells) + " |")
    print("\nper-recording absolute errors (HR bpm; RR breaths/min):\n")
    for row in results:
        for task in ("bvp", "rsp"):
            errors = [r["abs_error"] for r in row["per_recording"] if r["task"] == task]
            if errors:
                print(f"- {row['checkpoint'].split('_SFSAM')[0]} / {row['preset']} / {task}: "
                      + ", ".join(_fmt(e, 1) for e in errors))
    if speed:
        print("\n| preset | render frames/s | disk MB per recording-minute |")
        print("|---|---|---|")
        for row in speed:
            print(f"| {row['preset']} | {row['render_fps']:.0f} | {row['mb_per_recording_minute']:.1f} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
