"""Builders behind the training fixtures in conftest.py: tiny real data and one real run.

Kept small so every Ray Train test together stays within a few minutes on 2 cores:
4 synthetic subjects x 20 s, 64-frame chunks at 9x9, 2 workers, 2 epochs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mmrphys.config import DataConfig, ExperimentConfig, ModelConfig, TrackingConfig, TrainConfig

CHUNK = 64
MODEL_NAME = "tiny"


@dataclasses.dataclass
class TinyRun:
    config: ExperimentConfig
    result: object
    tracking_uri: str
    storage: Path


def make_shards(folder: Path, *, subjects: int = 4, seconds: float = 20.0, split=(0.5, 0.25, 0.25),
                strip: bool = False) -> Path:
    """Synthetic recordings ingested into shards; returns the shards folder.

    `strip` removes the thermal video and the respiration labels: an RGB/BVP-only dataset.
    """
    from mmrphys.data.synthetic import generate_dataset
    from mmrphys.config import IngestConfig
    from pipelines.data.ingest import ingest

    for recording in generate_dataset(folder / "raw", subjects=subjects, seconds=seconds, fps=30.0, seed=3):
        if strip:
            (recording / "thermal.npy").unlink()
            labels = np.loadtxt(recording / "labels.csv", delimiter=",", skiprows=1)
            np.savetxt(recording / "labels.csv", labels[:, :2], delimiter=",", header="time,bvp", comments="")
    ingest("folder", folder / "raw", folder / "shards",
           config=IngestConfig(chunk_frames=CHUNK, split=split), progress=False)
    return folder / "shards"


def tiny_config(shards: Path, tracking_uri: str = "", val_split: str = "val", **train) -> ExperimentConfig:
    """The 9x9 RGB+thermal TSFM variant on 64-frame chunks, 2 workers x 2 epochs."""
    return ExperimentConfig(
        model=ModelConfig(resolution=9, modality="rgbt", frames=CHUNK),
        data=DataConfig(shards=str(shards), shuffle_buffer=4, val_split=val_split),
        train=TrainConfig(**{"epochs": 2, "batch_size": 2, "workers": 2, "cpus_per_worker": 1.0,
                             "keep_checkpoints": 1, **train}),
        tracking=TrackingConfig(uri=tracking_uri, enabled=bool(tracking_uri), experiment="tests",
                                register_as=MODEL_NAME if tracking_uri else "",
                                alias="champion" if tracking_uri else ""),
    )


#: the session's run validates on the 2 training recordings, so that a per-recording
#: validation SNR has something to average (test_console.py)
SESSION_VAL_SPLIT = "train"


def tiny_cli_overrides() -> list[str]:
    """The session run's model, data and train settings (`tiny_config`) as `mmrphys train`
    overrides, derived from it: the session's CLI run repeats the session's in-process run
    (test_reproducibility.py)."""
    ours, defaults = tiny_config(Path("."), val_split=SESSION_VAL_SPLIT).flat(), ExperimentConfig().flat()
    return [f"{key}={value}" for key, value in ours.items()
            if key.split(".")[0] in ("model", "data", "train") and key != "data.shards" and value != defaults[key]]


def train_tiny(shards: Path, folder: Path) -> TinyRun:
    """Train, log and register the tiny model in a SQLite store under `folder`."""
    from pipelines.train.driver import train

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = tiny_config(shards, uri, val_split=SESSION_VAL_SPLIT)
    result = train(config, storage_path=folder / "runs", name="tiny")
    return TinyRun(config=config, result=result, tracking_uri=uri, storage=folder / "runs")
