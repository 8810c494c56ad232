"""Import of FactorizePhys checkpoints: the two released files (authors' layout and the
MMRPhys repository's moved layout), state dicts built from the reference key tables for
the other variants, the configuration inferred from keys, shapes and names, and errors."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import factorizephys_reference as reference
from mmrphys.model import CheckpointError, FactorizePhys, load_reference_checkpoint
from mmrphys.model.summary import synthetic_clip
from test_factorizephys import AUTHORS_KEYS

RELEASED = Path(__file__).resolve().parents[1].parent / "shared" / "checkpoints"
PURE = RELEASED / "PURE_FactorizePhys_SFSAM_Label_Epoch9.pth"  # authors' key layout
SCAMPS = RELEASED / "SCAMPS_FactorizePhys_SFSAM_Label_Epoch0.pth"  # moved key layout
# the MMRPhys repository's layout: the last two extractor blocks lead the head (docs/factorizephys.md)
AUTHORS_TO_MOVED = {
    "rppg_feature_extractor.FeatureExtractor.5.": "rppg_head.conv_block.0.",
    "rppg_feature_extractor.FeatureExtractor.6.": "rppg_head.conv_block.1.",
    "rppg_head.conv_block.0.": "rppg_head.conv_block.3.",
    "rppg_head.conv_block.1.": "rppg_head.conv_block.4.",
    "rppg_head.conv_block.2.": "rppg_head.conv_block.5.",
}
MOVED_KEYS = [
    "rppg_feature_extractor.FeatureExtractor.0.conv_block_3d.0.weight",
    "rppg_feature_extractor.FeatureExtractor.1.conv_block_3d.0.weight",
    "rppg_feature_extractor.FeatureExtractor.2.conv_block_3d.0.weight",
    "rppg_feature_extractor.FeatureExtractor.4.conv_block_3d.0.weight",
    "rppg_head.conv_block.0.conv_block_3d.0.weight",
    "rppg_head.conv_block.1.conv_block_3d.0.weight",
    "rppg_head.conv_block.3.conv_block_3d.0.weight",
    "rppg_head.conv_block.4.conv_block_3d.0.weight",
    "rppg_head.conv_block.5.conv_block_3d.0.weight",
]


def remap(state: dict, table: dict) -> OrderedDict:
    out = OrderedDict()
    for key, value in state.items():
        bare = key.removeprefix("module.")
        prefix = next((p for p in table if bare.startswith(p)), None)
        out["module." + (bare if prefix is None else table[prefix] + bare[len(prefix):])] = value
    return out


def read(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_released_files_load_in_both_layouts_with_the_config_they_imply(caplog):
    with caplog.at_level(logging.INFO, logger="mmrphys.model.checkpoint"):
        models = [load_reference_checkpoint(PURE), load_reference_checkpoint(SCAMPS)]
    assert "authors key layout" in caplog.text and "moved key layout" in caplog.text
    for model in models:
        c = model.config
        assert isinstance(model, FactorizePhys) and not model.training
        assert (c.architecture, c.resolution, c.modality, c.tasks, c.attention, c.frames) == (
            "factorizephys", 72, "rgb", ("bvp",), "tsfm", 160)
        assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == AUTHORS_KEYS
    assert list(read(SCAMPS))[4:9] == ["module." + k for k in MOVED_KEYS[4:]]
    pure, scamps = models
    for key, value in read(PURE).items():
        assert torch.equal(pure.state_dict()[key.removeprefix("module.")], value)
    moved = read(SCAMPS)
    for key, value in remap(moved, {v: k for k, v in AUTHORS_TO_MOVED.items()}).items():
        assert torch.equal(scamps.state_dict()[key.removeprefix("module.")], value)


def test_released_weights_run_on_a_full_size_clip():
    clip = synthetic_clip(load_reference_checkpoint(PURE).config, batch=2)
    assert clip.shape == (2, 3, 161, 72, 72)
    for path in (PURE, SCAMPS):
        with torch.no_grad():
            out = load_reference_checkpoint(path)(clip)["bvp"]
        assert out.shape == (2, 160) and torch.isfinite(out).all() and out.std() > 0


@pytest.mark.parametrize("path,to_other", [(PURE, AUTHORS_TO_MOVED), (SCAMPS, {v: k for k, v in AUTHORS_TO_MOVED.items()})])
def test_the_two_layouts_give_the_same_function(tmp_path, path, to_other):
    other = tmp_path / path.name
    torch.save(remap(read(path), to_other), other)
    clip = synthetic_clip(load_reference_checkpoint(path).config.replace(frames=16), batch=2)
    a, b = load_reference_checkpoint(path), load_reference_checkpoint(other)
    with torch.no_grad():
        torch.testing.assert_close(a(clip)["bvp"], b(clip)["bvp"], rtol=0, atol=0)
    labels = {"bvp": torch.sin(torch.arange(16.0)).expand(2, -1)}
    torch.manual_seed(0)
    train_a = a.train()(clip, labels)["bvp"]
    torch.manual_seed(0)
    torch.testing.assert_close(train_a, b.train()(clip, labels)["bvp"], rtol=0, atol=0)


def test_released_weights_in_float64_and_float32_against_the_transcription():
    """Eval path and the label-constrained training path with the PURE weights; float32
    within the reference's own float32 gap for trained weights (1.2e-4)."""
    model = load_reference_checkpoint(PURE, frames=32)
    clip = synthetic_clip(model.config, batch=2).double()
    clip[1] = clip[1].flip(-1) * 0.9 + 10
    state = {k: v.double() for k, v in model.state_dict().items()}
    options = dict(big=False, attention="tsfm", attend=False, residual=True, transform="T_KAB", rank=1, steps=4,
                   dropout=0.0, training=False)
    label = torch.sin(2 * torch.pi * 1.2 * torch.arange(32, dtype=torch.float64) / 30).expand(2, -1)
    with torch.no_grad():
        plain32 = model(clip.float())["bvp"].double()
        model64 = load_reference_checkpoint(PURE, frames=32, dropout=0.0).double()
        plain64 = model64(clip)["bvp"]
        attended64 = model64.train()(clip, {"bvp": label})["bvp"]
    want = reference.forward(clip, state, options)
    torch.testing.assert_close(plain64, want, rtol=1e-9, atol=1e-9)
    attended = reference.forward(clip, state, dict(options, attend=True), label)
    torch.testing.assert_close(attended64, attended, rtol=1e-9, atol=1e-9)
    assert (plain32 - want).abs().max() < 1.2e-4
    assert (attended - want).abs().max() > 0.05  # the factorization changes trained outputs


