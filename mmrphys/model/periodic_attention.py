"""RhythmFormer's periodic sparse attention: bi-level routing over spatio-temporal regions.

Each block's features (B, C, T, H, W) are cut into regions; the region means of Q and K
score every region pair, each query region keeps its top-k key regions, and its tokens
attend densely to the tokens of those regions only. A depthwise conv of V adds local
context. docs/rhythmformer.md ("Periodic sparse attention") gives every convention this
module follows; attribute names are the reference's state-dict keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TemporalCentralDifferenceConv(nn.Module):
    """3x3x3 conv minus theta x (its first and last temporal slices, summed, as a 1x1x1 conv).

    The reference's CDC_T: conv(x, W) - theta * conv(x, W_d) with W_d[o, i] the sum of
    W[o, i, 0] and W[o, i, 2] over their spatial taps; the middle slice does not enter.
    """

    def __init__(self, c_in: int, c_out: int, theta: float):
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.theta = theta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.theta == 0:
            return out
        w = self.conv.weight
        w_diff = (w[:, :, 0].sum(dim=(2, 3)) + w[:, :, 2].sum(dim=(2, 3)))[:, :, None, None, None]
        return out - self.theta * F.conv3d(x, w_diff)


def to_regions(x: torch.Tensor, region: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, R, S, C): regions in (t, h, w) row-major order, tokens likewise."""
    b, c, t, h, w = x.shape
    rt, rh, rw = region
    x = x.reshape(b, c, t // rt, rt, h // rh, rh, w // rw, rw)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(b, (t // rt) * (h // rh) * (w // rw), rt * rh * rw, c)


def from_regions(x: torch.Tensor, shape: tuple[int, int, int], region: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of `to_regions`: (B, R, S, C) -> (B, C, T, H, W) for grid shape (T, H, W)."""
    b, _, _, c = x.shape
    t, h, w = shape
    rt, rh, rw = region
    x = x.reshape(b, t // rt, h // rh, w // rw, rt, rh, rw, c)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, c, t, h, w)


class PeriodicSparseAttention(nn.Module):
    """Bi-level routing attention on (B, C, T, H, W) features (the reference's video_BRA).

    Q, K: CDC_T 3x3x3 + BatchNorm; V: bias-free 1x1x1 conv. Routing: unscaled dot products
    of detached region means over all C channels, top-k per query region, shared by the
    heads. Token attention: softmax(q k^T * C^-0.5) over the gathered tokens (the full
    width's scale, not the head's). Output: 1x1x1 conv of (attention + depthwise conv of V).
    """

    def __init__(self, dim: int, heads: int, topk: int, region_length: int, spatial_regions: int,
                 side_dwconv: int, cdc_theta: float):
        super().__init__()
        self.dim, self.heads, self.topk = dim, heads, topk
        self.region_length, self.spatial_regions = region_length, spatial_regions
        self.scale = dim ** -0.5
        # registration order = the reference's state-dict order (minus its unused qkv_linear)
        self.lepe = nn.Conv3d(dim, dim, kernel_size=side_dwconv, padding=side_dwconv // 2, groups=dim)
        self.output_linear = nn.Conv3d(dim, dim, kernel_size=1)
        self.proj_q = nn.Sequential(TemporalCentralDifferenceConv(dim, dim, cdc_theta), nn.BatchNorm3d(dim))
        self.proj_k = nn.Sequential(TemporalCentralDifferenceConv(dim, dim, cdc_theta), nn.BatchNorm3d(dim))
        self.proj_v = nn.Sequential(nn.Conv3d(dim, dim, kernel_size=1, bias=False))

    def region_size(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """Tokens per region along (T, H, W) for a feature grid of this shape."""
        _, h, w = shape
        return self.region_length, h // self.spatial_regions, w // self.spatial_regions

    def route(self, q: torch.Tensor, k: torch.Tensor, region: tuple[int, int, int]) -> torch.Tensor:
        """Indices (B, R, topk) of the key regions each query region attends to."""
        q_r = F.avg_pool3d(q.detach(), region, region).flatten(2).transpose(1, 2)
        k_r = F.avg_pool3d(k.detach(), region, region).flatten(2)
        return torch.topk(q_r @ k_r, self.topk, dim=-1).indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj_q(x), self.proj_k(x), self.proj_v(x)
        b, c, t, h, w = x.shape
        region = self.region_size((t, h, w))
        index = self.route(q, k, region)
        q_tok, k_tok, v_tok = (to_regions(y, region) for y in (q, k, v))
        n_regions, tokens = q_tok.shape[1], q_tok.shape[2]
        flat = index.reshape(b, -1, 1).expand(-1, -1, tokens * c)
        gathered = [
            torch.gather(y.reshape(b, n_regions, tokens * c), 1, flat).reshape(b, n_regions, self.topk * tokens, c)
            for y in (k_tok, v_tok)
        ]
        d = c // self.heads
        # heads split the channels contiguously: (B, R, tokens, heads, d) -> (B, R, heads, tokens, d)
        q_h = (q_tok * self.scale).reshape(b, n_regions, tokens, self.heads, d).transpose(2, 3)
        k_h, v_h = (y.reshape(b, n_regions, -1, self.heads, d).transpose(2, 3) for y in gathered)
        attn = torch.softmax(q_h @ k_h.transpose(-1, -2), dim=-1)
        out = (attn @ v_h).transpose(2, 3).reshape(b, n_regions, tokens, c)
        out = from_regions(out, (t, h, w), region) + self.lepe(v)
        return self.output_linear(out)
