"""The two task branches of MMRPhys: feature extractors and heads (docs/model.md, "Layers").

A head runs its conv stack(s), optionally the factorization attention with the fusion
docs/model.md describes ("Attention: FSAM and TSFM"), and its final layers. With late
fusion a head has one conv stack per modality (`conv_layer_rgb` / `conv_layer_thermal`)
whose outputs are concatenated to 32 channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmrphys.model.blocks import NORM_EPS, ConvBlock3D, InstanceNorm3D, conv_stack
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.layouts import PAD_TIME, ResolutionLayout

#: channels of every head embedding per stream
EMBED = 16
#: inner channels of the factorization module (8 in every reference head, LF included)
FACTOR_CHANNELS = 8


class BVPFeatureExtractor(nn.Module):
    """CB Cin->8, CB 8->12, Dropout3d, CB 12->16."""

    def __init__(self, c_in: int, layout: ResolutionLayout, dropout: float):
        super().__init__()
        (s0, p0), (s1, p1), (s2, p2) = layout.bvp_extractor
        self.bvp_feature_extractor = conv_stack(
            [(c_in, 8, s0, p0), (8, 12, s1, p1), "dropout", (12, 16, s2, p2)], dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bvp_feature_extractor(x)


class RSPFeatureExtractor(nn.Module):
    """CB Cin->16, CB 16->16 (temporal stride 2), CB 16->16, Dropout3d."""

    def __init__(self, c_in: int, layout: ResolutionLayout, dropout: float):
        super().__init__()
        (s0, p0), (s1, p1), (s2, p2) = layout.rsp_extractor
        self.rsp_feature_extractor = conv_stack(
            [(c_in, 16, s0, p0), (16, 16, s1, p1), (16, 16, s2, p2), "dropout"], dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rsp_feature_extractor(x)


class _Head(nn.Module):
    """Shared head logic: conv stacks per stream -> [attention fusion] -> final layers.

    `residual` False replaces F by IN(Z) instead of adding it (FactorizePhys's FSAM
    without residual; MMRPhys always adds it).
    """

    stack_name: str
    residual: bool = True

    def __init__(self, streams: tuple[str, ...]):
        super().__init__()
        self.streams = streams
        self.fsam: FeaturesFactorizationModule | None = None

    def _add_attention(self, attention: FeaturesFactorizationModule | None) -> None:
        # registered after the conv stacks: the reference's state-dict order
        if attention is not None:
            self.fsam = attention
            self.fsam_norm = InstanceNorm3D(EMBED * len(self.streams), eps=NORM_EPS)

    def _stack_names(self) -> list[str]:
        if self.streams == ("",):
            return [self.stack_name]
        return [f"{self.stack_name}_{s}" for s in self.streams]

    def prepare_target(self, target: torch.Tensor) -> torch.Tensor:
        """The target as the factorization sees it (B, rows)."""
        return target

    def attend(self, f: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """F' = F + IN((F - min F + 1) * (att - min att + 1)), mins over the whole batch
        (F' = IN(...) without `residual`)."""
        shifted = f - f.min()
        att, _ = self.fsam(shifted, None if target is None else self.prepare_target(target))
        fused = (shifted + 1) * (att - att.min() + 1)
        if not self.residual:
            return self.fsam_norm(fused)
        return f + self.fsam_norm(fused)

    def forward(
        self, features: list[torch.Tensor], target: torch.Tensor | None = None, attend: bool = False
    ) -> torch.Tensor:
        embeddings = [getattr(self, name)(x) for name, x in zip(self._stack_names(), features)]
        f = embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings, dim=1)
        if attend:
            f = self.attend(f, target)
        return self.final_layer(f).flatten(1)


class BVPHead(_Head):
    """`rppg_head`: 3 CBs + Dropout3d, [TSFM], CB ->12 (->16 in LF), CB ->8, Conv3d 8->1."""

    stack_name = "conv_layer"

    def __init__(
        self,
        layout: ResolutionLayout,
        dropout: float,
        streams: tuple[str, ...] = ("",),
        attention: FeaturesFactorizationModule | None = None,
    ):
        super().__init__(streams)
        (s0, p0), (s1, p1), (s2, p2) = layout.bvp_head
        for name in self._stack_names():
            stack = conv_stack(
                [(EMBED, EMBED, s0, p0), (EMBED, EMBED, s1, p1), (EMBED, EMBED, s2, p2), "dropout"], dropout
            )
            self.add_module(name, stack)
        self._add_attention(attention)
        width = EMBED * len(streams)
        middle = 12 if len(streams) == 1 else 16
        (f0, q0), (f1, q1) = layout.bvp_final
        self.final_layer = nn.Sequential(
            ConvBlock3D(width, middle, f0, q0),
            ConvBlock3D(middle, 8, f1, q1),
            nn.Conv3d(8, 1, kernel_size=3, stride=1, padding=PAD_TIME, bias=False),
        )


class RSPHead(_Head):
    """`rBr_head`: 4 CBs (temporal stride 2) with Dropout3d, [TSFM], CB ->16, nearest x4
    temporal upsampling, Conv3d 16->1 kernel (3, 4, 4)."""

    stack_name = "conv_block"

    def __init__(
        self,
        layout: ResolutionLayout,
        dropout: float,
        streams: tuple[str, ...] = ("",),
        attention: FeaturesFactorizationModule | None = None,
    ):
        super().__init__(streams)
        (s0, p0), (s1, p1), (s2, p2), (s3, p3) = layout.rsp_head
        for name in self._stack_names():
            stack = conv_stack(
                [
                    (EMBED, EMBED, s0, p0),
                    (EMBED, EMBED, s1, p1),
                    (EMBED, EMBED, s2, p2),
                    "dropout",
                    (EMBED, EMBED, s3, p3),
                ],
                dropout,
            )
            self.add_module(name, stack)
        self._add_attention(attention)
        width = EMBED * len(streams)
        f0, q0 = layout.rsp_final
        self.final_layer = nn.Sequential(
            ConvBlock3D(width, EMBED, f0, q0),
            nn.Upsample(scale_factor=(4, 1, 1), mode="nearest"),
            nn.Conv3d(EMBED, 1, kernel_size=(3, 4, 4), stride=1, padding=PAD_TIME, bias=False),
        )

    def prepare_target(self, target: torch.Tensor) -> torch.Tensor:
        """Average-pool the (B, T) label to (B, T/4): kernel 5, stride 4, zero padding 2
        counted in the mean (the reference's RSP constraint)."""
        pooled = F.avg_pool1d(target.unsqueeze(1), kernel_size=5, stride=4, padding=2, count_include_pad=True)
        return pooled.squeeze(1)
