"""Connect to a Ray cluster, or start a local one sized so Ray Data is never starved.

`RAY_ADDRESS` (or `ray job submit`) selects an existing cluster. Otherwise a local
cluster starts with at least `min_cpus` logical CPUs: Ray Data's read and map tasks each
need a CPU slot, and on a 2-core machine 2 training workers at 1 CPU each would leave
none, so the stream stalls forever (docs/cluster.md, "CPUs on a small machine"). Logical CPUs above the core
count only oversubscribe scheduling slots; the OS still shares the real cores.

The console is quiet by default (docs/training.md, "What a run prints"): Ray's own logs,
the workers' output (Ray Train's per-report lines, Ray Data's plans) and MLflow's
info lines stay in Ray's session logs; Ray Data shows one progress bar on a terminal and
none otherwise. `set_verbose(True)` (`mmrphys COMMAND --verbose`) brings them all back.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

#: the folder holding `mmrphys/` and `pipelines/`, so workers import this same code
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: whether Ray's and MLflow's own logs reach the console (set by `set_verbose`)
_VERBOSE = False


def set_verbose(verbose: bool) -> None:
    """Quiet (default) or verbose console for this process; call before Ray starts.

    Quiet: MLflow and Ray log warnings and errors only, the Ray core's C++ lines (e.g.
    "constructor arguments in the object store and max_restarts > 0", said of every
    actor pool) are off, and MLflow's per-file download bars are off.
    """
    global _VERBOSE
    _VERBOSE = verbose
    for name in ("ray", "mlflow"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # Ray 2.60 says at every local start that it turned token authentication on (it stays on).
    # Setting RAY_AUTH_MODE here instead would come too late for the driver's cached Ray
    # config (its GCS client would then connect without the token), so the note is hidden.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.INFO if verbose else logging.ERROR)
    if not verbose:
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _quiet_ray_data() -> None:
    """Ray Data on the driver: one overall progress bar on a terminal, none otherwise; its
    plans and per-operator status only with --verbose."""
    import ray.data

    if not _VERBOSE:
        # Ray Data configures its own logger when imported, at INFO; turning the bars off
        # below logs a warning that says so, which is noise when we chose it
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = _VERBOSE or sys.stdout.isatty()
    context.enable_operator_progress_bars = _VERBOSE


def ensure_ray(min_cpus: float = 0) -> None:
    """Initialise Ray once per process: connect to RAY_ADDRESS or start a local cluster."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _quiet_ray_data()
    console = {"log_to_driver": _VERBOSE, "logging_level": logging.INFO if _VERBOSE else logging.WARNING}
    if os.environ.get("RAY_ADDRESS"):
        # a cluster job ships its code with its own runtime_env (cluster/ submit helper)
        ray.init(**console)
        return
    pythonpath = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    cores = os.cpu_count() or 1
    # two slots beyond the training workers keep Ray Data's read and map tasks schedulable
    num_cpus = max(cores, int(-(-min_cpus // 1)) + 2)
    # The raylet warns once a node holds 4x its worker start-up limit in worker processes,
    # the limit being min(cores, logical CPUs): 8 on 2 cores, fewer than one training run
    # ordinarily holds (Train workers and controller, Ray Data tasks and actors). Set
    # from the logical CPUs the warning stays for a real pile-up of workers.
    os.environ.setdefault("RAY_worker_maximum_startup_concurrency", str(num_cpus))
    ray.init(
        num_cpus=num_cpus,
        dashboard_host="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        **console,
    )


def actor_pool(size: int):
    """A fixed pool of `size` Ray Data actors (Ray 2.60's `compute=` form of the deprecated
    `concurrency=`)."""
    import ray.data

    return ray.data.ActorPoolStrategy(size=size)


def task_pool(size: int | None):
    """At most `size` concurrent Ray Data tasks (None: as many as the resources allow)."""
    import ray.data

    return ray.data.TaskPoolStrategy(size=size)
