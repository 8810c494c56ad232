"""MMRPhys speed: training step (batch 4 x 180 frames, TSFM fed the labels, Smooth L1,
backward, Adam), inference per clip and batch throughput (PyTorch and ONNX Runtime), for
each way of running the same model, and the float32 numerics of the stock and fused paths.

Four paths, each in its own worker process, their steps interleaved one by one so that
machine load hits them alike:
- `stock`: the reference's op sequence with stock PyTorch modules (ModelConfig.kernels =
  "stock") in a process with glibc's default malloc: what the reference implementation
  computes on this machine, with the same kernels;
- `stock+reuse`: the same, in a process started with mmrphys.host_memory.reuse_env();
- `fused`: channels-last activations and the fused Tanh+InstanceNorm (kernels "fused");
- `fused+reuse`: both, which is what `mmrphys train` runs on CPU by default.
Unless --no-check, the float32 eval outputs and weight gradients of `stock` and `fused`
are compared with a float64 run of the same weights (`float64_distances`).

    python benchmarks/bench_model.py                       # LEF, MEF, SEF x RGB, RGB+T
    python benchmarks/bench_model.py --variants SEF --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# this checkout's packages first, not an installed copy of the project
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmrphys.host_memory import reuse_env
from mmrphys.losses import multitask_loss
from mmrphys.model import MMRPhys, export_onnx, run_onnx, variant

#: path name -> (ModelConfig.kernels, start the worker with reuse_env)
PATHS = {
    "stock": ("stock", False),
    "stock+reuse": ("stock", True),
    "fused": ("fused", False),
    "fused+reuse": ("fused", True),
}
BASELINE, DEFAULT = "stock", "fused+reuse"


def machine() -> str:
    """CPU model, cores, torch threads (and the GPU when present)."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name()}"
    return text


def inputs(name: str, modality: str, batch: int, frames: int, kernels: str, device: torch.device):
    """Config, clip (batch, C, frames+1, H, W) and labels, the same in every process."""
    config = variant(name, modality=modality, frames=frames, kernels=kernels)
    generator = torch.Generator().manual_seed(0)
    size = config.resolution
    clip = torch.rand(batch, config.in_channels, frames + 1, size, size, generator=generator) * 255
    labels = {t: torch.randn(batch, frames, generator=generator) for t in config.tasks}
    return config, clip.to(device), {t: v.to(device) for t, v in labels.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def peak_memory_gib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's
    peak over the fork)."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kib / 2**20


