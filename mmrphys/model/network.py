"""MMRPhys: the dual-branch 3D-CNN for BVP and respiration, every variant from one class.

`MMRPhys(config)` builds the layers the `ModelConfig` asks for (resolution, modality,
fusion, tasks, attention), with the reference's module names so that its checkpoints
load with `strict=True`. The front end (last-frame copy, temporal difference, instance
norm) is inside the model: feed raw clips (B, C, T or T+1, H, W).
"""

from __future__ import annotations

import torch
from torch import nn

from mmrphys.config import ModelConfig
from mmrphys.errors import UserError
from mmrphys.model.blocks import ConvBlock3D, front_end, use_fused
from mmrphys.model.factorization import FeaturesFactorizationModule
from mmrphys.model.heads import (
    FACTOR_CHANNELS,
    BVPFeatureExtractor,
    BVPHead,
    RSPFeatureExtractor,
    RSPHead,
)
from mmrphys.model.layouts import LAYOUTS

#: attribute of each task's head (the reference's state-dict prefixes)
HEADS = {"bvp": "rppg_head", "rsp": "rBr_head"}
MODALITY_DESCRIPTION = {"rgb": "RGB", "thermal": "thermal", "rgbt": "RGB then thermal"}


class InputError(UserError, ValueError):
    """A clip or label given to the model has the wrong shape, size or values."""


def valid_frame_counts(frames: int) -> str:
    """Human-readable rule for input frame counts, with examples around `frames`."""
    return (
        f"T or T+1 frames with T a positive multiple of 4 (e.g. {frames} or {frames + 1}); "
        "T frames get a copy of the last frame appended"
    )


def output_frames(input_frames: int) -> int | None:
    """Output length T for an input of `input_frames`, or None if the model cannot take it."""
    if input_frames >= 4 and input_frames % 4 == 0:
        return input_frames
    if input_frames >= 5 and input_frames % 4 == 1:
        return input_frames - 1
    return None


def check_clip_shape(shape: tuple[int, ...], config: ModelConfig) -> int:
    """Check a 5-D clip shape (B, C, T, H, W) against `config`; return the output length T.

    Shared by the PyTorch model and the ONNX runner, so both reject the same clips with
    the same words.
    """
    _, channels, frames, height, width = shape
    if channels != config.in_channels:
        raise InputError(
            f"input clip: expected {config.in_channels} channels for modality "
            f"{config.modality!r} ({MODALITY_DESCRIPTION[config.modality]}), got {channels}"
        )
    if (height, width) != (config.resolution, config.resolution):
        raise InputError(
            f"input clip: expected {config.resolution}x{config.resolution} frames for resolution "
            f"{config.resolution}, got {height}x{width}"
        )
    t = output_frames(frames)
    if t is None:
        raise InputError(f"input clip: the model cannot take {frames} frames; expected {valid_frame_counts(config.frames)}")
    return t


