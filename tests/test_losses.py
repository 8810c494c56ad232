"""Multitask Smooth L1 on per-chunk z-scored signals and negative Pearson in its two forms
(per sample; across the batch, as the FactorizePhys reference computes it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_spec
import scipy.signal
import torch
import torch.nn.functional as F

from mmrphys.config import ConfigError, ExperimentConfig, ModelConfig, TrainConfig
from mmrphys.losses import (
    batch_zscore,
    hr_class_power,
    hybrid_terms,
    multitask_loss,
    neg_pearson,
    neg_pearson_across_batch,
    periodogram_hr,
    rhythmformer_hybrid_loss,
    welch_hr,
    zscore,
)


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


# ---- RhythmFormer's hybrid loss (docs/rhythmformer.md, "Loss") ------------------------------


FS = 30.0


def sines(rates_bpm, n=160, fs=FS, phase=0.0):
    t = np.arange(n) / fs
    return torch.tensor(np.stack([np.sin(2 * np.pi * r / 60 * t + phase) for r in rates_bpm]))


def loss_case():
    """Labels at 72 and 90 bpm, predictions at 78 and 99 bpm: 160 samples at 30 fps."""
    return sines([78, 99]).requires_grad_(True), sines([72, 90])


def test_hybrid_terms_reproduce_the_reference_loss_case():
    pred, label = loss_case()
    terms = hybrid_terms(pred, label, FS)
    np.testing.assert_allclose(terms["ce"].detach().numpy(), [4.63, 4.64], atol=0.005)
    np.testing.assert_allclose(terms["hr"].numpy(), [6.72, 14.21], atol=0.005)
    # the reference's CE-only gradient norm (docs/rhythmformer.md, "Loss"); it does not depend on the predictions' phase
    for phase in (0.0, 1.0):
        p = sines([78, 99], phase=phase).requires_grad_(True)
        (grad,) = torch.autograd.grad(hybrid_terms(p, label, FS)["ce"].mean(), p)
        assert float(grad.norm()) == pytest.approx(0.0043, abs=5e-5)
    total = rhythmformer_hybrid_loss(pred, label, FS)
    torch.testing.assert_close(total, (0.2 * terms["time"] + terms["ce"] + terms["hr"]).mean())


def test_toolbox_form_has_no_hr_term_and_shifted_targets():
    pred, label = loss_case()
    toolbox = hybrid_terms(pred, label, FS, form="toolbox")
    assert torch.equal(toolbox["hr"], torch.zeros(2, dtype=torch.float64))
    canonical = [math.trunc(welch_hr(y, FS) - 45) for y in label.numpy()]
    port = [math.trunc(periodogram_hr(y, FS) - 45) for y in label.numpy()]
    assert canonical == [26, 45] and port == [25, 46]  # one bin lower / higher
    share = hr_class_power(zscore(pred.detach()), np.full(2, FS))
    share = share / share.sum(-1, keepdim=True)
    expected = torch.logsumexp(share, -1) - share[torch.arange(2), torch.tensor(port)]
    torch.testing.assert_close(toolbox["ce"].detach(), expected)


def test_toolbox_form_raises_where_the_port_crashes():
    pred = sines([60])
    with pytest.raises(ValueError, match=r"sample 0: label heart rate 42.2 bpm is outside \[45, 150\) bpm"):
        hybrid_terms(pred, sines([40]), FS, form="toolbox")


def test_pearson_term_is_one_minus_r_and_zero_when_undefined():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((2, 160))
    y = np.stack([sines([80]).numpy()[0] + 0.5 * rng.standard_normal(160), np.full(160, 3.0)])
    terms = hybrid_terms(torch.tensor(p), torch.tensor(y), FS)
    assert float(terms["time"][0]) == pytest.approx(1 - np.corrcoef(p[0], y[0])[0, 1], abs=1e-12)
    assert float(terms["time"][1]) == 0.0  # a constant label: r undefined, the reference's NaN -> 0


def test_hr_class_power_is_the_hann_windowed_dft_at_each_bpm():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, 96))
    fps = np.array([30.0, 25.0])
    got = hr_class_power(torch.tensor(z), fps).numpy()
    n = np.arange(96)
    for b in range(2):
        for c, bpm in enumerate(range(45, 150)):
            k = (bpm / 60) / (fps[b] / 96)
            w = np.hanning(96)
            s = np.sum(z[b] * w * np.sin(2 * np.pi * k * n / 96))
            co = np.sum(z[b] * w * np.cos(2 * np.pi * k * n / 96))
            assert got[b, c] == pytest.approx(s**2 + co**2, rel=1e-10, abs=1e-12)
    peak = hr_class_power(sines([72]), np.array([FS]))
    assert int(peak.argmax()) == 72 - 45


def test_welch_hr_is_the_canonical_estimator():
    x = sines([72]).numpy()[0] + 0.3 * np.random.default_rng(2).standard_normal(160)
    s = reference_spec.detrend(x, 100)
    b, a = scipy.signal.butter(1, [0.75 / FS * 2, 2.5 / FS * 2], "bandpass")
    s = scipy.signal.filtfilt(b, a, s)
    f, p = scipy.signal.welch(s, FS, nfft=3333, nperseg=159)
    band = (f > 0.75) & (f < 2.5)
    assert welch_hr(x, FS) == pytest.approx(60 * f[band][np.argmax(p[band])], abs=1e-9)
    assert band.sum() == 194


def test_canonical_hr_term_has_no_gradient_and_the_corrected_one_has():
    pred, label = loss_case()
    canonical = hybrid_terms(pred, label, FS)
    assert not canonical["hr"].requires_grad
    (g_all,) = torch.autograd.grad(rhythmformer_hybrid_loss(pred, label, FS), pred)
    (g_grad_terms,) = torch.autograd.grad((0.2 * canonical["time"] + canonical["ce"]).mean(), pred)
    torch.testing.assert_close(g_all, g_grad_terms)
    corrected = hybrid_terms(pred, label, FS, form="corrected")
    torch.testing.assert_close(corrected["time"], canonical["time"])
    torch.testing.assert_close(corrected["ce"], canonical["ce"])
    (g_hr,) = torch.autograd.grad(corrected["hr"].sum(), pred)
    assert float(g_hr.norm()) > 10 * float(g_grad_terms.norm())


def test_corrected_hr_term_is_the_kl_from_a_gaussian_at_the_target():
    pred, label = loss_case()
    got = hybrid_terms(pred, label, FS, form="corrected")["hr"].detach().numpy()
    share = hr_class_power(zscore(pred.detach()), np.full(2, FS)).numpy()
    share /= share.sum(-1, keepdims=True)
    for b, j in enumerate([26, 45]):
        g = np.exp(-((np.arange(105) - j) ** 2) / 18)
        g /= g.sum()
        assert got[b] == pytest.approx(np.sum(g * np.log(g / np.maximum(share[b], 1e-15))), rel=1e-9)


def test_corrected_loss_passes_gradcheck():
    label = sines([84], n=64)
    pred = (sines([70], n=64) + 0.1 * torch.randn(1, 64, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: rhythmformer_hybrid_loss(p, label, FS, "corrected"), (pred,))


def test_cross_entropy_term_stays_in_its_narrow_range():
    rng = np.random.default_rng(3)
    terms = hybrid_terms(torch.tensor(rng.standard_normal((4, 160))), sines([60, 80, 100, 120]), FS)
    assert ((terms["ce"] >= math.log(104 + math.e) - 1) & (terms["ce"] <= math.log(104 + math.e))).all()


def test_multitask_loss_offers_the_hybrid_for_bvp_with_frame_rates():
    pred, label = loss_case()
    total, per_task = multitask_loss({"bvp": pred}, {"bvp": label}, kind="rhythmformer_hybrid", fps=[30.0, 30.0])
    assert list(per_task) == ["bvp"]
    torch.testing.assert_close(total, rhythmformer_hybrid_loss(pred, label, FS))
    corrected, _ = multitask_loss({"bvp": pred}, {"bvp": label}, kind="rhythmformer_hybrid_corrected", fps=torch.tensor(30.0))
    torch.testing.assert_close(corrected, rhythmformer_hybrid_loss(pred, label, FS, "corrected"))
    with pytest.raises(ValueError, match=r"'rhythmformer_hybrid': needs the frame rate \(fps\) of every clip"):
        multitask_loss({"bvp": pred}, {"bvp": label}, kind="rhythmformer_hybrid")
    with pytest.raises(ValueError, match=r"a pulse \(BVP\) loss; predicted tasks \['bvp', 'rsp'\] must be \['bvp'\]"):
        multitask_loss({"bvp": pred, "rsp": pred}, {"bvp": label, "rsp": label}, kind="rhythmformer_hybrid", fps=30.0)
    with pytest.raises(ValueError, match=r"fps: expected one frame rate or 2 \(one per clip\), got 3"):
        multitask_loss({"bvp": pred}, {"bvp": label}, kind="rhythmformer_hybrid", fps=[30.0] * 3)
    with pytest.raises(ValueError, match=r"fps: frame rates must be finite and > 0"):
        multitask_loss({"bvp": pred}, {"bvp": label}, kind="rhythmformer_hybrid", fps=[30.0, 0.0])
    with pytest.raises(ValueError, match=r"hybrid loss form: 'port' is not one of"):
        hybrid_terms(pred, label, FS, form="port")


def test_hybrid_loss_config_needs_a_bvp_only_model():
    with pytest.raises(ConfigError, match=r"TrainConfig.loss: 'rhythmformer_hybrid' is a pulse \(BVP\) loss; model.tasks must be \['bvp'\]"):
        ExperimentConfig(train=TrainConfig(loss="rhythmformer_hybrid"))
    config = ExperimentConfig(model=ModelConfig(tasks=("bvp",)), train=TrainConfig(loss="rhythmformer_hybrid_corrected",
                                                                                  checkpoint_metric="val_hr_mae"))
    assert config.train.loss == "rhythmformer_hybrid_corrected"

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