def worker(spec: dict) -> None:
    """A worker process: build the model, then answer one JSON command per stdin line."""
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    config, clip, labels = inputs(spec["variant"], spec["modality"], spec["batch"], spec["frames"],
                                  spec["kernels"], device)
    torch.manual_seed(0)
    model = MMRPhys(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = multitask_loss(model(clip, labels), labels)
        loss.backward()
        optimizer.step()

    def infer(clips: int):
        model.eval()
        with torch.no_grad():
            model(clip[:clips])
        model.train()

    for line in sys.stdin:
        command = line.strip()
        if command == "train":
            reply = timed(train_step, device)
        elif command == "infer":
            reply = timed(lambda: infer(1), device)
        elif command == "infer_batch":
            reply = timed(lambda: infer(len(clip)), device)
        else:  # "peak": the process's peak resident memory, GiB
            reply = peak_memory_gib()
        print(json.dumps(reply), flush=True)


class Worker:
    """A worker process for one path, driven over its stdin/stdout."""

    def __init__(self, spec: dict, reuse: bool):
        env = {**os.environ, **(reuse_env() if reuse else {})}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def ask(self, command: str):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with {self.process.wait()} on {command!r}")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def float64_distances(name: str, modality: str, batch: int, frames: int) -> dict[str, tuple[float, float]]:
    """How far float32 `stock` and `fused` are from float64, same weights, no dropout, one
    training step with TSFM fed the labels: {kernels: (max |eval output - float64| over
    tasks, max over weight gradients of max |grad - float64 grad| / max |float64 grad|)}."""
    config = variant(name, modality=modality, frames=frames, dropout=0.0, kernels="stock")
    torch.manual_seed(0)
    weights = MMRPhys(config).state_dict()
    generator = torch.Generator().manual_seed(0)
    size = config.resolution
    x = torch.rand(batch, config.in_channels, frames + 1, size, size, generator=generator, dtype=torch.float64) * 255
    labels = {t: torch.randn(batch, frames, generator=generator, dtype=torch.float64) for t in config.tasks}

    def run(dtype: torch.dtype, kernels: str) -> tuple[dict, list]:
        model = MMRPhys(config.with_overrides([f"kernels={kernels}"]))
        model.load_state_dict(weights)
        model = model.to(dtype).train()
        typed = {t: v.to(dtype) for t, v in labels.items()}
        multitask_loss(model(x.to(dtype), typed), typed)[0].backward()
        with torch.no_grad():
            outputs = model.eval()(x.to(dtype))
        return {t: v.double() for t, v in outputs.items()}, [p.grad.double() for p in model.parameters()]

    exact_outputs, exact_grads = run(torch.float64, "stock")
    distances = {}
    for kernels in ("stock", "fused"):
        outputs, grads = run(torch.float32, kernels)
        output = max((outputs[t] - exact_outputs[t]).abs().max().item() for t in outputs)
        grad = max(((g - e).abs().max() / e.abs().max()).item() for g, e in zip(grads, exact_grads))
        distances[kernels] = (output, grad)
    return distances


def bench(name: str, modality: str, args: argparse.Namespace) -> dict:
    spec = dict(variant=name, modality=modality, batch=args.batch, frames=args.frames,
                threads=args.threads, device=args.device)
    workers = {path: Worker({**spec, "kernels": kernels}, reuse) for path, (kernels, reuse) in PATHS.items()}
    try:
        for w in workers.values():  # warm-up: first-call allocations and kernel choices
            w.ask("train")
            w.ask("infer")
        train = {path: [] for path in workers}
        infer = {path: [] for path in workers}
        batch = {path: [] for path in workers}
        for _ in range(args.repeats):
            for path, w in workers.items():
                train[path].append(w.ask("train"))
            for path, w in workers.items():
                infer[path].append(w.ask("infer"))
            for path, w in workers.items():
                batch[path].append(w.ask("infer_batch"))
        peak = {path: w.ask("peak") for path, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    row = {"variant": name, "modality": modality, "resolution": variant(name, modality=modality).resolution}
    for path in PATHS:
        row[f"train_{path}_s"] = statistics.median(t[0] for t in train[path])
        row[f"train_{path}_cpu_s"] = statistics.median(t[1] for t in train[path])
        row[f"infer_{path}_s"] = statistics.median(t[0] for t in infer[path])
        row[f"batch_{path}_s"] = statistics.median(t[0] for t in batch[path])
        row[f"peak_{path}_gib"] = peak[path]
    if args.check:
        for kernels, (output, grad) in float64_distances(name, modality, 1, args.frames).items():
            row[f"f64_output_{kernels}"], row[f"f64_grad_{kernels}"] = output, grad
    if args.onnx and args.device == "cpu":
        row["infer_onnx_s"], row["batch_onnx_s"] = onnx_latency(name, modality, args)
    return row


def onnx_latency(name: str, modality: str, args: argparse.Namespace) -> tuple[float, float]:
    """ONNX Runtime (CPU provider): median seconds for one clip and for a batch."""
    import onnxruntime as ort

    config, clip, _ = inputs(name, modality, args.batch, args.frames, "stock", torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(MMRPhys(config).eval(), Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        one, batch = clip[:1].numpy(), clip.numpy()
        run_onnx(session, one)
        run_onnx(session, batch)
        cpu = torch.device("cpu")
        return tuple(
            statistics.median(timed(lambda: run_onnx(session, a), cpu)[0] for _ in range(args.repeats))
            for a in (one, batch)
        )


def markdown(rows: list[dict], batch: int) -> str:
    """Two tables: training step and numerics; inference per clip and batch throughput."""
    names = {"rgb": "RGB", "rgbt": "RGB+T", "thermal": "T"}
    lines = [
        "| variant | input | " + " | ".join(f"train step {p} (s)" for p in PATHS)
        + f" | speed-up {DEFAULT} vs {BASELINE} (wall / CPU) | peak memory {BASELINE} / {DEFAULT} (GiB) | "
        "float32 vs float64: eval output stock / fused | weight grad (rel.) stock / fused |",
        "|---|---|" + "---|" * (len(PATHS) + 4),
    ]
    for r in rows:
        speed = (f"{r[f'train_{BASELINE}_s'] / r[f'train_{DEFAULT}_s']:.2f}x / "
                 f"{r[f'train_{BASELINE}_cpu_s'] / r[f'train_{DEFAULT}_cpu_s']:.2f}x")
        check = ["-", "-"]
        if "f64_output_stock" in r:
            check = [f"{r[f'f64_{q}_stock']:.1e} / {r[f'f64_{q}_fused']:.1e}" for q in ("output", "grad")]
        lines.append(
            f"| {r['variant']} | {names[r['modality']]} {r['resolution']}x{r['resolution']} | "
            + " | ".join(f"{r[f'train_{p}_s']:.2f}" for p in PATHS)
            + f" | {speed} | {r[f'peak_{BASELINE}_gib']:.2f} / {r[f'peak_{DEFAULT}_gib']:.2f} | "
            + " | ".join(check) + " |"
        )
    lines += [
        "",
        f"| variant | input | per clip {BASELINE} / {DEFAULT} / ONNX Runtime (s) | "
        f"batch of {batch}, clips/s {BASELINE} / {DEFAULT} / ONNX Runtime |",
        "|---|---|---|---|",
    ]
    for r in rows:
        clip = [r[f"infer_{BASELINE}_s"], r[f"infer_{DEFAULT}_s"], r.get("infer_onnx_s")]
        rate = [batch / r[f"batch_{BASELINE}_s"], batch / r[f"batch_{DEFAULT}_s"],
                batch / r["batch_onnx_s"] if "batch_onnx_s" in r else None]
        lines.append(
            f"| {r['variant']} | {names[r['modality']]} {r['resolution']}x{r['resolution']} | "
            + " / ".join("-" if v is None else f"{v:.3f}" for v in clip) + " | "
            + " / ".join("-" if v is None else f"{v:.1f}" for v in rate) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["LEF", "MEF", "SEF"])
    parser.add_argument("--modalities", nargs="+", default=["rgb", "rgbt"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads per worker")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the float64 comparison")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    print(f"machine: {machine()}, {args.threads} torch threads per worker")
    rows = []
    for name in args.variants:
        for modality in args.modalities:
            rows.append(bench(name, modality, args))
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows, args.batch))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
