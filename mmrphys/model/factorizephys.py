"""FactorizePhys: the single-branch 3D-CNN for BVP with FSAM attention, every variant from
one class (docs/factorizephys.md).

`FactorizePhys(config)` serves the standard model (72x72) and Big (128x128, the reference's
HighRes / HighSpatialRes) by `config.resolution`, RGB / thermal / RGB+T by
`config.modality`, and attention `none` (Base), `fsam` (residual or not, any matrix
transform) or `tsfm` (the label-constrained factorization of the MMRPhys port) by
configuration. Module names follow the authors' state-dict keys, so their checkpoints load
with `strict=True`. The conv block, the front end, the factorization module and the head's
attention fusion are the ones MMRPhys uses; the factorization runs with FactorizePhys's
numerics (eps added to denominators, no NaN/inf clean-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmrphys.config import ConfigError, ModelConfig
from mmrphys.model.blocks import ConvBlock3D, conv_stack, front_end, use_fused
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.heads import EMBED, FACTOR_CHANNELS, _Head
from mmrphys.model.layouts import HALF_SPACE, ONE, PAD_ALL, PAD_TIME, StridePad, Triple
from mmrphys.model.network import attention_runs, check_clip, check_task_labels

#: FactorizePhysOptions.transform -> the factorization module's matrix view
TRANSFORM_LAYOUTS = {"T_KAB": "reference", "TK_AB": "tk_ab", "K_TAB": "k_tab"}


@dataclass(frozen=True)
class FactorizePhysLayout:
    """What differs between the standard and the Big model (docs/factorizephys.md, "Layers")."""

    extractor: tuple[StridePad, ...]
    """(stride, padding) of the six extractor conv blocks."""
    head: tuple[StridePad, ...]
    """(stride, padding) of the three head conv blocks."""
    final_kernel: Triple
    """kernel of the first final-layer block."""
    attention_first: bool
    """FSAM on the extractor output, before the head conv blocks (Big), instead of after."""


LAYOUTS: dict[int, FactorizePhysLayout] = {
    72: FactorizePhysLayout(
        extractor=((ONE, PAD_ALL), (HALF_SPACE, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME), (HALF_SPACE, PAD_TIME), (ONE, PAD_TIME)),
        head=((ONE, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME)),
        final_kernel=(3, 3, 3),
        attention_first=False,
    ),
    128: FactorizePhysLayout(
        extractor=((ONE, PAD_TIME), (HALF_SPACE, PAD_TIME), (ONE, PAD_TIME), (HALF_SPACE, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME)),
        head=((HALF_SPACE, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME)),
        final_kernel=(3, 4, 4),
        attention_first=True,
    ),
}
#: channels of the extractor's conv blocks after the input
EXTRACTOR_CHANNELS = (8, 12, 12, 12, 16, EMBED)


class FactorizePhysExtractor(nn.Module):
    """`rppg_feature_extractor`: CB C->8, CB 8->12, CB 12->12, Dropout3d, CB 12->12,
    CB 12->16, CB 16->16, Dropout3d."""

    def __init__(self, c_in: int, layout: FactorizePhysLayout, dropout: float):
        super().__init__()
        widths = (c_in, *EXTRACTOR_CHANNELS)
        blocks = [(widths[i], widths[i + 1], *layout.extractor[i]) for i in range(len(EXTRACTOR_CHANNELS))]
        self.FeatureExtractor = conv_stack([*blocks[:3], "dropout", *blocks[3:], "dropout"], dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.FeatureExtractor(x)


class FactorizePhysHead(_Head):
    """`rppg_head`: 3 CB 16->16 + Dropout3d, [FSAM], CB 16->12, CB 12->8, Conv3d 8->1.

    Big runs FSAM on its input, before the conv blocks. The attention fusion is the one
    MMRPhys's heads share (`_Head.attend`), with FactorizePhys's choice of residual.
    """

    stack_name = "conv_block"

    def __init__(
        self,
        layout: FactorizePhysLayout,
        dropout: float,
        attention: FeaturesFactorizationModule | None = None,
        residual: bool = True,
    ):
        super().__init__(("",))
        self.residual = residual
        self.attention_first = layout.attention_first
        self.conv_block = conv_stack([(EMBED, EMBED, s, p) for s, p in layout.head] + ["dropout"], dropout)
        self._add_attention(attention)
        self.final_layer = nn.Sequential(
            ConvBlock3D(EMBED, 12, ONE, PAD_TIME, kernel=layout.final_kernel),
            ConvBlock3D(12, 8, ONE, PAD_TIME),
            nn.Conv3d(8, 1, kernel_size=3, stride=1, padding=PAD_TIME, bias=False),
        )

    def forward(
        self, features: list[torch.Tensor], target: torch.Tensor | None = None, attend: bool = False
    ) -> torch.Tensor:
        if not self.attention_first:
            return super().forward(features, target, attend)
        (v,) = features
        if attend:
            v = self.attend(v, target)
        return self.final_layer(self.conv_block(v)).flatten(1)


class FactorizePhys(nn.Module):
    """FactorizePhys built from a ModelConfig with architecture `factorizephys`.

    forward(x, labels=None) -> {"bvp": (B, T)}. x: raw clip (B, C, T or T+1, H, W), C =
    config.in_channels (RGB first, thermal last), H = W = config.resolution (72 or 128), T a
    positive multiple of 4. labels: {"bvp": (B, T)} targets; required in training with
    attention "tsfm". FSAM runs in training; in eval mode only with
    `attention_at_inference` (docs/factorizephys.md, "When FSAM runs").
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"FactorizePhys needs a ModelConfig, got {type(config).__name__}")
        if config.architecture != "factorizephys":
            raise ConfigError(
                f"ModelConfig.architecture: FactorizePhys needs 'factorizephys', got {config.architecture!r}"
            )
        self.config = config
        layout = LAYOUTS[config.resolution]
        self.rppg_feature_extractor = FactorizePhysExtractor(config.in_channels, layout, config.dropout)
        self.rppg_head = FactorizePhysHead(layout, config.dropout, self._attention(), config.factorizephys.residual)
        for module in self.modules():
            if isinstance(module, ConvBlock3D):
                module.kernels = config.kernels

    def _attention(self) -> FeaturesFactorizationModule | None:
        config = self.config
        if config.attention == "none":
            return None
        layout = TRANSFORM_LAYOUTS[config.factorizephys.transform]
        if config.factor_layout == "time_aligned":
            layout = "time_aligned"
        return FeaturesFactorizationModule(
            EMBED,
            FACTOR_CHANNELS,
            constrained=config.attention == "tsfm",
            rank=config.nmf_rank,
            steps=config.nmf_steps,
            layout=layout,
            constraint=config.constraint,
            bases_init=config.bases_init,
            seed=config.seed,
            eps_mode="add",
        )

    @property
    def needs_labels(self) -> bool:
        """Whether the factorization needs the target signal (TSFM)."""
        return self.config.attention == "tsfm"

    def attention_active(self, labels: dict | None) -> bool:
        """Whether this call runs the factorization branch."""
        return attention_runs(self.config, self.training, labels, self.needs_labels)

    def check_input(self, x: torch.Tensor) -> int:
        """Validate a raw clip; return the output length T."""
        return check_clip(x, self.config)

    def forward(self, x: torch.Tensor, labels: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        frames = self.check_input(x)
        weight = next(self.parameters())
        x = x.to(dtype=weight.dtype)
        # T frames: the reference's trainer appends a copy of the last frame
        d = front_end(x, append_last=x.shape[2] == frames)
        attend = self.attention_active(labels)
        target = None
        if attend and self.needs_labels:
            target = check_task_labels(labels, self.config, x.shape[0], frames, x.dtype, x.device)["bvp"]
        return {"bvp": self.waveform(d, target, attend)}

    def waveform(self, d: torch.Tensor, target: torch.Tensor | None = None, attend: bool = False) -> torch.Tensor:
        """The (B, T) BVP from the front end's output d (B, C, T, H, W), without input checks
        (the ONNX export traces this)."""
        if use_fused(self.config.kernels, d):
            # the conv blocks keep this layout from here on (mmrphys.model.fused_norm)
            d = d.contiguous(memory_format=torch.channels_last_3d)
        return self.rppg_head([self.rppg_feature_extractor(d)], target, attend)


def factorizephys_config(**overrides) -> ModelConfig:
    """ModelConfig of the reference's default FactorizePhys: 72x72 RGB, BVP, FSAM with
    residual (FSAM_Res), 160 frames; keyword overrides change any field (e.g.
    `resolution=128` for Big, `attention="none"` for Base)."""
    settings = dict(architecture="factorizephys", resolution=72, modality="rgb", tasks=("bvp",), attention="fsam", frames=160)
    settings.update(overrides)
    return ModelConfig(**settings)