# ---- other variants, from the reference key tables ----------------------------------------


def authors_state(channels: int = 3, big: bool = False, fsam: bool = True, seed: int = 0) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in AUTHORS_KEYS:
        if ".fsam." in key and not fsam:
            continue
        if key == AUTHORS_KEYS[0][0]:
            shape = (8, channels, 3, 3, 3)
        if big and key == "rppg_head.final_layer.0.conv_block_3d.0.weight":
            shape = (12, 16, 3, 4, 4)
        state["module." + key] = torch.randn(shape, generator=g) * 0.1
    return state


@pytest.mark.parametrize(
    "name,build,expected",
    [
        ("UBFC-rPPG_Intra_FactorizePhys_FSAM_Res_HighRes.pth", dict(big=True), (128, "rgb", "fsam", True, "T_KAB", 240, 16)),
        ("UBFC-rPPG_Intra_FactorizePhys_Base_HighRes.pth", dict(big=True, fsam=False), (128, "rgb", "none", True, "T_KAB", 240, 12)),
        ("UBFC-rPPG_Intra_FactorizePhys_FSAM_Res_HighSpatialRes.pth", dict(big=True), (128, "rgb", "fsam", True, "T_KAB", 160, 16)),
        ("iBVP_RGBT_FactorizePhys_FSAM_Res.pth", dict(channels=4), (72, "rgbt", "fsam", True, "T_KAB", 160, 16)),
        ("iBVP_T_FactorizePhys_FSAM.pth", dict(channels=1), (72, "thermal", "fsam", False, "T_KAB", 160, 16)),
        ("iBVP_T_FactorizePhys_Base.pth", dict(channels=1, fsam=False), (72, "thermal", "none", True, "T_KAB", 160, 12)),
        ("UBFC-rPPG_FactorizePhys_FSAM_Res_K-TAB.pth", dict(), (72, "rgb", "fsam", True, "K_TAB", 160, 16)),
        ("UBFC-rPPG_FactorizePhys_FSAM_Res_TK-AB.pth", dict(), (72, "rgb", "fsam", True, "TK_AB", 160, 16)),
        ("PURE_FactorizePhys_FSAM.pth", dict(), (72, "rgb", "fsam", False, "T_KAB", 160, 16)),
        ("weights.pth", dict(), (72, "rgb", "fsam", True, "T_KAB", 160, 16)),
    ],
)
def test_variants_are_inferred_from_shapes_and_names(tmp_path, name, build, expected):
    state = authors_state(**build)
    resolution, modality, attention, residual, transform, frames, entries = expected
    assert len(state) == entries
    torch.save(state, tmp_path / name)
    model = load_reference_checkpoint(tmp_path / name)
    c = model.config
    assert (c.resolution, c.modality, c.attention, c.factorizephys.residual, c.factorizephys.transform, c.frames) == (
        resolution, modality, attention, residual, transform, frames)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["module." + key])


