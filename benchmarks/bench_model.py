"""MMRPhys speed: training step (batch 4 x 180 frames, TSFM fed the labels, Smooth L1,
backward, Adam) and single-clip inference, PyTorch and ONNX Runtime.

The default plain-layout path and the opt-in channels-last path (`model.channels_last =
True`) are timed side by side, interleaved within one run so that machine load hits both
alike, and (unless --no-check) their outputs and gradients are compared to show the
numerics are unchanged. CPU time is reported beside wall time: on a shared machine it is
the steadier measure of the work done.

    python benchmarks/bench_model.py                       # LEF, MEF, SEF x RGB, RGB+T
    python benchmarks/bench_model.py --variants SEF --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# this checkout's packages first, not an installed copy of the project
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrphys.losses import multitask_loss
from mmrphys.model import MMRPhys, export_onnx, run_onnx, variant


def machine() -> str:
    """CPU model, cores, torch threads (and the GPU when present)."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    text = f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name()}"
    return text


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call; CPU time is less sensitive to other
    processes competing for the cores."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def median(samples: list[tuple[float, float]], index: int) -> float:
    return statistics.median(s[index] for s in samples)


def train_step(model, optimizer, clip, labels):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = multitask_loss(model(clip, labels), labels)
        loss.backward()
        optimizer.step()

    return step


def numerics(model: MMRPhys, clip, labels) -> tuple[float, float]:
    """Max |plain - channels-last| over training outputs and over weight gradients."""
    results = []
    for channels_last in (False, True):
        m = copy.deepcopy(model).train()
        m.channels_last = channels_last
        torch.manual_seed(0)  # same dropout masks in both paths
        out = m(clip, labels)
        loss, _ = multitask_loss(out, labels)
        loss.backward()
        results.append((out, [p.grad for p in m.parameters()]))
    (a, ga), (b, gb) = results
    out_diff = max((a[k] - b[k]).abs().max().item() for k in a)
    grad_diff = max((x - y).abs().max().item() for x, y in zip(ga, gb))
    return out_diff, grad_diff


def bench(
    name: str, modality: str, batch: int, frames: int, repeats: int, device: torch.device, onnx: bool, check: bool
) -> dict:
    torch.manual_seed(0)
    config = variant(name, modality=modality, frames=frames)
    size = config.resolution
    clip = torch.rand(batch, config.in_channels, frames + 1, size, size, device=device) * 255
    labels = {t: torch.randn(batch, frames, device=device) for t in config.tasks}
    base = MMRPhys(config).to(device)
    models = {}
    for path, channels_last in (("plain", False), ("channels_last", True)):
        m = copy.deepcopy(base).train()
        m.channels_last = channels_last
        models[path] = (m, train_step(m, torch.optim.Adam(m.parameters(), lr=1e-3), clip, labels))
    single = clip[:1]
    train = {path: [] for path in models}
    infer = {path: [] for path in models}
    for path, (m, step) in models.items():  # warm-up
        step()
        with torch.no_grad():
            m.eval()(single)
        m.train()
    for _ in range(repeats):
        for path, (m, step) in models.items():
            train[path].append(timed(step, device))
        for path, (m, _) in models.items():
            m.eval()
            with torch.no_grad():
                infer[path].append(timed(lambda: m(single), device))
            m.train()
    out_diff, grad_diff = numerics(base, clip, labels) if check else (float("nan"), float("nan"))
    row = {
        "variant": name,
        "modality": modality,
        "resolution": size,
        "train_plain_s": median(train["plain"], 0),
        "train_fast_s": median(train["channels_last"], 0),
        "train_plain_cpu_s": median(train["plain"], 1),
        "train_fast_cpu_s": median(train["channels_last"], 1),
        "infer_plain_s": median(infer["plain"], 0),
        "infer_fast_s": median(infer["channels_last"], 0),
        "max_output_diff": out_diff,
        "max_grad_diff": grad_diff,
    }
    if onnx and device.type == "cpu":
        with tempfile.TemporaryDirectory() as tmp:
            import onnxruntime as ort

            path = export_onnx(base.eval(), Path(tmp) / "model.onnx")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            array = single.cpu().numpy()
            run_onnx(session, array)
            row["infer_onnx_s"] = median([timed(lambda: run_onnx(session, array), device) for _ in range(repeats)], 0)
    return row


def markdown(rows: list[dict]) -> str:
    head = (
        "| variant | input | train step plain (s) | train step channels-last (s) | speed-up (wall / CPU time) | "
        "inference plain (s) | inference channels-last (s) | ONNX Runtime (s) | max output / grad diff |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    names = {"rgb": "RGB", "rgbt": "RGB+T", "thermal": "T"}
    for r in rows:
        onnx = f"{r['infer_onnx_s']:.3f}" if "infer_onnx_s" in r else "-"
        lines.append(
            f"| {r['variant']} | {names[r['modality']]} {r['resolution']}x{r['resolution']} | {r['train_plain_s']:.2f} | "
            f"{r['train_fast_s']:.2f} | {r['train_plain_s'] / r['train_fast_s']:.2f}x / "
            f"{r['train_plain_cpu_s'] / r['train_fast_cpu_s']:.2f}x | {r['infer_plain_s']:.3f} | "
            f"{r['infer_fast_s']:.3f} | {onnx} | {r['max_output_diff']:.1e} / {r['max_grad_diff']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["LEF", "MEF", "SEF"])
    parser.add_argument("--modalities", nargs="+", default=["rgb", "rgbt"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the plain vs channels-last output/gradient comparison")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"machine: {machine()}")
    rows = []
    for name in args.variants:
        for modality in args.modalities:
            rows.append(bench(name, modality, args.batch, args.frames, args.repeats, device, args.onnx, args.check))
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
