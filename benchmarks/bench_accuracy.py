"""Accuracy benchmark: train a 9x9 RGB+thermal MMRPhys on synthetic subjects on this CPU
and score held-out subjects in 30 s windows (default evaluation profile).

Targets (issue 5, section 5): HR MAE <= 2 bpm and RR MAE <= 2 breaths/min, training
within 30 minutes on a 2-core CPU. The numbers go in BENCHMARKS.md (## Accuracy).

    python benchmarks/bench_accuracy.py --workdir /tmp/mmrphys-accuracy
    python benchmarks/bench_accuracy.py --attention none fsam tsfm   # one run each

Writes `<workdir>/accuracy.json` with the config, times and metrics of every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from mmrphys.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrackingConfig, TrainConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-accuracy"))
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--attention", nargs="+", default=["tsfm"], choices=["none", "fsam", "tsfm"])
    parser.add_argument("--window", type=float, default=30.0, help="evaluation window, seconds")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from mmrphys.data.synthetic import generate_dataset
    from pipelines.serve.evaluate import evaluate, format_summary
    from mmrphys.config import IngestConfig
    from pipelines.data.ingest import ingest
    from pipelines.ray_session import ensure_ray
    from pipelines.train.driver import train

    workdir = args.workdir.resolve()
    raw, shards = workdir / "synthetic", workdir / "shards"
    started = time.perf_counter()
    if len(list(raw.glob("*/meta.json"))) != args.subjects:
        generate_dataset(raw, subjects=args.subjects, seconds=args.seconds, fps=30.0, seed=0, progress=True)
    synth_seconds = time.perf_counter() - started
    ensure_ray(min_cpus=2)
    started = time.perf_counter()
    manifest = ingest("folder", raw, shards, config=IngestConfig(chunk_frames=180))
    ingest_seconds = time.perf_counter() - started

    results = []
    for attention in args.attention:
        config = ExperimentConfig(
            model=ModelConfig(resolution=9, modality="rgbt", attention=attention, frames=180),
            data=DataConfig(shards=str(shards)),
            train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, workers=2,
                              keep_checkpoints=1),
            tracking=TrackingConfig(uri=f"sqlite:///{workdir / 'mlflow.db'}", experiment="bench-accuracy"),
            eval=EvalConfig(profile="default", window_seconds=args.window),
        )
        started = time.perf_counter()
        run = train(config, storage_path=workdir / "runs", name=f"{attention}-{time.strftime('%H%M%S')}")
        train_seconds = time.perf_counter() - started
        evaluation = evaluate(run.model_dir, shards, "test", evaluation=config.eval,
                              out_dir=workdir / f"evaluation-{attention}")
        print(f"\nattention {attention}: held-out test subjects {manifest['splits']['test']}, "
              f"{args.window:.0f} s windows, default profile")
        print(format_summary(evaluation, config.model.tasks))
        print(f"training took {train_seconds / 60:.1f} min (best epoch {run.best_metrics['epoch'] + 1})")
        results.append({
            "attention": attention,
            "train_minutes": train_seconds / 60,
            "best_epoch": run.best_metrics["epoch"],
            "best_val": {k: v for k, v in run.best_metrics.items() if k.startswith("val_")},
            "test": evaluation.metrics,
            "windows": len(evaluation.evaluation.per_recording),
            "config": config.to_dict(),
        })
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "data": {"subjects": args.subjects, "seconds": args.seconds, "splits": manifest["splits"],
                 "synth_seconds": synth_seconds, "ingest_seconds": ingest_seconds},
        "runs": results,
    }
    (workdir / "accuracy.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {workdir / 'accuracy.json'}")


if __name__ == "__main__":
    main()
