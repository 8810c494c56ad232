"""RhythmFormer: parameter counts, state-dict keys and layer shapes of the reference
(docs/rhythmformer.md), MACs, the routing attention and the whole network against a literal
transcription in float64, determinism and BatchNorm in training and eval, configuration
and input errors, frame standardisation, checkpoint import."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict

import numpy as np
import pytest
import rhythmformer_reference as ref
import torch
from torch import nn

from mmrphys.config import ConfigError, ModelConfig, RhythmFormerOptions
from mmrphys.config.rhythmformer import frame_step
from mmrphys.inference import Predictor, chunk_spans
from mmrphys.model import (
    CheckpointError,
    InputError,
    RhythmFormer,
    build_model,
    load_reference_checkpoint,
    rhythmformer_config,
    standardize_frames,
    input_transform,
)
from mmrphys.model.periodic_attention import PeriodicSparseAttention
from mmrphys.model.rhythmformer import check_clip_shape

# ---- the reference's key / shape table (state-dict order, with the unused qkv_linear) ----


def bn(prefix: str, c: int) -> list[tuple[str, tuple]]:
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


def reference_entries(dim: int = 64, depths=(2, 2, 2), t_patches=(2, 4, 8), hidden: int = 96,
                      side: int = 3) -> list[tuple[str, tuple]]:
    out = []
    for name, c_in, k in (("stem11", 3, 5), ("stem12", 12, 5), ("stem21", 64, 3), ("stem22", 64, 3)):
        out += [(f"Fusion_Stem.{name}.0.weight", (64, c_in, k, k)), (f"Fusion_Stem.{name}.0.bias", (64,))]
        out += bn(f"Fusion_Stem.{name}.1", 64)
    out += [("patch_embedding.weight", (dim, 64, 1, 4, 4)), ("patch_embedding.bias", (dim,)),
            ("ConvBlockLast.weight", (1, dim, 1)), ("ConvBlockLast.bias", (1,))]
    for i, (depth, t_patch) in enumerate(zip(depths, t_patches)):
        s = f"stages.{i}"
        n = int(math.log2(t_patch))
        for j in range(n):
            out += bn(f"{s}.downsample_layers.{j}.0", dim)
            out += [(f"{s}.downsample_layers.{j}.1.weight", (dim, dim, 2, 1, 1)), (f"{s}.downsample_layers.{j}.1.bias", (dim,))]
        for j in range(n):
            out += [(f"{s}.upsample_layers.{j}.1.weight", (dim, dim, 3, 1, 1)), (f"{s}.upsample_layers.{j}.1.bias", (dim,))]
            out += bn(f"{s}.upsample_layers.{j}.2", dim)
        for j in range(depth):
            b = f"{s}.blocks.{j}"
            out += bn(f"{b}.norm1", dim)
            out += [(f"{b}.attn.lepe.weight", (dim, 1, side, side, side)), (f"{b}.attn.lepe.bias", (dim,)),
                    (f"{b}.attn.qkv_linear.weight", (3 * dim, dim, 1, 1, 1)), (f"{b}.attn.qkv_linear.bias", (3 * dim,)),
                    (f"{b}.attn.output_linear.weight", (dim, dim, 1, 1, 1)), (f"{b}.attn.output_linear.bias", (dim,)),
                    (f"{b}.attn.proj_q.0.conv.weight", (dim, dim, 3, 3, 3))]
            out += bn(f"{b}.attn.proj_q.1", dim)
            out += [(f"{b}.attn.proj_k.0.conv.weight", (dim, dim, 3, 3, 3))]
            out += bn(f"{b}.attn.proj_k.1", dim)
            out += [(f"{b}.attn.proj_v.0.weight", (dim, dim, 1, 1, 1))]
            out += bn(f"{b}.norm2", dim)
            out += [(f"{b}.mlp.0.weight", (hidden, dim, 1, 1, 1)), (f"{b}.mlp.0.bias", (hidden,))]
            out += bn(f"{b}.mlp.1", hidden)
            out += [(f"{b}.mlp.3.weight", (hidden, hidden, 3, 3, 3)), (f"{b}.mlp.3.bias", (hidden,))]
            out += bn(f"{b}.mlp.4", hidden)
            out += [(f"{b}.mlp.6.weight", (dim, hidden, 1, 1, 1)), (f"{b}.mlp.6.bias", (dim,))]
            out += bn(f"{b}.mlp.7", dim)
    return out


def test_reference_table_has_the_documented_size():
    entries = reference_entries()
    assert len(entries) == 416
    assert sum(math.prod(s) for _, s in entries) == 3_334_267
    starts = [i for i, (k, _) in enumerate(entries) if k.endswith("norm1.weight")]
    assert starts == [46, 96, 174, 224, 316, 366]
    assert [i for i, (k, _) in enumerate(entries) if k.endswith("blocks.0.norm1.weight")] == [46, 174, 316]
    assert entries[32][0] == "stages.0.downsample_layers.0.0.weight" and entries[146][0].startswith("stages.1.")


def test_state_dict_is_the_reference_table_without_qkv_linear():
    model = RhythmFormer(rhythmformer_config())
    expected = [(k, s) for k, s in reference_entries() if ".qkv_linear." not in k]
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_reference():
    model = RhythmFormer(rhythmformer_config())
    unused_qkv = 6 * 12_480
    assert n_params(model) == 3_251_137 and n_params(model) + unused_qkv == 3_326_017
    assert sum(b.numel() for b in model.buffers()) == 8_250
    assert sum(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)) for m in model.modules()) == 58
    assert n_params(model.Fusion_Stem) == 98_496
    assert [n_params(getattr(model.Fusion_Stem, s)) for s in ("stem11", "stem12", "stem21", "stem22")] == [4_992, 19_392, 37_056, 37_056]
    assert n_params(model.patch_embedding) == 65_600 and n_params(model.ConvBlockLast) == 65
    # per stage, with the reference's two unused qkv convs (12,480 each) added back
    assert [n_params(s) + 2 * 12_480 for s in model.stages] == [1_033_088, 1_053_952, 1_074_816]
    block = model.stages[0].blocks[0]
    assert n_params(block.attn) + 12_480 == 243_968 and n_params(block.mlp) == 261_888
    assert n_params(block.norm1) + n_params(block.norm2) == 256
    assert [n_params(p) for p in (block.attn.proj_q, block.attn.proj_v, block.attn.lepe, block.attn.output_linear)] == [
        110_720, 4_096, 1_792, 4_160]


def test_every_norm_is_batchnorm_with_default_settings():
    model = RhythmFormer(rhythmformer_config())
    assert not any(isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.Linear, nn.Dropout)) for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(m.eps == 1e-5 and m.momentum == 0.1 and m.affine and m.track_running_stats for m in norms)


# ---- shapes (on the meta device: no arithmetic) -------------------------------------------


def meta_model(config: ModelConfig) -> RhythmFormer:
    return RhythmFormer(config).to("meta")


def capture(model: nn.Module, names: list[str]) -> dict[str, list[tuple]]:
    shapes: dict[str, list[tuple]] = {n: [] for n in names}
    for name in names:
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: shapes[name].append(tuple(o.shape)))
    return shapes


def test_layer_shapes_at_128_match_the_reference():
    model = meta_model(rhythmformer_config())
    names = ["Fusion_Stem.stem11", "Fusion_Stem.stem12", "Fusion_Stem.stem21", "Fusion_Stem.stem22", "Fusion_Stem",
             "patch_embedding"]
    for i, n in enumerate((1, 2, 3)):
        names += [f"stages.{i}.downsample_layers.{j}" for j in range(n)]
        names += [f"stages.{i}.blocks.{j}" for j in range(2)]
        names += [f"stages.{i}.upsample_layers.{j}" for j in range(n)]
    shapes = capture(model, names)
    out = model.signal(torch.empty(1, 3, 160, 128, 128, device="meta"))
    for stem in names[:5]:
        assert shapes[stem] == [(160, 64, 32, 32)]
    assert shapes["patch_embedding"] == [(1, 64, 160, 8, 8)]
    down = {0: [80], 1: [80, 40], 2: [80, 40, 20]}
    for i in range(3):
        assert [shapes[f"stages.{i}.downsample_layers.{j}"][0] for j in range(i + 1)] == [(1, 64, t, 8, 8) for t in down[i]]
        assert shapes[f"stages.{i}.blocks.0"] == shapes[f"stages.{i}.blocks.1"] == [(1, 64, down[i][-1], 8, 8)]
        ups = [shapes[f"stages.{i}.upsample_layers.{j}"][0][2] for j in range(i + 1)]
        assert ups == down[i][::-1][1:] + [160]
    assert out.shape == (1, 160)


@pytest.mark.parametrize("size,frames,t_out", [(128, 100, 96), (128, 181, 176), (64, 900, 896), (64, 24, 24),
                                               (72, 32, 32), (96, 32, 32), (256, 25, 24)])
def test_output_length_is_eight_floor_t_over_eight(size, frames, t_out):
    config = rhythmformer_config(resolution=size, frames=160)
    model = meta_model(config)
    assert check_clip_shape((2, 3, frames, size, size), config) == t_out
    assert model.signal(torch.empty(2, 3, frames, size, size, device="meta")).shape == (2, t_out)


@pytest.mark.parametrize("size,tokens,region,grid", [(64, 4, 1, 4), (72, 4, 1, 4), (96, 6, 1, 6), (128, 8, 2, 4), (192, 12, 3, 4)])
def test_region_partition_per_frame_size(size, tokens, region, grid):
    model = meta_model(rhythmformer_config(resolution=size, frames=32))
    attn = model.stages[0].blocks[0].attn
    seen = []
    attn.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), m.region_size(tuple(i[0].shape[2:])))))
    model.signal(torch.empty(1, 3, 32, size, size, device="meta"))
    (shape, (rt, rh, rw)), = seen
    assert shape[3:] == (tokens, tokens) and (rt, rh, rw) == (2, region, region) and tokens // region == grid


def conv_macs(model: nn.Module, clip: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates of every nn conv, summed per top-level part (forward hooks)."""
    totals: dict[str, int] = {}

    def hook(module, inputs, output, part):
        kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
        totals[part] = totals.get(part, 0) + output.numel() * kernel

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            part = ".".join(name.split(".")[:2]) if name.startswith("stages") else name.split(".")[0]
            module.register_forward_hook(lambda m, i, o, part=part: hook(m, i, o, part))
    model.signal(clip)
    return totals


