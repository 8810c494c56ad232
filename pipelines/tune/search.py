"""Ray Tune search over the experiment config: every trial a distributed training run.

Ray 2.60 runs Ray Train V2, where a `TorchTrainer` cannot be handed to a `Tuner`; each
trial is a function trainable that runs `pipelines.train.train` (which builds the
`TorchTrainer`) with a `TuneReportCallback`, so every epoch's validation metrics reach
Tune's scheduler. ASHA stops weak trials early on `SearchConfig.metric` (default
`val_rate_mae` = `val_hr_mae` + `val_rr_mae`).

MLflow: the search is one parent run; every trial's training run is nested under it with
its params, per-epoch metrics and validation report. At the end the ranked results table
(CSV) and a plot of the metric by resolution and modality are logged on the parent, and
the best trial's best checkpoint is logged as a model and registered with an alias
(`champion` unless told otherwise).

A search lives in `<storage>/<name>/`: Tune's experiment state (what `resume` restores),
`search.yaml` (the search settings), `experiment.yaml` (the base config), `search.json`
(the parent run), one training run folder per trial under `train_runs/`, `results.csv`
and the plot.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from mmrphys.config import ExperimentConfig, SearchConfig, reported_metric_names
from mmrphys.errors import UserError
from mmrphys.inference.artifact import read_model_config
from mmrphys.model.checkpoint import EXPERIMENT_FILE
from pipelines.ray_session import ensure_ray
from pipelines.serve.pyfunc import log_pyfunc_model
from pipelines.tracking import (
    RunLogger,
    TrackingError,
    client,
    register_model,
    start_run,
)
from pipelines.train.checks import TrainingError, check_data, check_tracking
from pipelines.train.driver import train
from pipelines.tune.report import plot_metric, rank_trials, write_results
from tune_spaces import SpaceError, get_space
from tune_spaces.overrides import (
    apply_overrides,
    as_random,
    check_space,
    trial_overrides,
)

SEARCH_FILE = "search.yaml"
BASE_CONFIG_FILE = "experiment.yaml"
STATE_FILE = "search.json"
TRIAL_RUNS_DIR = "train_runs"


class SearchError(UserError, RuntimeError):
    """A search cannot start, resume or finish as asked."""


@dataclasses.dataclass
class SearchResult:
    """Where a finished search's outputs are, its ranked trials and its champion."""

    search_dir: Path
    rows: list[dict[str, Any]]
    files: dict[str, Path]
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    champion: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------
# checks before any trial starts


def check_search(base: ExperimentConfig, search: SearchConfig) -> tuple[dict[str, Any], list[ExperimentConfig]]:
    """The search's param space, with every combination checked against the config and data.

    Raises SearchError naming the first problem: an unknown metric, an invalid
    combination, or a trial the shards cannot feed (e.g. thermal for RGB-only shards).
    """
    try:
        space = get_space(search.space)
    except SpaceError as err:
        raise SearchError(str(err)) from err
    if search.algorithm == "random":
        space = as_random(space)
    allowed = reported_metric_names(base.model.tasks)
    if search.metric not in allowed:
        raise SearchError(f"SearchConfig.metric: {search.metric!r} is not reported; one of {sorted(allowed)}")

    checked: dict[tuple, None] = {}

    def check_trial_data(config: ExperimentConfig) -> None:
        key = (config.data, config.model.modality, config.model.tasks)
        if key not in checked:
            try:
                check_data(config)
            except TrainingError as err:
                raise SpaceError(str(err)) from err
            checked[key] = None

    base = trial_base(base, search)
    try:
        configs = check_space(space, base, check=check_trial_data)
    except SpaceError as err:
        raise SearchError(f"search space {search.space!r}: {err}") from err
    return space, configs


def trial_base(base: ExperimentConfig, search: SearchConfig) -> ExperimentConfig:
    """The base config every trial starts from: checkpoints ranked by the search metric,
    no registration per trial (only the champion is registered)."""
    return base.replace(
        train=base.train.replace(checkpoint_metric=search.metric, checkpoint_mode=search.mode),
        tracking=base.tracking.replace(
            register_as="", alias="", log_model=search.log_trial_models,
            log_onnx=search.log_trial_models and base.tracking.log_onnx,
        ),
    )


# ---------------------------------------------------------------------------------------
# one trial


