"""Where a 9x9 training step's time goes, and how fast it could be with the conv blocks'
Tanh+InstanceNorm for free: the bound on what a faster norm kernel can give.

    python benchmarks/profile_step.py                      # SEF RGB, batch 4, 180 frames, 1 thread
    python benchmarks/profile_step.py --variant MEF --threads 2

In one process, stepped in turn (so the machine's load falls on every column alike):
`stock` and `fused` kernels (ModelConfig.kernels), and each again with every conv
block's Tanh+InstanceNorm skipped (conv only). The skipped form is not the model's
function, only a lower bound on the step time of any implementation of the same convs
in that memory layout. Then torch.profiler's top operators (self CPU time) of both
kernels. One thread by default: what a 1-CPU Ray Train worker runs on
(OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_model import inputs  # this folder is on sys.path: the script's own
from mmrphys.losses import multitask_loss
from mmrphys.model import MMRPhys
from mmrphys.model.blocks import ConvBlock3D


def make_step(name: str, modality: str, batch: int, frames: int, kernels: str) -> Callable[[], None]:
    """One Adam training step of the variant on bench_model.py's fixed random input."""
    config, clip, labels = inputs(name, modality, batch, frames, kernels, torch.device("cpu"))
    torch.manual_seed(0)
    model = MMRPhys(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = multitask_loss(model(clip, labels), labels)
        loss.backward()
        optimizer.step()

    return step


@contextlib.contextmanager
def conv_only() -> Iterator[None]:
    """Every ConvBlock3D runs its convolution alone (no Tanh, no InstanceNorm)."""
    original = ConvBlock3D.forward
    ConvBlock3D.forward = lambda self, x: self.conv_block_3d[0](x)
    try:
        yield
    finally:
        ConvBlock3D.forward = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="SEF", help="MMRPhys variant (default SEF: 9x9)")
    parser.add_argument("--modality", default="rgb")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--top", type=int, default=12, help="operators listed per kernel (0: no profile)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = {k: make_step(args.variant, args.modality, args.batch, args.frames, k) for k in ("stock", "fused")}
    columns = ["stock", "fused", "stock, conv only", "fused, conv only"]
    times: dict[str, list[float]] = {c: [] for c in columns}
    for repeat in range(args.repeats + 1):
        for kernels, step in steps.items():
            for column, context in ((kernels, contextlib.nullcontext), (f"{kernels}, conv only", conv_only)):
                with context():
                    started = time.perf_counter()
                    step()
                    if repeat:  # the first round warms up
                        times[column].append(time.perf_counter() - started)
    stock = statistics.median(times["stock"])
    print(f"{args.variant} {args.modality}, batch {args.batch} x {args.frames} frames, {args.threads} thread(s), "
          f"median of {args.repeats}; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| step | median (s) | min (s) | speed-up over stock |")
    print("|---|---|---|---|")
    for column in columns:
        median = statistics.median(times[column])
        print(f"| {column} | {median:.3f} | {min(times[column]):.3f} | {stock / median:.2f}x |")
    if args.top:
        from torch.profiler import ProfilerActivity, profile

        for kernels, step in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    step()
            print(f"\n{kernels}: top operators by self CPU time over 3 steps")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
