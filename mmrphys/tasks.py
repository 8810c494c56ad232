"""The one table of what each task is: BVP (pulse) and RSP (breathing).

Everything that names a task's rate, unit, label column, metric or plot label reads it
from here, so adding or renaming a task is one edit. The evaluation bands live with the
evaluation profiles (`mmrphys.profiles`), since the references differ in them.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

TaskName = Literal["bvp", "rsp"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One predicted waveform and the rate read from it."""

    name: str
    """Task key in configs, batches and model outputs; also the shards' label column."""
    title: str
    """What the waveform is, for plot titles."""
    rate: str
    """Short name of the rate in metric names (`val_hr_mae`)."""
    rate_title: str
    """The rate's name in tables and plots."""
    unit: str
    """Unit of the rate."""
    rate_output: str
    """Name of the per-clip rate in served predictions and prediction files."""
    label_rate_column: str
    """Shard column holding the label-derived rate of each chunk."""

    @property
    def rate_label(self) -> str:
        """`HR (beats/min)`: the rate with its unit, for axes and tables."""
        return f"{self.rate_title} ({self.unit})"


TASKS: dict[str, Task] = {
    "bvp": Task("bvp", "Blood volume pulse", "hr", "HR", "beats/min", "heart_rate_bpm", "hr_bpm"),
    "rsp": Task("rsp", "Respiration", "rr", "RR", "breaths/min", "respiration_rate_bpm", "rr_bpm"),
}

#: per-task summary metrics reported every epoch and by every evaluation
HEADLINE_METRICS = ("MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC")


def task(name: str) -> Task:
    """The Task called `name`; a KeyError lists the known ones."""
    try:
        return TASKS[name]
    except KeyError as err:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from err


def metric_name(prefix: str, task_name: str, metric: str) -> str:
    """`val_hr_mae`: a per-task headline metric under a prefix (a split or a stage)."""
    return f"{prefix}_{TASKS[task_name].rate}_{metric.lower()}"


def reported_metric_names(tasks: tuple[str, ...]) -> set[str]:
    """Names of the per-epoch metrics training reports for these tasks."""
    names = {"train_loss", "val_loss", "val_rate_mae"}
    for name in tasks:
        names |= {f"train_{name}_loss", f"val_{name}_loss"}
        names |= {metric_name("val", name, m) for m in HEADLINE_METRICS}
    return names
