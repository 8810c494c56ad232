"""FactorizePhys: parameter counts and key table (docs/factorizephys.md, from the reference's
tables), layer shapes, the function against an independent float64 transcription
(tests/factorizephys_reference.py) in training and eval mode, when FSAM runs, channel
routing, config validation and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import factorizephys_reference as reference
from mmrphys.config import ConfigError, FactorizePhysOptions, ModelConfig
from mmrphys.model import FactorizePhys, InputError, build_model, factorizephys_config

D64 = torch.float64

# (modality, resolution, attention) -> (total, extractor, head conv_block, FSAM, final_layer)
PARAMS = {
    ("rgb", 72, "fsam"): (52_168, 23_112, 20_736, 328, 7_992),
    ("rgb", 72, "none"): (51_840, 23_112, 20_736, 0, 7_992),
    ("rgbt", 72, "fsam"): (52_384, 23_328, 20_736, 328, 7_992),
    ("rgbt", 72, "none"): (52_056, 23_328, 20_736, 0, 7_992),
    ("thermal", 72, "fsam"): (51_736, 22_680, 20_736, 328, 7_992),
    ("thermal", 72, "none"): (51_408, 22_680, 20_736, 0, 7_992),
    ("rgb", 128, "fsam"): (56_200, 23_112, 20_736, 328, 12_024),
    ("rgb", 128, "none"): (55_872, 23_112, 20_736, 0, 12_024),
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("modality,resolution,attention", sorted(PARAMS))
def test_parameter_counts_match_the_reference(modality, resolution, attention):
    model = FactorizePhys(factorizephys_config(modality=modality, resolution=resolution, attention=attention))
    total, extractor, conv_block, fsam, final = PARAMS[(modality, resolution, attention)]
    head = model.rppg_head
    assert n_params(model) == total
    assert n_params(model.rppg_feature_extractor) == extractor
    assert (n_params(head.conv_block), n_params(head.final_layer)) == (conv_block, final)
    assert (n_params(head.fsam) if head.fsam is not None else 0) == fsam


@pytest.mark.parametrize("options", [dict(residual=False), dict(transform="K_TAB"), dict(transform="TK_AB")])
def test_residual_and_transform_change_no_parameter(options):
    config = factorizephys_config(factorizephys=FactorizePhysOptions(**options), nmf_rank=5, nmf_steps=3)
    assert n_params(FactorizePhys(config)) == 52_168


CB = (16, 16, 3, 3, 3)
# the authors' key table: (key, standard RGB shape)
AUTHORS_KEYS = [
    ("rppg_feature_extractor.FeatureExtractor.0.conv_block_3d.0.weight", (8, 3, 3, 3, 3)),
    ("rppg_feature_extractor.FeatureExtractor.1.conv_block_3d.0.weight", (12, 8, 3, 3, 3)),
    ("rppg_feature_extractor.FeatureExtractor.2.conv_block_3d.0.weight", (12, 12, 3, 3, 3)),
    ("rppg_feature_extractor.FeatureExtractor.4.conv_block_3d.0.weight", (12, 12, 3, 3, 3)),
    ("rppg_feature_extractor.FeatureExtractor.5.conv_block_3d.0.weight", (16, 12, 3, 3, 3)),
    ("rppg_feature_extractor.FeatureExtractor.6.conv_block_3d.0.weight", CB),
    ("rppg_head.conv_block.0.conv_block_3d.0.weight", CB),
    ("rppg_head.conv_block.1.conv_block_3d.0.weight", CB),
    ("rppg_head.conv_block.2.conv_block_3d.0.weight", CB),
    ("rppg_head.fsam.pre_conv_block.0.weight", (8, 16, 1, 1, 1)),
    ("rppg_head.fsam.pre_conv_block.0.bias", (8,)),
    ("rppg_head.fsam.post_conv_block.0.conv.weight", (8, 8, 1, 1, 1)),
    ("rppg_head.fsam.post_conv_block.1.weight", (16, 8, 1, 1, 1)),
    ("rppg_head.final_layer.0.conv_block_3d.0.weight", (12, 16, 3, 3, 3)),
    ("rppg_head.final_layer.1.conv_block_3d.0.weight", (8, 12, 3, 3, 3)),
    ("rppg_head.final_layer.2.weight", (1, 8, 3, 3, 3)),
]


def test_state_dict_is_the_authors_key_table_in_order():
    shapes = {k: tuple(v.shape) for k, v in FactorizePhys(factorizephys_config()).state_dict().items()}
    assert list(shapes.items()) == AUTHORS_KEYS
    base = FactorizePhys(factorizephys_config(attention="none")).state_dict()
    assert list(base) == [k for k, _ in AUTHORS_KEYS if ".fsam." not in k]
    big = FactorizePhys(factorizephys_config(resolution=128)).state_dict()
    assert list(big) == [k for k, _ in AUTHORS_KEYS]
    assert tuple(big["rppg_head.final_layer.0.conv_block_3d.0.weight"].shape) == (12, 16, 3, 4, 4)
    for modality, channels in (("rgbt", 4), ("thermal", 1)):
        first = FactorizePhys(factorizephys_config(modality=modality)).state_dict()[AUTHORS_KEYS[0][0]]
        assert tuple(first.shape) == (8, channels, 3, 3, 3)
    assert not any("bias1" in k for k in big)


def test_dropout_layers_where_the_reference_has_them():
    model = FactorizePhys(factorizephys_config(dropout=0.3))
    for seq, index in [(model.rppg_feature_extractor.FeatureExtractor, 3), (model.rppg_feature_extractor.FeatureExtractor, 7),
                       (model.rppg_head.conv_block, 3)]:
        assert isinstance(seq[index], nn.Dropout3d) and seq[index].p == 0.3
    assert sum(isinstance(m, nn.Dropout3d) for m in model.modules()) == 3


def _capture(model: nn.Module, names: list[str]) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    return shapes


# output (h, w) after each extractor block, each head block, each final block (docs/factorizephys.md, "Layers")
SPATIAL = {
    72: ([72, 35, 33, 31, 15, 13], [11, 9, 7], [5, 3, 1], "rppg_head.conv_block"),
    128: ([126, 62, 60, 29, 27, 25], [12, 10, 8], [5, 3, 1], "rppg_feature_extractor"),
}


@pytest.mark.parametrize("resolution", [72, 128])
def test_layer_shapes_match_the_reference_tables(resolution):
    t = 16
    model = FactorizePhys(factorizephys_config(resolution=resolution, frames=t)).train()
    extractor, head, final, fsam_input = SPATIAL[resolution]
    names = [f"rppg_feature_extractor.FeatureExtractor.{i}" for i in (0, 1, 2, 4, 5, 6)]
    names += [f"rppg_head.conv_block.{i}" for i in range(3)] + [f"rppg_head.final_layer.{i}" for i in range(3)]
    shapes = _capture(model, names + ["rppg_head.fsam.pre_conv_block"])
    out = model(torch.rand(2, 3, t + 1, resolution, resolution) * 255)
    sizes = extractor + head + final
    widths = [8, 12, 12, 12, 16, 16, 16, 16, 16, 12, 8, 1]
    for name, size, width in zip(names, sizes, widths):
        assert shapes[name] == (2, width, t, size, size), name
    side = 7 if resolution == 72 else 25
    assert shapes["rppg_head.fsam.pre_conv_block"] == (2, 8, t, side, side)  # FSAM's input: 7x7 or 25x25 (Big)
    assert out["bvp"].shape == (2, t)


def test_full_size_clip_gives_160_samples():
    model = FactorizePhys(factorizephys_config()).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 161, 72, 72) * 255)
    assert list(out) == ["bvp"] and out["bvp"].shape == (2, 160)


# ---- the function: against the float64 transcription ---------------------------------


def synthetic_weights(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Well-conditioned random float64 weights (so rounding stays far below 1e-9)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        fan_in = value[0].numel() if value.dim() > 1 else 16
        state[key] = torch.randn(value.shape, generator=g, dtype=D64) / fan_in**0.5
    return state


def pulse_labels(batch: int, frames: int, dtype=D64) -> torch.Tensor:
    t = torch.arange(frames, dtype=dtype)
    return torch.stack([torch.sin(2 * torch.pi * t / 9 + i) + 0.1 * i for i in range(batch)])


CASES = {
    "fsam_res": dict(),
    "fsam": dict(factorizephys=FactorizePhysOptions(residual=False)),
    "fsam_res_steps3": dict(nmf_steps=3),
    "tk_ab": dict(factorizephys=FactorizePhysOptions(transform="TK_AB")),
    "k_tab": dict(factorizephys=FactorizePhysOptions(transform="K_TAB")),
    "rank5": dict(nmf_rank=5),
    "base": dict(attention="none"),
    "tsfm": dict(attention="tsfm"),
    "thermal": dict(modality="thermal"),
    "rgbt_no_residual": dict(modality="rgbt", factorizephys=FactorizePhysOptions(residual=False)),
    "big": dict(resolution=128),
    "big_tsfm": dict(resolution=128, attention="tsfm"),
}


def run_both(case: str, mode: str, kernels: str, frames: int = 8, batch: int = 2):
    """(model output, transcription output) for one case, float64, same weights and input."""
    settings = dict(CASES[case], frames=frames, kernels=kernels, dropout=0.1)
    if mode == "eval_attention":
        settings["attention_at_inference"] = True
    config = factorizephys_config(**settings)
    model = FactorizePhys(config).double()
    state = synthetic_weights(model)
    model.load_state_dict(state)
    size = config.resolution
    g = torch.Generator().manual_seed(1)
    clip = torch.rand(batch, config.in_channels, frames + 1, size, size, generator=g, dtype=D64) * 255
    labels = pulse_labels(batch, frames)
    training = mode == "train"
    model.train(training)
    options = dict(
        big=size == 128, attention=config.attention, attend=mode != "eval", residual=config.factorizephys.residual,
        transform=config.factorizephys.transform, rank=config.nmf_rank, steps=config.nmf_steps,
        dropout=config.dropout, training=training,
    )
    torch.manual_seed(5)
    got = model(clip, {"bvp": labels} if config.attention == "tsfm" else None)["bvp"]
    torch.manual_seed(5)
    want = reference.forward(clip, state, options, labels)
    return got, want


@pytest.mark.parametrize("mode", ["train", "eval", "eval_attention"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_matches_the_transcription(case, mode):
    """The default kernels (fused on CPU): training mode with dropout, eval, eval with FSAM."""
    got, want = run_both(case, mode, "auto")
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", ["fsam_res", "tsfm", "big"])
def test_stock_kernels_match_the_transcription(case):
    got, want = run_both(case, "train", "stock")
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_float64_matches_the_transcription_with_straddling_rows():
    # 12 frames: a T_KAB row of 8 (channel, time) slots straddles two channels
    got, want = run_both("fsam_res", "train", "auto", frames=12)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_gradients_match_the_transcription():
    config = factorizephys_config(frames=8, dropout=0.0)
    model = FactorizePhys(config).double().train()
    state = synthetic_weights(model)
    model.load_state_dict(state)
    clip = torch.rand(2, 3, 9, 72, 72, dtype=D64, generator=torch.Generator().manual_seed(3)) * 255
    model(clip)["bvp"].square().sum().backward()
    leaves = {k: v.clone().requires_grad_(True) for k, v in state.items()}
    options = dict(big=False, attention="fsam", attend=True, residual=True, transform="T_KAB", rank=1, steps=4,
                   dropout=0.0, training=False)
    reference.forward(clip, leaves, options).square().sum().backward()
    for name, p in model.named_parameters():
        scale = leaves[name].grad.abs().max()
        torch.testing.assert_close(p.grad / scale, leaves[name].grad / scale, rtol=1e-9, atol=1e-9)


# ---- when FSAM runs ---------------------------------------------------------------------


def test_fsam_is_off_in_eval_unless_attention_at_inference():
    torch.manual_seed(0)
    model = FactorizePhys(factorizephys_config(frames=8, dropout=0.0)).eval()
    base = FactorizePhys(factorizephys_config(frames=8, dropout=0.0, attention="none")).eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if ".fsam." not in k})
    x = torch.rand(2, 3, 9, 72, 72) * 255
    with torch.no_grad():
        plain = model(x)["bvp"]
        assert torch.equal(plain, base(x)["bvp"])  # the shipped inference graph: the Base CNN
        active = FactorizePhys(model.config.replace(attention_at_inference=True))
        active.load_state_dict(model.state_dict())
        on = active.eval()(x)["bvp"]
        trained = active.train()(x)["bvp"]
    assert not torch.allclose(plain, on)
    torch.testing.assert_close(on, trained, rtol=0, atol=0)  # no running statistics, no randomness


def test_fsam_couples_the_samples_of_a_batch_and_base_does_not():
    """FSAM's batch-global minima make a sample's output depend on its batch-mates."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 9, 72, 72, dtype=D64) * 255
    x[1] = x[1] * 0.5 + 40
    change = {}
    for attention in ("fsam", "none"):
        model = FactorizePhys(factorizephys_config(frames=8, attention=attention, attention_at_inference=True))
        model = model.double().eval()
        with torch.no_grad():
            change[attention] = (model(x[:1])["bvp"] - model(x)["bvp"][:1]).abs().max().item()
    assert change["fsam"] > 1e-4 and change["none"] < 1e-12


