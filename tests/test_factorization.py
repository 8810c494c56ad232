"""The factorization attention module (FSAM/TSFM): the reference's numerics (docs/model.md, "Attention: FSAM and TSFM") and
the options that make steps and rank matter."""

from __future__ import annotations

import math

import pytest
import torch

from mmrphys.model.factorization import (
    EPS,
    EPS_AUTOCAST,
    FeaturesFactorizationModule,
    _eps,
    analytic_signal,
    constrained_nmf,
    from_matrix,
    initial_bases,
    nmf,
    rbf_dictionary,
    target_dictionary,
    to_matrix,
)
from mmrphys.model.heads import RSPHead
from mmrphys.model.layouts import LAYOUTS

D64 = torch.float64


def nonneg(b=2, c=8, t=12, h=3, w=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, t, h, w, generator=g, dtype=D64)


def test_reference_layout_is_a_raw_reshape_not_a_transpose():
    a = nonneg(b=1, c=8, t=12, h=2, w=3)
    x = to_matrix(a, "reference")
    hw, t = 6, 12
    for d in range(t):
        for n in range(8 * hw):
            p, q = n % hw, d * 8 + n // hw
            c, tt = q // t, q % t
            assert x[0, d, n] == a[0, c, tt, p // 3, p % 3]
    torch.testing.assert_close(from_matrix(x, a.shape, "reference"), a, rtol=0, atol=0)


def test_time_aligned_layout_puts_frame_t_in_row_t():
    a = nonneg(b=2, c=8, t=12, h=2, w=3)
    x = to_matrix(a, "time_aligned")
    for t in range(12):
        torch.testing.assert_close(x[:, t], a[:, :, t].reshape(2, -1), rtol=0, atol=0)
    torch.testing.assert_close(from_matrix(x, a.shape, "time_aligned"), a, rtol=0, atol=0)


def projection(x, y):
    e = 1 + (y - y.amin(1, keepdim=True)) / (y.amax(1, keepdim=True) - y.amin(1, keepdim=True))
    e = e.unsqueeze(-1)
    return e @ (e.transpose(1, 2) @ x) / (e.transpose(1, 2) @ e)


@pytest.mark.parametrize("rank,steps", [(1, 4), (4, 4), (1, 1), (2, 9)])
def test_label_tsfm_is_the_rank_one_projection_closed_form(rank, steps):
    x = to_matrix(nonneg(), "reference")
    y = torch.randn(2, x.shape[1], dtype=D64)
    e = target_dictionary(y, "target", 1)
    w = initial_bases(2, 1, rank, "reference", 0, x)
    got = constrained_nmf(x, e, w, steps, EPS)
    torch.testing.assert_close(got, projection(x, y), rtol=1e-12, atol=1e-12)


def test_tsfm_gradient_is_that_of_the_projection():
    x = to_matrix(nonneg(), "reference").requires_grad_(True)
    y = torch.randn(2, x.shape[1], dtype=D64)
    weights = torch.randn_like(x)
    e = target_dictionary(y, "target", 1)
    (constrained_nmf(x, e, initial_bases(2, 1, 1, "reference", 0, x), 4, EPS) * weights).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    (projection(x, y) * weights).sum().backward()
    torch.testing.assert_close(grad, x.grad, rtol=1e-12, atol=1e-12)


def test_reference_bases_are_identical_columns():
    like = torch.zeros(1, dtype=D64)
    torch.testing.assert_close(initial_bases(2, 1, 4, "reference", 0, like), torch.ones(2, 1, 4, dtype=D64))
    g = initial_bases(1, 9, 2, "reference", 0, like)
    torch.testing.assert_close(g, torch.full((1, 9, 2), 1 / 3, dtype=D64))


def test_seeded_bases_are_distinct_normalised_and_reproducible():
    like = torch.zeros(1, dtype=D64)
    a = initial_bases(2, 6, 3, "seeded", 7, like)
    assert not torch.allclose(a[0, :, 0], a[0, :, 1])
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2, 3, dtype=D64))
    torch.testing.assert_close(a, initial_bases(2, 6, 3, "seeded", 7, like), rtol=0, atol=0)
    assert not torch.allclose(a, initial_bases(2, 6, 3, "seeded", 8, like))


def test_plain_nmf_rank_is_a_no_op_with_identical_bases():
    x = to_matrix(nonneg(), "reference")
    like = x
    r1 = nmf(x, initial_bases(2, x.shape[1], 1, "reference", 0, like), 4, EPS)
    r4 = nmf(x, initial_bases(2, x.shape[1], 4, "reference", 0, like), 4, EPS)
    torch.testing.assert_close(r1, r4, rtol=1e-12, atol=1e-12)


def test_zero_features_give_zero_reconstruction_not_nan():
    x = torch.zeros(2, 12, 72, dtype=D64)
    for got in (
        nmf(x, initial_bases(2, 12, 2, "reference", 0, x), 4, EPS),
        constrained_nmf(x, target_dictionary(torch.randn(2, 12, dtype=D64), "target", 1),
                        initial_bases(2, 1, 1, "reference", 0, x), 4, EPS),
    ):
        assert torch.isfinite(got).all() and got.abs().max() == 0