def test_overrides_win_and_a_matching_resolution_is_accepted(tmp_path):
    torch.save(authors_state(), tmp_path / "PURE_FactorizePhys_FSAM_Res.pth")
    model = load_reference_checkpoint(tmp_path / "PURE_FactorizePhys_FSAM_Res.pth", resolution=72, attention="tsfm",
                                      attention_at_inference=True, frames=32)
    assert (model.config.attention, model.config.attention_at_inference, model.config.frames) == ("tsfm", True, 32)


def test_weights_only_loading_and_bias1_skipped(tmp_path, monkeypatch, caplog):
    state = authors_state()
    state["module.rppg_head.bias1"] = torch.tensor(1.0)
    torch.save(state, tmp_path / "x.pth")
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    with caplog.at_level(logging.INFO, logger="mmrphys.model.checkpoint"):
        load_reference_checkpoint(tmp_path / "x.pth")
    assert calls and all(k.get("weights_only") is True for k in calls)
    assert "rppg_head.bias1" in caplog.text


def test_contradicting_resolution_is_an_error(tmp_path):
    torch.save(authors_state(big=True), tmp_path / "big.pth")
    with pytest.raises(CheckpointError, match=r"big.pth: the weights are FactorizePhys Big \(128x128\); resolution=72"):
        load_reference_checkpoint(tmp_path / "big.pth", resolution=72)


def test_unsupported_inputs_and_constraints_are_named(tmp_path):
    torch.save(authors_state(channels=2), tmp_path / "two.pth")
    with pytest.raises(CheckpointError, match=r"takes 2 input channels; FactorizePhys takes one of \[1, 3, 4\]"):
        load_reference_checkpoint(tmp_path / "two.pth")
    torch.save(authors_state(), tmp_path / "PURE_FactorizePhys_SFSAM_RBF_Epoch9.pth")
    with pytest.raises(CheckpointError, match=r"RBF factorization \(SFSAM_RBF\) is not supported.*attention='fsam'"):
        load_reference_checkpoint(tmp_path / "PURE_FactorizePhys_SFSAM_RBF_Epoch9.pth")
    assert load_reference_checkpoint(tmp_path / "PURE_FactorizePhys_SFSAM_RBF_Epoch9.pth", attention="fsam")


def test_missing_entries_and_unknown_layouts_are_named(tmp_path):
    state = authors_state()
    del state["module.rppg_head.final_layer.2.weight"]
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['rppg_head.final_layer.2.weight'\]"):
        load_reference_checkpoint(tmp_path / "a.pth")
    state = authors_state()
    del state["module.rppg_feature_extractor.FeatureExtractor.5.conv_block_3d.0.weight"]
    torch.save(state, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"b.pth: FactorizePhys keys in neither layout"):
        load_reference_checkpoint(tmp_path / "b.pth")
    moved = remap(authors_state(), AUTHORS_TO_MOVED)
    moved["module.rppg_head.conv_block.0.conv_block_3d.0.weight"] = torch.zeros(16, 16, 3, 3, 3)
    torch.save(moved, tmp_path / "c.pth")
    # the remapped key, the file's shape, then the model's
    with pytest.raises(CheckpointError, match=r"FeatureExtractor\.5\.conv_block_3d\.0\.weight.*\(16, 16, 3, 3, 3\).*\(16, 12, 3, 3, 3\)"):
        load_reference_checkpoint(tmp_path / "c.pth")
