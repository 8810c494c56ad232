"""Connect to a Ray cluster, or start a local one sized so Ray Data is never starved.

`RAY_ADDRESS` (or `ray job submit`) selects an existing cluster. Otherwise a local
cluster starts with at least `min_cpus` logical CPUs: Ray Data's read and map tasks each
need a CPU slot, and on a 2-core machine 2 training workers at 1 CPU each would leave
none, so the stream stalls forever (docs/cluster.md, "CPUs on a small machine"). Logical CPUs above the core
count only oversubscribe scheduling slots; the OS still shares the real cores.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the folder holding `mmrphys/` and `pipelines/`, so workers import this same code
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def ensure_ray(min_cpus: float = 0) -> None:
    """Initialise Ray once per process: connect to RAY_ADDRESS or start a local cluster."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if os.environ.get("RAY_ADDRESS"):
        # a cluster job ships its code with its own runtime_env (cluster/ submit helper)
        ray.init()
        return
    pythonpath = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    cores = os.cpu_count() or 1
    # two slots beyond the training workers keep Ray Data's read and map tasks schedulable
    num_cpus = max(cores, int(-(-min_cpus // 1)) + 2)
    ray.init(
        num_cpus=num_cpus,
        dashboard_host="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
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
