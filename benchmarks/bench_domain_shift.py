"""Domain-shift benchmark: train on one synthetic domain, test on unseen subjects of
another, for attention none / FSAM / TSFM at 9x9 RGB+thermal (and any other entry of
`pipelines.compare`), mean +- sd over seeds with the per-subject errors behind it.

Protocols (train -> test): every train domain's model is scored on every test domain;
`clean -> realistic` and `clean -> hard` are the shift, `realistic -> realistic` the
within-domain reference. Each test domain is its own synthetic dataset (other generator
seeds, so other subjects than any training set), ingested with `mmrphys ingest --split
0,0,1` (every subject in `test`), the cross-dataset protocol. Training and scoring are
`pipelines.compare.run_compare`, one comparison per train domain (its own parent MLflow
run in `<workdir>/mlflow.db`).

    python benchmarks/bench_domain_shift.py --workdir /tmp/domain-shift           # default grid
    python benchmarks/bench_domain_shift.py --workdir DIR --dry-run               # print the plan
    ray job submit --address http://127.0.0.1:8265 --runtime-env cluster/runtime_env.yaml \
        -- python benchmarks/bench_domain_shift.py --grid cluster --workers 4 --workdir /mnt/shared/ds

The default grid is sized for the 2-core machine (55 minutes measured; docs/compare.md);
`--grid cluster` grows every axis (domains, entries, seeds, subjects, epochs) for a cluster.
Writes `<workdir>/domain_shift.json` and `domain_shift.md` (the table BENCHMARKS.md shows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mmrphys.baselines import METHODS
from mmrphys.config import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    SyntheticConfig,
    TrackingConfig,
    TrainConfig,
)


@dataclasses.dataclass(frozen=True)
class Grid:
    """One size of the benchmark."""

    train_domains: tuple[str, ...]
    test_domains: tuple[str, ...]
    entries: tuple[str, ...]
    seeds: int
    train_subjects: int
    test_subjects: int
    seconds: float
    epochs: int


GRIDS: dict[str, Grid] = {
    # sized for the idle 2-core machine: 2 train domains x 3 trained entries x 3 seeds = 18 runs
    "default": Grid(train_domains=("clean", "realistic"), test_domains=("realistic", "hard"),
                    entries=("mmrphys-none", "mmrphys-fsam", "mmrphys-tsfm", "pos"), seeds=3,
                    train_subjects=8, test_subjects=8, seconds=40.0, epochs=5),
    # a cluster: every domain both ways, the TSFM options and the other architectures
    "cluster": Grid(train_domains=("clean", "realistic", "hard"), test_domains=("clean", "realistic", "hard"),
                    entries=("mmrphys-none", "mmrphys-fsam", "mmrphys-tsfm", "mmrphys-tsfm-aligned",
                             "mmrphys-tsfm-harmonics", "factorizephys", "rhythmformer", "pos", "chrom", "green"),
                    seeds=5, train_subjects=32, test_subjects=16, seconds=60.0, epochs=15),
}
CHUNK_FRAMES = 180
#: the domains: the generator's difficulty presets (docs/data.md), and `noisy`, a shift
#: made of fields the generator has without presets: weaker pulse under more sensor noise,
#: more and larger head movements, stronger light drift
DOMAINS: dict[str, tuple[str, ...]] = {
    "clean": (),
    "noisy": ("pulse_amplitude=[0.3,1.0]", "sensor_noise=[4.0,8.0]", "motion_episodes_per_minute=4.0",
              "motion_px=10.0", "illumination_drift=0.05", "thermal_noise_c=0.15"),
    "realistic": ("preset=realistic",),
    "hard": ("preset=hard",),
}
#: generator seeds: training sets and test sets never share one, so never share a subject
TRAIN_SEED, TEST_SEED = 1000, 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-domain-shift"))
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default")
    parser.add_argument("--seeds", type=int, help="override the grid's seed count")
    parser.add_argument("--epochs", type=int, help="override the grid's epochs")
    parser.add_argument("--entries", help="override the grid's entries (comma-separated)")
    parser.add_argument("--train-domains", help="override the grid's train domains (comma-separated)")
    parser.add_argument("--test-domains", help="override the grid's test domains (comma-separated)")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers per run (default 2)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return parser.parse_args()


def chosen_grid(args: argparse.Namespace) -> Grid:
    """The named grid with the command line's overrides."""
    grid = GRIDS[args.grid]
    changes: dict[str, Any] = {}
    if args.seeds:
        changes["seeds"] = args.seeds
    if args.epochs:
        changes["epochs"] = args.epochs
    for name in ("entries", "train_domains", "test_domains"):
        value = getattr(args, name)
        if value:
            changes[name] = tuple(v.strip() for v in value.split(",") if v.strip())
    grid = dataclasses.replace(grid, **changes)
    if not has_presets():
        # without the presets, `noisy` stands in for every preset domain
        def swap(domains: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(d if "preset" not in str(DOMAINS.get(d)) else "noisy" for d in domains))

        grid = dataclasses.replace(grid, train_domains=swap(grid.train_domains), test_domains=swap(grid.test_domains))
    unknown = [d for d in grid.train_domains + grid.test_domains if d not in DOMAINS]
    if unknown:
        raise SystemExit(f"unknown domain {unknown[0]!r}; known: {list(DOMAINS)}")
    return grid


