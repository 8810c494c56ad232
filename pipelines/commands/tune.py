"""`mmrphys tune`: Ray Tune search over resolution, modality pairing, attention and more."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrphys.config import ExperimentConfig, SearchConfig, apply_overrides
from mmrphys.errors import UserError
from pipelines.commands.train import experiment_overrides
from pipelines.tune.report import format_table
from pipelines.tune.search import resume_search, run_search
from tune_spaces import describe, space_names

#: everyday flags -> the SearchConfig field each sets
_SEARCH_FLAGS = {
    "space": "space", "algorithm": "algorithm", "num_samples": "num_samples", "metric": "metric",
    "mode": "mode", "scheduler": "scheduler", "grace_period": "grace_period",
    "reduction_factor": "reduction_factor", "max_concurrent": "max_concurrent_trials",
    "trial_cpus": "trial_cpus", "register": "register_as", "alias": "alias", "seed": "seed",
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the tune command's arguments."""
    base = parser.add_argument_group("base experiment (as for `mmrphys train`)")
    base.add_argument("--config", type=Path, help="experiment YAML every trial starts from")
    base.add_argument("--data", help="shards folder from `mmrphys ingest` (sets data.shards)")
    base.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    base.add_argument("overrides", nargs="*", metavar="SECTION.FIELD=VALUE",
                      help="overrides of the base experiment (train.epochs=4) and of the search "
                           "(search.num_samples=3)")
    search = parser.add_argument_group("search")
    search.add_argument("--space", help="built-in space (see --list-spaces) or a YAML space file (default: default)")
    search.add_argument("--algorithm", choices=["grid", "random"], help="grid (default) or random search")
    search.add_argument("--num-samples", type=int, help="samples per grid point (grid) or in all (random); default 1")
    search.add_argument("--metric", help="validation metric that ranks and stops trials (default val_rate_mae)")
    search.add_argument("--mode", choices=["min", "max"], help="whether the metric is minimised (default) or maximised")
    search.add_argument("--scheduler", choices=["asha", "fifo"], help="early stopping: asha (default) or fifo (none)")
    search.add_argument("--grace-period", type=int, help="ASHA: epochs every trial runs before it can be stopped (default 1)")
    search.add_argument("--reduction-factor", type=float, help="ASHA: halving rate (default 2)")
    search.add_argument("--max-concurrent", type=int, help="trials at once (default 1)")
    search.add_argument("--trial-cpus", type=float,
                        help="CPUs of each trial's driver, besides its training workers (default 0.2)")
    search.add_argument("--register", metavar="NAME", help="registered model name for the champion (default mmrphys; '' for none)")
    search.add_argument("--alias", help="alias of the champion's version (default champion)")
    search.add_argument("--log-trial-models", action="store_true", help="log every trial's best model, not only the champion's")
    search.add_argument("--seed", type=int, help="random state of the search algorithm (default 0)")
    where = parser.add_argument_group("where")
    where.add_argument("--storage", type=Path, default=Path("runs"), help="folder holding searches and runs (default ./runs)")
    where.add_argument("--name", help="search folder name (default search-<space>)")
    where.add_argument("--resume", action="store_true", help="continue the interrupted search --storage/--name")
    parser.add_argument("--list-spaces", action="store_true", help="describe the built-in spaces and exit")


def configs(args: argparse.Namespace) -> tuple[ExperimentConfig, SearchConfig]:
    """The base experiment and the search, from --config, the flags and the overrides."""
    flags = {field: getattr(args, flag) for flag, field in _SEARCH_FLAGS.items() if getattr(args, flag) is not None}
    if args.log_trial_models:
        flags["log_trial_models"] = True
    if flags.get("register_as") == "":
        flags.setdefault("alias", "")
    search = SearchConfig.from_dict(flags)
    base = ExperimentConfig.load_yaml(args.config) if args.config else ExperimentConfig()
    overrides = experiment_overrides(data=args.data, tracking_uri=args.tracking_uri) + list(args.overrides)
    resolved = apply_overrides({"experiment": base, "search": search}, overrides)
    return resolved["experiment"], resolved["search"]


def run(args: argparse.Namespace) -> int:
    """Search (or resume), print the ranked table and where everything went."""
    if args.list_spaces:
        for name in space_names():
            print(f"{name}\n    " + describe(name).replace("\n", "\n    ") + "\n")
        return 0
    if args.resume:
        if not args.name:
            raise UserError("--resume needs the --name of the search (and its --storage)")
        result = resume_search(args.storage / args.name)
    else:
        base, search = configs(args)
        result = run_search(base, search, storage_path=args.storage, name=args.name)
    metric = next(k for k in result.rows[0] if k.startswith("best_") and k != "best_epoch")
    print(format_table(result.rows, metric))
    print(f"search folder:   {result.search_dir}")
    for kind, path in result.files.items():
        print(f"{kind + ':':17}{path}")
    if result.parent_run_id:
        print(f"MLflow run:      {result.parent_run_id} at {result.tracking_uri} (trials nested)")
    if result.champion:
        c = result.champion
        print(f"champion:        trial {c['trial_id']} -> models:/{c['name']}/{c['version']}"
              + (f" (models:/{c['name']}@{c['alias']})" if c["alias"] else ""))
    return 0
