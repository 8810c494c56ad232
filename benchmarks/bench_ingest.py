"""Ingest benchmarks: the peak memory of one ingest task on a long recording, streaming
against the whole-recording path, and the ingest rate of a dataset of many small
recordings with its manifest, counts and splits checked.

    python benchmarks/bench_ingest.py [--seconds 120] [--width 320] [--height 240]
                                      [--recordings 300] [--part memory|rate|all] [--out DIR]

Memory: each path runs in a fresh interpreter (`--task`), so its peak resident set
(`ru_maxrss`) holds that path alone; the figure printed beside it is the peak minus the
interpreter's resident set after the imports. `whole` is the path ingest took before the
readers streamed: decode every frame of both cameras, crop them all, then cut and encode
the chunks (docs/data.md, "Memory"). `stream` is the Ray task itself
(`pipelines.data.ingest_recording.ingest_recording`, called in-process).
Results print as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mmrphys.config import IngestConfig, SyntheticConfig
from mmrphys.data.datasets import read_dataset
from mmrphys.data.synthetic import (
    BOXES_FILE,
    LABELS_FILE,
    META_FILE,
    RGB_FILE,
    THERMAL_FILE,
    generate_dataset,
)

CONFIG = IngestConfig(chunk_frames=180)


def _rss_mb() -> float:
    """Peak resident set of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_recording(folder: Path, seconds: float, width: int, height: int) -> Path:
    """A `seconds`-long synthetic recording: a rendered 10 s recording repeated, written
    frame by frame (video, memory-mapped thermal, labels and boxes), so that making it
    never holds it whole."""
    piece = generate_dataset(folder / "piece", subjects=1, seconds=10.0, seed=5,
                             config=SyntheticConfig(width=width, height=height))[0]
    out = folder / "long" / "S01_1"
    out.mkdir(parents=True)
    meta = json.loads((piece / META_FILE).read_text())
    (out / META_FILE).write_text(json.dumps(meta))
    frames, _ = _decode(piece / RGB_FILE)
    thermal = np.load(piece / THERMAL_FILE)
    labels = np.loadtxt(piece / LABELS_FILE, delimiter=",", skiprows=1)
    boxes = np.loadtxt(piece / BOXES_FILE, delimiter=",", skiprows=1)
    repeats = int(np.ceil(seconds / 10.0))
    writer = cv2.VideoWriter(str(out / RGB_FILE), cv2.VideoWriter_fourcc(*"FFV1"), meta["fps"], (width, height))
    for _ in range(repeats):
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    n = len(frames)
    stored = np.lib.format.open_memmap(out / THERMAL_FILE, mode="w+", dtype=thermal.dtype,
                                       shape=(repeats * n,) + thermal.shape[1:])
    for k in range(repeats):
        stored[k * n : (k + 1) * n] = thermal
    stored.flush()
    del stored
    times = np.arange(repeats * len(labels)) / meta["fps"]
    np.savetxt(out / LABELS_FILE, np.column_stack([times, np.tile(labels[:, 1:], (repeats, 1))]),
               delimiter=",", header="time,bvp,rsp", comments="", fmt="%.6f")
    tiled = np.tile(boxes, (repeats, 1))
    tiled[:, 0] = np.arange(len(tiled))
    np.savetxt(out / BOXES_FILE, tiled, delimiter=",", header="frame,x,y,w,h", comments="", fmt="%d")
    return folder / "long"


def _decode(path: Path) -> tuple[np.ndarray, float]:
    from mmrphys.data.video import read_video

    return read_video(path)


def task(mode: str, root: Path, out: Path) -> dict:
    """Run one path on the one recording under `root`; its peak memory and time."""
    from mmrphys.data.schema import encode_clip, rows_to_table
    from mmrphys.inference.preprocessing import crop_boxes, crop_faces
    from pipelines.data.ingest_recording import ingest_recording

    recording = next(read_dataset("folder", root))
    out.mkdir(parents=True, exist_ok=True)
    baseline = _rss_mb()
    start = time.perf_counter()
    if mode == "stream":
        entry = json.loads(ingest_recording({"recording": pickle.dumps(recording)}, CONFIG.to_dict(),
                                            str(out), run="bench")["entry"])
        chunks = entry["chunks"]
    else:
        import pyarrow.parquet as pq

        spec = CONFIG.preprocessing
        rgb, thermal = recording.load_rgb(), recording.load_thermal()
        boxes, _ = crop_boxes(rgb, spec, boxes=recording.load_face_boxes())
        crops = crop_faces(rgb, thermal, boxes, spec)
        del rgb, thermal
        rows = []
        for s in range(0, len(crops.rgb) - CONFIG.chunk_frames + 1, CONFIG.chunk_frames):
            span = slice(s, s + CONFIG.chunk_frames)
            rows.append({"dataset": "b", "subject": "b", "session": "b", "recording_id": "b", "chunk_index": len(rows),
                         "start_frame": s, "fps": 30.0, "frames": CONFIG.chunk_frames, "size": spec.size,
                         "rgb": encode_clip(crops.rgb[span], "uint8"), "rgb_dtype": "uint8",
                         "thermal": encode_clip(crops.thermal[span], "float16"), "thermal_dtype": "float16",
                         "thermal_unit": "celsius", "bvp": np.zeros(CONFIG.chunk_frames, np.float32), "rsp": None,
                         "hr_bpm": None, "rr_bpm": None, "face_found": 1.0})
        pq.write_table(rows_to_table(rows), out / "whole.parquet")
        chunks = len(rows)
    return {"mode": mode, "peak_mb": _rss_mb(), "baseline_mb": baseline,
            "seconds": time.perf_counter() - start, "chunks": chunks}


