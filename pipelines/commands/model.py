"""`mmrphys model`: inspect one model: layers, parameter count and forward time on a
synthetic face clip, for a reference variant name, any architecture's config, or a
released reference checkpoint."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mmrphys.config import ModelConfig, apply_overrides
from mmrphys.errors import UserError
from mmrphys.model import build_model, load_reference_checkpoint, variant, variant_name
from mmrphys.model.summary import format_summary, layer_summary, synthetic_clip


def register(parser: argparse.ArgumentParser) -> None:
    """Add this command's arguments."""
    parser.add_argument("--variant", default="SEF", help="reference variant name: LEF, LNF, LLF, MEF, MNF, MLF, SEF, SNF, SLF")
    parser.add_argument("--modality", default=None, choices=["rgb", "thermal", "rgbt"], help="input channels (default rgbt)")
    parser.add_argument("--checkpoint", default=None, help="a reference .pth state dict to load instead of --variant")
    parser.add_argument("--resolution", type=int, default=None, help="resolution of --checkpoint when its name does not say")
    parser.add_argument("overrides", nargs="*", metavar="model.FIELD=VALUE",
                        help="ModelConfig overrides, e.g. model.attention=fsam model.frames=160 "
                             "model.architecture=factorizephys")
    parser.add_argument("--batch", type=int, default=1, help="clips per forward pass (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    """Print the summary; returns the exit code."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch < 1 or args.repeats < 1:
        raise UserError("--batch and --repeats must be >= 1")
    if args.checkpoint:
        model = load_reference_checkpoint(args.checkpoint, resolution=args.resolution)
        config = _with_overrides(model.config, args.overrides)
        if config != model.config:
            state = model.state_dict()
            model = build_model(config)
            model.load_state_dict(state)
    else:
        config = _with_overrides(variant(args.variant, modality=args.modality), args.overrides)
        model = build_model(config)
    model.eval()
    clip = synthetic_clip(config, batch=args.batch)
    name = f"MMRPhys {variant_name(config)}" if config.architecture == "mmrphys" else config.architecture
    print(
        f"{name}: resolution {config.resolution}, modality {config.modality} "
        f"({config.in_channels} ch), {config.fusion} fusion, tasks {'+'.join(config.tasks)}, "
        f"attention {config.attention}, frames {config.frames}"
    )
    print(format_summary(layer_summary(model, clip)))
    total = sum(p.numel() for p in model.parameters())
    print(f"parameters: {total:,}")
    times = []
    with torch.no_grad():
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = model(clip)
            times.append(time.perf_counter() - start)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in out.items())
    print(f"input: synthetic face clip {tuple(clip.shape)} (72 bpm pulse, 15 breaths/min)")
    print(f"output: {shapes}")
    print(
        f"forward (eval, batch {args.batch}, {torch.get_num_threads()} threads): "
        f"{statistics.median(times) * 1000:.1f} ms median of {args.repeats}"
    )
    return 0


def _with_overrides(config: ModelConfig, overrides: list[str]) -> ModelConfig:
    """The config with `model.FIELD=VALUE` overrides applied."""
    return apply_overrides({"model": config}, overrides)["model"] if overrides else config