def test_macs_match_the_reference_measurement():
    frames = 160
    model = meta_model(rhythmformer_config())
    macs = conv_macs(model, torch.empty(1, 3, frames, 128, 128, device="meta"))
    per_frame = {k: v / frames / 1e6 for k, v in macs.items()}
    assert sum(macs.values()) / 1e9 == pytest.approx(38.01, abs=0.005)
    for part, expected in [("Fusion_Stem", 173.80), ("patch_embedding", 4.19), ("stages.0", 32.55),
                           ("stages.1", 17.32), ("stages.2", 9.71)]:
        assert per_frame[part] == pytest.approx(expected, abs=0.005)
    # the functional parts, from each stage's region layout: CDC side convs, routing, attention
    from mmrphys.config.rhythmformer import stage_geometry

    cdc = routing = attention = 0
    for stage in stage_geometry(frames, 128, RhythmFormerOptions()):
        tokens = stage.frames * 8 * 8
        per_region = math.prod(stage.region)
        cdc += 2 * 2 * tokens * 64 * 64
        routing += 2 * stage.regions**2 * 64
        attention += 2 * 2 * stage.regions * per_region * 40 * per_region * 64
    assert (cdc / frames / 1e6, routing / frames / 1e6, attention / frames / 1e6) == pytest.approx((0.92, 0.74, 3.60), abs=0.005)
    assert (sum(macs.values()) + cdc + routing + attention) / frames / 1e6 == pytest.approx(242.84, abs=0.01)


