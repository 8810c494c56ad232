"""The model section: which network, which variant, which attention."""

from __future__ import annotations

import dataclasses
from typing import Literal

from mmrphys.config.base import Config, ConfigError
from mmrphys.config.factorizephys import FACTORIZEPHYS_ONLY, FACTORIZEPHYS_RESOLUTIONS, FactorizePhysOptions
from mmrphys.config.rhythmformer import RhythmFormerOptions, check_geometry, output_length
from mmrphys.config.unsupervised import UNSUPERVISED_ONLY, UnsupervisedOptions
from mmrphys.tasks import TaskName

Architecture = Literal["mmrphys", "factorizephys", "rhythmformer", "unsupervised"]
#: frame sizes each architecture takes (MMRPhys: the reference's L, M and S; FactorizePhys:
#: standard and Big; RhythmFormer: its reference 128 first, then the other sizes its
#: region partition tiles exactly; the unsupervised methods average each frame, so any
#: stored size serves, 9 the cheapest)
RESOLUTIONS: dict[str, tuple[int, ...]] = {
    "mmrphys": (72, 36, 9),
    "factorizephys": FACTORIZEPHYS_RESOLUTIONS,
    "rhythmformer": (128, 64, 72, 96, 160, 192, 256),
    "unsupervised": (9, 36, 72, 128),
}
#: what each architecture other than MMRPhys supports of the fields MMRPhys varies: the
#: one value it takes of each (docs/factorizephys.md, docs/rhythmformer.md, docs/baselines.md)
ONLY: dict[str, dict[str, object]] = {
    "factorizephys": FACTORIZEPHYS_ONLY,
    "rhythmformer": {"modality": "rgb", "fusion": "early", "attention": "none", "tasks": ("bvp",)},
    "unsupervised": UNSUPERVISED_ONLY,
}
#: the options section of each architecture that has one
OPTIONS: dict[str, type[Config]] = {
    "factorizephys": FactorizePhysOptions, "rhythmformer": RhythmFormerOptions, "unsupervised": UnsupervisedOptions,
}
Modality = Literal["rgb", "thermal", "rgbt"]
Fusion = Literal["early", "per_task", "late"]
Attention = Literal["none", "fsam", "tsfm"]
FactorLayout = Literal["reference", "time_aligned"]
Constraint = Literal["target", "target_harmonics", "rbf"]
BasesInit = Literal["reference", "seeded"]
Kernels = Literal["auto", "fused", "stock"]

