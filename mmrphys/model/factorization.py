"""Factorization attention: FSAM (unconstrained NMF) and TSFM (NMF constrained by the target).

`FeaturesFactorizationModule` is the one module behind both, numerically faithful to the
reference implementation by default (docs/model.md, "Attention: FSAM and TSFM"): a 1x1x1 pre-conv with
bias and ReLU, a matrix decomposition of the non-negative embedding, and two 1x1x1
post-convs. The decomposition runs `steps` multiplicative updates without gradient and a
final coefficient update with gradient, clamps denominators at eps (1e-6, or 1e-3 under
autocast) and replaces NaN/inf after every update, exactly as the reference does.

Options that make steps and rank matter (off by default; see docs/model.md):
- `layout="time_aligned"`: matrix row t holds frame t instead of the reference's raw
  memory reshape of (C, T, h, w) into (T, C*h*w).
- `constraint="target_harmonics"`: the TSFM dictionary holds the target, plus half-wave
  parts of its quadrature pair (Hilbert transform) and of higher harmonics of its phase.
- `constraint="rbf"`: the reference's label-free Gaussian (RBF) bank.
- `bases_init="seeded"`: distinct initial bases drawn from a seeded generator.

FactorizePhys's variant of the same module (docs/factorizephys.md, "FSAM"):
- `layout="tk_ab"` / `"k_tab"`: its other raw matrix views, (C*T) x (h*w) and C x (T*h*w).
- `eps_mode="add"`: eps 1e-6 added to every denominator (also under autocast) and no
  NaN/inf clean-up, as its reference computes.

Unlike the reference, the matrices are built in the dtype of the features, so the module
works in float64, and a constant target gives a flat constraint column instead of NaN.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmrphys.model.blocks import ConvReLU

Layout = Literal["reference", "time_aligned", "tk_ab", "k_tab"]
EpsMode = Literal["clamp", "add"]
Constraint = Literal["target", "target_harmonics", "rbf"]
BasesInit = Literal["reference", "seeded"]

#: denominator clamp of the multiplicative updates (the reference's values)
EPS = 1e-6
EPS_AUTOCAST = 1e-3

#: RBF bank of the reference: (kernel scale s, column stride) pairs
RBF_SCALES: tuple[tuple[int, int], ...] = ((6, 1), (8, 1), (12, 2), (15, 2), (18, 3), (24, 3))


def _clean(t: torch.Tensor) -> torch.Tensor:
    """The reference's clean-up after every update: NaN -> 0, +inf -> 1, -inf -> 0."""
    return torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0)


def _eps(x: torch.Tensor) -> float:
    return EPS_AUTOCAST if torch.is_autocast_enabled(x.device.type) else EPS