def memory(folder: Path, seconds: float, width: int, height: int) -> list[dict]:
    """Both paths on one long recording, each in its own interpreter."""
    root = long_recording(folder, seconds, width, height)
    frames = int(np.load(next(root.iterdir()) / THERMAL_FILE, mmap_mode="r").shape[0])
    results = []
    for mode in ("whole", "stream"):
        command = [sys.executable, __file__, "--task", mode, str(root), str(folder / f"out-{mode}")]
        printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append({**json.loads(printed.strip().splitlines()[-1]), "frames": frames})
    return results


def rate(folder: Path, recordings: int) -> dict:
    """Ingest `recordings` small recordings on a local Ray cluster; check the manifest."""
    from pipelines.data.ingest import ingest

    config = IngestConfig(chunk_frames=40)
    root = folder / "many"
    generate_dataset(root, subjects=recordings, seconds=4.0, seed=1, config=SyntheticConfig(width=64, height=48))
    start = time.perf_counter()
    manifest = ingest("synthetic", root, folder / "many-out", config=config, progress=False)
    seconds = time.perf_counter() - start
    counts = manifest["counts"]
    splits = manifest["splits"]
    subjects = [s for part in splits.values() for s in part]
    checks = {
        "every recording accepted": counts["accepted_recordings"] == recordings and counts["failed_recordings"] == 0,
        "3 chunks each": counts["chunks"] == 3 * recordings,
        "splits disjoint and complete": len(subjects) == len(set(subjects)) == recordings,
        "split sizes 70/15/15": [len(splits[k]) for k in ("train", "val", "test")]
        == [round(0.7 * recordings), round(0.15 * recordings), recordings - round(0.7 * recordings) - round(0.15 * recordings)],
        "chunks per split add up": sum(counts["chunks_per_split"].values()) == counts["chunks"],
        "one shard per recording": len(list((folder / "many-out" / "shards").glob("*.parquet"))) == recordings,
    }
    again = time.perf_counter()
    ingest("synthetic", root, folder / "many-out", config=config, progress=False)
    return {"recordings": recordings, "seconds": seconds, "chunks": counts["chunks"],
            "split": [len(splits[k]) for k in ("train", "val", "test")], "checks": checks,
            "rerun_seconds": time.perf_counter() - again}


def main() -> None:
    """Parse the flags, run the benchmarks, print the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the long recording")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--recordings", type=int, default=300, help="small recordings for the rate")
    parser.add_argument("--part", choices=("memory", "rate", "all"), default="all")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--task", nargs=3, metavar=("MODE", "ROOT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        print(json.dumps(task(args.task[0], Path(args.task[1]), Path(args.task[2]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        load = os.getloadavg()[0]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"load average {load:.1f} at the start")
        if args.part != "rate":
            _print_memory(memory(folder, args.seconds, args.width, args.height), args.width, args.height)
        if args.part != "memory":
            _print_rate(rate(folder, args.recordings))
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


def _print_memory(results: list[dict], width: int, height: int) -> None:
    """The memory table."""
    whole, stream = results
    frames = whole["frames"]
    raw_mb = frames * width * height * (3 + 4) / 2**20
    print(f"\n### Peak memory of one ingest task: {frames} frames ({frames / 30:.0f} s) at "
          f"{width}x{height}, RGB + float32 thermal ({raw_mb:.0f} MiB decoded), 180-frame chunks\n")
    print("| path | peak RSS (MiB) | above the imports (MiB) | seconds | chunks |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['baseline_mb']:.0f} | "
              f"{r['seconds']:.1f} | {r['chunks']} |")
    print(f"\nstreaming / whole, above the imports: "
          f"{(stream['peak_mb'] - stream['baseline_mb']) / (whole['peak_mb'] - whole['baseline_mb']):.3f}")


def _print_rate(result: dict) -> None:
    """The rate and its checks."""
    print(f"\n### Ingest rate: {result['recordings']} recordings of 4 s at 64x48 (120 frames, 3 chunks each)\n")
    print(f"{result['seconds']:.1f} s: {result['recordings'] / result['seconds']:.1f} recordings/s, "
          f"{result['chunks'] / result['seconds']:.1f} chunks/s; split {result['split']} subjects; "
          f"re-run (nothing to do) {result['rerun_seconds']:.1f} s")
    for name, ok in result["checks"].items():
        print(f"- {name}: {'pass' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
