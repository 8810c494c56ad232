"""RhythmFormer: a fusion stem, a patch embedding and temporal-periodic transformer stages
with periodic sparse (bi-level routing) attention, for the BVP from RGB video.

`RhythmFormer(config)` builds the network a `ModelConfig` with architecture
`rhythmformer` describes (options in `config.rhythmformer`), with the reference's module
names so that its state dicts load strictly (without the reference's unused
`qkv_linear`). It takes clips (B, 3, T, H, W) like every architecture here and returns
{"bvp": (B, 8 * floor(T / 8))}; the reference's (B, T, C, H, W) layout is a permutation
inside `forward`. It expects frames standardised per clip
(`mmrphys.model.input_transforms.standardize_frames`), applied before the network, as the
reference's data loader does. docs/rhythmformer.md describes every layer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from mmrphys.config import ModelConfig, RhythmFormerOptions
from mmrphys.config.rhythmformer import (
    PATCH_STRIDE,
    STEM_CHANNELS,
    frame_examples,
    frames_problem,
    output_length,
    region_length,
)
from mmrphys.model.network import InputError
from mmrphys.model.periodic_attention import PeriodicSparseAttention

#: the stem's constant branch weights (the reference's `apha`, `belta`; not learnable)
STEM_MIX = 0.5


def rhythmformer_config(**overrides: Any) -> ModelConfig:
    """The reference RhythmFormer's ModelConfig (128x128 RGB, 160 frames, BVP), with overrides."""
    settings: dict[str, Any] = {
        "architecture": "rhythmformer", "resolution": 128, "frames": 160, "modality": "rgb",
        "tasks": ("bvp",), "fusion": "early", "attention": "none",
    }
    settings.update(overrides)
    return ModelConfig(**settings)


def check_clip_shape(shape: tuple[int, ...], config: ModelConfig) -> int:
    """Check a 5-D clip shape (B, C, T, H, W) against `config`; return the output length.

    Shared by the PyTorch model and the ONNX runner, so both reject the same clips.
    """
    _, channels, frames, height, width = shape
    if channels != 3:
        raise InputError(f"input clip: expected 3 channels for modality 'rgb' (RGB), got {channels}")
    if (height, width) != (config.resolution, config.resolution):
        raise InputError(
            f"input clip: expected {config.resolution}x{config.resolution} frames for resolution "
            f"{config.resolution}, got {height}x{width}"
        )
    problem = frames_problem(frames, config.resolution, config.rhythmformer)
    if problem:
        raise InputError(
            f"input clip: RhythmFormer cannot take {frames} frames: {problem}; expected e.g. "
            f"{frame_examples(config.resolution, config.rhythmformer)} or {config.frames} frames "
            "(it returns 8 * floor(T / 8) samples with the default stages)"
        )
    return output_length(frames, config.rhythmformer)


def conv_bn_relu_2d(c_in: int, c_out: int, kernel: int, stride: int, pool: bool) -> nn.Sequential:
    """Conv2d -> BatchNorm2d -> ReLU [-> MaxPool2d k3 s2 p1], 'same'-style padding."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*layers)


def temporal_differences(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, 4C, H, W): x[t-1]-x[t-2], x[t]-x[t-1], x[t+1]-x[t],
    x[t+2]-x[t+1], with the clip's first and last frames repeated past its ends."""
    padded = torch.cat([x[:, :1], x[:, :1], x, x[:, -1:], x[:, -1:]], dim=1)
    steps = padded[:, 1:] - padded[:, :-1]  # steps[s] = padded[s+1] - padded[s]
    t = x.shape[1]
    return torch.cat([steps[:, i:i + t] for i in range(4)], dim=2)


