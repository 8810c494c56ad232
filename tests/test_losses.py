"""Multitask Smooth L1 on per-chunk z-scored signals and negative Pearson in its two forms
(per sample; across the batch, as the FactorizePhys reference computes it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmrphys.losses import batch_zscore, multitask_loss, neg_pearson, neg_pearson_across_batch, zscore


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


# ---- the FactorizePhys reference's negative Pearson (docs/factorizephys.md, "Loss") ------


def across_batch_by_hand(pred, label):
    """Literal loops: one z-score of each whole batch (unbiased std), then per time step the
    batch-centred cosine, 1 - r_t averaged over t."""
    p = [[float(v) for v in row] for row in pred]
    y = [[float(v) for v in row] for row in label]

    def z(rows):
        flat = [v for row in rows for v in row]
        mean = sum(flat) / len(flat)
        std = (sum((v - mean) ** 2 for v in flat) / (len(flat) - 1)) ** 0.5
        return [[(v - mean) / std for v in row] for row in rows]

    p, y = z(p), z(y)
    b, t = len(p), len(p[0])
    total = 0.0
    for j in range(t):
        pc = [p[i][j] - sum(p[k][j] for k in range(b)) / b for i in range(b)]
        yc = [y[i][j] - sum(y[k][j] for k in range(b)) / b for i in range(b)]
        dot = sum(a * c for a, c in zip(pc, yc))
        total += 1 - dot / ((sum(a * a for a in pc) ** 0.5) * (sum(c * c for c in yc) ** 0.5))
    return total / t


def test_across_batch_form_equals_the_literal_loops():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 20, generator=g, dtype=torch.float64)
    label = pred + torch.randn(4, 20, generator=g, dtype=torch.float64)
    assert neg_pearson_across_batch(pred, label).item() == pytest.approx(across_batch_by_hand(pred, label), abs=1e-12)


def test_across_batch_form_is_not_the_per_sample_pearson():
    t = torch.arange(32, dtype=torch.float64)
    label = torch.stack([torch.sin(2 * torch.pi * t / 8 + i) for i in range(4)])
    # each row a perfect affine copy of its label: per-sample Pearson is exactly 0
    pred = label * torch.tensor([[1.0], [3.0], [0.5], [2.0]], dtype=torch.float64) + torch.tensor([[0.0], [5.0], [-2.0], [1.0]])
    assert neg_pearson(pred, label).item() == pytest.approx(0.0, abs=1e-12)
    assert neg_pearson_across_batch(pred, label).item() == pytest.approx(across_batch_by_hand(pred, label), abs=1e-12)
    assert neg_pearson_across_batch(pred, label).item() > 0.1


def test_across_batch_form_ignores_per_time_step_offset_and_scale():
    g = torch.Generator().manual_seed(1)
    pred, label = torch.randn(4, 16, generator=g, dtype=torch.float64), torch.randn(4, 16, generator=g, dtype=torch.float64)
    scale = torch.rand(1, 16, generator=g, dtype=torch.float64) + 0.5
    offset = torch.randn(1, 16, generator=g, dtype=torch.float64)
    a = neg_pearson_across_batch(pred, label)
    torch.testing.assert_close(neg_pearson_across_batch(pred * scale + offset, label), a, rtol=1e-12, atol=1e-12)
    assert neg_pearson_across_batch(pred, pred).item() == pytest.approx(0.0, abs=1e-9)
    assert neg_pearson_across_batch(pred, -pred).item() == pytest.approx(2.0, abs=1e-9)


def test_across_batch_form_degenerates_at_batch_one_and_two():
    pred = torch.randn(1, 16, requires_grad=True)
    loss = neg_pearson_across_batch(pred, torch.randn(1, 16))
    loss.backward()
    assert loss.item() == 1.0 and torch.equal(pred.grad, torch.zeros_like(pred))
    g = torch.Generator().manual_seed(2)
    pred, label = torch.randn(2, 50, generator=g, dtype=torch.float64), torch.randn(2, 50, generator=g, dtype=torch.float64)
    # B = 2: r_t = sign((p0 - p1)(y0 - y1)) at every t
    r = torch.sign((pred[0] - pred[1]) * (label[0] - label[1]))
    assert neg_pearson_across_batch(pred, label).item() == pytest.approx((1 - r).mean().item(), abs=1e-9)


def test_batch_zscore_is_one_mean_and_std_for_the_whole_batch():
    x = torch.tensor([[1.0, 2.0], [3.0, 10.0]])
    torch.testing.assert_close(batch_zscore(x), (x - 4.0) / x.flatten().std())
    assert torch.equal(batch_zscore(torch.full((2, 3), 7.0)), torch.zeros(2, 3))


def test_loss_kinds_route_to_both_pearson_forms():
    pred, label = torch.randn(3, 12), torch.randn(3, 12)
    total, per_task = multitask_loss({"bvp": pred}, {"bvp": label}, kind="neg_pearson_across_batch")
    torch.testing.assert_close(total, neg_pearson_across_batch(pred, label))
    torch.testing.assert_close(multitask_loss({"bvp": pred}, {"bvp": label}, kind="neg_pearson")[0], neg_pearson(pred, label))
