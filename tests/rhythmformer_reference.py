"""An independent, literal transcription of the RhythmFormer network as docs/rhythmformer.md
describes it, reading weights from a state dict by the reference's key names.

Loops over regions, tokens and heads, Python sorting for the routing top-k, hand-written
BatchNorm from batch statistics (training) or the stored running statistics (eval). Slow
on purpose; the tests compare `mmrphys.model.rhythmformer` with it in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-5


def batch_norm(x: torch.Tensor, sd: dict, prefix: str, training: bool) -> torch.Tensor:
    """BatchNorm over every axis but the channel axis 1."""
    axes = [0] + list(range(2, x.dim()))
    if training:
        mean = x.mean(dim=axes)
        var = ((x - mean.reshape(1, -1, *[1] * (x.dim() - 2))) ** 2).mean(dim=axes)
    else:
        mean, var = sd[prefix + ".running_mean"], sd[prefix + ".running_var"]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + EPS) * sd[prefix + ".weight"].reshape(shape) + sd[
        prefix + ".bias"
    ].reshape(shape)


def cdc_t(x: torch.Tensor, weight: torch.Tensor, theta: float) -> torch.Tensor:
    normal = F.conv3d(x, weight, padding=1)
    w_d = weight[:, :, 0].sum(dim=(2, 3)) + weight[:, :, 2].sum(dim=(2, 3))
    return normal - theta * F.conv3d(x, w_d[:, :, None, None, None])


def region_tokens(index: tuple[int, int, int], size: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    ti, hi, wi = index
    rt, rh, rw = size
    return [
        (ti * rt + dt, hi * rh + dh, wi * rw + dw) for dt in range(rt) for dh in range(rh) for dw in range(rw)
    ]


def routing_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int, int], topk: int, heads: int
) -> tuple[torch.Tensor, list[list[list[int]]]]:
    """Token attention of the routed regions, one query token and head at a time.

    Returns the (B, C, T, H, W) attention output and, per batch and query region, the
    selected key regions (as a set-like sorted list, for comparing routing).
    """
    qn, kn, vn = (t.detach().numpy() for t in (q, k, v))
    b, c, t, h, w = qn.shape
    rt, rh, rw = size
    grid = [(ti, hi, wi) for ti in range(t // rt) for hi in range(h // rh) for wi in range(w // rw)]
    d = c // heads
    scale = 1.0 / math.sqrt(c)
    out = np.zeros_like(qn)
    selections = []
    for bi in range(b):
        members = [region_tokens(r, size) for r in grid]
        q_mean = np.array([np.mean([qn[bi, :, a, e, f] for a, e, f in m], axis=0) for m in members])
        k_mean = np.array([np.mean([kn[bi, :, a, e, f] for a, e, f in m], axis=0) for m in members])
        scores = q_mean @ k_mean.T
        chosen = []
        for r, m in enumerate(members):
            order = sorted(range(len(grid)), key=lambda j: -scores[r, j])[:topk]
            chosen.append(sorted(order))
            keys = [tok for j in order for tok in members[j]]
            for a, e, f in m:
                for head in range(heads):
                    ch = slice(head * d, (head + 1) * d)
                    query = qn[bi, ch, a, e, f] * scale
                    key_mat = np.array([kn[bi, ch, ka, ke, kf] for ka, ke, kf in keys])
                    val_mat = np.array([vn[bi, ch, ka, ke, kf] for ka, ke, kf in keys])
                    logits = key_mat @ query
                    weights = np.exp(logits - logits.max())
                    weights /= weights.sum()
                    out[bi, ch, a, e, f] = weights @ val_mat
        selections.append(chosen)
    return torch.from_numpy(out), selections


def attention(x: torch.Tensor, sd: dict, p: str, *, topk: int, heads: int, region_length: int,
              spatial_regions: int, theta: float, training: bool):
    """The block attention (video_BRA) on normalised features; returns (output, routing)."""
    q = batch_norm(cdc_t(x, sd[p + "proj_q.0.conv.weight"], theta), sd, p + "proj_q.1", training)
    k = batch_norm(cdc_t(x, sd[p + "proj_k.0.conv.weight"], theta), sd, p + "proj_k.1", training)
    v = F.conv3d(x, sd[p + "proj_v.0.weight"])
    size = (region_length, x.shape[3] // spatial_regions, x.shape[4] // spatial_regions)
    out, routing = routing_attention(q, k, v, size, topk, heads)
    lepe = sd[p + "lepe.weight"]
    out = out + F.conv3d(v, lepe, sd[p + "lepe.bias"], padding=lepe.shape[-1] // 2, groups=x.shape[1])
    return F.conv3d(out, sd[p + "output_linear.weight"], sd[p + "output_linear.bias"]), routing


def stem(x: torch.Tensor, sd: dict, training: bool) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B*T, 64, H/4, W/4)."""
    b, t, c, h, w = x.shape
    shifted = lambda s: x[:, torch.clamp(torch.arange(t) + s, 0, t - 1)]
    diffs = torch.cat([shifted(-1) - shifted(-2), shifted(0) - shifted(-1), shifted(1) - shifted(0),
                       shifted(2) - shifted(1)], dim=2).reshape(b * t, 4 * c, h, w)

    def branch(inp, name, stride_pad, pool):
        y = F.conv2d(inp, sd[f"Fusion_Stem.{name}.0.weight"], sd[f"Fusion_Stem.{name}.0.bias"], *stride_pad)
        y = torch.relu(batch_norm(y, sd, f"Fusion_Stem.{name}.1", training))
        return F.max_pool2d(y, 3, 2, 1) if pool else y

    x11 = branch(x.reshape(b * t, c, h, w), "stem11", (2, 2), True)
    x12 = branch(diffs, "stem12", (2, 2), True)
    x21 = branch(0.5 * x11 + 0.5 * x12, "stem21", (1, 1), False)
    x22 = branch(x12, "stem22", (1, 1), False)
    return 0.5 * x21 + 0.5 * x22


