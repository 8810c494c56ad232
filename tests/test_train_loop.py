"""The training recipe without Ray: configs, checkpoint files, the per-worker loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmrphys.config import (
    ConfigError,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    PreprocessingConfig,
    RhythmFormerOptions,
    TrainConfig,
    reported_metric_names,
)
from mmrphys.inference import load_model, save_model
from mmrphys.inference.artifact import read_weights
from mmrphys.model import MMRPhys, RhythmFormer, rhythmformer_config, standardize_frames
from mmrphys.model.checkpoint import CheckpointError, check_same_variant, read_training_state, save_training_state
from mmrphys.training import (
    build_optimizer,
    build_scheduler,
    predict_chunks,
    step_scheduler,
    summary_metrics,
    train_epoch,
)

TINY = ModelConfig(resolution=9, modality="rgbt", frames=16)
CROP, EVAL = PreprocessingConfig(size=36, box_scale=1.6), EvalConfig(profile="rppg-toolbox")


def _batch(n: int = 2, frames: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A clip whose green and thermal channels carry the labels, so the model can learn."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)
    bvp = torch.sin(2 * torch.pi * t / 8 + torch.rand(n, 1, generator=g) * 6)
    rsp = torch.sin(2 * torch.pi * t / 16 + torch.rand(n, 1, generator=g) * 6)
    video = 100 + torch.rand(n, 4, frames, 9, 9, generator=g)
    video[:, 1] += bvp[:, :, None, None]
    video[:, 3] += rsp[:, :, None, None]
    z = lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)  # noqa: E731
    return {"video": video, "bvp": z(bvp), "rsp": z(rsp)}


def test_experiment_config_defaults_are_the_reference_recipe():
    config = ExperimentConfig()
    assert (config.train.lr, config.train.batch_size, config.train.loss) == (1e-3, 4, "smooth_l1")
    assert config.train.scheduler == "onecycle"
    assert config.task_weights == {"bvp": 1.0, "rsp": 1.0}


def test_experiment_config_round_trips_through_yaml_with_overrides(tmp_path):
    config = ExperimentConfig().with_overrides(["model.resolution=9", "train.epochs=3", "data.fold=1"])
    path = config.save_yaml(tmp_path / "experiment.yaml")
    loaded = ExperimentConfig.load_yaml(path, ["train.lr=0.002"])
    assert loaded.model.resolution == 9 and loaded.train.epochs == 3 and loaded.data.fold == 1
    assert loaded.train.lr == 0.002
    assert loaded.flat()["train.lr"] == 0.002


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.checkpoint_metric=val_accuracy", "TrainConfig.checkpoint_metric"),
        ("train.workers=0", "TrainConfig.workers"),
        ("train.lr=-1", "TrainConfig.lr"),
        ("train.precision=fp16", "TrainConfig.precision"),
        ("tracking.alias=champion", "TrackingConfig.alias"),
        ("eval.window_seconds=0", "EvalConfig.window_seconds"),
        ("train.epochz=3", "unknown field"),
    ],
)
def test_bad_config_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig().with_overrides([override])


def test_checkpoint_metric_must_be_reported_for_the_tasks():
    with pytest.raises(ConfigError, match="val_rr_mae"):
        ExperimentConfig(model=ModelConfig(tasks=("bvp",)), train=TrainConfig(checkpoint_metric="val_rr_mae"))


def test_model_files_round_trip_and_refuse_another_variant(tmp_path):
    model = MMRPhys(TINY)
    save_model(tmp_path, model.state_dict(), TINY, CROP, EVAL)
    loaded, artifact = load_model(tmp_path, expected=TINY)
    assert (artifact.config, artifact.preprocessing, artifact.evaluation) == (TINY, CROP, EVAL)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    with pytest.raises(CheckpointError, match="resolution 9 .expected 36."):
        load_model(tmp_path, expected=TINY.replace(resolution=36))
    with pytest.raises(CheckpointError, match="modality 'rgbt' .expected 'rgb'."):
        check_same_variant(TINY.replace(modality="rgb"), TINY, "somewhere")


def test_weights_of_another_shape_are_refused_with_the_key(tmp_path):
    rgb = ModelConfig(resolution=9, modality="rgb", frames=16)
    save_model(tmp_path, MMRPhys(rgb).state_dict(), TINY, CROP, EVAL)  # config says rgbt, weights are rgb
    with pytest.raises(CheckpointError, match="weights do not fit.*shape of"):
        load_model(tmp_path)


def test_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    save_model(tmp_path, MMRPhys(TINY).state_dict(), TINY, CROP, EVAL)
    (tmp_path / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="model.pt: cannot read as a weights-only torch checkpoint"):
        read_weights(tmp_path)
    (tmp_path / "model_config.json").write_text(json.dumps({"resolution": 10}))
    with pytest.raises(CheckpointError, match="model_config.json: not a valid ModelConfig"):
        load_model(tmp_path)
    save_model(tmp_path, MMRPhys(TINY).state_dict(), TINY, CROP, EVAL)
    (tmp_path / "preprocessing.json").unlink()
    with pytest.raises(CheckpointError, match="preprocessing.json: missing"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path / "nowhere")


def test_training_state_round_trips_with_weights_only(tmp_path):
    model = MMRPhys(TINY)
    train = TrainConfig(epochs=2)
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train, steps_per_epoch=3)
    train_epoch(model, [_batch()], optimizer, scheduler, tasks=TINY.tasks, weights={"bvp": 1, "rsp": 1},
                train=train, device=torch.device("cpu"))
    save_training_state(tmp_path, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                   "epoch": 0, "best_score": 1.5})
    state = read_training_state(tmp_path)
    fresh = build_scheduler(build_optimizer(model, train), train, steps_per_epoch=3)
    fresh.load_state_dict(state["scheduler"])
    assert fresh.last_epoch == scheduler.last_epoch == 1
    assert state["epoch"] == 0 and state["best_score"] == 1.5


def test_onecycle_holds_the_last_rate_past_its_planned_steps():
    model = torch.nn.Linear(2, 2)
    train = TrainConfig(epochs=1)
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train, steps_per_epoch=2)
    for _ in range(6):  # more batches than planned: must not raise
        optimizer.step()
        step_scheduler(scheduler)
    assert optimizer.param_groups[0]["lr"] < train.lr / 100


def test_train_epoch_learns_a_fixed_batch():
    torch.manual_seed(0)
    model = MMRPhys(TINY)
    train = TrainConfig(epochs=1, lr=3e-3, scheduler="constant")
    optimizer = build_optimizer(model, train)
    batch = _batch(n=4)
    kwargs = dict(tasks=TINY.tasks, weights={"bvp": 1.0, "rsp": 1.0}, train=train, device=torch.device("cpu"))
    first = train_epoch(model, [batch], optimizer, None, **kwargs)
    for _ in range(25):
        last = train_epoch(model, [batch], optimizer, None, **kwargs)
    assert first.samples == 4 and first.batches == 1
    assert set(first.task_losses) == {"bvp", "rsp"}
    assert last.loss < 0.6 * first.loss


def test_task_weights_scale_the_loss():
    torch.manual_seed(0)
    batch = _batch()
    losses = {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        model = MMRPhys(TINY)
        train = TrainConfig(scheduler="constant", rsp_weight=weight)
        stats = train_epoch(model, [batch], build_optimizer(model, train), None, tasks=TINY.tasks,
                            weights={"bvp": 1.0, "rsp": weight}, train=train, device=torch.device("cpu"))
        losses[weight] = stats
    assert losses[0.0].loss == pytest.approx(losses[0.0].task_losses["bvp"], rel=1e-5)
    assert losses[1.0].loss == pytest.approx(sum(losses[1.0].task_losses.values()), rel=1e-5)


def test_summary_metrics_are_named_for_what_they_are():
    from mmrphys.metrics import evaluate_recordings

    fs, t = 30.0, np.arange(900) / 30.0
    labels = {"bvp": {"r1": np.sin(2 * np.pi * 1.2 * t), "r2": np.sin(2 * np.pi * 1.5 * t)},
              "rsp": {"r1": np.sin(2 * np.pi * 0.25 * t), "r2": np.sin(2 * np.pi * 0.3 * t)}}
    predictions = {"bvp": {"r1": np.sin(2 * np.pi * 1.3 * t), "r2": np.sin(2 * np.pi * 1.5 * t)},
                   "rsp": labels["rsp"]}
    evaluation = evaluate_recordings(predictions, labels, fs)
    metrics = summary_metrics(evaluation, ("bvp", "rsp"))
    assert metrics["val_hr_mae"] == pytest.approx(3.0, abs=1.0)  # 78 vs 72 bpm on one of two recordings
    assert metrics["val_rr_mae"] == pytest.approx(0.0, abs=0.5)
    assert metrics["val_rate_mae"] == metrics["val_hr_mae"] + metrics["val_rr_mae"]
    assert {"val_hr_rmse", "val_hr_pearson", "val_hr_snr", "val_rr_mae"} <= set(metrics)
    assert set(metrics) <= reported_metric_names(("bvp", "rsp"))


# ---- RhythmFormer through the same recipe: BVP only, an output shorter than the label ----

RHYTHMFORMER = rhythmformer_config(resolution=64, frames=36,
                                   rhythmformer=RhythmFormerOptions(embed_dim=32, depths=(1, 1, 1), topk=(12, 12, 12)))


def _pulse_batch(n: int = 2, frames: int = 36, seed: int = 0) -> dict:
    """Standardised RGB clips whose green channel carries a 90-120 bpm pulse, with 30 fps."""
    g = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0
    rates = g.uniform(1.5, 2.0, (n, 1))
    bvp = np.sin(2 * np.pi * rates * t + g.uniform(0, 6, (n, 1)))
    video = 100 + g.random((n, 3, frames, 64, 64))
    video[:, 1] += 3 * bvp[:, :, None, None]
    z = (bvp - bvp.mean(1, keepdims=True)) / bvp.std(1, ddof=1, keepdims=True)
    return {"video": standardize_frames(video), "bvp": z.astype(np.float32), "fps": np.full(n, 30.0)}


@pytest.mark.parametrize("loss", ["rhythmformer_hybrid", "rhythmformer_hybrid_corrected", "smooth_l1"])
def test_rhythmformer_step_reaches_every_parameter_with_labels_longer_than_its_output(loss):
    torch.manual_seed(0)
    model = RhythmFormer(RHYTHMFORMER)
    train = TrainConfig(loss=loss, scheduler="constant")
    stats = train_epoch(model, [_pulse_batch()], build_optimizer(model, train), None, tasks=("bvp",),
                        weights={"bvp": 1.0}, train=train, device=torch.device("cpu"))
    assert stats.samples == 2 and np.isfinite(stats.loss) and set(stats.task_losses) == {"bvp"}
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_rhythmformer_learns_a_fixed_pulse_batch():
    torch.manual_seed(0)
    model = RhythmFormer(RHYTHMFORMER.replace(frames=16))
    train = TrainConfig(loss="neg_pearson", lr=1e-3, scheduler="constant")
    optimizer = build_optimizer(model, train)
    batch = _pulse_batch(frames=16)
    kwargs = {"tasks": ("bvp",), "weights": {"bvp": 1.0}, "train": train, "device": torch.device("cpu")}
    first = train_epoch(model, [batch], optimizer, None, **kwargs)
    for _ in range(3):
        last = train_epoch(model, [batch], optimizer, None, **kwargs)
    assert last.loss < 0.3 * first.loss


def test_rhythmformer_validation_keeps_labels_as_long_as_predictions():
    torch.manual_seed(0)
    model = RhythmFormer(RHYTHMFORMER)
    batch = _pulse_batch(n=2)
    batch.update(recording_id=np.array(["r1", "r1"], dtype=object), chunk_index=np.array([0, 1]))
    train = TrainConfig(loss="rhythmformer_hybrid")
    out = predict_chunks(model, [batch], tasks=("bvp",), weights={"bvp": 1.0}, train=train, device=torch.device("cpu"))
    assert [len(p) for p in out.predictions["bvp"]] == [len(y) for y in out.labels["bvp"]] == [32, 32]
    np.testing.assert_array_equal(out.labels["bvp"][0], batch["bvp"][0, :32])
    assert np.isfinite(out.loss_sum)
