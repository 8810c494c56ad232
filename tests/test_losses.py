"""Multitask Smooth L1 on per-chunk z-scored signals and negative Pearson."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmrphys.losses import multitask_loss, neg_pearson, zscore


def test_zscore_uses_unbiased_std_and_is_finite_on_constant_rows():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    z = zscore(x)
    torch.testing.assert_close(z[0], (x[0] - 2.5) / x[0].std(unbiased=True))
    assert torch.equal(z[1], torch.zeros(4))


def test_multitask_loss_is_the_reference_sum_of_smooth_l1():
    torch.manual_seed(0)
    pred = {"bvp": torch.randn(3, 16), "rsp": torch.randn(3, 16)}
    labels = {"bvp": torch.randn(3, 16), "rsp": torch.randn(3, 16)}
    total, per_task = multitask_loss(pred, labels)
    expected = {
        t: F.smooth_l1_loss(
            (pred[t] - pred[t].mean(1, keepdim=True)) / pred[t].std(1, keepdim=True),
            (labels[t] - labels[t].mean(1, keepdim=True)) / labels[t].std(1, keepdim=True),
        )
        for t in pred
    }
    for t in pred:
        torch.testing.assert_close(per_task[t], expected[t])
    torch.testing.assert_close(total, expected["bvp"] + expected["rsp"])
    weighted, _ = multitask_loss(pred, labels, weights={"rsp": 0.5})
    torch.testing.assert_close(weighted, expected["bvp"] + 0.5 * expected["rsp"])


def test_loss_is_invariant_to_label_scale_and_offset():
    pred = {"bvp": torch.randn(2, 8)}
    label = torch.randn(2, 8)
    a, _ = multitask_loss(pred, {"bvp": label})
    b, _ = multitask_loss(pred, {"bvp": 3 * label + 7})
    torch.testing.assert_close(a, b)


def test_loss_has_gradients():
    pred = torch.randn(2, 8, requires_grad=True)
    total, _ = multitask_loss({"bvp": pred}, {"bvp": torch.randn(2, 8)}, kind="neg_pearson")
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_neg_pearson_values():
    x = torch.randn(4, 32)
    assert neg_pearson(x, 2 * x + 1).item() == pytest.approx(0.0, abs=1e-6)
    assert neg_pearson(x, -x).item() == pytest.approx(2.0, abs=1e-6)
    assert neg_pearson(x, torch.ones_like(x)).item() == pytest.approx(1.0)


def test_bad_loss_inputs_name_the_problem():
    pred = {"bvp": torch.randn(2, 8)}
    with pytest.raises(ValueError, match=r"missing 'bvp'"):
        multitask_loss(pred, {"rsp": torch.randn(2, 8)})
    with pytest.raises(ValueError, match=r"same shape \(B, T\), got \(2, 8\) and \(2, 9\)"):
        multitask_loss(pred, {"bvp": torch.randn(2, 9)})
    with pytest.raises(ValueError, match=r"'rsp' is not predicted"):
        multitask_loss(pred, {"bvp": torch.randn(2, 8)}, weights={"rsp": 1.0})
    with pytest.raises(ValueError, match=r"'l2' is not one of"):
        multitask_loss(pred, {"bvp": torch.randn(2, 8)}, kind="l2")
    with pytest.raises(ValueError, match="no predictions"):
        multitask_loss({}, {})