class FusionStem(nn.Module):
    """Frame-by-frame 2-D stem over the raw frame and four temporal differences.

    (B, T, 3, H, W) -> (B*T, 64, H/4, W/4); BatchNorm statistics in training span every
    frame of every clip of the batch.
    """

    def __init__(self):
        super().__init__()
        self.stem11 = conv_bn_relu_2d(3, STEM_CHANNELS, 5, 2, pool=True)
        self.stem12 = conv_bn_relu_2d(12, STEM_CHANNELS, 5, 2, pool=True)
        self.stem21 = conv_bn_relu_2d(STEM_CHANNELS, STEM_CHANNELS, 3, 1, pool=False)
        self.stem22 = conv_bn_relu_2d(STEM_CHANNELS, STEM_CHANNELS, 3, 1, pool=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        raw = self.stem11(x.reshape(b * t, c, h, w))
        diff = self.stem12(temporal_differences(x).reshape(b * t, 4 * c, h, w))
        mixed = self.stem21(STEM_MIX * raw + STEM_MIX * diff)
        return STEM_MIX * mixed + STEM_MIX * self.stem22(diff)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth: zero a residual branch with probability `rate`, scale by 1/keep."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class TPTBlock(nn.Module):
    """Pre-norm residual block: x + Attn(BN(x)), then x + MLP(BN(x)); the MLP is
    1x1x1 -> BN -> GELU -> 3x3x3 -> BN -> GELU -> 1x1x1 -> BN."""

    def __init__(self, dim: int, hidden: int, attention: PeriodicSparseAttention, drop_rate: float):
        super().__init__()
        self.norm1 = nn.BatchNorm3d(dim)
        self.attn = attention
        self.norm2 = nn.BatchNorm3d(dim)
        self.mlp = nn.Sequential(
            nn.Conv3d(dim, hidden, kernel_size=1),
            nn.BatchNorm3d(hidden),
            nn.GELU(),
            nn.Conv3d(hidden, hidden, kernel_size=3, padding=1),
            nn.BatchNorm3d(hidden),
            nn.GELU(),
            nn.Conv3d(hidden, dim, kernel_size=1),
            nn.BatchNorm3d(dim),
        )
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_rate, self.training)


class TPTStage(nn.Module):
    """Temporal halvings (BN -> Conv3d (2,1,1) stride 2) to T / t_patch, the blocks, then as
    many (nearest x2 in time -> Conv3d (3,1,1) -> BN -> ELU) back to the input length."""

    def __init__(self, dim: int, t_patch: int, blocks: list[TPTBlock]):
        super().__init__()
        levels = t_patch.bit_length() - 1
        self.downsample_layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm3d(dim), nn.Conv3d(dim, dim, kernel_size=(2, 1, 1), stride=(2, 1, 1)))
            for _ in range(levels)
        )
        self.upsample_layers = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=(2, 1, 1), mode="nearest"),
                nn.Conv3d(dim, dim, kernel_size=(3, 1, 1), padding=(1, 0, 0)),
                nn.BatchNorm3d(dim),
                nn.ELU(),
            )
            for _ in range(levels)
        )
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.downsample_layers:
            x = layer(x)
        for block in self.blocks:
            x = block(x)
        for layer in self.upsample_layers:
            x = layer(x)
        return x