def run_trial(sample: dict[str, Any], *, base: dict[str, Any], search_dir: str, parent_run_id: str) -> None:
    """Tune function trainable: train the sampled config, reporting every epoch to Tune."""
    context = tune.get_context()
    trial_id, trial_name = context.get_trial_id(), context.get_trial_name()
    config = apply_overrides(ExperimentConfig.from_dict(base), trial_overrides(sample))
    if config.tracking.enabled:
        config = config.replace(tracking=config.tracking.replace(parent_run_id=parent_run_id, run_name=trial_name))
    storage = Path(search_dir) / TRIAL_RUNS_DIR
    # a restored search re-runs unfinished trials: continue their run from its checkpoint
    resume = (storage / trial_id / EXPERIMENT_FILE).is_file()
    train(config, storage_path=storage, name=trial_id, resume=resume, callbacks=[TuneReportCallback()])


# ---------------------------------------------------------------------------------------
# the search


def run_search(
    base: ExperimentConfig,
    search: SearchConfig,
    *,
    storage_path: str | Path = "runs",
    name: str | None = None,
) -> SearchResult:
    """Check everything, run the search, then rank, report, log and register the champion."""
    name = name or f"search-{Path(search.space).stem}"
    search_dir = Path(storage_path).resolve() / name
    if (search_dir / STATE_FILE).exists():
        raise SearchError(f"{search_dir} already holds a search; pick another --name or --resume it")
    space, configs = check_search(base, search)
    try:
        uri = check_tracking(base)
    except Exception as err:  # TrainingError naming the URI
        raise SearchError(str(err)) from err
    search_dir.mkdir(parents=True, exist_ok=True)
    search.save_yaml(search_dir / SEARCH_FILE)
    base.save_yaml(search_dir / BASE_CONFIG_FILE)
    parent_run_id = _start_parent_run(base, search, uri, search_dir, name) if uri else ""
    (search_dir / STATE_FILE).write_text(json.dumps({"tracking_uri": uri, "parent_run_id": parent_run_id}))
    print(f"[mmrphys] search {name}: {len(configs)} distinct configs in space {search.space!r} "
          f"({search.algorithm}, {search.num_samples} sample(s)); folder {search_dir}", flush=True)
    tuner = _tuner(base, search, space, search_dir, parent_run_id, max(c.train.epochs for c in configs))
    return _finish(tuner, base, search, search_dir, uri, parent_run_id)


def resume_search(search_dir: str | Path) -> SearchResult:
    """Continue an interrupted search from its folder (`Tuner.restore`)."""
    search_dir = Path(search_dir).resolve()
    state_path = search_dir / STATE_FILE
    if not state_path.is_file() or not tune.Tuner.can_restore(str(search_dir)):
        raise SearchError(f"cannot resume: {search_dir} holds no search started by `mmrphys tune`")
    state = json.loads(state_path.read_text())
    base = ExperimentConfig.load_yaml(search_dir / BASE_CONFIG_FILE)
    search = SearchConfig.load_yaml(search_dir / SEARCH_FILE)
    uri, parent_run_id = state["tracking_uri"], state["parent_run_id"]
    if parent_run_id:

        RunLogger(uri, parent_run_id).reopen()
    _ensure_ray(base, search)
    tuner = tune.Tuner.restore(
        str(search_dir),
        trainable=_trainable(base, search, search_dir, parent_run_id),
        resume_unfinished=True,
        resume_errored=True,
    )
    print(f"[mmrphys] resuming search {search_dir.name} from {search_dir}", flush=True)
    return _finish(tuner, base, search, search_dir, uri, parent_run_id)


def _ensure_ray(base: ExperimentConfig, search: SearchConfig) -> None:

    per_trial = base.train.workers * base.train.cpus_per_worker + search.trial_cpus
    ensure_ray(per_trial * search.max_concurrent_trials)


def _trainable(base: ExperimentConfig, search: SearchConfig, search_dir: Path, parent_run_id: str):

    resources = {"cpu": search.trial_cpus}
    return tune.with_resources(
        tune.with_parameters(run_trial, base=trial_base(base, search).to_dict(),
                             search_dir=str(search_dir), parent_run_id=parent_run_id),
        resources,
    )


def _tuner(base: ExperimentConfig, search: SearchConfig, space: dict[str, Any], search_dir: Path,
           parent_run_id: str, max_epochs: int):

    _ensure_ray(base, search)
    scheduler = FIFOScheduler()
    if search.scheduler == "asha" and max_epochs > search.grace_period:
        # Rungs only before the last epoch: stopping a trial at its last report would only
        # kill the work train() does after it (best model, report, closing its MLflow run).
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_epochs - 1,
                                  grace_period=search.grace_period,
                                  reduction_factor=search.reduction_factor, stop_last_trials=False)
    elif search.scheduler == "asha":
        print(f"[mmrphys] ASHA: grace period {search.grace_period} leaves no epoch to stop early "
              f"in {max_epochs}; every trial runs to the end", flush=True)
    return tune.Tuner(
        _trainable(base, search, search_dir, parent_run_id),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=search.metric,
            mode=search.mode,
            scheduler=scheduler,
            # a search algorithm given here must carry the concurrency limit itself
            search_alg=BasicVariantGenerator(random_state=search.seed, max_concurrent=search.max_concurrent_trials),
            num_samples=search.num_samples,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=search_dir.name,
            storage_path=str(search_dir.parent),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=1,
        ),
    )


