"""The search section: how Ray Tune explores a space of experiment configs."""

from __future__ import annotations

import dataclasses
from typing import Literal

from mmrphys.config.base import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class SearchConfig(Config):
    """How to search: the space, the algorithm, early stopping, concurrency, the champion.

    space: a built-in space (`tune_spaces`) or a YAML space file.
    algorithm: `grid` tries every grid value (numeric ranges drawn `num_samples` times
        per grid point); `random` draws `num_samples` points, grids becoming choices.
    metric / mode: what ranks trials, stops them early and picks the champion.
    scheduler: `asha` (asynchronous successive halving over epochs) or `fifo` (none).
    grace_period / reduction_factor: ASHA's minimum epochs and its halving rate.
    max_concurrent_trials: trials running at once; each takes `trial_cpus` for its
        driver plus the training workers its config asks for (train.workers x
        train.cpus_per_worker, and a GPU each with train.use_gpu).
    register_as / alias: registered model name for the champion and its alias
        (empty register_as: do not register).
    log_trial_models: log every trial's best model (slower); the champion's is always logged.
    seed: random state of the search algorithm (same seed, same trials).
    """

    space: str = "default"
    algorithm: Literal["grid", "random"] = "grid"
    num_samples: int = 1
    metric: str = "val_rate_mae"
    mode: Literal["min", "max"] = "min"
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = 1
    reduction_factor: float = 2.0
    max_concurrent_trials: int = 1
    trial_cpus: float = 0.2
    register_as: str = "mmrphys"
    alias: str = "champion"
    log_trial_models: bool = False
    seed: int = 0

    def validate(self) -> None:
        for name in ("num_samples", "grace_period", "max_concurrent_trials"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SearchConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.reduction_factor <= 1:
            raise ConfigError(f"SearchConfig.reduction_factor: must be > 1, got {self.reduction_factor}")
        if self.trial_cpus <= 0:
            # Tune rejects a trial that asks for nothing (docs/cluster.md, "CPUs on a small machine")
            raise ConfigError(f"SearchConfig.trial_cpus: must be > 0, got {self.trial_cpus}")
        if self.alias and not self.register_as:
            raise ConfigError("SearchConfig.alias: needs register_as (the registered model to alias)")