class RhythmFormer(nn.Module):
    """RhythmFormer built from a ModelConfig (architecture "rhythmformer").

    forward(x, labels=None) -> {"bvp": (B, T_out)}, T_out = 8 * floor(T / 8) with the
    default stages: output sample t belongs to input frame t (compare it with labels[:, :T_out]).
    x: (B, 3, T, H, W) RGB frames standardised per clip, H = W = config.resolution.
    labels are accepted and ignored (no label-constrained part).
    """

    needs_labels = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig) or config.architecture != "rhythmformer":
            got = config.architecture if isinstance(config, ModelConfig) else type(config).__name__
            raise TypeError(f"RhythmFormer needs a ModelConfig with architecture 'rhythmformer', got {got!r}")
        self.config = config
        options = config.rhythmformer
        dim = options.embed_dim
        # registration order = the reference's state-dict order (the head before the stages)
        self.Fusion_Stem = FusionStem()
        self.patch_embedding = nn.Conv3d(
            STEM_CHANNELS, dim, kernel_size=(1, PATCH_STRIDE, PATCH_STRIDE), stride=(1, PATCH_STRIDE, PATCH_STRIDE)
        )
        self.ConvBlockLast = nn.Conv1d(dim, 1, kernel_size=1)
        rates = torch.linspace(0, options.drop_path_rate, sum(options.depths)).tolist()
        stages = []
        for i, (depth, t_patch, topk) in enumerate(zip(options.depths, options.t_patches, options.topk)):
            first = sum(options.depths[:i])
            blocks = [
                TPTBlock(
                    dim,
                    options.mlp_hidden,
                    PeriodicSparseAttention(
                        dim, options.heads, topk, region_length(t_patch, options), options.spatial_regions,
                        options.side_dwconv, options.cdc_theta,
                    ),
                    rates[first + j],
                )
                for j in range(depth)
            ]
            stages.append(TPTStage(dim, t_patch, blocks))
        self.stages = nn.ModuleList(stages)

    def check_input(self, x: torch.Tensor) -> int:
        """Validate a clip; return the output length."""
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"input clip: expected a 5-D tensor (B, C, T, H, W), got {shape}")
        t_out = check_clip_shape(tuple(x.shape), self.config)
        if not torch.compiler.is_compiling() and x.is_floating_point() and not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise InputError(f"input clip: {bad} non-finite values (NaN or inf); expected finite frame values")
        return t_out

    def forward(self, x: torch.Tensor, labels: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        self.check_input(x)
        return {"bvp": self.signal(x.to(dtype=self.patch_embedding.weight.dtype))}

    def signal(self, x: torch.Tensor) -> torch.Tensor:
        """The unchecked network: (B, 3, T, H, W) -> (B, T_out) (what ONNX export traces)."""
        b, _, t = x.shape[:3]
        features = self.Fusion_Stem(x.transpose(1, 2))
        features = features.reshape(b, t, STEM_CHANNELS, *features.shape[-2:]).transpose(1, 2)
        features = self.patch_embedding(features)
        for stage in self.stages:
            features = stage(features)
        pooled = features.mean(dim=3).mean(dim=3)
        return self.ConvBlockLast(pooled).squeeze(1)


def options_from_state_dict(state: dict[str, torch.Tensor], base: RhythmFormerOptions) -> RhythmFormerOptions:
    """The layer options a RhythmFormer state dict (reference key names, no `module.`) was
    built with: width, stages, depths, t_patches, MLP ratio and LCE kernel from its keys
    and shapes; the options weights do not show (top-k, heads, regions, theta) from `base`.
    Raises ValueError naming a missing or inconsistent entry.
    """

    def entry(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"not a RhythmFormer state dict: missing {key}")
        return state[key]

    def count(pattern: str) -> int:
        n = 0
        while pattern.format(n) in state:
            n += 1
        return n

    dim = int(entry("patch_embedding.weight").shape[0])
    stages = count("stages.{}.blocks.0.norm1.weight")
    if stages == 0:
        raise ValueError("not a RhythmFormer state dict: no stages.<i>.blocks.0.* entries")
    depths = tuple(count(f"stages.{i}.blocks.{{}}.norm1.weight") for i in range(stages))
    t_patches = tuple(2 ** count(f"stages.{i}.downsample_layers.{{}}.1.weight") for i in range(stages))
    hidden = int(entry("stages.0.blocks.0.mlp.0.weight").shape[0])
    mlp_ratio = hidden / dim
    if int(mlp_ratio * dim) != hidden:
        raise ValueError(f"MLP width {hidden} is not int(ratio x {dim}) for any ratio this config can hold")
    side = int(entry("stages.0.blocks.0.attn.lepe.weight").shape[-1])
    topk = base.topk if len(base.topk) == stages else (base.topk[0],) * stages
    return dataclasses.replace(
        base, embed_dim=dim, depths=depths, t_patches=t_patches, mlp_ratio=mlp_ratio, side_dwconv=side, topk=topk
    )
