"""`mmrphys train`: distributed training from a config file plus overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from mmrphys.config import ExperimentConfig, apply_overrides
from pipelines.train.driver import load_run_config, train


def register(parser: argparse.ArgumentParser) -> None:
    """Add the train command's arguments."""
    parser.add_argument("--data", help="shards folder from `mmrphys ingest` (sets data.shards)")
    parser.add_argument("--config", type=Path, help="experiment YAML (missing fields take defaults)")
    parser.add_argument("--storage", type=Path, default=Path("runs"), help="folder holding run folders (default ./runs)")
    parser.add_argument("--name", help="run folder name (default: variant and timestamp)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue a stopped run from its latest checkpoint (its saved config + overrides)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--register", metavar="NAME", help="register the best model as a new version of NAME")
    parser.add_argument("--alias", help="alias for the new version (with --register), e.g. champion")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", metavar="SECTION.FIELD=VALUE",
                        help="config overrides, e.g. model.resolution=9 train.epochs=3")


def experiment_overrides(*, data: str | None = None, tracking_uri: str | None = None, register: str | None = None,
                         alias: str | None = None) -> list[str]:
    """The everyday flags of `train` and `tune` as `section.field=value` overrides."""
    overrides = []
    if data:
        overrides.append(f"data.shards={Path(data).resolve()}")
    if tracking_uri:
        overrides.append(f"tracking.uri={tracking_uri}")
    if register:
        overrides.append(f"tracking.register_as={register}")
    if alias:
        overrides.append(f"tracking.alias={alias}")
    return overrides


def resolve_config(config_file: Path | None, overrides: list[str], resume: Path | None = None) -> ExperimentConfig:
    """The experiment config of a run: its saved config (resume), a YAML file or the
    defaults, then the overrides."""
    if resume:
        return load_run_config(resume, overrides)
    if config_file:
        return ExperimentConfig.load_yaml(config_file, overrides)
    return apply_overrides({"experiment": ExperimentConfig()}, overrides)["experiment"]


def run(args: argparse.Namespace) -> int:
    """Train and print where the run, the model and the metrics went."""
    overrides = experiment_overrides(data=args.data, tracking_uri=args.tracking_uri, register=args.register,
                                     alias=args.alias) + list(args.overrides)
    config = resolve_config(args.config, overrides, args.resume)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    storage, name = (args.resume.resolve().parent, args.resume.resolve().name) if args.resume else (args.storage, args.name)
    result = train(config, storage_path=storage, name=name, resume=bool(args.resume))
    metric = config.train.checkpoint_metric
    print(f"best epoch {result.best_metrics['epoch'] + 1}: {metric}={result.best_metrics[metric]:.3f}")
    print(f"run folder:      {result.run_dir}")
    print(f"best model:      {result.model_dir}")
    if result.mlflow_run_id:
        print(f"MLflow run:      {result.mlflow_run_id} at {result.tracking_uri}")
    if result.registered_version:
        alias = f" (alias {config.tracking.alias})" if config.tracking.alias else ""
        print(f"registered:      models:/{config.tracking.register_as}/{result.registered_version}{alias}")
    return 0