def network(clip: torch.Tensor, sd: dict, *, depths, t_patches, topk, head_dim=16, region_frames=4,
            spatial_regions=4, theta=0.2, training: bool) -> tuple[torch.Tensor, list]:
    """Clip (B, T, 3, H, W) in the reference layout -> ((B, T_out), routing of every block)."""
    b, t = clip.shape[:2]
    f = stem(clip, sd, training)
    f = f.reshape(b, t, 64, f.shape[-2], f.shape[-1]).permute(0, 2, 1, 3, 4)
    f = F.conv3d(f, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 4, 4))
    dim = f.shape[1]
    routings = []
    for i, (depth, t_patch, k) in enumerate(zip(depths, t_patches, topk)):
        p = f"stages.{i}."
        levels = int(math.log2(t_patch))
        for j in range(levels):
            f = batch_norm(f, sd, p + f"downsample_layers.{j}.0", training)
            f = F.conv3d(f, sd[p + f"downsample_layers.{j}.1.weight"], sd[p + f"downsample_layers.{j}.1.bias"],
                         stride=(2, 1, 1))
        for j in range(depth):
            q = p + f"blocks.{j}."
            att, routing = attention(batch_norm(f, sd, q + "norm1", training), sd, q + "attn.", topk=k,
                                     heads=dim // head_dim, region_length=max(region_frames // t_patch, 1),
                                     spatial_regions=spatial_regions, theta=theta, training=training)
            routings.append(routing)
            f = f + att
            y = batch_norm(f, sd, q + "norm2", training)
            y = F.conv3d(y, sd[q + "mlp.0.weight"], sd[q + "mlp.0.bias"])
            y = F.gelu(batch_norm(y, sd, q + "mlp.1", training))
            y = F.conv3d(y, sd[q + "mlp.3.weight"], sd[q + "mlp.3.bias"], padding=1)
            y = F.gelu(batch_norm(y, sd, q + "mlp.4", training))
            y = F.conv3d(y, sd[q + "mlp.6.weight"], sd[q + "mlp.6.bias"])
            f = f + batch_norm(y, sd, q + "mlp.7", training)
        for j in range(levels):
            f = f.repeat_interleave(2, dim=2)
            f = F.conv3d(f, sd[p + f"upsample_layers.{j}.1.weight"], sd[p + f"upsample_layers.{j}.1.bias"],
                         padding=(1, 0, 0))
            f = F.elu(batch_norm(f, sd, p + f"upsample_layers.{j}.2", training))
    pooled = f.mean(dim=3).mean(dim=3)
    return F.conv1d(pooled, sd["ConvBlockLast.weight"], sd["ConvBlockLast.bias"])[:, 0], routings
