"""RhythmFormer speed on this CPU: one training step (train-mode forward, the canonical
hybrid loss, backward, Adam) and eval inference per clip, at the default width.

The reference size (128x128 x 160 frames) takes about half a minute per batch-1 step on
one thread (docs/rhythmformer.md, "Speed"), so the default here is 64x64 x 160 frames,
batch 1. Reports the median and range over --repeats after one warm-up, with the load
average before and after.

    python benchmarks/bench_rhythmformer.py                  # 64x64 x 160, batch 1, 1 thread
    python benchmarks/bench_rhythmformer.py --size 128 --repeats 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmrphys.losses import multitask_loss
from mmrphys.model import RhythmFormer, rhythmformer_config, standardize_frames


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def clip_and_label(batch: int, frames: int, size: int, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    t = np.arange(frames) / fps
    pulse = np.sin(2 * np.pi * 1.3 * t)
    video = 120 + 10 * rng.random((batch, 3, frames, size, size))
    video[:, 1] += pulse[None, :, None, None]
    label = np.tile((pulse - pulse.mean()) / pulse.std(ddof=1), (batch, 1))
    return torch.from_numpy(standardize_frames(video)), torch.from_numpy(label.astype(np.float32))


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fps = 30.0
    model = RhythmFormer(rhythmformer_config(resolution=args.size, frames=args.frames))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    video, label = clip_and_label(args.batch, args.frames, args.size, fps)

    def train_step() -> None:
        model.train()
        pred = model(video)
        total, _ = multitask_loss(pred, {"bvp": label[:, : pred["bvp"].shape[1]]}, kind="rhythmformer_hybrid", fps=fps)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    def inference() -> None:
        model.eval()
        with torch.no_grad():
            model(video[:1])

    before = load()
    step = timed(train_step, args.repeats)
    infer = timed(inference, args.repeats)
    result = {
        "size": args.size, "frames": args.frames, "batch": args.batch, "threads": args.threads,
        "train_step_s": {"median": statistics.median(step), "min": min(step), "max": max(step)},
        "inference_per_clip_s": {"median": statistics.median(infer), "min": min(infer), "max": max(infer)},
        "load_before": before, "load_after": load(), "torch": torch.__version__, "cores": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
