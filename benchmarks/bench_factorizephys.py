"""FactorizePhys speed on this CPU: the reference recipe's training step and single-clip
inference, stock and fused kernels measured in turn in one process.

- train step: batch 4 x 161 frames x 72x72 RGB, FSAM with residual in training mode
  (dropout on), forward, the across-batch negative Pearson, backward, Adam, OneCycleLR;
- inference: one (1, 3, 161, 72, 72) clip in eval mode without gradient, FSAM off (the
  shipped inference path) and on (`attention_at_inference`); Big: (1, 3, 241, 128, 128).

The paths' repeats are interleaved so that machine load hits them alike; the load average
is printed before and after (the machine is shared).

    python benchmarks/bench_factorizephys.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrphys.config import TrainConfig  # noqa: E402
from mmrphys.losses import neg_pearson_across_batch  # noqa: E402
from mmrphys.model import FactorizePhys, factorizephys_config  # noqa: E402
from mmrphys.training import build_optimizer, build_scheduler  # noqa: E402

KERNELS = ("stock", "auto")


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def train_step(kernels: str):
    """A closure running one training step of the reference recipe."""
    torch.manual_seed(0)
    model = FactorizePhys(factorizephys_config(kernels=kernels)).train()
    train = TrainConfig(epochs=10, batch_size=4, loss="neg_pearson_across_batch")
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train, steps_per_epoch=100)
    clip = torch.rand(4, 3, 161, 72, 72) * 255
    label = torch.randn(4, 160)

    def step() -> None:
        loss = neg_pearson_across_batch(model(clip)["bvp"], label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    return step


def inference(kernels: str, **settings):
    """A closure running one eval-mode forward of a single clip."""
    torch.manual_seed(0)
    config = factorizephys_config(kernels=kernels, **settings)
    model = FactorizePhys(config).eval()
    clip = torch.rand(1, 3, 241 if config.resolution == 128 else 161, config.resolution, config.resolution) * 255

    def run() -> None:
        with torch.no_grad():
            model(clip)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the reference timing used 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per path after one warm-up")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = {
        "train step, batch 4, FSAM_Res": lambda k: train_step(k),
        "inference, 1 clip, FSAM off": lambda k: inference(k),
        "inference, 1 clip, FSAM on": lambda k: inference(k, attention_at_inference=True),
        "inference, 1 clip, Big 128x128x241, FSAM off": lambda k: inference(k, resolution=128),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores; load before: {load()}")
    print("| measurement | " + " | ".join(f"kernels {k} (s)" for k in KERNELS) + " |")
    print("|---|" + "---|" * len(KERNELS))
    for name, make in cases.items():
        runs = {k: make(k) for k in KERNELS}
        for run in runs.values():
            run()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in KERNELS}
        for _ in range(args.repeats):
            for kernels, run in runs.items():
                start = time.perf_counter()
                run()
                times[kernels].append(time.perf_counter() - start)
        cells = [f"{statistics.median(times[k]):.2f} ({min(times[k]):.2f}-{max(times[k]):.2f})" for k in KERNELS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