def synthetic_config(domain: str) -> SyntheticConfig:
    """The generator's settings for a domain (`DOMAINS`)."""
    overrides = DOMAINS[domain]
    if any(o.startswith("preset=") for o in overrides) and not has_presets():
        raise SystemExit(f"domain {domain!r} needs SyntheticConfig.preset, which this checkout lacks; "
                         f"use the domains {[d for d, o in DOMAINS.items() if not any('preset' in x for x in o)]}")
    return SyntheticConfig().with_overrides(list(overrides))


def has_presets() -> bool:
    """Whether the generator has difficulty presets (`SyntheticConfig.preset`)."""
    return "preset" in {f.name for f in dataclasses.fields(SyntheticConfig)}


def make_domain(workdir: Path, domain: str, role: str, subjects: int, seconds: float) -> Path:
    """Synthesise and ingest one dataset; returns its shards. Test sets go all in `test`
    through the command line (`mmrphys ingest --split 0,0,1`), as a user would run it."""
    from mmrphys.data.synthetic import generate_dataset
    from pipelines.cli import main

    raw, shards = workdir / f"{role}-{domain}" / "raw", workdir / f"{role}-{domain}" / "shards"
    if (shards / "manifest.json").is_file():
        return shards
    seed = (TRAIN_SEED if role == "train" else TEST_SEED) + list(DOMAINS).index(domain)
    # a finished earlier synthesis is reused; an interrupted one is redone
    if len(list(raw.glob("*/meta.json"))) != subjects:
        started = time.perf_counter()
        generate_dataset(raw, subjects=subjects, seconds=seconds, fps=30.0, seed=seed, config=synthetic_config(domain))
        print(f"[bench] synthesised {role} {domain}: {subjects} subjects x {seconds:.0f} s "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
    split = "0.75,0.25,0" if role == "train" else "0,0,1"
    code = main(["ingest", "--dataset", "folder", "--root", str(raw), "--out", str(shards),
                 "--chunk-frames", str(CHUNK_FRAMES), "--split", split])
    if code != 0:
        raise SystemExit(f"ingest of {raw} with --split {split} failed (exit {code})")
    return shards


def base_config(shards: Path, epochs: int, workers: int, uri: str) -> ExperimentConfig:
    """What every entry trains with: 9x9 RGB+thermal, the demo's recipe, whole-recording scores."""
    return ExperimentConfig(
        model=ModelConfig(resolution=9, modality="rgbt", frames=CHUNK_FRAMES),
        data=DataConfig(shards=str(shards)),
        train=TrainConfig(epochs=epochs, batch_size=4, lr=3e-3, workers=workers, cpus_per_worker=1.0,
                          keep_checkpoints=1),
        tracking=TrackingConfig(uri=uri, experiment="bench-domain-shift", log_model=False),
        eval=EvalConfig(profile="default"),
    )


def per_subject(runs, test: str) -> dict[str, dict[str, float]]:
    """Per subject and task: the absolute rate error averaged over seeds (whole recordings)."""
    errors: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        for row in run.per_recording:
            if row["test"] == test and row["abs_error"] is not None and math.isfinite(row["abs_error"]):
                errors[(row["subject"], row["task"])].append(row["abs_error"])
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (subject, task), values in sorted(errors.items()):
        out[subject][task] = statistics.mean(values)
    return dict(out)


def fmt(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def markdown(results: list[dict[str, Any]]) -> str:
    """Entries x protocols: HR and RR MAE (mean ± sd over seeds), and the per-subject spread."""
    lines = ["| train → test | entry | runs | HR MAE (bpm) | RR MAE (br/min) | HR r | worst subject HR MAE |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        worst = max((v.get("bvp", math.nan) for v in r["per_subject"].values()), default=math.nan)
        lines.append(f"| {r['train']} → {r['test']} | {r['entry']} | {r['runs']} | "
                     f"{fmt(r['hr_mae_mean'], r['hr_mae_sd'])} | {fmt(r['rr_mae_mean'], r['rr_mae_sd'])} | "
                     f"{fmt(r['hr_pearson_mean'], r['hr_pearson_sd'])} | {worst:.2f} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    grid = chosen_grid(args)
    workdir = args.workdir.resolve()
    trained = [e for e in grid.entries if e not in METHODS]
    print(f"[bench] grid {args.grid}: {grid}", flush=True)
    print(f"[bench] {len(grid.train_domains)} train domains x {len(trained)} trained entries x {grid.seeds} seeds "
          f"= {len(grid.train_domains) * len(trained) * grid.seeds} training runs of {grid.epochs} epochs", flush=True)
    if args.dry_run:
        return
    from pipelines.compare import EvalSet, resolve_entries, run_compare
    from pipelines.ray_session import ensure_ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    workdir.mkdir(parents=True, exist_ok=True)
    begun = time.perf_counter()
    ensure_ray(min_cpus=2)
    train_shards = {d: make_domain(workdir, d, "train", grid.train_subjects, grid.seconds) for d in grid.train_domains}
    tests = [EvalSet(d, str(make_domain(workdir, d, "test", grid.test_subjects, grid.seconds)))
             for d in grid.test_domains]
    data_seconds = time.perf_counter() - begun
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    entries = resolve_entries(list(grid.entries))
    results: list[dict[str, Any]] = []
    comparisons: dict[str, Any] = {}
    report = {
        "grid": dataclasses.asdict(grid), "grid_name": args.grid, "workers": args.workers,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_start": os.getloadavg()},
        "data_minutes": data_seconds / 60, "comparisons": comparisons, "results": results,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for domain, shards in train_shards.items():
        started = time.perf_counter()
        comparison = run_compare(base_config(shards, grid.epochs, args.workers, uri), entries, seeds=grid.seeds,
                                 test_sets=tests, storage_path=workdir / "compare", name=f"train-{domain}-{stamp}",
                                 measure_onnx=False)
        comparisons[domain] = {"dir": str(comparison.compare_dir), "parent_run_id": comparison.parent_run_id,
                               "minutes": (time.perf_counter() - started) / 60}
        for row in comparison.rows:
            runs = [r for r in comparison.runs if r.entry == row["entry"]]
            results.append({"train": domain, **row, "per_subject": per_subject(runs, row["test"]),
                            "per_seed_hr_mae": [r.metrics[row["test"]].get("hr_mae") for r in runs],
                            "per_seed_rr_mae": [r.metrics[row["test"]].get("rr_mae") for r in runs]})
        # written after every comparison, so a stopped benchmark keeps what it finished
        report["total_minutes"] = (time.perf_counter() - begun) / 60
        report["machine"]["load_avg_end"] = os.getloadavg()
        (workdir / "domain_shift.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(results)
    (workdir / "domain_shift.md").write_text(table + "\n")
    print(table)
    print(f"\n[bench] {report['total_minutes']:.1f} min in all (data {report['data_minutes']:.1f} min); "
          f"wrote {workdir / 'domain_shift.json'}")


if __name__ == "__main__":
    main()
