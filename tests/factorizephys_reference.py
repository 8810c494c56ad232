"""An independent, literal transcription of FactorizePhys as docs/factorizephys.md states
it: plain functional torch on a state dict in the authors' key layout, nothing from
`mmrphys`. The tests compare `mmrphys.model.FactorizePhys` with it in float64 to 1e-9.

Dropout draws from the global RNG in network order (extractor 3, extractor 7, head 3),
as the reference's modules do, so a seeded training-mode call sees the same masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NORM_EPS = 1e-5
NMF_EPS = 1e-6
T_PAD = (1, 0, 0)
HALF = (1, 2, 2)

# (stride, padding) of extractor blocks 0, 1, 2, 4, 5, 6 and head blocks 0, 1, 2
STANDARD = {
    "extractor": [(1, (1, 1, 1)), (HALF, T_PAD), (1, T_PAD), (1, T_PAD), (HALF, T_PAD), (1, T_PAD)],
    "head": [(1, T_PAD), (1, T_PAD), (1, T_PAD)],
}
BIG = {
    "extractor": [(1, T_PAD), (HALF, T_PAD), (1, T_PAD), (HALF, T_PAD), (1, T_PAD), (1, T_PAD)],
    "head": [(HALF, T_PAD), (1, T_PAD), (1, T_PAD)],
}


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Per sample and channel over (T, H, W): (x - mean) / sqrt(biased var + 1e-5)."""
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3, 4), keepdim=True)
    return (x - mean) / torch.sqrt(var + NORM_EPS)


def conv_block(x: torch.Tensor, weight: torch.Tensor, stride, padding) -> torch.Tensor:
    """Conv3d (no bias) -> Tanh -> instance norm."""
    return instance_norm(torch.tanh(F.conv3d(x, weight, stride=stride, padding=padding)))


def matrix(a: torch.Tensor, transform: str) -> torch.Tensor:
    """The raw memory view of each (8, T, h, w) sample as D x N."""
    b, c, t, h, w = a.shape
    rows = {"T_KAB": t, "TK_AB": c * t, "K_TAB": c}[transform]
    return a.contiguous().view(b, rows, (c * t * h * w) // rows)


def nmf(x: torch.Tensor, rank: int, steps: int) -> torch.Tensor:
    """Multiplicative-update NMF with eps added to the denominators: bases of ones
    normalised over D, coefficients softmax(X^T G); `steps` updates without gradient,
    then one coefficient update with gradient. Returns G H^T."""
    b, d, n = x.shape
    xd = x.detach()
    g = torch.ones(b, d, rank, dtype=x.dtype) / math.sqrt(d)
    h = torch.softmax(torch.einsum("bdn,bdr->bnr", xd, g), dim=-1)
    for _ in range(steps):
        h = h * torch.einsum("bdn,bdr->bnr", xd, g) / (torch.einsum("bnr,bdr,bds->bns", h, g, g) + NMF_EPS)
        g = g * torch.einsum("bdn,bnr->bdr", xd, h) / (torch.einsum("bdr,bnr,bns->bds", g, h, h) + NMF_EPS)
    h = h * torch.einsum("bdn,bdr->bnr", x, g) / (torch.einsum("bnr,bdr,bds->bns", h, g, g) + NMF_EPS)
    return torch.einsum("bdr,bnr->bdn", g, h)


def label_nmf(x: torch.Tensor, label: torch.Tensor, rank: int, steps: int) -> torch.Tensor:
    """The MMRPhys port's label-constrained NMF with additive eps: P = E W with
    E = 1 + (y - min y) / (max y - min y) (D x 1) and W of ones (1 x R)."""
    b, d, n = x.shape
    xd = x.detach()
    lo, hi = label.amin(dim=1, keepdim=True), label.amax(dim=1, keepdim=True)
    e = (1 + (label - lo) / (hi - lo)).unsqueeze(-1)
    w = torch.ones(b, 1, rank, dtype=x.dtype)
    p = e @ w
    h = torch.softmax(torch.einsum("bdn,bdr->bnr", xd, p), dim=-1)
    for _ in range(steps):
        p = e @ w
        h = h * torch.einsum("bdn,bdr->bnr", xd, p) / (torch.einsum("bnr,bdr,bds->bns", h, p, p) + NMF_EPS)
        ratio = torch.einsum("bdn,bnr->bdr", xd, h) / (torch.einsum("bdr,bnr,bns->bds", p, h, h) + NMF_EPS)
        w = torch.einsum("bdk,bdr->bkr", e, p * ratio)
    p = e @ w
    h = h * torch.einsum("bdn,bdr->bnr", x, p) / (torch.einsum("bnr,bdr,bds->bns", h, p, p) + NMF_EPS)
    return torch.einsum("bdr,bnr->bdn", p, h)


def fsam_fusion(v: torch.Tensor, state: dict, options: dict, label: torch.Tensor | None) -> torch.Tensor:
    """F' from the head tensor V: FSAM on V - min V, Z = (V - min V + 1)(att - min att + 1),
    F' = V + IN(Z) (residual) or IN(Z)."""
    x0 = v - v.min()
    a = torch.relu(F.conv3d(x0, state["rppg_head.fsam.pre_conv_block.0.weight"], state["rppg_head.fsam.pre_conv_block.0.bias"]))
    m = matrix(a, options["transform"])
    if options["attention"] == "tsfm":
        approximation = label_nmf(m, label, options["rank"], options["steps"])
    else:
        approximation = nmf(m, options["rank"], options["steps"])
    approximation = approximation.reshape(a.shape)
    att = F.conv3d(torch.relu(F.conv3d(approximation, state["rppg_head.fsam.post_conv_block.0.conv.weight"])),
                   state["rppg_head.fsam.post_conv_block.1.weight"])
    z = (v - v.min() + 1.0) * (att - att.min() + 1.0)
    return v + instance_norm(z) if options["residual"] else instance_norm(z)


def forward(clip: torch.Tensor, state: dict, options: dict, label: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, T+1, H, W) raw clip -> (B, T) BVP.

    options: big, attention ("none" / "fsam" / "tsfm"), attend (run FSAM in this call),
    residual, transform, rank, steps, dropout (p, applied when `training`), training.
    """
    layout = BIG if options["big"] else STANDARD
    p, training = options["dropout"], options["training"]

    def drop(x):
        return F.dropout3d(x, p, training=True) if training else x

    d = instance_norm(clip[:, :, 1:] - clip[:, :, :-1])
    x = d
    for i, (stride, padding) in zip((0, 1, 2, 4, 5, 6), layout["extractor"]):
        x = conv_block(x, state[f"rppg_feature_extractor.FeatureExtractor.{i}.conv_block_3d.0.weight"], stride, padding)
        if i == 2:
            x = drop(x)
    x = drop(x)
    attend = options["attention"] != "none" and options["attend"]
    if attend and options["big"]:
        x = fsam_fusion(x, state, options, label)
    for i, (stride, padding) in enumerate(layout["head"]):
        x = conv_block(x, state[f"rppg_head.conv_block.{i}.conv_block_3d.0.weight"], stride, padding)
    x = drop(x)
    if attend and not options["big"]:
        x = fsam_fusion(x, state, options, label)
    x = conv_block(x, state["rppg_head.final_layer.0.conv_block_3d.0.weight"], 1, T_PAD)
    x = conv_block(x, state["rppg_head.final_layer.1.conv_block_3d.0.weight"], 1, T_PAD)
    x = F.conv3d(x, state["rppg_head.final_layer.2.weight"], padding=T_PAD)
    return x.view(-1, x.shape[2])
