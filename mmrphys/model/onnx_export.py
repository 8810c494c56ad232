"""ONNX export of a network's inference path (MMRPhys, FactorizePhys, RhythmFormer), and
a checked onnxruntime runner.

MMRPhys and FactorizePhys: the eval path (no labels; MMRPhys without factorization,
FactorizePhys with FSAM only when `attention_at_inference` is set, as in PyTorch): input
`video` (batch, C, frames, H, W) with frames = T+1 for any positive multiple-of-4 T,
outputs one (batch, T) tensor per task. RhythmFormer: input `video` (batch, 3, frames, H, W) standardised frames with
frames any multiple of its frame step (4 by default) from the smallest it takes, output
`bvp` (batch, 8 * floor(frames / 8)); the routing's top-k and gather export with
symbolic region counts. Batch and frames are truly dynamic (the reference's export fixed
the output at 180 samples). `run_onnx` checks a clip against the model's metadata; for
MMRPhys and FactorizePhys it also accepts T frames (it appends a copy of the last frame, as the PyTorch
model does).
"""

from __future__ import annotations

import copy
import contextlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmrphys.config import ModelConfig
from mmrphys.errors import UserError
from mmrphys.config.rhythmformer import frame_examples, frame_step
from mmrphys.model.blocks import front_end
from mmrphys.model.factorizephys import FactorizePhys
from mmrphys.model.network import InputError, MMRPhys, check_clip_shape
from mmrphys.model.rhythmformer import RhythmFormer
from mmrphys.model.rhythmformer import check_clip_shape as check_rhythmformer_clip

OPSET = 18


class ExportError(UserError, TypeError):
    """The model has no network graph to export (an unsupervised method, for instance)."""

METADATA_KEY = "mmrphys_model_config"
MAX_DIM = 4096


class InferenceGraph(nn.Module):
    """The traced part of MMRPhys: (batch, C, T+1, H, W) -> one (batch, T) tensor per task."""

    def __init__(self, model: MMRPhys):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = front_end(video)
        return tuple(self.model.head(task)(self.model.features(task, d)) for task in self.model.config.tasks)


class FactorizePhysGraph(nn.Module):
    """The traced part of FactorizePhys: (batch, C, T+1, H, W) -> ((batch, T),), FSAM as
    its eval mode runs it."""

    def __init__(self, model: FactorizePhys):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.waveform(front_end(video), attend=self.model.attention_active(None)),)


class RhythmFormerGraph(nn.Module):
    """The traced RhythmFormer: (batch, 3, frames, H, W) -> ((batch, T_out),), without input checks."""

    def __init__(self, model: RhythmFormer):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.signal(video),)


#: network class -> the module that traces its inference path
GRAPHS: dict[type[nn.Module], type[nn.Module]] = {
    MMRPhys: InferenceGraph, FactorizePhys: FactorizePhysGraph, RhythmFormer: RhythmFormerGraph,
}


def _traced(model: nn.Module) -> tuple[nn.Module, int, dict]:
    """(graph, example frame count, dynamic frame dimension) of a network."""
    config = model.config
    graph = GRAPHS[type(model)](model)
    batch = torch.export.Dim("batch", min=1, max=MAX_DIM)
    if isinstance(model, RhythmFormer):
        step = frame_step(config.resolution, config.rhythmformer)
        smallest = frame_examples(config.resolution, config.rhythmformer, count=1)[0]
        units = torch.export.Dim("frames_units", min=-(-smallest // step), max=MAX_DIM // step)
        return graph, config.frames, {0: batch, 2: step * units}
    quarter = torch.export.Dim("frames_quarter", min=1, max=MAX_DIM)
    return graph, config.frames + 1, {0: batch, 2: 4 * quarter + 1}


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's notes that do not concern our graphs, silenced while it runs: one
    warning per torchvision operator it cannot register when torchvision is not installed
    (we use none), and torch's own deprecation of `LeafSpec` inside its tracer."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        registry.setLevel(level)


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Export the inference path of `model` (float32) to `path`; returns the path.

    MMRPhys, FactorizePhys: input `video` (batch, C, frames, H, W) float32 with frames =
    T+1, T a positive multiple of 4; outputs named after the tasks ("bvp", "rsp"), each
    (batch, T).
    RhythmFormer: frames any multiple of its frame step it takes; output "bvp". The
    ModelConfig is stored in the model's metadata under `mmrphys_model_config` (JSON).
    """
    if type(model) not in GRAPHS:
        names = ", ".join(cls.__name__ for cls in GRAPHS)
        raise ExportError(f"export_onnx exports a network ({names}); {type(model).__name__} has no ONNX graph")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    # a float32 copy: the caller's model keeps its dtype and mode
    graph, frames, dynamic_video = _traced(copy.deepcopy(model).float().eval())
    graph.eval()
    example = torch.rand(2, config.in_channels, frames, config.resolution, config.resolution)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=["video"],
            output_names=list(config.tasks),
            dynamic_shapes={"video": dynamic_video},
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    program.model.metadata_props[METADATA_KEY] = json.dumps(config.to_dict())
    program.save(str(path))
    return path


def read_onnx_config(session) -> ModelConfig:
    """The ModelConfig stored in an exported model's metadata (an onnxruntime session)."""
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise InputError(f"ONNX model has no {METADATA_KEY!r} metadata; export it with mmrphys.model.export_onnx")
    return ModelConfig.from_dict(json.loads(meta[METADATA_KEY]))


def _onnx_clip(clip: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Check a clip for the exported graph of `config`; return what the graph takes."""
    if config.architecture == "rhythmformer":
        check_rhythmformer_clip(clip.shape, config)
        step = frame_step(config.resolution, config.rhythmformer)
        if clip.shape[2] % step:
            raise InputError(
                f"input clip: the exported RhythmFormer takes multiples of {step} frames, got {clip.shape[2]} "
                "(the PyTorch model also takes the other lengths its regions allow)"
            )
        return clip
    t = check_clip_shape(clip.shape, config)
    if clip.shape[2] == t:
        clip = np.concatenate([clip, clip[:, :, -1:]], axis=2)
    return clip


def run_onnx(session_or_path, clip: np.ndarray) -> dict[str, np.ndarray]:
    """Run an exported model on a clip after checking it; returns {task: (B, T_out)}.

    MMRPhys and FactorizePhys take raw clips (B, C, T or T+1, H, W); RhythmFormer standardised clips
    (B, 3, frames, H, W). Accepts an onnxruntime.InferenceSession or a path.
    """
    import onnxruntime as ort

    session = session_or_path
    if not isinstance(session, ort.InferenceSession):
        session = ort.InferenceSession(str(session_or_path), providers=["CPUExecutionProvider"])
    config = read_onnx_config(session)
    clip = np.asarray(clip, dtype=np.float32)
    if clip.ndim != 5:
        raise InputError(f"input clip: expected a 5-D array (B, C, T, H, W), got shape {clip.shape}")
    clip = _onnx_clip(clip, config)
    if not np.isfinite(clip).all():
        raise InputError("input clip: non-finite values (NaN or inf); expected finite frame values")
    outputs = session.run(None, {"video": clip})
    return dict(zip(config.tasks, outputs))