def check_clip(x: torch.Tensor, config: ModelConfig) -> int:
    """Validate a raw clip tensor (5-D, shape for `config`, finite); return the output length T.

    Shared by every network that takes raw clips (MMRPhys, FactorizePhys).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"input clip: expected a 5-D tensor (B, C, T, H, W), got {shape}")
    t = check_clip_shape(tuple(x.shape), config)
    if not torch.compiler.is_compiling() and x.is_floating_point() and not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"input clip: {bad} non-finite values (NaN or inf); expected finite frame values")
    return t


def check_task_labels(
    labels: object, config: ModelConfig, batch: int, frames: int, dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    """Validate the labels a target-constrained factorization needs: {task: (B, T) finite}
    for every task of `config`, cast to dtype."""
    if not isinstance(labels, dict):
        raise InputError(
            f"labels: attention 'tsfm' in training needs labels={{task: (B, T) tensor}} for "
            f"tasks {list(config.tasks)}, got {type(labels).__name__}"
        )
    checked = {}
    for task in config.tasks:
        if task not in labels:
            raise InputError(f"labels: missing {task!r}; TSFM needs a (B, T) label for every task {list(config.tasks)}")
        label = torch.as_tensor(labels[task])
        if tuple(label.shape) != (batch, frames):
            raise InputError(f"labels[{task!r}]: expected shape {(batch, frames)}, got {tuple(label.shape)}")
        if not torch.isfinite(label).all():
            raise InputError(f"labels[{task!r}]: non-finite values (NaN or inf); expected finite labels")
        checked[task] = label.to(device=device, dtype=dtype)
    return checked


def attention_runs(config: ModelConfig, training: bool, labels: dict | None, needs_labels: bool) -> bool:
    """Whether a forward call runs the factorization branch (docs/model.md, "Attention"):
    always in training, in eval mode only with `attention_at_inference` (and the labels
    the factorization needs)."""
    if config.attention == "none":
        return False
    if training:
        return True
    return config.attention_at_inference and (labels is not None or not needs_labels)


class MMRPhys(nn.Module):
    """MMRPhys built from a ModelConfig.

    forward(x, labels=None) -> {"bvp": (B, T), "rsp": (B, T)} (the configured tasks).
    x: raw clip (B, C, T or T+1, H, W), C = config.in_channels (RGB first, thermal last),
    H = W = config.resolution. labels: per-chunk z-scored targets {"bvp": (B, T), ...}; in
    training with attention "tsfm" they constrain the factorization (required); in eval
    mode the plain path runs unless `attention_at_inference` is set.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"MMRPhys needs a ModelConfig, got {type(config).__name__}")
        self.config = config
        layout = LAYOUTS[config.resolution]
        streams = ("rgb", "thermal") if config.fusion == "late" else ("",)
        # extractors before heads: the reference's state-dict order
        for task, extractor in (("bvp", BVPFeatureExtractor), ("rsp", RSPFeatureExtractor)):
            if task in config.tasks:
                self._build_extractors(task, extractor, layout)
        if "bvp" in config.tasks:
            self.rppg_head = BVPHead(
                layout, config.dropout, streams, self._attention(len(streams), config.nmf_rank)
            )
        if "rsp" in config.tasks:
            self.rBr_head = RSPHead(
                layout, config.dropout, streams, self._attention(len(streams), config.rsp_nmf_rank)
            )
        for module in self.modules():
            if isinstance(module, ConvBlock3D):
                module.kernels = config.kernels

    def _build_extractors(self, task: str, cls: type[nn.Module], layout) -> None:
        config = self.config
        dropout = config.dropout
        if config.fusion == "late":
            self.add_module(f"rgb_{task}_feature_extractor", cls(3, layout, dropout))
            self.add_module(f"thermal_{task}_feature_extractor", cls(1, layout, dropout))
        elif config.fusion == "per_task":
            self.add_module(f"{task}_feature_extractor", cls(3 if task == "bvp" else 1, layout, dropout))
        else:
            self.add_module(f"{task}_feature_extractor", cls(config.in_channels, layout, dropout))

    def _attention(self, n_streams: int, rank: int) -> FeaturesFactorizationModule | None:
        config = self.config
        if config.attention == "none":
            return None
        return FeaturesFactorizationModule(
            16 * n_streams,
            FACTOR_CHANNELS,
            constrained=config.attention == "tsfm",
            rank=rank,
            steps=config.nmf_steps,
            layout=config.factor_layout,
            constraint=config.constraint,
            bases_init=config.bases_init,
            harmonics=config.harmonics,
            seed=config.seed,
        )

    @property
    def needs_labels(self) -> bool:
        """Whether the factorization needs target signals (TSFM with a target constraint)."""
        return self.config.attention == "tsfm" and self.config.constraint != "rbf"

    def attention_active(self, labels: dict | None) -> bool:
        """Whether this call runs the factorization branch (docs/model.md, "Attention: FSAM and TSFM")."""
        return attention_runs(self.config, self.training, labels, self.needs_labels)

    def check_input(self, x: torch.Tensor) -> int:
        """Validate a raw clip; return the output length T."""
        return check_clip(x, self.config)

    def check_labels(
        self, labels: object, batch: int, frames: int, dtype: torch.dtype, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Validate the labels the factorization needs: {task: (B, T) finite}, cast to dtype."""
        return check_task_labels(labels, self.config, batch, frames, dtype, device)

    def forward(self, x: torch.Tensor, labels: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        frames = self.check_input(x)
        weight = next(self.parameters())
        x = x.to(dtype=weight.dtype)
        # T frames: the reference's trainer appends a copy of the last frame
        d = front_end(x, append_last=x.shape[2] == frames)
        if use_fused(self.config.kernels, d):
            # the conv blocks keep this layout from here on (mmrphys.model.fused_norm)
            d = d.contiguous(memory_format=torch.channels_last_3d)
        attend = self.attention_active(labels)
        targets: dict[str, torch.Tensor | None] = {task: None for task in self.config.tasks}
        if attend and self.needs_labels:
            targets.update(self.check_labels(labels, x.shape[0], frames, x.dtype, x.device))
        return {task: self.head(task)(self.features(task, d), targets[task], attend) for task in self.config.tasks}

    def head(self, task: str) -> nn.Module:
        """The head module of a task ("bvp" or "rsp")."""
        return getattr(self, HEADS[task])

    def features(self, task: str, d: torch.Tensor) -> list[torch.Tensor]:
        """The branch's extractor output(s) from the normalised clip d: one tensor, or
        (RGB, thermal) with late fusion. Per-task fusion routes RGB to BVP, thermal to RSP."""
        fusion = self.config.fusion
        if fusion == "late":
            return [
                getattr(self, f"rgb_{task}_feature_extractor")(d[:, :3]),
                getattr(self, f"thermal_{task}_feature_extractor")(d[:, 3:]),
            ]
        if fusion == "per_task":
            d = d[:, :3] if task == "bvp" else d[:, 3:]
        return [getattr(self, f"{task}_feature_extractor")(d)]
