"""`mmrphys register`: add a model to the MLflow registry, or move an alias.

`--run RUN_ID` registers the model a training run logged; `--model REF` logs any model
reference (a model folder, a released reference `.pth` checkpoint, ...) as a pyfunc in a
new run of its own, then registers it; `--version V --alias A` moves an alias.
"""

from __future__ import annotations

import argparse
import tempfile

from mmrphys.config import TrackingConfig
from mmrphys.errors import UserError
from mmrphys.inference import read_artifact
from pipelines.serve.pyfunc import log_pyfunc_model
from pipelines.serve.references import FORMS, fetch_model, model_folder
from pipelines.tracking import (
    RunLogger,
    check_store_exists,
    register_model,
    resolve_tracking_uri,
    set_alias,
    start_run,
)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the register command's arguments."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_ID", help="MLflow run whose logged model becomes a new version")
    source.add_argument("--model", metavar="REF", help=f"any model to log and register: {FORMS}")
    source.add_argument("--version", help="an existing version of NAME to point --alias at")
    parser.add_argument("--name", required=True, help="registered model name")
    parser.add_argument("--alias", help="alias to set on the version, e.g. champion")
    parser.add_argument("--experiment", default="mmrphys", help="experiment of the run --model logs into")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")


def run(args: argparse.Namespace) -> int:
    """Register or re-alias, then print the model URI."""
    uri = resolve_tracking_uri(args.tracking_uri or "")
    if args.version:
        if not args.alias:
            raise UserError("--version needs --alias (the alias to move to that version)")
        check_store_exists(uri, f"models:/{args.name}/{args.version}")
        set_alias(uri, args.name, args.alias, args.version)
        version = args.version
    elif args.run:
        model_uri = f"runs:/{args.run}/model"
        config = read_artifact(fetch_model(model_uri, uri)).config
        version = register_model(uri, model_uri, args.name, alias=args.alias or "", config=config).version
    else:
        with tempfile.TemporaryDirectory() as scratch:
            folder = model_folder(args.model, scratch, uri)
            config = read_artifact(folder).config
            run_id = start_run(uri, TrackingConfig(experiment=args.experiment), run_name=f"register {args.name}",
                               tags={"mmrphys.source": args.model})
            logger = RunLogger(uri, run_id)
            info = log_pyfunc_model(logger, folder)
            version = register_model(uri, info.model_uri, args.name, alias=args.alias or "", config=config).version
            logger.finish("FINISHED")
        print(f"logged {args.model} in MLflow run {run_id}")
    print(f"models:/{args.name}/{version}" + (f"  (models:/{args.name}@{args.alias})" if args.alias else "")
          + f" in {uri}")
    return 0
