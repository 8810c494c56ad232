"""MMRPhys network: parameter counts (docs/model.md, "Variants"), layer shapes ("Layers"), state-dict
names (the released files' layout), the front end, the training/eval paths, float64, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmrphys.config import ConfigError, ModelConfig
from mmrphys.model import InputError, MMRPhys, variant, variant_name

# docs/model.md, "Variants": BVP+RSP only, no bias1, no BP head; "Base" = minus 2 x TSFM
PARAMS = {
    ("EF", "rgb"): 88_256,
    ("EF", "thermal"): 86_960,
    ("EF", "rgbt"): 88_904,
    ("NF", "rgbt"): 87_392,
    ("LF", "rgbt"): 175_816,
}
TSFM_PER_HEAD = {"EF": 328, "NF": 328, "LF": 584}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size", ["L", "M", "S"])
@pytest.mark.parametrize("fusion,modality", sorted(PARAMS))
@pytest.mark.parametrize("attention", ["tsfm", "fsam", "none"])
def test_parameter_counts_match_the_reference(size, fusion, modality, attention):
    model = MMRPhys(variant(size + fusion, modality=modality, attention=attention))
    expected = PARAMS[(fusion, modality)]
    if attention == "none":
        expected -= 2 * TSFM_PER_HEAD[fusion]
    assert n_params(model) == expected


def test_single_task_builds_only_its_branch():
    bvp = MMRPhys(variant("SEF", modality="rgb", tasks=("bvp",)))
    keys = bvp.state_dict().keys()
    assert all(k.startswith(("bvp_feature_extractor", "rppg_head")) for k in keys)
    assert n_params(bvp) == 8_424 + 28_728 + 328
    rsp = MMRPhys(variant("SEF", modality="rgb", tasks=("rsp",)))
    assert n_params(rsp) == 15_120 + 35_328 + 328


LEF_KEYS = [
    "bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight",
    "bvp_feature_extractor.bvp_feature_extractor.1.conv_block_3d.0.weight",
    "bvp_feature_extractor.bvp_feature_extractor.3.conv_block_3d.0.weight",
    "rsp_feature_extractor.rsp_feature_extractor.0.conv_block_3d.0.weight",
    "rsp_feature_extractor.rsp_feature_extractor.1.conv_block_3d.0.weight",
    "rsp_feature_extractor.rsp_feature_extractor.2.conv_block_3d.0.weight",
    "rppg_head.conv_layer.0.conv_block_3d.0.weight",
    "rppg_head.conv_layer.1.conv_block_3d.0.weight",
    "rppg_head.conv_layer.2.conv_block_3d.0.weight",
    "rppg_head.fsam.pre_conv_block.0.weight",
    "rppg_head.fsam.pre_conv_block.0.bias",
    "rppg_head.fsam.post_conv_block.0.conv.weight",
    "rppg_head.fsam.post_conv_block.1.weight",
    "rppg_head.final_layer.0.conv_block_3d.0.weight",
    "rppg_head.final_layer.1.conv_block_3d.0.weight",
    "rppg_head.final_layer.2.weight",
    "rBr_head.conv_block.0.conv_block_3d.0.weight",
    "rBr_head.conv_block.1.conv_block_3d.0.weight",
    "rBr_head.conv_block.2.conv_block_3d.0.weight",
    "rBr_head.conv_block.4.conv_block_3d.0.weight",
    "rBr_head.fsam.pre_conv_block.0.weight",
    "rBr_head.fsam.pre_conv_block.0.bias",
    "rBr_head.fsam.post_conv_block.0.conv.weight",
    "rBr_head.fsam.post_conv_block.1.weight",
    "rBr_head.final_layer.0.conv_block_3d.0.weight",
    "rBr_head.final_layer.2.weight",
]


def test_state_dict_keys_and_order_match_reference():
    model = MMRPhys(variant("LEF", modality="rgb"))
    assert list(model.state_dict()) == LEF_KEYS
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes[LEF_KEYS[0]] == (8, 3, 3, 3, 3)
    assert shapes["rBr_head.final_layer.2.weight"] == (1, 16, 3, 4, 4)
    thermal = MMRPhys(variant("MEF", modality="thermal")).state_dict()
    assert tuple(thermal[LEF_KEYS[3]].shape) == (16, 1, 3, 3, 3)
    nf = MMRPhys(variant("LNF")).state_dict()
    assert list(nf) == LEF_KEYS
    assert tuple(nf[LEF_KEYS[0]].shape) == (8, 3, 3, 3, 3)
    assert tuple(nf[LEF_KEYS[3]].shape) == (16, 1, 3, 3, 3)


def test_late_fusion_keys_follow_reference_names():
    keys = list(MMRPhys(variant("LLF")).state_dict())
    assert len(keys) == 39  # the reference's 149 entries minus 110 BP-head entries
    for name in (
        "rgb_bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight",
        "thermal_bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight",
        "rgb_rsp_feature_extractor.rsp_feature_extractor.0.conv_block_3d.0.weight",
        "thermal_rsp_feature_extractor.rsp_feature_extractor.0.conv_block_3d.0.weight",
        "rppg_head.conv_layer_rgb.0.conv_block_3d.0.weight",
        "rppg_head.conv_layer_thermal.2.conv_block_3d.0.weight",
        "rBr_head.conv_block_rgb.4.conv_block_3d.0.weight",
        "rBr_head.conv_block_thermal.0.conv_block_3d.0.weight",
    ):
        assert name in keys
    shapes = {k: tuple(v.shape) for k, v in MMRPhys(variant("LLF")).state_dict().items()}
    assert shapes["rppg_head.final_layer.0.conv_block_3d.0.weight"] == (16, 32, 3, 3, 3)
    assert shapes["rppg_head.fsam.pre_conv_block.0.weight"] == (8, 32, 1, 1, 1)
    assert shapes["rppg_head.fsam.post_conv_block.1.weight"] == (32, 8, 1, 1, 1)


def test_dropout_layers_where_the_reference_has_them():
    model = MMRPhys(variant("SEF", modality="rgb", dropout=0.3))
    for seq, index in [
        (model.bvp_feature_extractor.bvp_feature_extractor, 2),
        (model.rsp_feature_extractor.rsp_feature_extractor, 3),
        (model.rppg_head.conv_layer, 3),
        (model.rBr_head.conv_block, 3),
    ]:
        assert isinstance(seq[index], nn.Dropout3d) and seq[index].p == 0.3
    assert sum(isinstance(m, nn.Dropout3d) for m in model.modules()) == 4


def _capture(model: MMRPhys, names: list[str]) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}
    for name in names:
        module = model.get_submodule(name)
        module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    return shapes


# docs/model.md, "Layers" (spatial sizes, 16 channels per stream); time checked at T, T/2, T/4
SHAPES = {
    "LEF": ((31, 31), (32, 32), (11, 11), (10, 10)),
    "MEF": ((32, 32), (32, 32), (11, 11), (10, 10)),
    "SEF": ((9, 9), (9, 9), (7, 7), (9, 9)),
    "LNF": ((31, 31), (32, 32), (11, 11), (10, 10)),
    "SNF": ((9, 9), (9, 9), (7, 7), (9, 9)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_layer_shapes_match_the_reference(name):
    t = 180 if name.startswith("S") else 8
    config = variant(name, frames=t)
    model = MMRPhys(config).eval()
    shapes = _capture(
        model,
        ["bvp_feature_extractor", "rsp_feature_extractor", "rppg_head.conv_layer", "rBr_head.conv_block"],
    )
    x = torch.rand(2, config.in_channels, t + 1, config.resolution, config.resolution)
    with torch.no_grad():
        out = model(x)
    bvp_ext, rsp_ext, bvp_att, rsp_att = SHAPES[name]
    assert shapes["bvp_feature_extractor"] == (2, 16, t, *bvp_ext)
    assert shapes["rsp_feature_extractor"] == (2, 16, t // 2, *rsp_ext)
    assert shapes["rppg_head.conv_layer"] == (2, 16, t, *bvp_att)
    assert shapes["rBr_head.conv_block"] == (2, 16, t // 4, *rsp_att)
    assert out["bvp"].shape == (2, t) and out["rsp"].shape == (2, t)


def test_late_fusion_concatenates_streams_before_attention():
    config = variant("LLF", frames=8)
    model = MMRPhys(config).train()
    shapes = _capture(model, ["rppg_head.fsam.pre_conv_block", "rBr_head.fsam.pre_conv_block"])
    labels = {"bvp": torch.randn(2, 8), "rsp": torch.randn(2, 8)}
    out = model(torch.rand(2, 4, 9, 72, 72), labels)
    assert shapes["rppg_head.fsam.pre_conv_block"] == (2, 8, 8, 11, 11)
    assert shapes["rBr_head.fsam.pre_conv_block"] == (2, 8, 2, 10, 10)
    assert out["bvp"].shape == (2, 8) and out["rsp"].shape == (2, 8)


def small(name="SEF", modality="rgb", frames=8, **kw) -> tuple[MMRPhys, ModelConfig]:
    torch.manual_seed(0)
    config = variant(name, modality=modality, frames=frames, **kw)
    return MMRPhys(config), config


def test_t_frames_equal_t_plus_one_with_last_frame_copied():
    model, _ = small()
    model.eval()
    x = torch.rand(2, 3, 8, 9, 9) * 255
    padded = torch.cat([x, x[:, :, -1:]], dim=2)
    with torch.no_grad():
        a, b = model(x), model(padded)
    for task in ("bvp", "rsp"):
        torch.testing.assert_close(a[task], b[task], rtol=0, atol=0)


def test_front_end_is_diff_then_instance_norm_with_zero_last_frame():
    from mmrphys.model.blocks import front_end

    x = torch.rand(2, 4, 9, 5, 5, dtype=torch.float64)
    x[:, :, -1] = x[:, :, -2]
    d = front_end(x)
    raw = x[:, :, 1:] - x[:, :, :-1]
    mean = raw.mean(dim=(2, 3, 4), keepdim=True)
    var = raw.var(dim=(2, 3, 4), keepdim=True, unbiased=False)
    torch.testing.assert_close(d, (raw - mean) / torch.sqrt(var + 1e-5))
    torch.testing.assert_close(d[:, :, -1], ((0 - mean) / torch.sqrt(var + 1e-5))[:, :, 0].expand_as(d[:, :, -1]))


def test_per_task_fusion_routes_rgb_to_bvp_and_thermal_to_rsp():
    model, _ = small("SNF", "rgbt")
    model.eval()
    x = torch.rand(1, 4, 9, 9, 9)
    changed_thermal = x.clone()
    changed_thermal[:, 3] = torch.rand(1, 9, 9, 9)
    with torch.no_grad():
        a, b = model(x), model(changed_thermal)
    torch.testing.assert_close(a["bvp"], b["bvp"], rtol=0, atol=0)
    assert not torch.allclose(a["rsp"], b["rsp"])


def test_early_fusion_feeds_all_channels_to_both_branches():
    model, _ = small("SEF", "rgbt")
    model.eval()
    x = torch.rand(1, 4, 9, 9, 9)
    changed = x.clone()
    changed[:, 3] = torch.rand(1, 9, 9, 9)
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert not torch.allclose(a["bvp"], b["bvp"]) and not torch.allclose(a["rsp"], b["rsp"])


def labels_for(batch=2, frames=8, dtype=torch.float32):
    t = torch.arange(frames, dtype=dtype)
    bvp = torch.stack([torch.sin(2 * torch.pi * t / 4 + i) for i in range(batch)])
    rsp = torch.stack([torch.cos(2 * torch.pi * t / frames + i) for i in range(batch)])
    return {"bvp": bvp, "rsp": rsp}


def test_tsfm_runs_in_training_only_and_uses_labels():
    model, _ = small(dropout=0.0)
    x = torch.rand(2, 3, 9, 9, 9)
    model.eval()
    with torch.no_grad():
        plain = model(x)
        with torch.no_grad():
            model.rppg_head.fsam.post_conv_block[1].weight.mul_(3.0)
        assert torch.equal(model(x)["bvp"], plain["bvp"])  # eval ignores TSFM weights
    model.train()
    labels = labels_for()
    with torch.no_grad():
        trained = model(x, labels)
        other = model(x, {k: -v for k, v in labels.items()})
    assert not torch.allclose(trained["bvp"], plain["bvp"])
    assert not torch.allclose(trained["bvp"], other["bvp"])
    assert not torch.allclose(trained["rsp"], other["rsp"])


def test_attention_at_inference_runs_fsam_in_eval_mode():
    plain, _ = small(attention="fsam", dropout=0.0)
    active, _ = small(attention="fsam", dropout=0.0, attention_at_inference=True)
    x = torch.rand(1, 3, 9, 9, 9)
    with torch.no_grad():
        a, b = plain.eval()(x), active.eval()(x)
        c = active.train()(x)
    assert not torch.allclose(a["bvp"], b["bvp"])
    torch.testing.assert_close(b["bvp"], c["bvp"])


def test_float64_end_to_end_with_gradients():
    model, _ = small("SNF", "rgbt", dropout=0.0)
    model = model.double().train()
    x = torch.rand(2, 4, 9, 9, 9, dtype=torch.float64)
    out = model(x, labels_for(dtype=torch.float64))
    assert all(v.dtype == torch.float64 for v in out.values())
    (out["bvp"].sum() + out["rsp"].sum()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float64 and torch.isfinite(g).all() for g in grads)
    assert model.rppg_head.fsam.pre_conv_block[0].weight.grad.abs().sum() > 0


def test_integer_clips_are_accepted():
    model, _ = small()
    model.eval()
    x = (torch.rand(1, 3, 9, 9, 9) * 255).to(torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["bvp"], model(x.float())["bvp"])


def test_constant_label_gives_finite_outputs():
    model, _ = small(dropout=0.0)
    model.train()
    labels = {"bvp": torch.zeros(2, 8), "rsp": torch.ones(2, 8)}
    out = model(torch.rand(2, 3, 9, 9, 9), labels)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_variant_names_map_to_configs():
    config = variant("lnf")
    assert (config.resolution, config.fusion, config.modality) == (72, "per_task", "rgbt")
    assert variant("MEF", modality="thermal").resolution == 36
    assert variant("SLF").fusion == "late"
    assert variant_name(variant("SNF")) == "SNF"


# ---- bad input -------------------------------------------------------------------


def test_unknown_variant_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown name 'XEF'.*LEF"):
        variant("XEF")


def test_impossible_variant_modality_pair_is_an_error():
    with pytest.raises(ConfigError, match=r"LNF.*needs modality 'rgbt'.*'rgb'"):
        variant("LNF", modality="rgb")
    with pytest.raises(ConfigError, match="fusion"):
        ModelConfig(fusion="late", modality="thermal")


def test_wrong_channel_count_names_the_expected_value():
    model, _ = small()
    with pytest.raises(InputError, match=r"expected 3 channels for modality 'rgb'.*got 4"):
        model(torch.rand(1, 4, 9, 9, 9))


@pytest.mark.parametrize("frames", [6, 10, 3, 2])
def test_frame_count_the_model_cannot_take(frames):
    model, _ = small()
    with pytest.raises(InputError, match=rf"cannot take {frames} frames.*multiple of 4"):
        model(torch.rand(1, 3, frames, 9, 9))


def test_spatial_size_must_match_resolution():
    model, _ = small()
    with pytest.raises(InputError, match=r"expected 9x9 frames for resolution 9, got 36x36"):
        model(torch.rand(1, 3, 9, 36, 36))


def test_non_5d_input_is_an_error():
    model, _ = small()
    with pytest.raises(InputError, match=r"5-D tensor"):
        model(torch.rand(3, 9, 9, 9))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_input_is_an_error(value):
    model, _ = small()
    x = torch.rand(1, 3, 9, 9, 9)
    x[0, 1, 2, 3, 4] = value
    with pytest.raises(InputError, match=r"1 non-finite"):
        model(x)


def test_tsfm_training_needs_labels():
    model, _ = small()
    model.train()
    x = torch.rand(2, 3, 9, 9, 9)
    with pytest.raises(InputError, match=r"needs labels"):
        model(x)
    with pytest.raises(InputError, match=r"missing 'rsp'"):
        model(x, {"bvp": torch.randn(2, 8)})
    with pytest.raises(InputError, match=r"labels\['bvp'\]: expected shape \(2, 8\), got \(2, 9\)"):
        model(x, {"bvp": torch.randn(2, 9), "rsp": torch.randn(2, 8)})
    bad = labels_for()
    bad["rsp"][0, 0] = float("nan")
    with pytest.raises(InputError, match=r"labels\['rsp'\]: non-finite"):
        model(x, bad)


def test_model_needs_a_model_config():
    with pytest.raises(TypeError, match="ModelConfig"):
        MMRPhys({"resolution": 9})


def _outputs_and_grads(config: ModelConfig, x: torch.Tensor, labels: dict) -> tuple[dict, list, dict]:
    """Training outputs, weight gradients, eval outputs (same seeds: same weights, dropout)."""
    torch.manual_seed(1)
    model = MMRPhys(config).to(x.dtype).train()
    out = model(x, labels)
    sum(o.square().sum() for o in out.values()).backward()
    with torch.no_grad():
        evaluated = model.eval()(x)
    return out, [p.grad for p in model.parameters()], evaluated


@pytest.mark.parametrize("name,modality", [("SNF", "rgbt"), ("LEF", "rgb"), ("MLF", "rgbt"), ("SEF", "thermal")])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_fused_kernels_compute_the_stock_modules_function(name, modality, dtype, tol):
    """Channels-last activations with the fused Tanh+InstanceNorm give the stock modules'
    outputs and weight gradients, in training (TSFM fed labels, dropout) and in eval."""
    stock = variant(name, modality=modality, frames=8, kernels="stock")
    x = torch.rand(2, stock.in_channels, 9, stock.resolution, stock.resolution, dtype=dtype) * 255
    labels = labels_for(dtype=dtype)
    results = [_outputs_and_grads(c, x, labels) for c in (stock, stock.with_overrides(["kernels=fused"]))]
    (plain, plain_grads, plain_eval), (fused, fused_grads, fused_eval) = results
    for task in plain:
        torch.testing.assert_close(fused[task], plain[task], rtol=tol, atol=tol)
        torch.testing.assert_close(fused_eval[task], plain_eval[task], rtol=tol, atol=tol)
    for a, b in zip(fused_grads, plain_grads):
        # relative to each gradient's scale: the loss sums squares over whole outputs
        torch.testing.assert_close(a / b.abs().max(), b / b.abs().max(), rtol=tol, atol=tol)


def test_auto_kernels_fuse_on_cpu_only_in_float32_and_float64():
    from mmrphys.model.blocks import use_fused

    cpu = torch.zeros(1)
    assert use_fused("auto", cpu) and use_fused("auto", cpu.double()) and use_fused("fused", cpu)
    assert not use_fused("stock", cpu) and not use_fused("auto", cpu.bfloat16())
    assert not use_fused("auto", torch.zeros(1, device="meta"))
