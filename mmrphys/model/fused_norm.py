"""Instance norm, optionally after tanh, in one autograd function: the conv block's tail
(and the attention's norm) on channels-last activations.

The reference's block is Conv3d -> Tanh -> InstanceNorm3d. Run with stock modules,
InstanceNorm3d views its input as (1, B*C, ...), which forces channels-last activations
back into contiguous memory; the next convolution then runs in the slow contiguous
layout (its weight gradient 1.5-3x slower on this CPU) or copies back. This computes
the same function (float rounding aside) in whatever memory layout it is given:

    y = tanh(z);  out = (y - mean) / sqrt(var + eps)   per sample and channel, biased var

and its gradient in closed form,

    dz = (1 - y^2) / sqrt(var + eps) * (g - mean(g) - out * mean(g * out))

(without tanh, y = z and the factor 1 - y^2 drops). The attention's InstanceNorm3d needs
this too: given a channels-last input and gradient, the stock CPU norm's backward takes a
float32 channels-last kernel whose per-channel sums lost all accuracy on a 72x72 embedding
(weight gradients of the factorization 100% off; BENCHMARKS.md, "Model speed").

Every per-channel sum is accumulated in float64 across blocks of 16 elements (each block
summed in the input's dtype), near the stock CPU norm's float64 accumulators: the
backward's sums of g and g * out cancel, so their rounding reaches the weight gradients.
A float32 batched matrix product (C x C, diagonal kept), faster per pass, accumulates
linearly: 1e-3 relative error on a 72x72 activation; float32 sums in cascade still left
the factorization's weight gradients 3x further from float64 than the stock path's
(BENCHMARKS.md, "Model speed").
"""

from __future__ import annotations

import torch

#: memory layouts this module keeps: channels-last 3-D first (the fast one on CPU)
_CHANNELS_LAST = torch.channels_last_3d


def _layout(t: torch.Tensor) -> torch.memory_format:
    # a 1-channel or 1x1x1 tensor is both; treat it as contiguous
    if t.is_contiguous(memory_format=_CHANNELS_LAST) and not t.is_contiguous():
        return _CHANNELS_LAST
    return torch.contiguous_format


def _as_matrix(t: torch.Tensor, layout: torch.memory_format) -> tuple[torch.Tensor, int]:
    """(B, C, T, H, W) as a view (B, N, C) when channels-last, else (B, C, N); and the
    dimension of N (the one normalised over)."""
    b, c = t.shape[:2]
    if layout == _CHANNELS_LAST:
        return t.permute(0, 2, 3, 4, 1).reshape(b, -1, c), 1
    return t.reshape(b, c, -1), 2


def _from_matrix(m: torch.Tensor, shape: torch.Size, layout: torch.memory_format) -> torch.Tensor:
    """Inverse of `_as_matrix`: the (B, C, T, H, W) tensor in `layout`, without a copy."""
    b, c, *rest = shape
    if layout == _CHANNELS_LAST:
        return m.reshape(b, *rest, c).permute(0, 4, 1, 2, 3)
    return m.reshape(shape)


#: elements per block of the two-level per-channel sums (why 16: `_channel_sum`)
_BLOCK = 16


def _channel_sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    """sum over `dim` for every (sample, channel), keepdim, accumulated in float64 across
    blocks of `_BLOCK` elements summed in the input's dtype.

    `t.sum(dtype=torch.float64)` converts its whole input to float64 first: 10x the cost
    of a float32 sum, and 16% of the fused path's step at 9x9. Blocks read the input once,
    in its own dtype, and leave float32 only 16-term sums to round: short enough that the
    model's float32 distance from float64 did not change, long enough that the float64
    pass over the block sums costs a sixteenth of one over the input (BENCHMARKS.md,
    "Blocked per-channel sums").
    """
    n = t.shape[dim]
    whole = n - n % _BLOCK
    shape = list(t.shape)
    shape[dim:dim + 1] = [whole // _BLOCK, _BLOCK]
    total = t.narrow(dim, 0, whole).reshape(shape).sum(dim + 1).to(torch.float64).sum(dim, keepdim=True)
    if whole < n:
        total += t.narrow(dim, whole, n - whole).sum(dim, keepdim=True, dtype=torch.float64)
    return total.to(t.dtype)


def _channel_dot(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """sum over `dim` of a * b for every (sample, channel), keepdim, accumulated in float64."""
    return _channel_sum(torch.mul(a, b), dim)


def _normalise(y: torch.Tensor, dim: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(y - mean) * rstd over `dim` of a matrix view, and rstd (keepdim)."""
    n = y.shape[dim]
    centred = y - _channel_sum(y, dim) / n
    rstd = torch.rsqrt(_channel_dot(centred, centred, dim) / n + eps)
    return centred.mul_(rstd), rstd


def _forward(z: torch.Tensor, eps: float, tanh: bool):
    """The forward pass on matrix views: (y, out, rstd, layout, dim), y = tanh(z) or z."""
    layout = _layout(z)
    y, dim = _as_matrix(torch.tanh(z) if tanh else z, layout)
    out, rstd = _normalise(y, dim, eps)
    return y, out, rstd, layout, dim


class _InstanceNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, eps: float, tanh: bool) -> torch.Tensor:
        y, out, rstd, layout, dim = _forward(z, eps, tanh)
        ctx.save_for_backward(out, rstd, *((y,) if tanh else ()))
        ctx.layout, ctx.dim, ctx.shape = layout, dim, z.shape
        return _from_matrix(out, z.shape, layout)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        out, rstd, *y = ctx.saved_tensors
        dim = ctx.dim
        g, _ = _as_matrix(grad.contiguous(memory_format=ctx.layout), ctx.layout)
        n = g.shape[dim]
        # (g - mean(g) - out * mean(g * out)) * rstd as g * rstd + bias, then the
        # out term in place, then the tanh derivative: one activation-sized temporary
        scale = rstd / n
        dz = torch.addcmul(_channel_sum(g, dim) * -scale, g, rstd)
        dz.addcmul_(out, _channel_dot(g, out, dim) * scale, value=-1)
        if y:
            torch.ops.aten.tanh_backward.grad_input(dz, y[0], grad_input=dz)
        return _from_matrix(dz, ctx.shape, ctx.layout), None, None


def _apply(z: torch.Tensor, eps: float, tanh: bool) -> torch.Tensor:
    if torch.is_grad_enabled() and z.requires_grad:
        return _InstanceNorm.apply(z, eps, tanh)
    _, out, _, layout, _ = _forward(z, eps, tanh)
    return _from_matrix(out, z.shape, layout)


def tanh_instance_norm(z: torch.Tensor, eps: float) -> torch.Tensor:
    """InstanceNorm3d(tanh(z)) (no affine, biased variance), in z's memory layout.

    z: (B, C, T, H, W) float32 or float64. Differentiable (once) when z needs a gradient.
    """
    return _apply(z, eps, tanh=True)


def instance_norm(z: torch.Tensor, eps: float) -> torch.Tensor:
    """InstanceNorm3d(z) (no affine, biased variance), in z's memory layout; as
    `tanh_instance_norm` without the tanh."""
    return _apply(z, eps, tanh=False)


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether t is in the channels-last 3-D layout (and not also contiguous)."""
    return _layout(t) == _CHANNELS_LAST