def test_tsfm_uses_the_labels_in_training_and_needs_them():
    torch.manual_seed(0)
    model = FactorizePhys(factorizephys_config(frames=8, attention="tsfm", dropout=0.0)).train()
    x = torch.rand(2, 3, 9, 72, 72) * 255
    y = pulse_labels(2, 8, torch.float32)
    with torch.no_grad():
        a, b = model(x, {"bvp": y})["bvp"], model(x, {"bvp": -y})["bvp"]
        scaled = model(x, {"bvp": 3 * y + 1})["bvp"]
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, scaled)  # the constraint is min-max rescaled per sample
    with pytest.raises(InputError, match=r"needs labels"):
        model(x)
    with pytest.raises(InputError, match=r"labels\['bvp'\]: expected shape \(2, 8\), got \(2, 9\)"):
        model(x, {"bvp": torch.randn(2, 9)})
    with torch.no_grad():
        assert model.eval()(x)["bvp"].shape == (2, 8)  # eval: the plain path, no labels needed
    assert model.needs_labels and not FactorizePhys(factorizephys_config()).needs_labels


# ---- input ------------------------------------------------------------------------------


def test_t_frames_equal_t_plus_one_with_the_last_frame_copied():
    model = FactorizePhys(factorizephys_config(frames=8)).eval()
    x = torch.rand(2, 3, 8, 72, 72) * 255
    with torch.no_grad():
        a, b = model(x)["bvp"], model(torch.cat([x, x[:, :, -1:]], dim=2))["bvp"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rgbt_feeds_thermal_and_rgb_and_thermal_alone_works():
    model = FactorizePhys(factorizephys_config(frames=8, modality="rgbt")).eval()
    x = torch.rand(1, 4, 9, 72, 72) * 255
    changed = x.clone()
    changed[:, 3] = torch.rand(1, 9, 72, 72) * 255
    with torch.no_grad():
        assert not torch.allclose(model(x)["bvp"], model(changed)["bvp"])
        thermal = FactorizePhys(factorizephys_config(frames=8, modality="thermal")).eval()
        assert thermal(x[:, 3:])["bvp"].shape == (1, 8)


def test_build_model_dispatches_to_factorizephys():
    assert isinstance(build_model(factorizephys_config()), FactorizePhys)


def test_wrong_spatial_size_is_an_error_not_a_misshapen_output():
    model = FactorizePhys(factorizephys_config(frames=8))
    with pytest.raises(InputError, match=r"expected 72x72 frames for resolution 72, got 80x80"):
        model(torch.rand(1, 3, 9, 80, 80))
    with pytest.raises(InputError, match=r"expected 3 channels for modality 'rgb'.*got 4"):
        model(torch.rand(1, 4, 9, 72, 72))
    with pytest.raises(InputError, match=r"cannot take 10 frames"):
        model(torch.rand(1, 3, 10, 72, 72))


def test_model_needs_a_factorizephys_config():
    with pytest.raises(TypeError, match="ModelConfig"):
        FactorizePhys({"resolution": 72})
    with pytest.raises(ConfigError, match=r"architecture: FactorizePhys needs 'factorizephys', got 'mmrphys'"):
        FactorizePhys(ModelConfig())


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(tasks=("bvp", "rsp")), r"ModelConfig.tasks: architecture 'factorizephys' does not support \['bvp', 'rsp'\]; allowed: \['bvp'\]"),
        (dict(tasks=("rsp",)), r"ModelConfig.tasks: .*allowed: \['bvp'\]"),
        (dict(fusion="late", modality="rgbt"), r"ModelConfig.fusion: .*does not support 'late'; allowed: \['early'\]"),
        (dict(resolution=36), r"ModelConfig.resolution: 36 is not one of \[72, 128\] for architecture 'factorizephys'"),
        (dict(attention="tsfm", constraint="rbf"), r"ModelConfig.constraint: .*does not support 'rbf'; allowed: \['target'\]"),
        (dict(attention="tsfm", factorizephys=FactorizePhysOptions(transform="K_TAB")),
         r"factorizephys.transform: attention 'tsfm' needs .* only 'T_KAB'"),
        (dict(factor_layout="time_aligned", factorizephys=FactorizePhysOptions(transform="TK_AB")),
         r"factorizephys.transform: factor_layout 'time_aligned' needs"),
    ],
)
def test_impossible_combinations_name_the_allowed_values(settings, message):
    with pytest.raises(ConfigError, match=message):
        factorizephys_config(**settings)


def test_factorizephys_options_belong_to_factorizephys_and_load_from_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"ModelConfig.factorizephys: options of architecture 'factorizephys' are set"):
        ModelConfig(factorizephys=FactorizePhysOptions(residual=False))
    with pytest.raises(ConfigError, match=r"FactorizePhysOptions.transform: 'KTAB' is not one of \['T_KAB', 'TK_AB', 'K_TAB'\]"):
        ModelConfig.from_dict({"architecture": "factorizephys", "tasks": ["bvp"], "factorizephys": {"transform": "KTAB"}})
    config = factorizephys_config(factorizephys=FactorizePhysOptions(residual=False, transform="K_TAB"))
    assert ModelConfig.load_yaml(config.save_yaml(tmp_path / "m.yaml")) == config
    assert config.with_overrides(["factorizephys.residual=true"]).factorizephys.residual