#: channels of the raw clip each modality feeds the model (RGB first, thermal last)
MODALITY_CHANNELS: dict[str, int] = {"rgb": 3, "thermal": 1, "rgbt": 4}


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """One network: its architecture and every option of its variant.

    architecture: the network family (`mmrphys.model.build_model` builds it): `mmrphys`,
        `factorizephys` (BVP only, early fusion, constraint `target`; its own options in
        `factorizephys`; docs/factorizephys.md), `rhythmformer` (RGB, BVP only, early fusion,
        attention `none`; its own options in `rhythmformer`; docs/rhythmformer.md) or
        `unsupervised` (a classic method such as POS, no weights, not trained; RGB, BVP;
        options in `unsupervised`; docs/baselines.md). MMRPhys-only fields are ignored by
        the architectures that do not use them.
    resolution: input frame size, one of `RESOLUTIONS[architecture]` (MMRPhys: 72 = the
        reference's L, 36 = M, 9 = S; FactorizePhys: 72 = standard, 128 = Big;
        RhythmFormer: 128 in the reference).
    modality / fusion: `early` (EF) feeds the chosen channels to both branches;
        `per_task` (NF) routes RGB to BVP and thermal to RSP; `late` (LF) keeps separate
        RGB and thermal streams joined before the heads. NF and LF need `rgbt`.
    tasks: which heads to build.
    attention: `none` (Base), `fsam` (unconstrained NMF) or `tsfm` (NMF constrained by the
        target signal during training).
    frames: T, the output length; the model takes T or T+1 input frames; a multiple of 4.
        RhythmFormer: the clip length (160 in the reference); it returns 8 * floor(T / 8).
    nmf_steps / nmf_rank / rsp_nmf_rank: factorization iterations and ranks (the
        reference's MD_STEPS, MD_R and the RSP head's forced rank 4).
    factor_layout: `reference` reshapes (C, T, h, w) memory into the D x N matrix exactly
        as the reference does; `time_aligned` makes matrix row t hold frame t.
    constraint: TSFM dictionary: `target` (one column, the reference's Label mode),
        `target_harmonics` (target, its quadrature and harmonics), `rbf` (the reference's
        Gaussian bank).
    bases_init: `reference` (identical initial bases, as the reference) or `seeded`
        (distinct, seeded initial bases so that rank and steps matter).
    attention_at_inference: also run the factorization in eval mode (FSAM only needs no
        label; TSFM at inference uses the plain path unless this is set and labels given).
    kernels: how conv blocks run; the same function either way (float rounding aside).
        `stock` is the reference's op sequence with stock PyTorch modules; `fused` keeps
        activations channels-last and runs Tanh+InstanceNorm as one autograd function
        (faster training on CPU); `auto` fuses on CPU and stays stock elsewhere.
    factorizephys / rhythmformer / unsupervised: each architecture's own options; they must
        stay at their defaults for the other architectures.
    """

    architecture: Architecture = "mmrphys"
    resolution: int = 72
    modality: Modality = "rgbt"
    fusion: Fusion = "early"
    tasks: tuple[TaskName, ...] = ("bvp", "rsp")
    attention: Attention = "tsfm"
    frames: int = 180
    dropout: float = 0.1
    nmf_steps: int = 4
    nmf_rank: int = 1
    rsp_nmf_rank: int = 4
    factor_layout: FactorLayout = "reference"
    constraint: Constraint = "target"
    bases_init: BasesInit = "reference"
    harmonics: int = 2
    seed: int = 0
    attention_at_inference: bool = False
    kernels: Kernels = "auto"
    factorizephys: FactorizePhysOptions = dataclasses.field(default_factory=FactorizePhysOptions)
    rhythmformer: RhythmFormerOptions = dataclasses.field(default_factory=RhythmFormerOptions)
    unsupervised: UnsupervisedOptions = dataclasses.field(default_factory=UnsupervisedOptions)

    @property
    def in_channels(self) -> int:
        """Channels of the raw clip this model takes."""
        return MODALITY_CHANNELS[self.modality]

    def output_frames(self, frames: int) -> int:
        """Samples the network returns for a clip of `frames` frames; sample t is frame t.
        One per frame for every architecture but RhythmFormer (8 * floor(T / 8) by
        default; docs/rhythmformer.md)."""
        if self.architecture == "rhythmformer":
            return output_length(frames, self.rhythmformer)
        return frames

    def validate(self) -> None:
        allowed = RESOLUTIONS[self.architecture]
        if self.resolution not in allowed:
            raise ConfigError(f"ModelConfig.resolution: {self.resolution} is not one of {list(allowed)}"
                              + (f" for architecture {self.architecture!r}" if self.architecture != "mmrphys" else ""))
        self._validate_architecture()
        if self.fusion != "early" and self.modality != "rgbt":
            raise ConfigError(
                f"ModelConfig.fusion: {self.fusion!r} needs modality 'rgbt' "
                f"(RGB and thermal streams), got modality {self.modality!r}"
            )
        if not self.tasks:
            raise ConfigError("ModelConfig.tasks: at least one of ['bvp', 'rsp'] is required")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"ModelConfig.tasks: duplicate task in {list(self.tasks)}")
        if self.frames <= 0 or self.frames % 4:
            raise ConfigError(f"ModelConfig.frames: must be a positive multiple of 4, got {self.frames}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ModelConfig.dropout: must be in [0, 1), got {self.dropout}")
        for name in ("nmf_steps", "nmf_rank", "rsp_nmf_rank", "harmonics"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ModelConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.attention == "fsam" and self.constraint != "target":
            raise ConfigError(
                "ModelConfig.constraint: FSAM is the unconstrained factorization; "
                f"constraint {self.constraint!r} needs attention 'tsfm'"
            )

    def _validate_architecture(self) -> None:
        """The fields the architecture fixes, and its own options (set only for it)."""
        for name, cls in OPTIONS.items():
            if name != self.architecture and getattr(self, name) != cls():
                raise ConfigError(
                    f"ModelConfig.{name}: options of architecture {name!r} are set, "
                    f"but architecture is {self.architecture!r}"
                )
        for name, allowed in ONLY.get(self.architecture, {}).items():
            value = getattr(self, name)
            if value != allowed:
                shown = list(value) if isinstance(value, tuple) else repr(value)
                expected = list(allowed) if isinstance(allowed, tuple) else [allowed]
                raise ConfigError(
                    f"ModelConfig.{name}: architecture {self.architecture!r} does not support {shown}; "
                    f"allowed: {expected}"
                )
        if self.architecture == "rhythmformer" and self.frames > 0 and self.frames % 4 == 0:
            check_geometry(self.frames, self.resolution, self.rhythmformer)
        if self.architecture == "factorizephys":
            transform = self.factorizephys.transform
            if transform != "T_KAB" and (self.attention == "tsfm" or self.factor_layout == "time_aligned"):
                what = "attention 'tsfm'" if self.attention == "tsfm" else "factor_layout 'time_aligned'"
                raise ConfigError(
                    f"ModelConfig.factorizephys.transform: {what} needs a matrix with one row per frame "
                    f"(T rows); {transform!r} is not allowed with it, only 'T_KAB'"
                )
        if self.architecture == "unsupervised":
            self.unsupervised.check_method()
