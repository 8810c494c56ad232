"""Speed of the unsupervised baselines: frames per second of `mmrphys.baselines.extract`
for each method and profile on a 60-s, 30-fps clip of 72x72 face crops (uint8), the
size the shards store; the spatial mean alone; and each method alone from the means
(`extract_from_means`). Best of `--repeats`. With `--accuracy N`, also the HR error of
every method and profile on N rendered videos (default synthetic preset, 64x48, 30 s),
mean +- sd over the videos. Run:
    python benchmarks/baselines.py [--accuracy 12]
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

from mmrphys.baselines import METHODS, extract, extract_from_means, spatial_mean
from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import render
from mmrphys.data.video import crop_resize
from mmrphys.metrics import waveform_rates
from timing import best_of


def accuracy(videos: int, fps: float) -> None:
    """HR absolute error (bpm, default evaluation profile) per method and profile."""
    config = SyntheticConfig(width=64, height=48)
    columns = {
        "default": lambda m, crops, means: extract(m, crops, fps),
        "rppg-toolbox (float32 driver)": lambda m, crops, means: extract(m, crops, fps, profile="rppg-toolbox"),
        "rppg-toolbox (float64 means)": lambda m, crops, means: extract_from_means(m, means, fps, profile="rppg-toolbox"),
    }
    errors = {(m, c): [] for m in METHODS for c in columns}
    for seed in range(videos):
        recording = render(seed, int(30 * fps), fps, config)
        x, y, w, h = recording.face_boxes[0]
        crops = recording.rgb[:, y : y + h, x : x + w]
        means = spatial_mean(crops)
        label = waveform_rates(recording.bvp, fps)
        for method in METHODS:
            for column, run in columns.items():
                wave = run(method, crops, means)
                errors[method, column].append(abs(waveform_rates(wave, fps) - label))
    print(f"\nHR absolute error (bpm), {videos} videos, mean +- sd (worst):")
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for method in METHODS:
        cells = [f"{np.mean(e):.2f} +- {np.std(e, ddof=1):.2f} ({np.max(e):.1f})"
                 for e in (np.array(errors[method, c]) for c in columns)]
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accuracy", type=int, default=0, metavar="VIDEOS")
    args = parser.parse_args()

    n = int(args.seconds * args.fps)
    recording = render(0, n, args.fps, SyntheticConfig(motion_episodes_per_minute=0.0))
    crops = np.rint(crop_resize(recording.rgb, recording.face_boxes)).clip(0, 255).astype(np.uint8)
    print(f"clip: {crops.shape} {crops.dtype}, {args.fps} fps; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, NumPy {np.__version__}; load average before: {os.getloadavg()}")
    print("| method | profile | extract (s) | frames/s | from means (ms) |")
    print("|---|---|---|---|---|")
    for profile in ("default", "rppg-toolbox"):
        seconds = best_of(lambda profile=profile: spatial_mean(crops, profile), args.repeats)
        print(f"| spatial mean only | {profile} | {seconds:.4f} | {n / seconds:,.0f} | |")
        means = spatial_mean(crops, profile)
        for method in METHODS:
            seconds = best_of(lambda m=method, p=profile: extract(m, crops, args.fps, profile=p), args.repeats)
            alone = best_of(
                lambda m=method, p=profile, x=means: extract_from_means(m, x, args.fps, profile=p), args.repeats
            )
            print(f"| {method} | {profile} | {seconds:.4f} | {n / seconds:,.0f} | {1000 * alone:.2f} |")
    print(f"load average after: {os.getloadavg()}")
    if args.accuracy:
        accuracy(args.accuracy, args.fps)


if __name__ == "__main__":
    main()