def test_constant_target_gives_a_flat_column_instead_of_nan():
    e = target_dictionary(torch.full((2, 12), 3.0, dtype=D64), "target", 1)
    torch.testing.assert_close(e, torch.ones(2, 12, 1, dtype=D64))
    module = FeaturesFactorizationModule(16).double()
    att, err = module(nonneg(c=16), torch.zeros(2, 12, dtype=D64))
    assert torch.isfinite(att).all() and torch.isfinite(err)


def test_eps_is_larger_under_autocast():
    x = torch.zeros(2, dtype=torch.float32)
    assert _eps(x) == EPS == 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _eps(x) == EPS_AUTOCAST == 1e-3


def test_module_works_in_float64_and_keeps_dtype():
    module = FeaturesFactorizationModule(16).double()
    x = nonneg(c=16).requires_grad_(True)
    att, err = module(x, torch.randn(2, 12, dtype=D64))
    assert att.dtype == D64 and att.shape == x.shape and err.dim() == 0
    att.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_approximation_error_is_the_batch_frobenius_norm():
    module = FeaturesFactorizationModule(16).double()
    x = nonneg(c=16)
    y = torch.randn(2, 12, dtype=D64)
    _, err = module(x, y)
    a = module.pre_conv_block(x)
    approx = from_matrix(projection(to_matrix(a, "reference"), y), a.shape, "reference")
    torch.testing.assert_close(err, torch.linalg.vector_norm(a - approx))


def test_conv_init_follows_the_reference():
    torch.manual_seed(0)
    module = FeaturesFactorizationModule(4096)
    pre = module.pre_conv_block[0]
    assert pre.weight.std().item() == pytest.approx(0.5, rel=0.03)
    assert pre.bias.abs().max() <= 1 / math.sqrt(4096)
    wide = FeaturesFactorizationModule(16, inner_channels=512)
    assert wide.post_conv_block[1].weight.std().item() == pytest.approx(math.sqrt(2 / 16), rel=0.05)


def test_tsfm_needs_a_target_of_the_right_shape():
    module = FeaturesFactorizationModule(16).double()
    with pytest.raises(ValueError, match="needs a target"):
        module(nonneg(c=16))
    with pytest.raises(ValueError, match=r"expected shape \(2, 12\).*got \(2, 11\)"):
        module(nonneg(c=16), torch.randn(2, 11, dtype=D64))


def test_rsp_target_is_avg_pooled_with_zero_padding_counted():
    head = RSPHead(LAYOUTS[9], 0.0)
    y = torch.arange(1.0, 17.0, dtype=D64).unsqueeze(0)
    pooled = head.prepare_target(y)
    assert pooled.shape == (1, 4)
    assert pooled[0, 0].item() == pytest.approx((1 + 2 + 3) / 5)
    assert pooled[0, 1].item() == pytest.approx((3 + 4 + 5 + 6 + 7) / 5)


def test_rbf_bank_matches_the_reference_sizes_and_kernel():
    bank = rbf_dictionary(180, D64, torch.device("cpu"))
    assert bank.shape == (180, 661)
    assert rbf_dictionary(45, D64, torch.device("cpu")).shape == (45, 167)
    assert bank[10, 10].item() == 1.0 and bank[12, 10].item() == pytest.approx(math.exp(-4 / (4 * 36)))
    torch.testing.assert_close(bank[:, -1], torch.ones(180, dtype=D64))


def test_harmonic_dictionary_holds_target_and_half_waves_of_its_quadrature_pair():
    t = torch.arange(64, dtype=D64)
    y = torch.sin(2 * math.pi * 4 * t / 64).unsqueeze(0)
    torch.testing.assert_close(analytic_signal(y).imag, -torch.cos(2 * math.pi * 4 * t / 64).unsqueeze(0))
    e = target_dictionary(y, "target_harmonics", 2)
    assert e.shape == (1, 64, 9)
    assert e.min() >= 0 and e[..., 1:].amax(dim=1).min() == pytest.approx(1.0)
    torch.testing.assert_close(e[..., :1], target_dictionary(y, "target", 1))
    torch.testing.assert_close(e[0, :, 1], torch.relu(y[0]))  # a cos(phi) = y, positive half
    torch.testing.assert_close(e[0, :, 2], torch.relu(-y[0]))
    torch.testing.assert_close(e[0, :, 3], torch.relu(-torch.cos(2 * math.pi * 4 * t / 64)))  # quadrature
    torch.testing.assert_close(e[0, :, 5], torch.relu(torch.cos(2 * math.pi * 8 * t / 64 - math.pi)))  # 2nd harmonic


def reconstruct(options, steps, rank, seed=0):
    module = FeaturesFactorizationModule(16, steps=steps, rank=rank, **options).double()
    x = to_matrix(nonneg(c=8, t=24, seed=seed), options.get("layout", "reference"))
    t = torch.arange(24, dtype=D64)
    y = torch.stack([torch.sin(2 * math.pi * t / 6), torch.sin(2 * math.pi * t / 8 + 1)])
    return module.reconstruct(x, y)