# ---- the attention and the whole network against the literal transcription ----------------


def randomise_batchnorm(module: nn.Module, seed: int) -> None:
    """Non-trivial affine weights and running statistics, so eval mode is tested too."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g, dtype=m.weight.dtype))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g, dtype=m.running_mean.dtype))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g, dtype=m.running_var.dtype))


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape,region_length,spatial,heads,topk,theta", [
    ((2, 32, 8, 4, 4), 2, 2, 2, 5, 0.2),
    ((1, 48, 6, 6, 6), 1, 3, 3, 20, 0.2),
    ((2, 16, 4, 4, 4), 1, 4, 1, 7, 0.0),
])
def test_routing_attention_matches_the_literal_transcription(training, shape, region_length, spatial, heads, topk, theta):
    torch.manual_seed(3)
    dim = shape[1]
    attn = PeriodicSparseAttention(dim, heads, topk, region_length, spatial, 3, theta).double()
    randomise_batchnorm(attn, 4)
    attn.train(training)
    x = torch.randn(shape, dtype=torch.float64)
    sd = prefixed(attn.state_dict(), "a.")
    want, routing = ref.attention(x, sd, "a.", topk=topk, heads=heads, region_length=region_length,
                                  spatial_regions=spatial, theta=theta, training=training)
    got = attn(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
    q = attn.proj_q(x)
    k = attn.proj_k(x)
    index = attn.route(q, k, attn.region_size(tuple(shape[2:])))
    assert [[sorted(r) for r in batch] for batch in index.tolist()] == routing


def small_options(**kw) -> RhythmFormerOptions:
    settings = {"embed_dim": 32, "depths": (1, 1, 1), "topk": (12, 12, 12)}
    settings.update(kw)
    return RhythmFormerOptions(**settings)


def small_model(frames: int = 32, size: int = 64, seed: int = 0, **kw) -> RhythmFormer:
    torch.manual_seed(seed)
    return RhythmFormer(rhythmformer_config(resolution=size, frames=frames, rhythmformer=small_options(**kw)))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("frames,depths,head_dim", [(32, (1, 1, 1), 16), (28, (2, 1, 1), 8)])
def test_network_matches_the_literal_transcription(training, frames, depths, head_dim):
    model = small_model(frames, depths=depths, head_dim=head_dim).double()
    randomise_batchnorm(model, 5)
    model.train(training)
    clip = torch.randn(2, 3, frames, 64, 64, dtype=torch.float64)
    want, _ = ref.network(clip.transpose(1, 2), model.state_dict(), depths=depths, t_patches=(2, 4, 8),
                          topk=(12, 12, 12), head_dim=head_dim, training=training)
    got = model(clip)["bvp"]
    assert got.shape == (2, 8 * (frames // 8))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


# ---- determinism and BatchNorm ---------------------------------------------------------------


def test_forward_is_deterministic_in_training_and_eval():
    model = small_model()
    clip = torch.randn(2, 3, 32, 64, 64)
    with torch.no_grad():
        a, b = model.train()(clip)["bvp"], model(clip)["bvp"]
        c, d = model.eval()(clip)["bvp"], model(clip)["bvp"]
    assert torch.equal(a, b) and torch.equal(c, d)
    assert not torch.allclose(a, c)  # batch statistics vs running statistics


def test_training_updates_running_statistics_with_momentum_and_unbiased_variance():
    model = small_model().double()
    clip = torch.randn(2, 3, 32, 64, 64, dtype=torch.float64)
    stem = model.Fusion_Stem.stem11
    conv_out = []
    stem[0].register_forward_hook(lambda m, i, o: conv_out.append(o.detach()))
    model.train()(clip)
    y = conv_out[0]
    mean = y.mean(dim=(0, 2, 3))
    var = y.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(stem[1].running_mean, 0.1 * mean)
    torch.testing.assert_close(stem[1].running_var, 0.9 + 0.1 * var)
    assert int(stem[1].num_batches_tracked) == 1


def test_eval_outputs_are_per_clip_and_training_outputs_couple_the_batch():
    model = small_model().double()
    randomise_batchnorm(model, 6)
    clips = torch.randn(2, 3, 32, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(clips[:1])["bvp"], model(clips)["bvp"][:1], rtol=0, atol=1e-12)
        model.train()
        assert not torch.allclose(model(clips[:1])["bvp"], model(clips)["bvp"][:1])


def test_drop_path_is_off_by_default_and_stochastic_only_in_training():
    model = small_model(drop_path_rate=0.5)
    assert [b.drop_rate for s in model.stages for b in s.blocks] == pytest.approx([0.0, 0.25, 0.5])
    clip = torch.randn(2, 3, 32, 64, 64)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(clip)["bvp"], model(clip)["bvp"])
        model.train()
        torch.manual_seed(1)
        a = model(clip)["bvp"]
        torch.manual_seed(2)
        b = model(clip)["bvp"]
    assert not torch.equal(a, b)
    assert all(b.drop_rate == 0 for s in small_model().stages for b in s.blocks)


def test_labels_are_accepted_and_ignored():
    model = small_model().eval()
    clip = torch.randn(1, 3, 32, 64, 64)
    assert model.needs_labels is False
    with torch.no_grad():
        assert torch.equal(model(clip)["bvp"], model(clip, labels={"bvp": torch.randn(1, 32)})["bvp"])


def test_gradients_reach_every_parameter_in_float64():
    model = small_model().double().train()
    out = model(torch.randn(2, 3, 32, 64, 64, dtype=torch.float64))["bvp"]
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_build_model_builds_rhythmformer():
    model = build_model(rhythmformer_config(resolution=64, frames=32))
    assert isinstance(model, RhythmFormer) and model.training


# ---- configuration and input errors -----------------------------------------------------------


def test_reference_config():
    c = rhythmformer_config()
    assert (c.architecture, c.resolution, c.frames, c.modality, c.tasks, c.attention) == (
        "rhythmformer", 128, 160, "rgb", ("bvp",), "none")
    o = c.rhythmformer
    assert (o.embed_dim, o.depths, o.heads, o.mlp_hidden, o.t_patches, o.topk, o.side_dwconv) == (
        64, (2, 2, 2), 4, 96, (2, 4, 8), (40, 40, 40), 3)
    loaded = ModelConfig.from_dict(c.to_dict())
    assert loaded == c
    assert c.with_overrides(["rhythmformer.topk=[20, 20, 20]"]).rhythmformer.topk == (20, 20, 20)


@pytest.mark.parametrize("change,message", [
    ({"modality": "rgbt"}, r"ModelConfig.modality: architecture 'rhythmformer' does not support 'rgbt'; allowed: \['rgb'\]"),
    ({"modality": "thermal"}, r"ModelConfig.modality: .*'thermal'; allowed: \['rgb'\]"),
    ({"tasks": ("bvp", "rsp")}, r"ModelConfig.tasks: .*\['bvp', 'rsp'\]; allowed: \['bvp'\]"),
    ({"tasks": ("rsp",)}, r"ModelConfig.tasks: .*\['rsp'\]; allowed: \['bvp'\]"),
    ({"fusion": "late", "modality": "rgbt"}, r"ModelConfig.modality|ModelConfig.fusion"),
    ({"fusion": "per_task"}, r"ModelConfig.fusion: .*'per_task'; allowed: \['early'\]"),
    ({"attention": "tsfm"}, r"ModelConfig.attention: .*'tsfm'; allowed: \['none'\]"),
    ({"resolution": 48}, r"ModelConfig.resolution: 48 is not one of \[128, 64, 72, 96, 160, 192, 256\] for architecture 'rhythmformer'"),
    ({"resolution": 9}, r"ModelConfig.resolution: 9 is not one of \[128, 64"),
    ({"frames": 16}, r"ModelConfig.frames: RhythmFormer cannot take 16 frames at 128x128: stage 2 has 32 regions, fewer than its top-k 40; allowed: e.g. \[24, 28, 32\]"),
    ({"frames": 102}, r"ModelConfig.frames: must be a positive multiple of 4, got 102"),
    ({"resolution": 64, "rhythmformer": RhythmFormerOptions(spatial_regions=5)}, r"ModelConfig.resolution: RhythmFormer cannot take 64x64 frames: 64 pixels give 4 tokens per side, fewer than spatial_regions 5"),
    ({"rhythmformer": RhythmFormerOptions(region_frames=8), "frames": 28}, r"stage 0 down-samples 28 frames to 14, not a positive multiple of its region length 4"),
])
def test_impossible_rhythmformer_configs_name_the_allowed_values(change, message):
    with pytest.raises(ConfigError, match=message):
        rhythmformer_config(**change)


@pytest.mark.parametrize("options,message", [
    ({"embed_dim": 40}, r"RhythmFormerOptions.head_dim: embed_dim 40 is not divisible by head_dim 16"),
    ({"t_patches": (2, 3, 8)}, r"RhythmFormerOptions.t_patches: each must be a power of two"),
    ({"topk": (40, 40)}, r"RhythmFormerOptions.topk: one entry per stage \(3 stages in depths\)"),
    ({"depths": (2, 0, 2)}, r"RhythmFormerOptions.depths: every stage needs >= 1 block"),
    ({"side_dwconv": 4}, r"RhythmFormerOptions.side_dwconv: must be odd"),
    ({"drop_path_rate": 1.0}, r"RhythmFormerOptions.drop_path_rate: must be in \[0, 1\)"),
    ({"topk": (0, 40, 40)}, r"RhythmFormerOptions.topk: must be >= 1"),
])
def test_bad_options_name_the_field(options, message):
    with pytest.raises(ConfigError, match=message):
        RhythmFormerOptions(**options)


def test_override_errors_name_the_nested_field():
    with pytest.raises(ConfigError, match=r"rhythmformer.*unknown field|rhythmformer.topkk"):
        rhythmformer_config().with_overrides(["rhythmformer.topkk=[1]"])


def test_rhythmformer_options_on_another_architecture_are_an_error():
    with pytest.raises(ConfigError, match=r"ModelConfig.rhythmformer: options of architecture 'rhythmformer' are set, but architecture is 'mmrphys'"):
        ModelConfig(rhythmformer=RhythmFormerOptions(topk=(8, 8, 8)))
    assert ModelConfig(rhythmformer=RhythmFormerOptions()) == ModelConfig()


def test_model_needs_a_rhythmformer_config():
    with pytest.raises(TypeError, match="architecture 'rhythmformer'"):
        RhythmFormer(ModelConfig())


@pytest.mark.parametrize("shape,message", [
    ((1, 4, 32, 64, 64), r"expected 3 channels for modality 'rgb' \(RGB\), got 4"),
    ((1, 3, 32, 72, 72), r"expected 64x64 frames for resolution 64, got 72x72"),
    ((1, 3, 34, 64, 64), r"RhythmFormer cannot take 34 frames: stage 0 down-samples 34 frames to 17, not a positive multiple of its region length 2; expected e.g. \[24, 28, 32\] or 32 frames"),
    ((1, 3, 20, 64, 64), r"RhythmFormer cannot take 20 frames: stage 2 has 32 regions, fewer than its top-k 40"),
    ((3, 32, 64, 64), r"expected a 5-D tensor \(B, C, T, H, W\), got \(3, 32, 64, 64\)"),
])
def test_bad_clips_get_clear_errors(shape, message):
    model = RhythmFormer(rhythmformer_config(resolution=64, frames=32))
    with pytest.raises(InputError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_clips_are_an_error(value):
    model = small_model()
    clip = torch.zeros(1, 3, 32, 64, 64)
    clip[0, 1, 2, 3, 4] = value
    with pytest.raises(InputError, match=r"1 non-finite"):
        model(clip)


# ---- frame standardisation ------------------------------------------------------------------


def test_standardize_frames_is_one_z_score_per_clip():
    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 255, (3, 3, 8, 5, 5)).astype(np.float32)
    clips[2] = 7.0
    out = standardize_frames(clips)
    assert out.dtype == np.float32 and out.shape == clips.shape
    for b in range(2):
        values = clips[b].astype(np.float64)
        np.testing.assert_allclose(out[b], (values - values.mean()) / values.std(), rtol=1e-6, atol=1e-6)
    assert np.array_equal(out[2], np.zeros_like(out[2]))


def test_standardized_clips_make_the_model_blind_to_brightness_and_gain():
    model = small_model().eval()
    clip = np.random.default_rng(1).uniform(50, 200, (1, 3, 32, 64, 64))
    with torch.no_grad():
        a = model(torch.from_numpy(standardize_frames(clip)))["bvp"]
        b = model(torch.from_numpy(standardize_frames(1.7 * clip + 20)))["bvp"]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_standardize_frames_rejects_bad_input():
    with pytest.raises(ValueError, match=r"expected clips \(B, C, T, H, W\)"):
        standardize_frames(np.zeros((3, 8, 5, 5)))
    bad = np.zeros((1, 3, 4, 2, 2))
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        standardize_frames(bad)


def test_input_transform_standardizes_only_for_architectures_that_expect_it():
    clips = np.random.default_rng(2).uniform(0, 255, (2, 3, 32, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(input_transform(clips, rhythmformer_config(resolution=64, frames=32)),
                                  standardize_frames(clips))
    assert input_transform(clips, ModelConfig(resolution=9)) is clips


# ---- reference checkpoints ----------------------------------------------------------------------


def reference_state_dict(model: RhythmFormer, seed: int = 0) -> OrderedDict:
    """The model's weights under the reference's keys, DataParallel prefix and qkv_linear included."""
    own = model.state_dict()
    g = torch.Generator().manual_seed(seed)
    dim = model.config.rhythmformer.embed_dim
    hidden = model.config.rhythmformer.mlp_hidden
    options = model.config.rhythmformer
    state = OrderedDict()
    for key, shape in reference_entries(dim, options.depths, options.t_patches, hidden, options.side_dwconv):
        state["module." + key] = own[key].clone() if key in own else torch.randn(shape, generator=g)
        assert tuple(state["module." + key].shape) == shape
    return state


def test_reference_checkpoint_loads_with_options_inferred(tmp_path, caplog):
    model = small_model(depths=(2, 1, 1), side_dwconv=5, mlp_ratio=2.0)
    randomise_batchnorm(model, 7)
    path = tmp_path / "UBFC-rPPG_RhythmFormer.pth"
    torch.save(reference_state_dict(model), path)
    with caplog.at_level(logging.INFO, logger="mmrphys.model.checkpoint"):
        loaded = load_reference_checkpoint(path, resolution=64, frames=32,
                                           rhythmformer=RhythmFormerOptions(topk=(12, 12, 12)))
    assert "skipping 8 unused attn.qkv_linear entries (12672 values)" in caplog.text
    assert isinstance(loaded, RhythmFormer) and not loaded.training
    o = loaded.config.rhythmformer
    assert (o.embed_dim, o.depths, o.t_patches, o.mlp_hidden, o.side_dwconv, o.topk) == (32, (2, 1, 1), (2, 4, 8), 64, 5, (12, 12, 12))
    clip = torch.randn(1, 3, 32, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip)["bvp"], model.eval()(clip)["bvp"], rtol=0, atol=0)


def test_reference_table_checkpoint_at_default_options_loads(tmp_path):
    g = torch.Generator().manual_seed(1)
    state = OrderedDict(
        (k, torch.randn(s, generator=g) if s else torch.tensor(3)) for k, s in reference_entries()
    )
    torch.save(state, tmp_path / "PURE_RhythmFormer.pth")
    loaded = load_reference_checkpoint(tmp_path / "PURE_RhythmFormer.pth")
    assert loaded.config == rhythmformer_config()
    assert torch.equal(loaded.state_dict()["stages.2.blocks.1.mlp.3.weight"], state["stages.2.blocks.1.mlp.3.weight"])


def test_reference_checkpoint_problems_are_named(tmp_path):
    model = small_model()
    state = reference_state_dict(model)
    broken = OrderedDict(state)
    broken["module.stages.1.blocks.0.attn.proj_v.0.weight"] = torch.zeros(32, 32, 3, 1, 1)
    torch.save(broken, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"stages.1.blocks.0.attn.proj_v.0.weight: \(32, 32, 3, 1, 1\) vs model"):
        load_reference_checkpoint(tmp_path / "shape.pth", resolution=64, frames=32,
                                  rhythmformer=RhythmFormerOptions(topk=(12, 12, 12)))
    missing = OrderedDict((k, v) for k, v in state.items() if "mlp.0" not in k)
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing.pth: not a RhythmFormer state dict: missing stages.0.blocks.0.mlp.0.weight"):
        load_reference_checkpoint(tmp_path / "missing.pth", resolution=64, frames=32)
    extra = OrderedDict(state)
    extra["module.stages.0.blocks.0.attn.extra"] = torch.zeros(1)
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['stages.0.blocks.0.attn.extra'\]"):
        load_reference_checkpoint(tmp_path / "extra.pth", resolution=64, frames=32,
                                  rhythmformer=RhythmFormerOptions(topk=(12, 12, 12)))
    with pytest.raises(CheckpointError, match=r"ModelConfig.frames: RhythmFormer cannot take 16 frames"):
        load_reference_checkpoint(tmp_path / "extra.pth", resolution=64, frames=16)


def test_export_frame_step_is_four_with_the_defaults():
    assert frame_step(128, RhythmFormerOptions()) == 4
    assert frame_step(64, RhythmFormerOptions(region_frames=8)) == 8


def test_whole_video_prediction_covers_every_frame_with_a_shorter_output():
    # 36 frames in, 32 samples out: chunks must start every 32 frames, or frames 32-35
    # of every chunk would have no prediction (the compare run on 180-frame shards failed so)
    model = small_model(frames=36).eval()
    predictor = Predictor(model, model.config, batch_size=2)
    video = np.random.default_rng(0).random((3, 100, 64, 64), dtype=np.float32)
    assert chunk_spans(100, 36, model.config.output_frames(36)) == [(0, 36), (32, 68), (64, 100)]
    waveform = predictor.predict_video(video)["bvp"]
    assert waveform.shape == (100,) and np.isfinite(waveform).all()
    chunks = predictor.predict_clips(input_transform(np.stack([video[:, s:e] for s, e in ((0, 36), (32, 68), (64, 100))]),
                                                     model.config))["bvp"]
    np.testing.assert_array_equal(waveform[:32], chunks[0])
    np.testing.assert_array_equal(waveform[32:64], chunks[1])
    np.testing.assert_array_equal(waveform[64:96], chunks[2])
    # the last 4 frames no chunk returns hold the last predicted sample
    np.testing.assert_array_equal(waveform[96:], np.full(4, chunks[2][-1]))


def test_chunk_evaluation_cuts_each_label_to_its_prediction():
    # the Ray Data actor of `mmrphys evaluate`: 36-frame shard chunks, 32 predicted samples;
    # labels are compared sample by sample, as validation compares them
    from pipelines.serve.actors import LABEL_PREFIX, PRED_PREFIX, ChunkPredictor, model_kwargs

    model = small_model(frames=36)
    actor = ChunkPredictor(**model_kwargs(model, model.config))
    rng = np.random.default_rng(0)
    labels = rng.standard_normal((2, 36)).astype(np.float32)
    out = actor({"video": rng.random((2, 3, 36, 64, 64), dtype=np.float32), "bvp": labels,
                 "recording_id": np.array(["a", "a"]), "chunk_index": np.array([0, 1]), "fps": np.array([30.0, 30.0])})
    assert out[PRED_PREFIX + "bvp"].shape == (2, 32)
    np.testing.assert_array_equal(out[LABEL_PREFIX + "bvp"], labels[:, :32])
