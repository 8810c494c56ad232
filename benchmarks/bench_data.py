"""Data-path benchmarks: synthetic generation speed, storage precision (pulse SNR kept by
uint8 vs float16 shards), the streaming reader's chunk rate against the rate one
training worker consumes chunks, and the CPU cores a GPU needs (`gpu`: the stream's
chunks per CPU second at 72/36/9 against a GPU's consumption estimated from the FLOPs and
the kernel count of a training step).

    python benchmarks/bench_data.py [--quick] [--out DIR] [--parts generation,precision,stream,gpu]

Everything runs side by side in one process on one local Ray cluster, so the ratios
compare like with like. Results print as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from mmrphys import signals
from mmrphys.data.schema import decode_clips, encode_clip
from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic import render
from mmrphys.data.video import crop_resize, smooth_boxes, square_boxes
from mmrphys.profiles import get_profile
from mmrphys.inference.preprocessing import resize_clips


def generation_speed(frames: int) -> tuple[float, float]:
    """Frames per wall second and per CPU second of `render` at 160x120 on one thread.

    CPU time is what one core gives when the machine is shared; wall time what this run saw.
    """
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    render(0, 60)  # warm up imports and caches
    wall, cpu = time.perf_counter(), time.process_time()
    render(1, frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cv2.setNumThreads(threads)
    return frames / wall, frames / cpu


def _pulse_snr_db(traces: np.ndarray, fps: float, hr_bpm: float) -> np.ndarray:
    """Harmonic SNR (dB) of each row's pulse at the known heart rate (the metrics' SNR)."""
    rules = get_profile("default").task("bvp")
    x = traces - traces.mean(axis=-1, keepdims=True)
    freqs, power = signals.periodogram(x, fps, signals.next_pow2(x.shape[-1]))
    low, high = rules.snr_band
    sig, noise = signals.harmonic_powers(freqs, power, hr_bpm, low, high, 0.1)
    return signals.snr_db(sig, noise)


def precision_snr(recordings: int, seconds: float, config: SyntheticConfig, fps: float = 30.0) -> dict:
    """Pulse SNR of the green channel in the 72x72 crop stored as float32 (reference),
    float16 and uint8, seen per pixel at 72, 36 and 9 (what each model resolution gets)."""
    out: dict[str, dict[int, list[float]]] = {d: {72: [], 36: [], 9: []} for d in ("float32", "float16", "uint8")}
    n = int(seconds * fps)
    for seed in range(recordings):
        rec = render(100 + seed, n, fps, config)
        boxes = smooth_boxes(square_boxes(rec.face_boxes, 1.5), 15)
        crop = crop_resize(rec.rgb, boxes, 72)[..., 1:2]  # green, (T, 72, 72, 1)
        for dtype in out:
            stored = decode_clips([encode_clip(crop, dtype)], [dtype], crop.shape)[0] if dtype != "float32" else crop
            for res in (72, 36, 9):
                small = resize_clips(stored[None], res)[0, ..., 0]
                # the centre half of the crop is face; per-pixel traces there
                c = slice(res // 4, res - res // 4)
                traces = small[:, c, c].reshape(n, -1).T
                out[dtype][res].append(float(np.mean(_pulse_snr_db(traces, fps, rec.hr_bpm))))
    return {d: {r: float(np.mean(v)) for r, v in by_res.items()} for d, by_res in out.items()}


def _write_shards(workdir: Path, subjects: int, seconds: float) -> Path:
    from mmrphys.data.synthetic import generate_dataset
    from mmrphys.config import IngestConfig
    from pipelines.data.ingest import ingest

    raw, shards = workdir / "raw", workdir / "shards"
    generate_dataset(raw, subjects=subjects, seconds=seconds, seed=0)
    ingest("synthetic", raw, shards, config=IngestConfig(split=(1.0, 0.0, 0.0)), progress=False)
    return shards


def streaming_rate(shards: Path, resolution: int, modality: str, epochs: int) -> tuple[float, float, float]:
    """What `load_split` delivers through `iter_torch_batches(batch_size=4)` after a
    warm-up epoch: (chunks/s after each epoch's first batch, chunks/s including each
    epoch's start-up, mean seconds to an epoch's first batch). On a small split the first
    rate only says the rest of the epoch was already buffered."""
    from mmrphys.config import ModelConfig
    from pipelines.data.stream import load_split

    ds = load_split(shards, "train", config=ModelConfig(resolution=resolution, modality=modality), tasks=("bvp", "rsp"))
    for _ in ds.iter_torch_batches(batch_size=4):
        pass
    steady_time = total_time = latency = 0.0
    steady = total = 0
    for _ in range(epochs):
        start = time.perf_counter()
        first = None
        for batch in ds.iter_torch_batches(batch_size=4):
            if first is None:
                first = time.perf_counter()
            else:
                steady += len(batch["bvp"])
            total += len(batch["bvp"])
        end = time.perf_counter()
        steady_time += end - first
        total_time += end - start
        latency += first - start
    return steady / steady_time, total / total_time, latency / epochs


def decode_cpu_rate(shards: Path, resolution: int, modality: str) -> float:
    """Chunks per CPU second of the streaming work itself, in this process: reading the
    shards' Parquet row groups and running the decode map on them (read + decode + area
    resize + stack + label z-score). CPU time does not
    depend on what else the machine runs, so this compares cleanly with the training
    step's CPU time."""
    import pyarrow.parquet as pq

    from mmrphys.config import ModelConfig
    from pipelines.data.stream import DecodeChunks

    decode = DecodeChunks(ModelConfig(resolution=resolution, modality=modality), ("bvp", "rsp"), with_ids=False)
    columns = ["frames", "size", "fps", "bvp", "rsp", "rgb", "rgb_dtype", "thermal", "thermal_dtype"]
    files = sorted((shards / "shards").glob("*.parquet"))
    start, count = time.process_time(), 0
    for file in files:
        table = pq.read_table(file, columns=columns)
        for offset in range(0, table.num_rows, 8):
            rows = table.slice(offset, 8)  # the Arrow batch Ray Data hands the map
            decode(rows)
            count += rows.num_rows
    return count / (time.process_time() - start)


