"""RhythmFormer's options (`ModelConfig.rhythmformer`) and the input geometry they imply.

The defaults are the reference constructor's (docs/rhythmformer.md, "Options"). The
geometry functions say which clip lengths and frame sizes a set of options can take: the
network partitions each stage's features into spatio-temporal regions that must tile the
feature map exactly and be at least as many as the stage's routing top-k.
"""

from __future__ import annotations

import dataclasses
import math

from mmrphys.config.base import Config, ConfigError

#: the fusion stem's fixed output width, and its total spatial down-sampling
STEM_CHANNELS = 64
STEM_STRIDE = 4
#: spatial stride of the patch embedding after the stem
PATCH_STRIDE = 4


@dataclasses.dataclass(frozen=True)
class StageGeometry:
    """One stage at one clip length: frames in, frames after down-sampling, region layout.

    region: (frames, rows, columns) of tokens in one region; grid: regions along each axis.
    """

    frames_in: int
    frames: int
    region: tuple[int, int, int]
    grid: tuple[int, int, int]

    @property
    def regions(self) -> int:
        """Number of routing regions R (time x height x width cells)."""
        return self.grid[0] * self.grid[1] * self.grid[2]


@dataclasses.dataclass(frozen=True)
class RhythmFormerOptions(Config):
    """The layers of a RhythmFormer (one entry per TPT stage where a tuple).

    embed_dim: width of the patch embedding and of every stage (the stem is fixed at 64).
    depths: transformer blocks per stage.
    head_dim: channels per attention head (heads = embed_dim / head_dim).
    mlp_ratio: hidden width of each block's conv MLP, as a multiple of embed_dim.
    t_patches: temporal down-sampling factor of each stage (a power of two: that many
        halvings by stride-2 convs, then as many nearest x2 up-samplings back).
    topk: routed regions each query region attends to, per stage.
    region_frames: a region spans max(region_frames // t_patch, 1) down-sampled frames.
    spatial_regions: the feature map is cut into this many regions per spatial axis
        (region side floor(side / spatial_regions) tokens).
    side_dwconv: kernel of the depthwise local-context conv on the values (odd).
    cdc_theta: weight of the temporal central difference in the Q and K projections.
    drop_path_rate: stochastic depth, rising linearly from 0 over the blocks (0: none).
    """

    embed_dim: int = 64
    depths: tuple[int, ...] = (2, 2, 2)
    head_dim: int = 16
    mlp_ratio: float = 1.5
    t_patches: tuple[int, ...] = (2, 4, 8)
    topk: tuple[int, ...] = (40, 40, 40)
    region_frames: int = 4
    spatial_regions: int = 4
    side_dwconv: int = 3
    cdc_theta: float = 0.2
    drop_path_rate: float = 0.0

    @property
    def heads(self) -> int:
        """Attention heads per block."""
        return self.embed_dim // self.head_dim

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of each block's MLP (int(mlp_ratio * embed_dim), as the reference)."""
        return int(self.mlp_ratio * self.embed_dim)

    def validate(self) -> None:
        where = "RhythmFormerOptions"
        for name in ("embed_dim", "head_dim", "region_frames", "spatial_regions", "side_dwconv"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.head_dim:
            raise ConfigError(
                f"{where}.head_dim: embed_dim {self.embed_dim} is not divisible by head_dim {self.head_dim}"
            )
        if self.mlp_hidden < 1:
            raise ConfigError(f"{where}.mlp_ratio: {self.mlp_ratio} x embed_dim {self.embed_dim} gives no hidden channel")
        if self.side_dwconv % 2 == 0:
            raise ConfigError(f"{where}.side_dwconv: must be odd (same-size padding), got {self.side_dwconv}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"{where}.drop_path_rate: must be in [0, 1), got {self.drop_path_rate}")
        if not self.depths:
            raise ConfigError(f"{where}.depths: at least one stage is required")
        for name in ("t_patches", "topk"):
            if len(getattr(self, name)) != len(self.depths):
                raise ConfigError(
                    f"{where}.{name}: one entry per stage ({len(self.depths)} stages in depths), "
                    f"got {list(getattr(self, name))}"
                )
        if any(d < 1 for d in self.depths):
            raise ConfigError(f"{where}.depths: every stage needs >= 1 block, got {list(self.depths)}")
        if any(k < 1 for k in self.topk):
            raise ConfigError(f"{where}.topk: must be >= 1 per stage, got {list(self.topk)}")
        if any(p < 1 or p & (p - 1) for p in self.t_patches):
            raise ConfigError(f"{where}.t_patches: each must be a power of two (1, 2, 4, ...), got {list(self.t_patches)}")


def token_side(pixels: int) -> int:
    """Token rows (or columns) after the stem and the patch embedding (floor(pixels / 16))."""
    return pixels // STEM_STRIDE // PATCH_STRIDE


def spatial_problem(pixels: int, options: RhythmFormerOptions) -> str | None:
    """Why frames of this side length cannot be partitioned into regions, or None."""
    if pixels % STEM_STRIDE:
        return f"{pixels} is not a multiple of {STEM_STRIDE} (the fusion stem's output must be exactly side/4)"
    side = token_side(pixels)
    size = side // options.spatial_regions
    if size < 1:
        return (
            f"{pixels} pixels give {side} tokens per side, fewer than spatial_regions "
            f"{options.spatial_regions} (the side must be >= {16 * options.spatial_regions} pixels)"
        )
    if side % size:
        return f"{pixels} pixels give {side} tokens per side, not a multiple of the region side {size}"
    return None


def stage_geometry(frames: int, pixels: int, options: RhythmFormerOptions) -> list[StageGeometry]:
    """Each stage's frames and region layout for a clip of `frames` x `pixels` x `pixels`.

    Stages run in series and each returns to a multiple of its t_patch (down-sampling
    floors odd lengths), so stage i+1 starts from stage i's output length. The caller
    checks the layout with `frames_problem`; `spatial_problem` must hold already.
    """
    side = token_side(pixels)
    size = max(side // options.spatial_regions, 1)
    out = []
    length = frames
    for t_patch in options.t_patches:
        reduced = length // t_patch
        t_region = region_length(t_patch, options)
        grid = (reduced // t_region, side // size, side // size)
        out.append(StageGeometry(length, reduced, (t_region, size, size), grid))
        length = reduced * t_patch
    return out


def output_length(frames: int, options: RhythmFormerOptions) -> int:
    """Samples the network returns for `frames` input frames (8 * floor(T / 8) by default)."""
    length = frames
    for t_patch in options.t_patches:
        length = (length // t_patch) * t_patch
    return length


def region_length(t_patch: int, options: RhythmFormerOptions) -> int:
    """Down-sampled frames per region in a stage of this t_patch."""
    return max(options.region_frames // t_patch, 1)


def frames_problem(frames: int, pixels: int, options: RhythmFormerOptions) -> str | None:
    """Why a clip of `frames` frames cannot pass the stages' region routing, or None."""
    for i, stage in enumerate(stage_geometry(frames, pixels, options)):
        t_region = stage.region[0]
        if stage.frames < t_region or stage.frames % t_region:
            return (
                f"stage {i} down-samples {stage.frames_in} frames to {stage.frames}, "
                f"not a positive multiple of its region length {t_region}"
            )
        if stage.regions < options.topk[i]:
            return f"stage {i} has {stage.regions} regions, fewer than its top-k {options.topk[i]}"
    return None


def frame_examples(pixels: int, options: RhythmFormerOptions, count: int = 3) -> list[int]:
    """The smallest multiples of 4 (up to 4096) that a RhythmFormer with these options takes."""
    found = [t for t in range(4, 4097, 4) if frames_problem(t, pixels, options) is None]
    return found[:count]


def frame_step(pixels: int, options: RhythmFormerOptions) -> int:
    """The smallest step (4, 8, 16, ... or else the period below) whose every multiple
    from the smallest valid clip length on is a valid clip length (4 with the defaults).

    Validity beyond the top-k threshold repeats with period lcm(4, t_patch x region length
    over the stages), so one period shows whether a step holds everywhere.
    """
    period = 4
    for t_patch in options.t_patches:
        period = math.lcm(period, t_patch * region_length(t_patch, options))
    first = frame_examples(pixels, options, count=1)
    if not first:
        return period
    step = 4
    while step < period:
        start = -(-first[0] // step) * step
        if all(frames_problem(t, pixels, options) is None for t in range(start, start + 2 * period + 1, step)):
            return step
        step *= 2
    return period


def check_geometry(frames: int, pixels: int, options: RhythmFormerOptions) -> None:
    """Raise ConfigError if a RhythmFormer with these options cannot take such clips."""
    problem = spatial_problem(pixels, options)
    if problem:
        raise ConfigError(f"ModelConfig.resolution: RhythmFormer cannot take {pixels}x{pixels} frames: {problem}")
    problem = frames_problem(frames, pixels, options)
    if problem:
        raise ConfigError(
            f"ModelConfig.frames: RhythmFormer cannot take {frames} frames at {pixels}x{pixels}: {problem}; "
            f"allowed: e.g. {frame_examples(pixels, options)} "
            "(multiples of 8 return as many samples)"
        )
