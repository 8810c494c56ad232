"""Training throughput of the Ray Train loop: chunks per second with 1, 2, ... workers,
measured one after another in one process on the same shards, with the same seeds.

    python benchmarks/bench_training.py --workdir /tmp/mmrphys-throughput --workers 1 2

Each configuration trains a few epochs of the 9x9 RGB+thermal TSFM variant (180-frame
chunks, batch 4 per worker) without MLflow; the first epoch (start-up, stream warm-up) is
dropped and the rest averaged. `train_chunks_per_second` counts chunks through forward +
backward + optimizer step, as reported by the training loop itself. Results go to
`<workdir>/throughput.json` (with the seeds: synthetic data, ingest split, train.seed,
and the load average before and after) and BENCHMARKS.md ("Scaling"). The speed-up is
each row's chunks/s over the first row's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from mmrphys.config import DataConfig, ExperimentConfig, ModelConfig, TrackingConfig, TrainConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-throughput"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--resolution", type=int, default=9, choices=[9, 36, 72])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="train.seed (the data's seed is 0)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import ray

    from mmrphys.data.synthetic import generate_dataset
    from mmrphys.config import IngestConfig
    from pipelines.data.ingest import ingest
    from pipelines.ray_session import ensure_ray
    from pipelines.train.driver import train

    workdir = args.workdir.resolve()
    raw, shards = workdir / "synthetic", workdir / "shards"
    if len(list(raw.glob("*/meta.json"))) != args.subjects:
        generate_dataset(raw, subjects=args.subjects, seconds=args.seconds, fps=30.0, seed=0)
    ensure_ray(min_cpus=max(args.workers))
    ingest_config = IngestConfig(chunk_frames=180, split=(0.8, 0.1, 0.1))
    ingest("folder", raw, shards, config=ingest_config, progress=False)
    load_before = os.getloadavg()[0]
    rows = []
    for workers in args.workers:
        config = ExperimentConfig(
            model=ModelConfig(resolution=args.resolution, modality="rgbt", frames=180),
            data=DataConfig(shards=str(shards)),
            train=TrainConfig(epochs=args.epochs, batch_size=4, workers=workers, keep_checkpoints=1, seed=args.seed),
            tracking=TrackingConfig(enabled=False),
        )
        started = time.perf_counter()
        result = train(config, storage_path=workdir / "runs", name=f"w{workers}-{time.strftime('%H%M%S')}")
        wall = time.perf_counter() - started
        history = result.history
        rates = [h["train_chunks_per_second"] for h in history[1:]] or [history[0]["train_chunks_per_second"]]
        rows.append({"workers": workers, "chunks_per_second": statistics.mean(rates),
                     "epoch_seconds": statistics.mean(h["epoch_seconds"] for h in history[1:] or history),
                     "wall_seconds": wall})
        rows[-1]["speed_up"] = rows[-1]["chunks_per_second"] / rows[0]["chunks_per_second"]
        print(f"{workers} worker(s): {rows[-1]['chunks_per_second']:.2f} chunks/s, {rows[-1]['speed_up']:.2f}x "
              f"({rows[-1]['epoch_seconds']:.1f} s/epoch, whole run {wall:.0f} s)", flush=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "ray_cpus": ray.cluster_resources().get("CPU"),
                    "load_average_before_after": [load_before, os.getloadavg()[0]]},
        "seeds": {"synthetic": 0, "ingest_split": ingest_config.seed, "train": args.seed},
        "resolution": args.resolution, "rows": rows,
    }
    (workdir / "throughput.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {workdir / 'throughput.json'}")


if __name__ == "__main__":
    main()
