"""A layer-by-layer summary of an MMRPhys model: output shapes and parameter counts,
recorded with forward hooks on a real input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mmrphys.model.blocks import ConvBlock3D, ConvReLU
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.network import MMRPhys

#: modules summarised as one row (their insides are an implementation detail)
UNITS = (ConvBlock3D, ConvReLU, FeaturesFactorizationModule)


@dataclass(frozen=True)
class LayerRow:
    """One row of the summary; `output` is None for a layer this forward did not run."""

    name: str
    kind: str
    detail: str
    output: tuple[int, ...] | None
    params: int


def _units(model: nn.Module):
    """Named modules to report: UNITS, plus leaf modules outside them."""
    skip: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(prefix + ".") for prefix in skip):
            continue
        if isinstance(module, UNITS):
            skip.append(name)
            yield name, module
        elif not any(True for _ in module.children()) and not isinstance(module, (nn.InstanceNorm3d,)):
            yield name, module


def layer_summary(model: MMRPhys, x: torch.Tensor, labels: dict | None = None) -> list[LayerRow]:
    """Run `model(x, labels)` once without gradient and describe every layer it holds."""
    outputs: dict[str, tuple[int, ...]] = {}
    handles = []
    units = list(_units(model))
    for name, module in units:
        def hook(_m, _i, out, name=name):
            first = out[0] if isinstance(out, tuple) else out
            outputs[name] = tuple(first.shape)
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x, labels)
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerRow(name, type(module).__name__, _detail(module), outputs.get(name), sum(p.numel() for p in module.parameters()))
        for name, module in units
    ]


def _detail(module: nn.Module) -> str:
    """Channels, kernel, stride and padding of a conv layer; the scale of an upsampling."""
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv3d)), None)
    if isinstance(module, FeaturesFactorizationModule):
        kind = "TSFM" if module.constrained else "FSAM"
        return f"{kind} rank {module.rank}, {module.steps} steps"
    if conv is not None:
        k, s, p = ("x".join(map(str, v)) for v in (conv.kernel_size, conv.stride, conv.padding))
        return f"{conv.in_channels}->{conv.out_channels} k{k} s{s} p{p}"
    if isinstance(module, nn.Upsample):
        return f"nearest x{module.scale_factor}"
    if isinstance(module, nn.Dropout3d):
        return f"p={module.p}"
    return ""


def format_summary(rows: list[LayerRow]) -> str:
    """A fixed-width text table of the rows."""
    width = max(len(r.name) for r in rows)
    lines = [f"{'layer':<{width}}  {'type':<27} {'configuration':<29} {'output':<23} {'params':>7}"]
    for row in rows:
        shape = "not run (training only)" if row.output is None else "x".join(map(str, row.output))
        lines.append(f"{row.name:<{width}}  {row.kind:<27} {row.detail:<29} {shape:<23} {row.params:>7,}")
    total = sum(r.params for r in rows)
    lines.append(f"{'total':<{width}}  {'':<27} {'':<29} {'':<23} {total:>7,}")
    return "\n".join(lines)


def synthetic_clip(config, batch: int = 1, seconds_fps: float = 30.0, seed: int = 0) -> torch.Tensor:
    """A raw clip (B, C, T+1, H, W) of a face-like patch with a 72 bpm pulse in the RGB
    skin tone and a 15 breaths/min temperature cycle in the thermal channel, 0-255 range."""
    g = torch.Generator().manual_seed(seed)
    frames, size = config.frames + 1, config.resolution
    t = torch.arange(frames, dtype=torch.float32) / seconds_fps
    pulse = torch.sin(2 * math.pi * 1.2 * t).view(1, 1, frames, 1, 1)
    breath = torch.sin(2 * math.pi * 0.25 * t).view(1, 1, frames, 1, 1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    face = torch.exp(-(xx**2 + yy**2) / 0.6).view(1, 1, 1, size, size)
    skin = torch.tensor([180.0, 130.0, 110.0]).view(1, 3, 1, 1, 1)
    rgb = skin * (0.5 + 0.5 * face) * (1 + 0.01 * pulse * torch.tensor([0.3, 1.0, 0.5]).view(1, 3, 1, 1, 1))
    thermal = 200 * (0.6 + 0.4 * face) + 2.0 * breath * face
    channels = {"rgb": [rgb], "thermal": [thermal], "rgbt": [rgb, thermal]}[config.modality]
    clip = torch.cat(channels, dim=1).expand(batch, -1, -1, -1, -1)
    return (clip + torch.randn(clip.shape, generator=g)).clamp(0, 255)