def to_matrix(a: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(B, C, T, h, w) embedding -> (B, D, N) matrices.

    `reference` reinterprets each sample's contiguous (C, T, h, w) memory as T x (C*h*w),
    so row d holds C consecutive (channel, time) slots, not frame d (the reference's layout).
    `tk_ab` and `k_tab` are the other raw views, (C*T) x (h*w) and C x (T*h*w).
    `time_aligned` gives T x (C*h*w) with row t holding frame t.
    """
    b, c, t, h, w = a.shape
    if layout == "reference":
        return a.contiguous().reshape(b, t, c * h * w)
    if layout == "tk_ab":
        return a.contiguous().reshape(b, c * t, h * w)
    if layout == "k_tab":
        return a.contiguous().reshape(b, c, t * h * w)
    return a.transpose(1, 2).reshape(b, t, c * h * w)


def from_matrix(m: torch.Tensor, shape: torch.Size, layout: Layout) -> torch.Tensor:
    """Inverse of `to_matrix`."""
    b, c, t, h, w = shape
    if layout in ("reference", "tk_ab", "k_tab"):
        return m.reshape(b, c, t, h, w)
    return m.reshape(b, t, c, h, w).transpose(1, 2)


def rescale_columns(v: torch.Tensor) -> torch.Tensor:
    """Min-max rescale each column of (B, D, K) to [1, 2] along D.

    A constant column (max == min, where the reference divides by zero and returns NaN)
    becomes all ones: a flat constraint that leaves only the mean over rows.
    """
    lo = v.amin(dim=1, keepdim=True)
    span = v.amax(dim=1, keepdim=True) - lo
    return 1 + (v - lo) / torch.where(span > 0, span, torch.ones_like(span))


def analytic_signal(y: torch.Tensor) -> torch.Tensor:
    """Analytic signal of the rows of (B, D) via the FFT (real part y, imaginary part its
    Hilbert transform)."""
    n = y.shape[-1]
    gain = torch.zeros(n, dtype=y.dtype, device=y.device)
    gain[0] = 1
    gain[1 : (n + 1) // 2] = 2
    if n % 2 == 0:
        gain[n // 2] = 1
    return torch.fft.ifft(torch.fft.fft(y, dim=-1) * gain, dim=-1)


def target_dictionary(y: torch.Tensor, constraint: Constraint, harmonics: int) -> torch.Tensor:
    """The (B, D, K) constraint dictionary built from targets y (B, D), non-negative columns.

    `target`: K = 1, the target min-max rescaled to [1, 2] (the reference's Label mode).
    `target_harmonics`: K = 1 + 4 * harmonics: that column, then for k = 1..harmonics the
    positive and negative half-waves of a cos(k phi) and a sin(k phi), each scaled to a
    maximum of 1, with a and phi the amplitude and phase of the analytic signal of the
    centred target (k = 1: the target and its quadrature). Half-waves keep the columns
    non-negative yet distinct (phase-localised), so NMF weights on them can differ; the
    plain [1, 2]-rescaled waves share a large offset and make rank nearly irrelevant.
    """
    column = rescale_columns(y.unsqueeze(-1))
    if constraint == "target":
        return column
    z = analytic_signal(y - y.mean(dim=-1, keepdim=True))
    amplitude, phase = z.abs(), z.angle()
    waves = []
    for k in range(1, harmonics + 1):
        for wave in (amplitude * torch.cos(k * phase), amplitude * torch.sin(k * phase)):
            waves += [torch.relu(wave), torch.relu(-wave)]
    parts = torch.stack(waves, dim=-1)
    peak = parts.amax(dim=1, keepdim=True)
    parts = parts / torch.where(peak > 0, peak, torch.ones_like(peak))
    return torch.cat([column, parts], dim=-1)


def rbf_dictionary(d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The reference's RBF bank (D, K): exp(-(i-j)^2 / (4 s^2)) columns for each (s, stride)
    of RBF_SCALES, plus a column of ones. K = 661 for D = 180, 167 for D = 45."""
    i = torch.arange(d, dtype=dtype, device=device).unsqueeze(1)
    columns = []
    for scale, stride in RBF_SCALES:
        j = torch.arange(0, d, stride, dtype=dtype, device=device).unsqueeze(0)
        columns.append(torch.exp(-0.5 * (i - j) ** 2 / (2 * scale**2)))
    columns.append(torch.ones(d, 1, dtype=dtype, device=device))
    return torch.cat(columns, dim=1)


def initial_bases(
    batch: int, rows: int, rank: int, init: BasesInit, seed: int, like: torch.Tensor, random: bool = False
) -> torch.Tensor:
    """(B, rows, rank) bases, L2-normalised over rows.

    `reference`: identical columns of ones (rows=1 gives exactly 1.0, as the reference's
    normalised length-1 draws) unless `random`, which draws from the global RNG as the
    reference's RBF mode does. `seeded`: distinct columns from a generator seeded with
    `seed`, the same on every call.
    """
    if init == "seeded":
        generator = torch.Generator().manual_seed(seed)
        raw = torch.rand(rows, rank, generator=generator, dtype=torch.float64)
        raw = raw.to(dtype=like.dtype, device=like.device)
    elif random:
        raw = torch.rand(rows, rank, dtype=like.dtype, device=like.device)
    else:
        raw = torch.ones(rows, rank, dtype=like.dtype, device=like.device)
    return F.normalize(raw, dim=0).unsqueeze(0).expand(batch, rows, rank)


def _coefficient_update(
    x: torch.Tensor, h: torch.Tensor, p: torch.Tensor, eps: float, additive: bool = False
) -> torch.Tensor:
    """H <- H * (X^T P) / max(H (P^T P), eps), cleaned; with `additive`, / (H (P^T P) + eps)
    and not cleaned."""
    numerator = x.transpose(1, 2) @ p
    if additive:
        return h * numerator / (h @ (p.transpose(1, 2) @ p) + eps)
    denominator = torch.clamp(h @ (p.transpose(1, 2) @ p), min=eps)
    return _clean(h * numerator / denominator)


def nmf(x: torch.Tensor, bases: torch.Tensor, steps: int, eps: float, additive: bool = False) -> torch.Tensor:
    """Unconstrained NMF of non-negative X (B, D, N) with bases G (B, D, R); returns G H^T.

    `steps` updates of H then G without gradient, then one H update with gradient.
    `additive`: eps added to the denominators, no NaN/inf clean-up (FactorizePhys).
    """
    with torch.no_grad():
        xd = x.detach()
        g = bases
        h = torch.softmax(xd.transpose(1, 2) @ g, dim=-1)
        for _ in range(steps):
            h = _coefficient_update(xd, h, g, eps, additive)
            if additive:
                g = g * (xd @ h) / (g @ (h.transpose(1, 2) @ h) + eps)
            else:
                g = _clean(g * (xd @ h) / torch.clamp(g @ (h.transpose(1, 2) @ h), min=eps))
    h = _coefficient_update(x, h, g, eps, additive)
    return g @ h.transpose(1, 2)


def constrained_nmf(
    x: torch.Tensor, dictionary: torch.Tensor, bases: torch.Tensor, steps: int, eps: float, additive: bool = False
) -> torch.Tensor:
    """NMF of X (B, D, N) whose bases are P = E W with fixed dictionary E (B, D, K) and
    weights W (B, K, R); returns P H^T.

    `steps` updates without gradient (H, then W <- E^T [P * (X H) / max(P H^T H, eps)]),
    then one H update with gradient. `additive`: eps added to the denominators, no
    NaN/inf clean-up (FactorizePhys).
    """
    e = dictionary
    with torch.no_grad():
        xd = x.detach()
        w = bases
        h = torch.softmax(xd.transpose(1, 2) @ (e @ w), dim=-1)
        for _ in range(steps):
            p = e @ w
            h = _coefficient_update(xd, h, p, eps, additive)
            if additive:
                w = e.transpose(1, 2) @ (p * ((xd @ h) / (p @ (h.transpose(1, 2) @ h) + eps)))
            else:
                ratio = (xd @ h) / torch.clamp(p @ (h.transpose(1, 2) @ h), min=eps)
                w = _clean(e.transpose(1, 2) @ (p * ratio))
        p = e @ w
    h = _coefficient_update(x, h, p, eps, additive)
    return p @ h.transpose(1, 2)


class FeaturesFactorizationModule(nn.Module):
    """FSAM (`constrained=False`) or TSFM (`constrained=True`) on a (B, C, T, h, w) embedding.

    forward(x, target=None) -> (attention (B, C, T, h, w), approximation error (scalar,
    detached, ||A - Â||_F over the batch, for logging only)). x must be non-negative (the
    heads shift it by its batch minimum). TSFM with constraint `target` or
    `target_harmonics` needs target (B, T); `rbf` ignores it. `eps_mode`: `clamp`
    (MMRPhys: max(denominator, eps), eps 1e-3 under autocast, NaN/inf cleaned) or `add`
    (FactorizePhys: denominator + 1e-6, nothing cleaned).
    """

    def __init__(
        self,
        in_channels: int,
        inner_channels: int = 8,
        *,
        constrained: bool = True,
        rank: int = 1,
        steps: int = 4,
        layout: Layout = "reference",
        constraint: Constraint = "target",
        bases_init: BasesInit = "reference",
        harmonics: int = 2,
        seed: int = 0,
        eps_mode: EpsMode = "clamp",
    ):
        super().__init__()
        self.constrained = constrained
        self.rank = rank
        self.steps = steps
        self.layout = layout
        self.constraint = constraint
        self.bases_init = bases_init
        self.harmonics = harmonics
        self.seed = seed
        self.additive = eps_mode == "add"
        self.pre_conv_block = nn.Sequential(
            nn.Conv3d(in_channels, inner_channels, kernel_size=1, bias=True), nn.ReLU()
        )
        self.post_conv_block = nn.Sequential(
            ConvReLU(inner_channels, inner_channels),
            nn.Conv3d(inner_channels, in_channels, kernel_size=1, bias=False),
        )
        self.reset_conv_weights()

    def reset_conv_weights(self) -> None:
        """The reference's init: N(0, sqrt(2 / (k^3 * c_out))) for every conv weight."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                fan_out = math.prod(module.kernel_size) * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))

    @property
    def needs_target(self) -> bool:
        """Whether forward needs a target signal."""
        return self.constrained and self.constraint != "rbf"

    def reconstruct(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """The decomposition alone: X (B, D, N) non-negative -> its reconstruction Â."""
        batch, rows, _ = x.shape
        eps = EPS if self.additive else _eps(x)
        if not self.constrained:
            bases = initial_bases(batch, rows, self.rank, self.bases_init, self.seed, x)
            return nmf(x, bases, self.steps, eps, self.additive)
        with torch.no_grad():
            if self.constraint == "rbf":
                dictionary = rbf_dictionary(rows, x.dtype, x.device).unsqueeze(0).expand(batch, -1, -1)
            else:
                if target is None:
                    raise ValueError("TSFM needs a target signal (B, T) in this mode; got None")
                if target.shape != (batch, rows):
                    raise ValueError(
                        f"TSFM target: expected shape {(batch, rows)} (batch, matrix rows), "
                        f"got {tuple(target.shape)}"
                    )
                dictionary = target_dictionary(target.to(device=x.device, dtype=x.dtype), self.constraint, self.harmonics)
        bases = initial_bases(
            batch, dictionary.shape[-1], self.rank, self.bases_init, self.seed, x,
            random=self.constraint == "rbf",
        )
        return constrained_nmf(x, dictionary, bases, self.steps, eps, self.additive)

    def forward(
        self, x: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.pre_conv_block(x)
        matrix = to_matrix(a, self.layout)
        approximation = from_matrix(self.reconstruct(matrix, target), a.shape, self.layout)
        error = torch.linalg.vector_norm((a - approximation).detach())
        return self.post_conv_block(approximation), error
