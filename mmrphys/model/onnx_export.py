"""ONNX export of a network's inference path (MMRPhys, FactorizePhys), and a checked
onnxruntime runner.

The graph is the eval path (no labels; MMRPhys without factorization, FactorizePhys with
FSAM only when `attention_at_inference` is set, as in PyTorch): input `video` (batch, C,
frames, H, W) with frames = T+1 for any positive multiple-of-4 T, outputs one (batch, T)
tensor per task. Batch and frames are truly dynamic (the reference's export fixed the
output at 180 samples). `run_onnx` checks a clip against the model's metadata and also
accepts T frames (it appends a copy of the last frame, as the PyTorch model does).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmrphys.config import ModelConfig
from mmrphys.model.blocks import front_end
from mmrphys.model.factorizephys import FactorizePhys
from mmrphys.model.network import InputError, MMRPhys, check_clip_shape

OPSET = 18
METADATA_KEY = "mmrphys_model_config"


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


#: network class -> the module that traces its inference path
GRAPHS: dict[type[nn.Module], type[nn.Module]] = {MMRPhys: InferenceGraph, FactorizePhys: FactorizePhysGraph}


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Export the inference path of `model` (float32) to `path`; returns the path.

    Input `video` (batch, C, frames, H, W) float32 with frames = T+1, T a positive multiple
    of 4; outputs named after the tasks ("bvp", "rsp"), each (batch, T). The ModelConfig is
    stored in the model's metadata under `mmrphys_model_config` (JSON).
    """
    graph_of = GRAPHS.get(type(model))
    if graph_of is None:
        names = ", ".join(cls.__name__ for cls in GRAPHS)
        raise TypeError(f"export_onnx needs one of {names}, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    # a float32 copy: the caller's model keeps its dtype and mode
    graph = graph_of(copy.deepcopy(model)).float().eval()
    example = torch.rand(2, config.in_channels, config.frames + 1, config.resolution, config.resolution)
    quarter = torch.export.Dim("frames_quarter", min=1, max=4096)
    dynamic = {"video": {0: torch.export.Dim("batch", min=1, max=4096), 2: 4 * quarter + 1}}
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=["video"],
            output_names=list(config.tasks),
            dynamic_shapes=dynamic,
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


def run_onnx(session_or_path, clip: np.ndarray) -> dict[str, np.ndarray]:
    """Run an exported model on a raw clip (B, C, T or T+1, H, W) after checking it.

    Accepts an onnxruntime.InferenceSession or a path. Returns {task: (B, T)}.
    """
    import onnxruntime as ort

    session = session_or_path
    if not isinstance(session, ort.InferenceSession):
        session = ort.InferenceSession(str(session_or_path), providers=["CPUExecutionProvider"])
    config = read_onnx_config(session)
    clip = np.asarray(clip, dtype=np.float32)
    if clip.ndim != 5:
        raise InputError(f"input clip: expected a 5-D array (B, C, T, H, W), got shape {clip.shape}")
    t = check_clip_shape(clip.shape, config)
    if not np.isfinite(clip).all():
        raise InputError("input clip: non-finite values (NaN or inf); expected finite frame values")
    if clip.shape[2] == t:
        clip = np.concatenate([clip, clip[:, :, -1:]], axis=2)
    outputs = session.run(None, {"video": clip})
    return dict(zip(config.tasks, outputs))