def training_rate(resolution: int, modality: str, steps: int) -> tuple[float, float]:
    """Chunks per wall second and per CPU second one training worker consumes: forward,
    backward and an Adam step of MMRPhys on a batch of 4 x 180 frames (TSFM, both tasks)."""
    import torch

    from mmrphys.config import ModelConfig
    from mmrphys.losses import multitask_loss
    from mmrphys.model import MMRPhys

    config = ModelConfig(resolution=resolution, modality=modality)
    model = MMRPhys(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4, config.in_channels, 181, resolution, resolution)
    labels = {t: torch.randn(4, 180) for t in config.tasks}

    def step() -> None:
        optimiser.zero_grad()
        loss, _ = multitask_loss(model(x, labels=labels), labels)
        loss.backward()
        optimiser.step()

    step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return 4 * steps / wall, 4 * steps / cpu


#: bf16 dense tensor-core peaks (FLOP/s) from the vendors' data sheets
GPU_PEAK_BF16 = {"H100 SXM": 989e12, "A100": 312e12}
#: assumed share of that peak the step's small-channel 3D convolutions reach
GPU_CONV_EFFICIENCY = 0.3
#: assumed seconds per dispatched op in eager PyTorch on a GPU (launch + framework
#: overhead; the kernels of a 9x9 step finish faster than they are launched)
GPU_SECONDS_PER_OP = 6e-6


