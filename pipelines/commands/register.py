"""`mmrphys register`: add a run's model to the MLflow registry, or move an alias."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the register command's arguments."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_ID", help="MLflow run whose logged model becomes a new version")
    source.add_argument("--version", help="an existing version of NAME to point --alias at")
    parser.add_argument("--name", required=True, help="registered model name")
    parser.add_argument("--alias", help="alias to set on the version, e.g. champion")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")


def run(args: argparse.Namespace) -> int:
    """Register or re-alias, then print the model URI."""
    from mmrphys.checkpoints import CheckpointError
    from pipelines.models import ModelRefError, fetch_model_folder
    from pipelines.tracking import TrackingError, register_model, resolve_tracking_uri, set_alias
    from mmrphys.checkpoints import read_model_config

    uri = resolve_tracking_uri(args.tracking_uri or "")
    try:
        if args.version:
            if not args.alias:
                print("error: --version needs --alias (the alias to move to that version)")
                return 2
            set_alias(uri, args.name, args.alias, args.version)
            version = args.version
        else:
            model_uri = f"runs:/{args.run}/model"
            config = read_model_config(fetch_model_folder(model_uri, uri))
            version = register_model(uri, model_uri, args.name, alias=args.alias or "", config=config).version
    except (TrackingError, ModelRefError, CheckpointError) as err:
        print(f"error: {err}")
        return 1
    print(f"models:/{args.name}/{version}" + (f"  (models:/{args.name}@{args.alias})" if args.alias else ""))
    return 0
