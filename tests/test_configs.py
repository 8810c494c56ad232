"""The example configs in configs/ load and validate, and the demo's matches what it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrphys.config import ExperimentConfig, IngestConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("ingest_"))
INGESTS = sorted(CONFIGS.glob("ingest_*.yaml"))


def test_there_are_examples_of_both_kinds():
    assert len(EXPERIMENTS) >= 4 and INGESTS


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_examples_validate(path: Path):
    config = ExperimentConfig.load_yaml(path)
    assert config.to_dict() == ExperimentConfig.from_dict(config.to_dict()).to_dict()


@pytest.mark.parametrize("path", INGESTS, ids=lambda p: p.name)
def test_ingest_examples_validate(path: Path):
    IngestConfig.load_yaml(path)


def test_the_demo_example_is_what_the_demo_trains():
    from pipelines.demo import FULL, demo_config

    shipped = ExperimentConfig.load_yaml(CONFIGS / "demo.yaml")
    ran = demo_config(FULL, Path("shards"), "")
    for section in ("model", "train", "eval"):
        assert getattr(shipped, section) == getattr(ran, section), section
    assert (shipped.tracking.register_as, shipped.tracking.alias) == (ran.tracking.register_as, ran.tracking.alias)
