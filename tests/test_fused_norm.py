"""The fused Tanh+InstanceNorm: the stock modules' function and gradient in both memory
layouts, the layout kept, and gradients arriving in the other layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmrphys.model.blocks import NORM_EPS
from mmrphys.model.fused_norm import tanh_instance_norm

CHANNELS_LAST = torch.channels_last_3d


def stock(z: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(torch.tanh(z), eps=NORM_EPS)


def clip(layout: torch.memory_format, shape=(2, 5, 6, 4, 3)) -> torch.Tensor:
    torch.manual_seed(0)
    # a per-channel offset so that means and variances differ between channels
    z = torch.randn(*shape, dtype=torch.float64) + torch.arange(shape[1], dtype=torch.float64).view(1, -1, 1, 1, 1) / 3
    return z.contiguous(memory_format=layout).requires_grad_()


@pytest.mark.parametrize("layout", [torch.contiguous_format, CHANNELS_LAST])
def test_forward_and_gradient_equal_the_stock_modules(layout):
    z = clip(layout)
    grad = torch.randn(z.shape, dtype=torch.float64)
    fused = tanh_instance_norm(z, NORM_EPS)
    (fused_grad,) = torch.autograd.grad(fused, z, grad)
    reference = stock(z)
    (reference_grad,) = torch.autograd.grad(reference, z, grad)
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused_grad, reference_grad, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CHANNELS_LAST])
def test_gradcheck(layout):
    z = clip(layout, shape=(2, 3, 4, 3, 2))
    assert torch.autograd.gradcheck(lambda t: tanh_instance_norm(t, NORM_EPS), (z,))


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
