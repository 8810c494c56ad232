"""FactorizePhys through the plain training recipe (mmrphys.training) with BVP only: the
example config, a training step, validation metrics, and the recipe's schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmrphys.config import ConfigError, ExperimentConfig, reported_metric_names
from mmrphys.model import FactorizePhys, build_model, factorizephys_config
from mmrphys.training import build_optimizer, build_scheduler, predict_chunks, train_epoch, validation_metrics

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "factorizephys.yaml"


def test_example_config_is_the_reference_recipe():
    config = ExperimentConfig.load_yaml(CONFIG)
    m, t = config.model, config.train
    assert (m.architecture, m.resolution, m.modality, m.tasks, m.attention, m.frames) == (
        "factorizephys", 72, "rgb", ("bvp",), "fsam", 160)
    assert (m.factorizephys.residual, m.factorizephys.transform, m.dropout, m.nmf_steps) == (True, "T_KAB", 0.1, 4)
    assert (t.epochs, t.batch_size, t.lr, t.scheduler, t.loss, t.precision) == (
        10, 4, 1e-3, "onecycle", "neg_pearson_across_batch", "fp32")
    assert config.task_weights == {"bvp": 1.0}
    assert isinstance(build_model(m), FactorizePhys)
    big = ExperimentConfig.load_yaml(CONFIG, ["model.resolution=128", "model.attention=tsfm"])
    assert (big.model.resolution, big.model.attention) == (128, "tsfm")
    with pytest.raises(ConfigError, match=r"does not support \['bvp', 'rsp'\]; allowed: \['bvp'\]"):
        ExperimentConfig.load_yaml(CONFIG, ["model.tasks=[bvp, rsp]"])
    with pytest.raises(ConfigError, match=r"TrainConfig.checkpoint_metric: 'val_rr_mae' is not one of"):
        ExperimentConfig.load_yaml(CONFIG, ["train.checkpoint_metric=val_rr_mae"])


def test_onecycle_schedule_is_the_reference_one():
    config = ExperimentConfig.load_yaml(CONFIG)
    model = build_model(config.model)
    optimizer = build_optimizer(model, config.train)
    scheduler = build_scheduler(optimizer, config.train, steps_per_epoch=10)
    rates, betas = [], []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        betas.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-3 / 25) and max(rates) == pytest.approx(1e-3, rel=1e-3)
    assert int(np.argmax(rates)) == 29  # 30 % warm-up, then cosine decay
    assert rates[-1] < 1e-5 and betas[0] == pytest.approx(0.95) and min(betas) == pytest.approx(0.85, abs=1e-3)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["eps"] == 1e-8


def batches(n_batches: int, batch: int = 2, frames: int = 8, with_ids: bool = False, seed: int = 0):
    """Clips whose green channel carries the pulse label; labels z-scored per chunk."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        t = torch.arange(frames, dtype=torch.float32) + i * frames
        bvp = torch.sin(2 * torch.pi * 1.2 * t / 30 + torch.rand(batch, 1, generator=g))
        video = 100 + 5 * torch.rand(batch, 3, frames, 72, 72, generator=g)
        video[:, 1] += 3 * bvp[:, :, None, None]
        item = {"video": video, "bvp": (bvp - bvp.mean(1, keepdim=True)) / bvp.std(1, keepdim=True)}
        if with_ids:
            item.update(recording_id=[f"r{j}" for j in range(batch)], chunk_index=[i] * batch, fps=[30.0] * batch)
        out.append(item)
    return out


@pytest.mark.parametrize("attention,loss", [("fsam", "neg_pearson_across_batch"), ("tsfm", "neg_pearson")])
def test_bvp_only_training_step_and_validation(attention, loss):
    config = ExperimentConfig.load_yaml(CONFIG, [f"model.attention={attention}", f"train.loss={loss}", "model.frames=8"])
    torch.manual_seed(0)
    model = build_model(config.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, config.train)
    scheduler = build_scheduler(optimizer, config.train, steps_per_epoch=2)
    device = torch.device("cpu")
    stats = train_epoch(model, batches(2), optimizer, scheduler, tasks=config.model.tasks,
                        weights=config.task_weights, train=config.train, device=device)
    assert stats.batches == 2 and stats.samples == 4 and set(stats.task_losses) == {"bvp"}
    assert np.isfinite(stats.loss)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(".fsam." in k for k in changed) and any("final_layer" in k for k in changed)
    out = predict_chunks(model, batches(4, with_ids=True, seed=1), tasks=config.model.tasks,
                         weights=config.task_weights, train=config.train, device=device)
    assert list(out.predictions) == ["bvp"] and out.samples == 8
    metrics = validation_metrics(out, config.eval, config.model.tasks)
    assert set(metrics) <= reported_metric_names(("bvp",)) and "val_hr_mae" in metrics and "val_bvp_loss" in metrics
    assert not any("rr" in name or "rsp" in name for name in metrics)


def test_tsfm_training_gets_the_batch_labels():
    model = FactorizePhys(factorizephys_config(frames=8, attention="tsfm"))
    config = ExperimentConfig.load_yaml(CONFIG, ["model.attention=tsfm", "model.frames=8"])
    optimizer = build_optimizer(model, config.train)
    bad = batches(1)
    bad[0]["bvp"] = bad[0]["bvp"][:, :7]
    with pytest.raises(ValueError, match=r"labels\['bvp'\]: expected shape \(2, 8\), got \(2, 7\)"):
        train_epoch(model, bad, optimizer, None, tasks=("bvp",), weights={"bvp": 1.0}, train=config.train,
                    device=torch.device("cpu"))
