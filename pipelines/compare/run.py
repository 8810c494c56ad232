"""Run a comparison: every entry trained (where trainable) and evaluated on the same
splits, seeds and metrics, under one parent MLflow run with a nested run per (entry, seed).

Each trainable entry trains once per seed through `pipelines.train.driver.train` (Ray
Train), nested under the comparison's parent run, and its best model is evaluated on every
test set by `pipelines.serve.evaluate.evaluate` (Ray Data), the scores logged into that
seed's run. An unsupervised method has no weights and no randomness: it is evaluated once,
in one nested run, and its row says so (1 run). Per entry, the measurements that do not
depend on the seed are taken once: parameters, inference latency per clip and ONNX size.

A comparison lives in `<storage>/<name>/`: `compare.yaml` (entries, seeds, test sets),
`experiment.yaml` (the base config), `runs/` (one training run per trainable entry and
seed), `models/` (the unsupervised entries' model artifacts), `evaluation/` (one report per
run and test set), and the results (`pipelines.compare.table`).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmrphys.config import ExperimentConfig
from mmrphys.inference import Predictor, save_model
from mmrphys.model import build_model
from mmrphys.model.onnx_export import ExportError, export_onnx
from pipelines.compare.entries import CompareError, entry_configs
from pipelines.compare.table import aggregate, format_markdown, plot_results, write_csv
from pipelines.data.shards import DataError, check_split, preprocessing_of, read_manifest
from pipelines.serve.evaluate import evaluate
from pipelines.serve.references import resolve_model
from pipelines.tracking import RunLogger, start_run
from pipelines.train.checks import TrainingError, check_data, check_tracking
from pipelines.train.driver import train

COMPARE_FILE = "compare.yaml"
BASE_CONFIG_FILE = "experiment.yaml"
#: repetitions of the batch-1 forward pass whose median is the latency
LATENCY_REPEATS = 5


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """A split of some shards every entry is scored on; `name` prefixes its metrics."""

    name: str
    shards: str
    split: str = "test"


def parse_test_set(text: str) -> EvalSet:
    """`NAME=SHARDS[:SPLIT]` or `SHARDS[:SPLIT]` (named after the shards folder)."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = "", text
    shards, _, split = rest.rpartition(":") if ":" in rest else (rest, "", "test")
    shards, split = (shards, split) if shards else (rest, "test")
    if not shards:
        raise CompareError(f"--test {text!r}: expected NAME=SHARDS[:SPLIT] or SHARDS[:SPLIT]")
    name = name or Path(shards).name
    if not name.replace("_", "").replace("-", "").isalnum():
        raise CompareError(f"--test {text!r}: test set name {name!r} must be letters, digits, - or _")
    return EvalSet(name=name, shards=str(Path(shards).resolve()), split=split or "test")


@dataclasses.dataclass
class SeedRun:
    """One (entry, seed): where its model is and what it scored on each test set."""

    entry: str
    seed: int
    model_dir: Path
    mlflow_run_id: str | None
    train_seconds_per_epoch: float | None
    metrics: dict[str, dict[str, float]]  # test set -> flat metrics (hr_mae, rr_pearson, ...)
    per_recording: list[dict[str, Any]]


@dataclasses.dataclass
class CompareResult:
    """A finished comparison: its table rows, every seed's run, its files."""

    compare_dir: Path
    rows: list[dict[str, Any]]
    runs: list[SeedRun]
    files: dict[str, Path]
    table: str
    tracking_uri: str | None = None
    parent_run_id: str | None = None


def trainable(config: ExperimentConfig) -> bool:
    """Whether an entry has weights to train (an unsupervised method has none)."""
    return config.model.architecture != "unsupervised"


def check_compare(base: ExperimentConfig, entries: Mapping[str, Sequence[str]],
                  test_sets: Sequence[EvalSet], seeds: int) -> dict[str, ExperimentConfig]:
    """Every entry's config, checked against its data before any work starts."""
    if seeds < 1:
        raise CompareError(f"--seeds: must be >= 1, got {seeds}")
    if not test_sets:
        raise CompareError("no test set: give --data SHARDS (its test split) or --test NAME=SHARDS[:SPLIT]")
    names = [t.name for t in test_sets]
    if len(set(names)) != len(names):
        raise CompareError(f"test set names must differ, got {names}")
    configs = entry_configs(base, entries)
    for name, config in configs.items():
        try:
            if trainable(config):
                check_data(config)
            for test in test_sets:
                check_split(test.shards, test.split, modality=config.model.modality, tasks=config.model.tasks)
        except (TrainingError, DataError) as err:
            raise CompareError(f"entry {name!r}: {err}") from err
    return configs