def step_cost(resolution: int, modality: str, batch: int, frames: int) -> tuple[float, int]:
    """(FLOPs, dispatched aten ops) of forward + backward of one training step, stock
    kernels (what a GPU runs), TSFM fed the labels, both tasks.

    FLOPs are torch's FlopCounterMode count (convolutions and matrix products, the
    arithmetic that scales with the input); each aten op is about one GPU kernel launch.
    The optimizer step is left out (Adam's fused GPU form is a handful of kernels).
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from mmrphys.config import ModelConfig
    from mmrphys.losses import multitask_loss
    from mmrphys.model import MMRPhys

    class OpCounter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            return func(*args, **(kwargs or {}))

    config = ModelConfig(resolution=resolution, modality=modality, frames=frames, kernels="stock")
    model = MMRPhys(config)
    x = torch.rand(batch, config.in_channels, frames + 1, resolution, resolution) * 255
    labels = {t: torch.randn(batch, frames) for t in config.tasks}
    flops = FlopCounterMode(display=False)
    with flops:
        multitask_loss(model(x, labels=labels), labels)[0].backward()
    counter = OpCounter()
    with counter:
        multitask_loss(model(x, labels=labels), labels)[0].backward()
    return float(flops.get_total_flops()), counter.ops


def gpu_chunks_per_second(flops: float, ops: int, batch: int, peak: float) -> float:
    """Estimated chunks per second one GPU trains: each step is bound by its arithmetic
    at GPU_CONV_EFFICIENCY of `peak` or by launching its ops, whichever is slower."""
    return batch / max(flops / (peak * GPU_CONV_EFFICIENCY), ops * GPU_SECONDS_PER_OP)


def gpu_table(shards: Path) -> None:
    """Print the stream's chunks per CPU second against estimated GPU consumption.

    The step is measured at batch 2 x 64 frames; its FLOPs scale linearly to a chunk of
    180 frames and to the batch, its op count does not depend on either.
    """
    batches = (4, 32)
    gpus = " | ".join(f"{g} chunks/s, batch {' / '.join(map(str, batches))} (est.)" for g in GPU_PEAK_BF16)
    print(f"\n| resolution | stream chunks per CPU-s (one core) | fwd+bwd GFLOP per 180-frame chunk | ops per step "
          f"| {gpus} | cores per GPU for 3x |\n|---|---|---|---|" + "---|" * len(GPU_PEAK_BF16) + "---|")
    for resolution in (72, 36, 9):
        per_core = decode_cpu_rate(shards, resolution, "rgbt")
        flops, ops = step_cost(resolution, "rgbt", batch=2, frames=64)
        per_chunk = flops / 2 * 180 / 64
        rates = {g: [gpu_chunks_per_second(per_chunk * b, ops, b, peak) for b in batches]
                 for g, peak in GPU_PEAK_BF16.items()}
        fastest = max(max(r) for r in rates.values())
        cells = " | ".join(" / ".join(f"{x:.0f}" for x in r) for r in rates.values())
        print(f"| {resolution}x{resolution} | {per_core:.1f} | {per_chunk / 1e9:.2f} | {ops} | {cells} "
              f"| {3 * fastest / per_core:.0f} |")
    print(f"\nestimate: step time = max(FLOPs / ({GPU_CONV_EFFICIENCY:.0%} of bf16 peak), ops x "
          f"{GPU_SECONDS_PER_OP * 1e6:.0f} us); cores for 3x = 3 x the fastest GPU rate / stream chunks per CPU-s")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--parts", default="generation,precision,stream,gpu",
                        help="comma-separated parts to run (default: all four)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    print(f"machine: {_cpu_name()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    parts = set(args.parts.split(","))
    if "generation" in parts:
        per_wall, per_cpu = generation_speed(300 if args.quick else 900)
        print(f"\nsynthetic generation at 160x120, one thread: {per_cpu:.0f} frames per CPU second "
              f"({per_wall:.0f} per wall second in this run)")
    if "precision" in parts:
        precision_table(args.quick)
    if parts & {"stream", "gpu"}:
        stream_table(args.quick, args.out, with_stream="stream" in parts, with_gpu="gpu" in parts)


def precision_table(quick: bool) -> None:
    """Print the pulse SNR kept by each storage precision."""
    print("\npulse SNR (dB, green, per pixel, mean over face pixels and recordings):")
    cases = {
        "synthetic default (160x120 camera, noise 1.5-3 levels)": SyntheticConfig(),
        "low-noise camera (noise 0.5-1 levels)": SyntheticConfig(sensor_noise=(0.5, 1.0)),
        # a high-resolution camera averages many raw pixels into each 72x72 pixel
        "high-resolution camera equivalent (noise 0.2-0.4 levels)": SyntheticConfig(sensor_noise=(0.2, 0.4)),
    }
    n_rec, secs = (2, 20.0) if quick else (6, 30.0)
    for name, config in cases.items():
        snr = precision_snr(n_rec, secs, config)
        print(f"\n{name}\n\n| stored as | 72x72 | 36x36 | 9x9 |\n|---|---|---|---|")
        for dtype, by_res in snr.items():
            loss = "" if dtype == "float32" else " (" + ", ".join(
                f"{by_res[r] - snr['float32'][r]:+.2f}" for r in (72, 36, 9)) + " vs float32)"
            print(f"| {dtype} | {by_res[72]:.2f} | {by_res[36]:.2f} | {by_res[9]:.2f} |{loss}")


def stream_table(quick: bool, out: Path | None, *, with_stream: bool = True, with_gpu: bool = False) -> None:
    """On one set of shards, print the streaming rate against one CPU training worker's
    (`with_stream`) and against a GPU's estimated consumption (`with_gpu`)."""
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             object_store_memory=1024**3)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = out or Path(tmp)
        subjects, seconds = (3, 36.0) if quick else (6, 36.0)
        start = time.perf_counter()
        shards = _write_shards(workdir, subjects, seconds)
        print(f"\ningest of {subjects} x {seconds:.0f} s recordings: {time.perf_counter() - start:.1f} s")
        if with_gpu:
            gpu_table(shards)
        if with_stream:
            _stream_rows(shards, quick)
    ray.shutdown()


def _stream_rows(shards: Path, quick: bool) -> None:
    print("\n| resolution, modality | Ray stream chunks/s after first batch / with start-up (first batch, s) "
          "| one training worker chunks/s (wall) | ratio with start-up | stream work chunks/CPU-s "
          "| training chunks/CPU-s | ratio |\n|---|---|---|---|---|---|---|")
    rows = ((9, "rgbt"), (36, "rgbt")) if quick else ((9, "rgbt"), (36, "rgbt"), (72, "rgbt"))
    for resolution, modality in rows:
        after_first, stream, latency = streaming_rate(shards, resolution, modality, 2 if quick else 3)
        stream_cpu = decode_cpu_rate(shards, resolution, modality)
        train, train_cpu = training_rate(resolution, modality, 2 if quick else 5)
        print(f"| {resolution}, {modality} | {after_first:.0f} / {stream:.1f} ({latency:.1f} s) | {train:.2f} "
              f"| {stream / train:.1f}x "
              f"| {stream_cpu:.1f} | {train_cpu:.2f} | {stream_cpu / train_cpu:.1f}x |")
    print("\ntraining side: MMRPhys at the row's resolution, RGB+T early fusion, TSFM, BVP + RSP heads, "
          "batch 4 x 180 frames, forward + backward + Adam step")


if __name__ == "__main__":
    main()
