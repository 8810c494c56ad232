"""The fused Tanh+InstanceNorm: the stock modules' function and gradient in both memory
layouts, the layout kept, gradients arriving in the other layout, the norm without tanh,
and float32 accuracy against float64 at full frame size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.bench_model import float64_distances
from mmrphys.model.blocks import NORM_EPS, InstanceNorm3D
from mmrphys.model.fused_norm import instance_norm, tanh_instance_norm

CHANNELS_LAST = torch.channels_last_3d
#: frames of the full-size float32 test: enough for the sums that once lost accuracy
FULL_SIZE_FRAMES = 64


def stock(z: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(torch.tanh(z), eps=NORM_EPS)


def stock_norm(z: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(z, eps=NORM_EPS)


#: (fused function, the stock modules' function)
PAIRS = [(tanh_instance_norm, stock), (instance_norm, stock_norm)]


def clip(layout: torch.memory_format, shape=(2, 5, 6, 4, 3)) -> torch.Tensor:
    torch.manual_seed(0)
    # a per-channel offset so that means and variances differ between channels
    z = torch.randn(*shape, dtype=torch.float64) + torch.arange(shape[1], dtype=torch.float64).view(1, -1, 1, 1, 1) / 3
    return z.contiguous(memory_format=layout).requires_grad_()


@pytest.mark.parametrize("fused_fn,stock_fn", PAIRS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, CHANNELS_LAST])
def test_forward_and_gradient_equal_the_stock_modules(layout, fused_fn, stock_fn):
    z = clip(layout)
    grad = torch.randn(z.shape, dtype=torch.float64)
    fused = fused_fn(z, NORM_EPS)
    (fused_grad,) = torch.autograd.grad(fused, z, grad)
    reference = stock_fn(z)
    (reference_grad,) = torch.autograd.grad(reference, z, grad)
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused_grad, reference_grad, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("fused_fn", [tanh_instance_norm, instance_norm])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CHANNELS_LAST])
def test_gradcheck(layout, fused_fn):
    z = clip(layout, shape=(2, 3, 4, 3, 2))
    assert torch.autograd.gradcheck(lambda t: fused_fn(t, NORM_EPS), (z,))


def test_attention_norm_module_keeps_channels_last_and_computes_the_stock_norm():
    z = clip(CHANNELS_LAST)
    norm = InstanceNorm3D(z.shape[1], eps=NORM_EPS)
    out = norm(z)
    assert out.is_contiguous(memory_format=CHANNELS_LAST)
    torch.testing.assert_close(out, stock_norm(z), rtol=1e-12, atol=1e-12)
    # contiguous input: the stock module itself
    plain = z.detach().contiguous()
    torch.testing.assert_close(norm(plain), stock_norm(plain), rtol=0, atol=0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CHANNELS_LAST])
def test_output_and_gradient_keep_the_input_layout(layout):
    z = clip(layout)
    out = tanh_instance_norm(z, NORM_EPS)
    assert out.is_contiguous(memory_format=layout)
    # the gradient may arrive in the other layout; the result is the same
    other = CHANNELS_LAST if layout == torch.contiguous_format else torch.contiguous_format
    grad = torch.randn(z.shape, dtype=torch.float64)
    (a,) = torch.autograd.grad(out, z, grad, retain_graph=True)
    (b,) = torch.autograd.grad(out, z, grad.contiguous(memory_format=other))
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    assert a.is_contiguous(memory_format=layout)


def test_inference_path_equals_the_training_path():
    z = clip(CHANNELS_LAST)
    with torch.no_grad():
        inference = tanh_instance_norm(z, NORM_EPS)
    torch.testing.assert_close(inference, tanh_instance_norm(z, NORM_EPS).detach(), rtol=0, atol=0)
    assert inference.is_contiguous(memory_format=CHANNELS_LAST)


def test_a_constant_channel_gives_zeros_as_the_stock_norm():
    z = clip(torch.contiguous_format).detach()
    z[:, 1] = 0.7
    out = tanh_instance_norm(z, NORM_EPS)
    torch.testing.assert_close(out, stock(z), rtol=1e-12, atol=1e-12)
    assert out[:, 1].abs().max() == 0


@pytest.mark.parametrize("name,modality", [("LNF", "rgbt"), ("LEF", "rgb"), ("MLF", "rgbt"), ("MEF", "rgb")])
def test_float32_fused_path_is_no_further_from_float64_than_the_stock_path(name, modality):
    """At full frame size (72x72, 36x36), where per-channel sums run over ~10^5-10^6
    elements: float32 eval outputs and weight gradients of the fused path are within 1.2x
    of the stock path's distance from a float64 run (plus 1e-6 for rounding noise)."""
    distances = float64_distances(name, modality, batch=1, frames=FULL_SIZE_FRAMES)
    (stock_output, stock_grad), (fused_output, fused_grad) = distances["stock"], distances["fused"]
    assert fused_output <= 1.2 * stock_output + 1e-6, distances
    assert fused_grad <= 1.2 * stock_grad + 1e-6, distances