def _start_parent_run(base: ExperimentConfig, search: SearchConfig, uri: str, search_dir: Path, name: str) -> str:

    run_id = start_run(uri, base.tracking.replace(parent_run_id="", run_name=""), run_name=name,
                       tags={"mmrphys.kind": "tune", "mmrphys.search_dir": str(search_dir)})
    logger = RunLogger(uri, run_id)
    logger.log_params({f"search.{k}": v for k, v in search.to_dict().items()})
    logger.log_params(base.flat(prefix="base."))
    logger.log_artifact(search_dir / SEARCH_FILE)
    logger.log_artifact(search_dir / BASE_CONFIG_FILE)
    return run_id


def _finish(tuner, base: ExperimentConfig, search: SearchConfig, search_dir: Path,
            uri: str | None, parent_run_id: str) -> SearchResult:
    """Run (or continue) the trials, then rank, report, log and register."""
    logger = None
    if parent_run_id:

        logger = RunLogger(uri, parent_run_id)
    try:
        grid = tuner.fit()
        rows = rank_trials(grid, search, search_dir / TRIAL_RUNS_DIR, base.train.epochs)
        if not any(row["status"] != "error" for row in rows):
            errors = "; ".join(f"{r['trial_id']}: {r['error']}" for r in rows)
            raise SearchError(f"every trial failed: {errors}")
        files = {"results": write_results(rows, search_dir / "results.csv"),
                 "plot": plot_metric(rows, search, base, search_dir / "metric_by_resolution_modality.png")}
        champion = None
        if logger is not None:
            _close_trial_runs(rows, uri)
            for path in files.values():
                logger.log_artifact(path)
            best = rows[0]
            logger.log_metrics({f"best_{search.metric}": best[f"best_{search.metric}"],
                                "trials": len(rows),
                                "trials_stopped_early": sum(r["status"] == "stopped early" for r in rows)})
            logger.set_tags({"best_trial": best["trial_id"], "best_run_id": best.get("mlflow_run_id", "")})
            if search.register_as:
                try:
                    champion = _register_champion(best, search, uri)
                    logger.set_tags({"champion": f"models:/{search.register_as}/{champion['version']}"})
                except SearchError as err:
                    # the search itself succeeded: keep its results, say why nothing was registered
                    print(f"[mmrphys] champion not registered: {err}", flush=True)
                    logger.set_tags({"champion_error": str(err)[:5000]})
    except BaseException:
        if logger is not None:
            logger.finish("FAILED")
        raise
    if logger is not None:
        logger.finish("FINISHED")
    return SearchResult(search_dir=search_dir, rows=rows, files=files, tracking_uri=uri,
                        parent_run_id=parent_run_id or None, champion=champion)


def _close_trial_runs(rows: list[dict[str, Any]], uri: str) -> None:
    """Tag each trial's MLflow run with its outcome; close the runs of trials Tune stopped
    (their process ended mid-training, so their run was left RUNNING)."""
    final = {"completed": "FINISHED", "stopped early": "KILLED", "error": "FAILED"}
    for row in rows:
        if not row.get("mlflow_run_id"):
            continue
        logger = RunLogger(uri, row["mlflow_run_id"])
        logger.set_tags({"mmrphys.tune.status": row["status"], "mmrphys.tune.rank": row["rank"]})
        if client(uri).get_run(row["mlflow_run_id"]).info.status == "RUNNING":
            logger.finish(final[row["status"]])


def _register_champion(best: dict[str, Any], search: SearchConfig, uri: str) -> dict[str, Any]:
    """Log the best trial's best checkpoint as a model in its run; register it with the alias."""
    run_id = best.get("mlflow_run_id")
    if not run_id:
        raise SearchError(f"best trial {best['trial_id']} has no MLflow run to register a model from")
    model_dir = Path(best["model_dir"])
    logger = RunLogger(uri, run_id)
    status = client(uri).get_run(run_id).info.status
    info = log_pyfunc_model(logger, model_dir, with_onnx=False)
    # logging reopens the run; keep the status the trial ended with
    logger.finish(status)
    try:
        version = register_model(uri, info.model_uri, search.register_as, alias=search.alias,
                                 config=read_model_config(model_dir))
    except TrackingError as err:
        raise SearchError(f"cannot register the champion: {err}") from err
    return {"trial_id": best["trial_id"], "run_id": run_id, "model_uri": info.model_uri,
            "name": search.register_as, "version": str(version.version), "alias": search.alias}
