"""ONNX export: dynamic batch and frames, onnxruntime equals PyTorch, clear errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mmrphys.config import RhythmFormerOptions
from mmrphys.model import (
    FactorizePhys,
    InputError,
    MMRPhys,
    RhythmFormer,
    export_onnx,
    factorizephys_config,
    rhythmformer_config,
    run_onnx,
    variant,
)
from mmrphys.model.onnx_export import ExportError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = MMRPhys(variant("SNF", frames=16)).double().eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "snf.onnx")
    return model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch,frames", [(1, 17), (3, 33), (2, 16), (1, 9)])
def test_onnxruntime_matches_pytorch_for_any_batch_and_valid_length(exported, batch, frames):
    model, session = exported
    clip = (np.random.default_rng(batch + frames).random((batch, 4, frames, 9, 9)) * 255).astype(np.float32)
    got = run_onnx(session, clip)
    with torch.no_grad():
        want = model.float()(torch.from_numpy(clip))
    model.double()
    t = frames - 1 if frames % 4 == 1 else frames
    for task in ("bvp", "rsp"):
        assert got[task].shape == (batch, t)
        np.testing.assert_allclose(got[task], want[task].numpy(), atol=1e-4, rtol=0)


def test_export_keeps_the_callers_model_dtype_and_mode(exported):
    model, session = exported
    assert next(model.parameters()).dtype == torch.float64
    assert [i.name for i in session.get_inputs()] == ["video"]
    assert [o.name for o in session.get_outputs()] == ["bvp", "rsp"]
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and isinstance(shape[2], str)  # dynamic batch and frames


def test_single_task_model_exports_one_output(tmp_path):
    model = MMRPhys(variant("SEF", modality="thermal", tasks=("rsp",), frames=8)).eval()
    path = export_onnx(model, tmp_path / "rsp.onnx")
    out = run_onnx(path, np.random.rand(2, 1, 9, 9, 9).astype(np.float32))
    assert list(out) == ["rsp"] and out["rsp"].shape == (2, 8)


def test_bad_clips_get_clear_errors(exported):
    _, session = exported
    with pytest.raises(InputError, match=r"cannot take 18 frames"):
        run_onnx(session, np.zeros((1, 4, 18, 9, 9), np.float32))
    with pytest.raises(InputError, match=r"expected 4 channels"):
        run_onnx(session, np.zeros((1, 3, 17, 9, 9), np.float32))
    with pytest.raises(InputError, match=r"expected 9x9"):
        run_onnx(session, np.zeros((1, 4, 17, 8, 8), np.float32))
    clip = np.zeros((1, 4, 17, 9, 9), np.float32)
    clip[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"non-finite"):
        run_onnx(session, clip)


@pytest.fixture(scope="module")
def exported_rhythmformer(tmp_path_factory):
    torch.manual_seed(0)
    options = RhythmFormerOptions(embed_dim=32, depths=(1, 1, 1), topk=(12, 12, 12))
    model = RhythmFormer(rhythmformer_config(resolution=64, frames=32, rhythmformer=options))
    with torch.no_grad():  # running statistics away from 0 / 1, so eval mode is not trivial
        model.train()(torch.randn(2, 3, 32, 64, 64))
    model = model.double().eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "rhythmformer.onnx")
    return model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch,frames", [(1, 32), (3, 8), (2, 36), (1, 44), (2, 64)])
def test_rhythmformer_onnx_matches_pytorch_with_dynamic_frames(exported_rhythmformer, batch, frames):
    """The routing's top-k and gather export with symbolic region counts; frames that are
    not multiples of 8 give the shorter output, as in PyTorch."""
    model, session = exported_rhythmformer
    clip = np.random.default_rng(batch + frames).standard_normal((batch, 3, frames, 64, 64)).astype(np.float32)
    got = run_onnx(session, clip)
    with torch.no_grad():
        want = model.float()(torch.from_numpy(clip))
    model.double()
    assert list(got) == ["bvp"] and got["bvp"].shape == (batch, 8 * (frames // 8))
    np.testing.assert_allclose(got["bvp"], want["bvp"].numpy(), atol=1e-4, rtol=0)


def test_rhythmformer_onnx_rejects_clips_with_clear_errors(exported_rhythmformer):
    model, session = exported_rhythmformer
    assert next(model.parameters()).dtype == torch.float64
    with pytest.raises(InputError, match=r"the exported RhythmFormer takes multiples of 4 frames, got 25"):
        run_onnx(session, np.zeros((1, 3, 25, 64, 64), np.float32))
    with pytest.raises(InputError, match=r"RhythmFormer cannot take 4 frames: stage 2 down-samples 4 frames to 0"):
        run_onnx(session, np.zeros((1, 3, 4, 64, 64), np.float32))
    with pytest.raises(InputError, match=r"expected 3 channels"):
        run_onnx(session, np.zeros((1, 4, 32, 64, 64), np.float32))
    with pytest.raises(InputError, match=r"expected 64x64"):
        run_onnx(session, np.zeros((1, 3, 32, 72, 72), np.float32))

def test_export_needs_a_known_network(tmp_path):
    with pytest.raises(ExportError, match=r"exports a network \(MMRPhys, .*RhythmFormer.*\); Linear has no ONNX graph"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "fsam_at_inference"])
def exported_factorizephys(request, tmp_path_factory):
    """FactorizePhys as its eval mode runs: the plain CNN, or FSAM in the graph."""
    torch.manual_seed(0)
    model = FactorizePhys(factorizephys_config(frames=16, attention_at_inference=request.param)).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "factorizephys.onnx")
    return model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch,frames", [(1, 17), (3, 33), (2, 8)])
def test_factorizephys_onnxruntime_matches_pytorch(exported_factorizephys, batch, frames):
    model, session = exported_factorizephys
    clip = (np.random.default_rng(batch + frames).random((batch, 3, frames, 72, 72)) * 255).astype(np.float32)
    got = run_onnx(session, clip)
    with torch.no_grad():
        want = model(torch.from_numpy(clip))["bvp"].numpy()
    assert list(got) == ["bvp"] and got["bvp"].shape == want.shape == (batch, frames - 1 if frames % 4 == 1 else frames)
    np.testing.assert_allclose(got["bvp"], want, atol=1e-4, rtol=0)
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and isinstance(shape[2], str)
