"""Small building blocks of MMRPhys: the conv block, the front end and the conv stacks.

Module attribute names follow the reference implementation's state-dict keys
(`conv_block_3d.0.weight`, ...), so its checkpoints load with `strict=True`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmrphys.config import Kernels
from mmrphys.model.fused_norm import instance_norm, is_channels_last, tanh_instance_norm

Triple = tuple[int, int, int]

#: eps of every instance norm in the reference (PyTorch's default)
NORM_EPS = 1e-5


def use_fused(kernels: Kernels, x: torch.Tensor) -> bool:
    """Whether to run channels-last activations with the fused Tanh+InstanceNorm for x.

    `auto` fuses on CPU only: the only device where the gain was measured (BENCHMARKS.md
    "Model speed"). Never under autocast's low-precision dtypes (the stock norm keeps its
    statistics in float32 there) nor while torch.export / torch.compile trace the model.
    """
    if kernels == "stock" or x.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling():
        return False
    return kernels == "fused" or x.device.type == "cpu"


class ConvBlock3D(nn.Module):
    """Conv3d 3x3x3 without bias -> Tanh -> InstanceNorm3d (no affine, no running stats).

    `kernels` picks how the Tanh+InstanceNorm tail runs (same function either way; see
    `use_fused`); MMRPhys sets it from its ModelConfig. `kernel` is 3x3x3 everywhere but in
    FactorizePhys Big's (3, 4, 4) final block (docs/factorizephys.md, "Layers").
    """

    def __init__(
        self, c_in: int, c_out: int, stride: Triple | int = 1, padding: Triple | int = 0, kernel: Triple | int = 3
    ):
        super().__init__()
        self.kernels: Kernels = "auto"
        self.conv_block_3d = nn.Sequential(
            nn.Conv3d(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding, bias=False),
            nn.Tanh(),
            nn.InstanceNorm3d(c_out, eps=NORM_EPS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, tanh, norm = self.conv_block_3d
        z = conv(x)
        if use_fused(self.kernels, z):
            return tanh_instance_norm(z, NORM_EPS)
        return norm(tanh(z))


class InstanceNorm3D(nn.InstanceNorm3d):
    """nn.InstanceNorm3d (no affine, no running stats) that keeps channels-last input in
    its layout, through the fused kernel's norm (`mmrphys.model.fused_norm`).

    The fused path is the only one that makes channels-last activations, so the layout
    decides. The stock module's CPU backward on channels-last float32 input and gradient
    loses the per-channel sums' accuracy (`mmrphys.model.fused_norm`), and its forward
    copies to contiguous memory.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_fused("fused", x) and is_channels_last(x):
            return instance_norm(x, self.eps)
        return super().forward(x)


class ConvReLU(nn.Module):
    """1x1x1 Conv3d without bias followed by ReLU (the reference's norm-free "ConvBNReLU")."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def conv_stack(
    layers: Sequence[tuple[int, int, Triple | int, Triple | int] | str], dropout: float
) -> nn.Sequential:
    """Build an nn.Sequential of ConvBlock3D layers and "dropout" markers, in order.

    Dropout markers keep their index in the Sequential, which is why the reference's
    checkpoint keys skip indices (e.g. `bvp_feature_extractor.3` after a dropout at 2).
    """
    modules: list[nn.Module] = []
    for layer in layers:
        if layer == "dropout":
            modules.append(nn.Dropout3d(dropout))
        else:
            c_in, c_out, stride, padding = layer
            modules.append(ConvBlock3D(c_in, c_out, stride, padding))
    return nn.Sequential(*modules)


def temporal_difference(x: torch.Tensor, append_last: bool = False) -> torch.Tensor:
    """Frame differences d[:, :, t] = x[:, :, t+1] - x[:, :, t] of a (B, C, T+1, H, W) clip.

    With `append_last`, x has T frames and a copy of its last frame is taken as appended
    (the reference trainer's padding): the last difference is then exactly zero, written
    directly instead of copying the clip to append a frame.
    """
    if not append_last:
        return x[:, :, 1:] - x[:, :, :-1]
    d = x.new_zeros(x.shape)
    torch.sub(x[:, :, 1:], x[:, :, :-1], out=d[:, :, :-1])
    return d


def front_end(x: torch.Tensor, append_last: bool = False) -> torch.Tensor:
    """The reference's input normalisation: temporal difference, then per-channel
    instance norm over (T, H, W) with biased variance and eps 1e-5.

    The reference keeps separate RGB and thermal norm modules; instance norm is per
    channel, so one call over all channels gives the same numbers.
    """
    return F.instance_norm(temporal_difference(x, append_last), eps=NORM_EPS)