def seeded(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The config of seed number `seed`: training and model seeds offset from the base's."""
    return config.replace(train=config.train.replace(seed=config.train.seed + seed),
                          model=config.model.replace(seed=config.model.seed + seed))


def run_compare(
    base: ExperimentConfig,
    entries: Mapping[str, Sequence[str]],
    *,
    seeds: int = 3,
    test_sets: Sequence[EvalSet] = (),
    storage_path: str | Path = "runs",
    name: str | None = None,
    measure_onnx: bool = True,
) -> CompareResult:
    """Train and evaluate every entry; write, print and log the table. See the module doc.

    `test_sets` defaults to the test split of the base config's shards.
    """
    test_sets = list(test_sets) or ([EvalSet("test", str(Path(base.data.shards).resolve()), base.data.test_split)]
                                    if base.data.shards else [])
    configs = check_compare(base, entries, test_sets, seeds)
    name = name or f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    compare_dir = Path(storage_path).resolve() / name
    if (compare_dir / COMPARE_FILE).exists():
        raise CompareError(f"{compare_dir} already holds a comparison; pick another --name")
    try:
        uri = check_tracking(base)
    except TrainingError as err:
        raise CompareError(str(err)) from err
    compare_dir.mkdir(parents=True, exist_ok=True)
    plan = {"entries": {k: list(v) for k, v in entries.items()}, "seeds": seeds,
            "test_sets": [dataclasses.asdict(t) for t in test_sets]}
    (compare_dir / COMPARE_FILE).write_text(yaml.safe_dump(plan, sort_keys=False))
    base.save_yaml(compare_dir / BASE_CONFIG_FILE)
    parent = _start_parent(base, plan, uri, compare_dir, name) if uri else None
    print(f"[mmrphys] comparison {name}: {len(configs)} entries x {seeds} seed(s) on "
          f"{', '.join(t.name for t in test_sets)}; folder {compare_dir}", flush=True)
    try:
        runs: list[SeedRun] = []
        measured: dict[str, dict[str, Any]] = {}
        for entry, config in configs.items():
            entry_runs = [
                _run_seed(entry, seeded(config, seed) if trainable(config) else config, seed, test_sets,
                          compare_dir, uri, parent.run_id if parent else "")
                for seed in (range(seeds) if trainable(config) else range(1))
            ]
            runs += entry_runs
            measured[entry] = measure_entry(entry_runs[0].model_dir, read_chunk_frames(test_sets[0].shards),
                                            onnx_path=compare_dir / "onnx" / f"{entry}.onnx" if measure_onnx else None)
        rows = aggregate(runs, measured, [t.name for t in test_sets], configs)
        files = {"csv": write_csv(rows, compare_dir / "results.csv"),
                 "per_recording": write_csv(per_recording_rows(runs), compare_dir / "per_recording.csv"),
                 "plot": plot_results(rows, compare_dir / "results.png", title=name)}
        table = format_markdown(rows)
        files["markdown"] = compare_dir / "results.md"
        files["markdown"].write_text(table + "\n")
        print(table, flush=True)
        if parent is not None:
            _log_parent(parent, rows, files)
    except BaseException:
        if parent is not None:
            parent.finish("FAILED")
        raise
    if parent is not None:
        parent.finish("FINISHED")
    return CompareResult(compare_dir=compare_dir, rows=rows, runs=runs, files=files, table=table,
                         tracking_uri=uri, parent_run_id=parent.run_id if parent else None)


def _start_parent(base: ExperimentConfig, plan: dict[str, Any], uri: str, compare_dir: Path, name: str) -> RunLogger:
    """The comparison's parent run: the plan as params, the base config as an artifact."""
    run_id = start_run(uri, base.tracking.replace(parent_run_id=""), run_name=name,
                       tags={"mmrphys.compare_dir": str(compare_dir), "mmrphys.kind": "compare"})
    logger = RunLogger(uri, run_id)
    logger.log_params({"entries": ",".join(plan["entries"]), "seeds": plan["seeds"],
                       "test_sets": ",".join(f"{t['name']}={t['shards']}:{t['split']}" for t in plan["test_sets"]),
                       **{f"entry.{k}": " ".join(v) for k, v in plan["entries"].items()}})
    logger.log_artifact(compare_dir / COMPARE_FILE)
    logger.log_artifact(compare_dir / BASE_CONFIG_FILE)
    return logger


def _log_parent(parent: RunLogger, rows: list[dict[str, Any]], files: Mapping[str, Path]) -> None:
    """Every table cell as a metric `<entry>.<test>.<column>`, and the result files."""
    metrics = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and key not in ("entry", "test"):
                metrics[f"{row['entry']}.{row['test']}.{key}"] = value
    parent.log_metrics(metrics)
    for path in files.values():
        parent.log_artifact(path, "comparison")


def _run_seed(entry: str, config: ExperimentConfig, seed: int, test_sets: Sequence[EvalSet], compare_dir: Path,
              uri: str | None, parent_run_id: str) -> SeedRun:
    """Train (if trainable) one seed of an entry, then score it on every test set."""
    run_name = f"{entry}-seed{seed}" if trainable(config) else entry
    tracking = config.tracking.replace(parent_run_id=parent_run_id, run_name=run_name, register_as="", alias="")
    config = config.replace(tracking=tracking) if uri else config
    print(f"[mmrphys] compare: {run_name}", flush=True)
    if trainable(config):
        result = train(config, storage_path=compare_dir / "runs", name=run_name)
        model_dir, run_id = result.model_dir, result.mlflow_run_id
        epochs = [h["train_seconds"] for h in result.history if "train_seconds" in h]
        per_epoch = statistics.mean(epochs) if epochs else None
    else:
        model_dir = save_model(compare_dir / "models" / entry, {}, config.model,
                               preprocessing_of(test_sets[0].shards), config.eval)
        run_id = start_run(uri, config.tracking, run_name=run_name, tags={"mmrphys.entry": entry}) if uri else None
        per_epoch = None
        if run_id:
            RunLogger(uri, run_id).log_params(config.flat())
    logger = RunLogger(uri, run_id) if run_id else None
    metrics, rows = {}, []
    try:
        for test in test_sets:
            evaluation = evaluate(model_dir, test.shards, test.split, evaluation=config.eval,
                                  out_dir=compare_dir / "evaluation" / f"{run_name}-{test.name}",
                                  logger=logger, prefix=test.name)
            metrics[test.name] = {key[len(test.name) + 1:]: value for key, value in evaluation.metrics.items()}
            subjects = subject_of(test.shards)
            rows += [{"entry": entry, "seed": seed, "test": test.name,
                      "subject": subjects.get(r["recording_id"], ""), **r}
                     for r in evaluation.evaluation.per_recording]
    finally:
        if logger is not None and not trainable(config):
            logger.finish("FINISHED")
    if logger is not None:
        logger.set_tags({"mmrphys.entry": entry, "mmrphys.seed": seed})
    return SeedRun(entry=entry, seed=seed, model_dir=model_dir, mlflow_run_id=run_id,
                   train_seconds_per_epoch=per_epoch, metrics=metrics, per_recording=rows)


def subject_of(shards: str | Path) -> dict[str, str]:
    """recording id -> subject, from the shards' manifest."""
    return {r["recording_id"]: str(r["subject"]) for r in read_manifest(shards)["recordings"]}


def read_chunk_frames(shards: str | Path) -> int:
    """Frames per stored chunk: the clip length every model takes from these shards."""
    return int(read_manifest(shards)["ingest_config"]["chunk_frames"])


def measure_entry(model_dir: Path, chunk_frames: int, onnx_path: Path | None) -> dict[str, Any]:
    """What does not depend on the seed: parameters, batch-1 latency per clip, ONNX size."""
    model, artifact = resolve_model(str(model_dir))
    m = artifact.config
    parameters = sum(p.numel() for p in build_model(m).parameters())
    frames = chunk_frames if m.architecture == "rhythmformer" else min(chunk_frames, m.frames + 1)
    clip = np.random.default_rng(0).random((1, m.in_channels, frames, m.resolution, m.resolution), np.float32)
    predictor = Predictor(model, m, batch_size=1)
    predictor.predict_clips(clip, fps=30.0)  # warm-up: first-call allocations are not the latency
    times = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        predictor.predict_clips(clip, fps=30.0)
        times.append(time.perf_counter() - started)
    onnx_mb = None
    if onnx_path is not None:
        try:
            onnx_mb = export_onnx(model, onnx_path).stat().st_size / 1e6
        except ExportError:
            onnx_mb = None  # no graph (an unsupervised method): the table shows n/a
    return {"parameters": parameters, "latency_ms": 1000 * statistics.median(times), "onnx_mb": onnx_mb,
            "clip_frames": frames}


def per_recording_rows(runs: Sequence[SeedRun]) -> list[dict[str, Any]]:
    """Every evaluated window of every run, for the per-subject errors behind the table."""
    keep = ("entry", "seed", "test", "subject", "recording_id", "task", "window", "rate_pred", "rate_label",
            "abs_error", "snr")
    return [{k: r.get(k) for k in keep} for run in runs for r in run.per_recording]
