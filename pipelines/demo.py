"""The main job on one machine with nothing but the install: synthetic data -> ingest ->
distributed training -> evaluation on held-out subjects -> registration in MLflow.

Every step is the same function the individual commands call; the demo only picks
small, fast settings: a 9x9 RGB+thermal model (about 35x faster to train than 72x72 on
CPU) and 2 Ray Train workers.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from mmrphys.config import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    IngestConfig,
    ModelConfig,
    SyntheticConfig,
    TrackingConfig,
    TrainConfig,
)
from mmrphys.data.synthetic import generate_dataset
from pipelines.data.ingest import ingest
from pipelines.ray_session import ensure_ray
from pipelines.serve.evaluate import evaluate, format_summary
from pipelines.tracking import RunLogger, resolve_tracking_uri
from pipelines.train.driver import train

#: registered model name the demo creates a version of
DEMO_MODEL_NAME = "mmrphys-demo"
DEMO_ALIAS = "champion"


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run."""

    subjects: int
    split: tuple[float, float, float]
    seconds: float
    chunk_frames: int
    epochs: int
    batch_size: int
    lr: float


#: full demo: fits in 10 minutes on a 2-core laptop CPU; 3 test subjects, so that the
#: Pearson correlation of their rates is defined
FULL = DemoPlan(subjects=12, split=(0.5, 0.25, 0.25), seconds=60.0, chunk_frames=180, epochs=10, batch_size=4,
                lr=3e-3)
#: --quick: the same pipeline in a few minutes (what the tests run)
QUICK = DemoPlan(subjects=3, split=(0.34, 0.33, 0.33), seconds=30.0, chunk_frames=180, epochs=2, batch_size=4,
                 lr=3e-3)


@dataclasses.dataclass
class DemoResult:
    """Where everything went, and the held-out scores."""

    workdir: Path
    shards: Path
    run_dir: Path
    model_dir: Path
    tracking_uri: str
    model_uri: str
    registered: str
    evaluation_dir: Path
    metrics: dict[str, float]
    summary_table: str
    seconds: float


def _step(index: int, total: int, text: str) -> float:
    print(f"\n[{index}/{total}] {text}", flush=True)
    return time.perf_counter()


def _done(started: float) -> None:
    print(f"      done in {time.perf_counter() - started:.0f}s", flush=True)


def _synthesis_matches(raw: Path, plan: DemoPlan, synthetic: SyntheticConfig) -> bool:
    """Whether `raw` holds a finished synthesis of this plan with these settings."""
    try:
        written = json.loads((raw / "synthetic.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (len(list(raw.glob("*/meta.json"))) == plan.subjects and written.get("seconds") == plan.seconds
            and written.get("config") == synthetic.to_dict())


def demo_config(plan: DemoPlan, shards: Path, tracking_uri: str) -> ExperimentConfig:
    """The experiment the demo trains."""
    return ExperimentConfig(
        model=ModelConfig(resolution=9, modality="rgbt", fusion="early", attention="tsfm",
                          frames=plan.chunk_frames),
        data=DataConfig(shards=str(shards)),
        train=TrainConfig(epochs=plan.epochs, batch_size=plan.batch_size, lr=plan.lr, workers=2,
                          cpus_per_worker=1.0, keep_checkpoints=1),
        tracking=TrackingConfig(uri=tracking_uri, experiment="mmrphys-demo", register_as=DEMO_MODEL_NAME,
                                alias=DEMO_ALIAS),
        eval=EvalConfig(profile="default"),
    )


#: the demo's synthetic data: `realistic`, so that its held-out MAE means something
DEMO_PRESET = "realistic"


def run_demo(workdir: str | Path = "mmrphys-demo", *, quick: bool = False, tracking_uri: str = "",
             synthetic: SyntheticConfig | None = None) -> DemoResult:
    """Run the whole pipeline in `workdir`; print progress, a summary and where things went.

    synthetic: the generator's settings (default: the `realistic` preset).
    """
    plan = QUICK if quick else FULL
    synthetic = synthetic or SyntheticConfig.from_preset(DEMO_PRESET)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    uri = resolve_tracking_uri(tracking_uri)
    begun = time.perf_counter()
    total = 5

    started = _step(1, total, f"synthesising {plan.subjects} RGB + thermal subjects x {plan.seconds:.0f} s "
                              f"({synthetic.preset} preset) -> {workdir / 'synthetic'}")
    raw = workdir / "synthetic"
    # a finished earlier synthesis with the same settings is reused; an interrupted one is redone
    if not _synthesis_matches(raw, plan, synthetic):
        generate_dataset(raw, subjects=plan.subjects, seconds=plan.seconds, fps=30.0, seed=0, config=synthetic,
                         progress=True)
    _done(started)

    # logical CPUs beyond the 2 training workers keep Ray Data schedulable (pipelines.ray_session)
    ensure_ray(min_cpus=2)
    started = _step(2, total, f"ingesting into Parquet shards (Ray Data) -> {workdir / 'shards'}")
    shards = workdir / "shards"
    manifest = ingest("folder", raw, shards, config=IngestConfig(chunk_frames=plan.chunk_frames, split=plan.split))
    splits = manifest["splits"]
    print(f"      subjects: train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}")
    _done(started)

    config = demo_config(plan, shards, uri)
    started = _step(3, total, f"training a 9x9 RGB+thermal MMRPhys (TSFM) for {plan.epochs} epochs on 2 Ray Train workers")
    result = train(config, storage_path=workdir / "runs", name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    _done(started)

    model_uri = f"models:/{DEMO_MODEL_NAME}@{DEMO_ALIAS}"
    started = _step(4, total, f"evaluating {model_uri} on the held-out test subjects (Ray Data batch inference)")
    # the test-set scores go into the training run, beside its validation metrics
    evaluation = evaluate(model_uri, shards, "test", evaluation=config.eval, out_dir=workdir / "evaluation",
                          tracking_uri=uri, logger=RunLogger(uri, result.mlflow_run_id), prefix="test")
    _done(started)

    _step(5, total, "summary")
    table = format_summary(evaluation, config.model.tasks)
    registered = f"models:/{DEMO_MODEL_NAME}/{result.registered_version}"
    print(f"held-out synthetic test subjects {splits['test']} (whole recordings, default profile):")
    print(table)
    print()
    rows = [
        ("synthetic videos", raw),
        ("Parquet shards", shards),
        ("training run", result.run_dir),
        ("best checkpoint", result.best_checkpoint),
        ("evaluation report", workdir / "evaluation"),
        ("MLflow tracking URI", uri),
        ("MLflow run", result.mlflow_run_id),
        ("registered model", f"{registered} (alias {model_uri})"),
    ]
    for label, value in rows:
        print(f"  {label:20} {value}")
    if uri.startswith(("sqlite:", "file:")):
        print(f"\nopen the MLflow UI:  mlflow ui --backend-store-uri {uri}")
    else:
        print(f"\nopen the MLflow UI at {uri}")
    seconds = time.perf_counter() - begun
    print(f"\ndemo finished in {seconds / 60:.1f} min")
    return DemoResult(workdir=workdir, shards=shards, run_dir=result.run_dir, model_dir=result.model_dir,
                      tracking_uri=uri, model_uri=model_uri, registered=registered,
                      evaluation_dir=workdir / "evaluation", metrics=evaluation.metrics,
                      summary_table=table, seconds=seconds)