@pytest.mark.parametrize(
    "options",
    [
        dict(constraint="target_harmonics", bases_init="seeded", layout="time_aligned"),
        dict(constrained=False, bases_init="seeded"),
    ],
)
def test_options_make_steps_and_rank_matter(options):
    base = reconstruct(options, 4, 4)

    def change(r):
        return ((r - base).norm() / base.norm()).item()

    # far beyond rounding (the reference options change by ~1e-15; docs/model.md has sizes)
    assert change(reconstruct(options, 1, 4)) > 1e-6
    assert change(reconstruct(options, 4, 1)) > 1e-6


def test_reference_options_make_steps_and_rank_irrelevant():
    base = reconstruct({}, 4, 1)
    torch.testing.assert_close(reconstruct({}, 1, 4), base, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reconstruct({"layout": "time_aligned"}, 9, 3), reconstruct({"layout": "time_aligned"}, 1, 1))


# ---- FactorizePhys's variant of the module (docs/factorizephys.md, "FSAM") -------------


@pytest.mark.parametrize("layout,rows", [("tk_ab", lambda c, t: c * t), ("k_tab", lambda c, t: c)])
def test_factorizephys_views_are_raw_reshapes(layout, rows):
    a = nonneg(b=2, c=8, t=12, h=2, w=3)
    x = to_matrix(a, layout)
    d = rows(8, 12)
    n = 8 * 12 * 6 // d
    assert x.shape == (2, d, n)
    for row in range(d):
        for col in range(n):
            flat = row * n + col  # offset in the sample's (c, t, h, w) memory
            c, rest = divmod(flat, 12 * 6)
            t, p = divmod(rest, 6)
            assert x[1, row, col] == a[1, c, t, p // 3, p % 3]
    torch.testing.assert_close(from_matrix(x, a.shape, layout), a, rtol=0, atol=0)


def power_iteration_projection(x, steps):
    """Rank-1 NMF from all-ones bases is power iteration: g = (X X^T)^k 1, Â = g g^T X / g^T g."""
    g = torch.ones(x.shape[0], x.shape[1], 1, dtype=x.dtype)
    for _ in range(steps):
        g = x @ (x.transpose(1, 2) @ g)
    return g @ (g.transpose(1, 2) @ x) / (g.transpose(1, 2) @ g)


@pytest.mark.parametrize("layout", ["reference", "tk_ab", "k_tab"])
def test_additive_eps_nmf_is_the_rank_one_power_iteration_projection(layout):
    x = to_matrix(nonneg(c=8, t=16, seed=3) + 0.1, layout)
    got = nmf(x, initial_bases(2, x.shape[1], 1, "reference", 0, x), 4, EPS, additive=True)
    # exact up to the additive eps (relative ~1e-8 on features of order 1)
    torch.testing.assert_close(got, power_iteration_projection(x, 4), rtol=1e-6, atol=1e-7)


def test_additive_eps_differs_from_the_clamp_where_denominators_are_small():
    x = to_matrix(nonneg(c=8, t=12, seed=4), "reference") * 1e-4
    bases = initial_bases(2, 12, 1, "reference", 0, x)
    clamped, added = nmf(x, bases, 4, EPS), nmf(x, bases, 4, EPS, additive=True)
    h = torch.ones(2, x.shape[2], 1, dtype=D64)
    assert not torch.allclose(clamped, added, rtol=1e-6, atol=0)
    # one coefficient update by hand: H (X^T G) / (H G^T G + eps)
    manual = h * (x.transpose(1, 2) @ bases) / (h @ (bases.transpose(1, 2) @ bases) + EPS)
    from mmrphys.model.factorization import _coefficient_update

    torch.testing.assert_close(_coefficient_update(x, h, bases, EPS, additive=True), manual, rtol=0, atol=0)


def test_additive_eps_mode_keeps_1e6_under_autocast_and_skips_the_clean_up():
    added = FeaturesFactorizationModule(16, constrained=False, eps_mode="add")
    clamped = FeaturesFactorizationModule(16, constrained=False)
    x = to_matrix(nonneg(c=8, seed=5), "reference").float() * 1e-2  # small: eps matters
    bases = initial_bases(2, 12, 1, "reference", 0, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(added.reconstruct(x), nmf(x, bases, 4, EPS, additive=True), rtol=0, atol=0)
        torch.testing.assert_close(clamped.reconstruct(x), nmf(x, bases, 4, EPS_AUTOCAST), rtol=0, atol=0)
    bad = x.clone()
    bad[0, 0, 0] = float("inf")
    assert not torch.isfinite(added.reconstruct(bad)).all()  # no NaN/inf clean-up
    assert torch.isfinite(clamped.reconstruct(bad)).all()


def test_additive_eps_label_nmf_is_the_target_projection():
    x = to_matrix(nonneg(), "reference")
    y = torch.randn(2, x.shape[1], dtype=D64)
    got = constrained_nmf(x, target_dictionary(y, "target", 1), initial_bases(2, 1, 1, "reference", 0, x), 4, EPS,
                          additive=True)
    torch.testing.assert_close(got, projection(x, y), rtol=1e-7, atol=1e-8)
