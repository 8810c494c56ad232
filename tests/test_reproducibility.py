"""`train.seed` repeats a run: the same seed, data and worker count give the same epoch
metrics on CPU (docs/training.md, "Reproducibility").

The Ray test compares the session's two tiny training runs on a real local cluster (2
workers, 2 epochs, local shuffle on; one in-process with its split cached, one through
the CLI streaming it) on every reported metric but the timings; the unit tests pin the
pieces that make it so without starting Ray.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmrphys.config import ConfigError, ExperimentConfig, ModelConfig, TrainConfig
from mmrphys.model import MMRPhys
from mmrphys.training import (
    build_optimizer,
    derive_seed,
    seed_everything,
    state_on_cpu,
    train_epoch,
    use_deterministic_algorithms,
)

#: what a run reports that is a clock reading, not a result
TIMINGS = {"train_seconds", "train_chunks_per_second", "epoch_seconds"}

TINY = ModelConfig(resolution=9, modality="rgbt", frames=16)


def _epoch_metrics(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in epoch.items() if k not in TIMINGS} for epoch in history]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-9)


def test_the_cli_run_repeats_the_in_process_run_with_the_same_seed(trained_run, cli_run):
    """Two runs of one config and seed, one in this process (logged and registered, its
    training split cached) and one through `mmrphys train` in a subprocess (streamed every
    epoch): every epoch metric equal. Neither the way in, the tracking nor the cache may
    change a number."""
    from pipelines.train.driver import load_run_config, read_history

    folder, done = cli_run
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = folder / "runs" / "quiet"
    cli_config, config = load_run_config(run_dir), trained_run.config
    assert cli_config.data.cache_mb == 0 < config.data.cache_mb
    cli_data = cli_config.data.replace(cache_mb=config.data.cache_mb)
    assert (cli_config.model, cli_data, cli_config.train) == (config.model, config.data, config.train)
    a, b = _epoch_metrics(trained_run.result.history), _epoch_metrics(read_history(run_dir))
    assert len(a) == len(b) == config.train.epochs
    for epoch_a, epoch_b in zip(a, b):
        assert epoch_a.keys() == epoch_b.keys()
        differing = {k: (epoch_a[k], epoch_b[k]) for k in epoch_a if not _same(epoch_a[k], epoch_b[k])}
        assert not differing, f"epoch {epoch_a['epoch']}: {differing}"
    # a real result, not two empty runs that agree trivially
    assert all(np.isfinite(e["train_loss"]) and e["train_loss"] > 0 for e in a)


def _batches(seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"video": 100 + torch.rand(2, 4, 16, 9, 9, generator=g),
             "bvp": torch.randn(2, 16, generator=g), "rsp": torch.randn(2, 16, generator=g)} for _ in range(2)]


def _train_once(seed: int, deterministic: bool = False) -> list[float]:
    use_deterministic_algorithms(deterministic)
    try:
        seed_everything(derive_seed(seed))
        model = MMRPhys(TINY)
        train = TrainConfig(lr=1e-2)
        optimizer = build_optimizer(model, train)
        seed_everything(derive_seed(seed, 0, 0))
        stats = train_epoch(model, _batches(0), optimizer, None, tasks=TINY.tasks, weights={"bvp": 1, "rsp": 1},
                            train=train, device=torch.device("cpu"))
        return [stats.loss, *stats.task_losses.values()]
    finally:
        use_deterministic_algorithms(False)


def test_the_seed_decides_the_initial_weights_and_so_the_losses():
    assert _train_once(3) == _train_once(3)
    assert _train_once(3) != _train_once(4)


def test_deterministic_mode_trains_on_cpu_and_matches_the_default():
    # every op of the training step has a deterministic CPU kernel (else torch raises)
    assert _train_once(5, deterministic=True) == _train_once(5)
    assert not torch.are_deterministic_algorithms_enabled()


def test_derived_seeds_differ_per_epoch_and_rank_and_repeat():
    seeds = {derive_seed(100, epoch, rank) for epoch in range(4) for rank in range(4)}
    assert len(seeds) == 16
    assert derive_seed(100, 1, 0) == derive_seed(100, 1, 0)
    # seed + epoch + rank would collide here
    assert derive_seed(100, 1, 0) != derive_seed(100, 0, 1)
    assert all(0 <= s < 2**32 for s in seeds)


def test_checkpoint_state_is_moved_to_the_cpu_and_loads_back():
    model = MMRPhys(TINY)
    optimizer = build_optimizer(model, TrainConfig())
    train_epoch(model, _batches(1)[:1], optimizer, None, tasks=TINY.tasks, weights={"bvp": 1, "rsp": 1},
                train=TrainConfig(), device=torch.device("cpu"))
    state = state_on_cpu({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    tensors = [v for v in state["model"].values()]
    tensors += [t for s in state["optimizer"]["state"].values() for t in s.values() if isinstance(t, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert state["optimizer"]["param_groups"] == optimizer.state_dict()["param_groups"]
    restored = build_optimizer(MMRPhys(TINY), TrainConfig())
    restored.load_state_dict(state["optimizer"])


def test_a_negative_seed_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="TrainConfig.seed"):
        ExperimentConfig().with_overrides(["train.seed=-1"])
    assert ExperimentConfig().with_overrides(["train.deterministic=true"]).train.deterministic
