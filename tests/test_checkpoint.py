"""Import of the reference's released checkpoints, with state dicts built in the reference
layout from the reference's key/shape table (docs/model.md, "Reference checkpoints")."""

from __future__ import annotations

import logging
from collections import OrderedDict

import pytest
import torch

from mmrphys.model import CheckpointError, MMRPhys, load_reference_checkpoint, variant

# the reference's key table, entries 0-25: (key, shape for RGB EF, shape for RGBT NF, shape for thermal EF)
CB = (16, 16, 3, 3, 3)
REFERENCE_KEYS = [
    ("bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight", (8, 3, 3, 3, 3), (8, 3, 3, 3, 3), (8, 1, 3, 3, 3)),
    ("bvp_feature_extractor.bvp_feature_extractor.1.conv_block_3d.0.weight", (12, 8, 3, 3, 3), None, None),
    ("bvp_feature_extractor.bvp_feature_extractor.3.conv_block_3d.0.weight", (16, 12, 3, 3, 3), None, None),
    ("rsp_feature_extractor.rsp_feature_extractor.0.conv_block_3d.0.weight", (16, 3, 3, 3, 3), (16, 1, 3, 3, 3), (16, 1, 3, 3, 3)),
    ("rsp_feature_extractor.rsp_feature_extractor.1.conv_block_3d.0.weight", CB, None, None),
    ("rsp_feature_extractor.rsp_feature_extractor.2.conv_block_3d.0.weight", CB, None, None),
    ("rppg_head.conv_layer.0.conv_block_3d.0.weight", CB, None, None),
    ("rppg_head.conv_layer.1.conv_block_3d.0.weight", CB, None, None),
    ("rppg_head.conv_layer.2.conv_block_3d.0.weight", CB, None, None),
    ("rppg_head.fsam.pre_conv_block.0.weight", (8, 16, 1, 1, 1), None, None),
    ("rppg_head.fsam.pre_conv_block.0.bias", (8,), None, None),
    ("rppg_head.fsam.post_conv_block.0.conv.weight", (8, 8, 1, 1, 1), None, None),
    ("rppg_head.fsam.post_conv_block.1.weight", (16, 8, 1, 1, 1), None, None),
    ("rppg_head.final_layer.0.conv_block_3d.0.weight", (12, 16, 3, 3, 3), None, None),
    ("rppg_head.final_layer.1.conv_block_3d.0.weight", (8, 12, 3, 3, 3), None, None),
    ("rppg_head.final_layer.2.weight", (1, 8, 3, 3, 3), None, None),
    ("rBr_head.conv_block.0.conv_block_3d.0.weight", CB, None, None),
    ("rBr_head.conv_block.1.conv_block_3d.0.weight", CB, None, None),
    ("rBr_head.conv_block.2.conv_block_3d.0.weight", CB, None, None),
    ("rBr_head.conv_block.4.conv_block_3d.0.weight", CB, None, None),
    ("rBr_head.fsam.pre_conv_block.0.weight", (8, 16, 1, 1, 1), None, None),
    ("rBr_head.fsam.pre_conv_block.0.bias", (8,), None, None),
    ("rBr_head.fsam.post_conv_block.0.conv.weight", (8, 8, 1, 1, 1), None, None),
    ("rBr_head.fsam.post_conv_block.1.weight", (16, 8, 1, 1, 1), None, None),
    ("rBr_head.final_layer.0.conv_block_3d.0.weight", CB, None, None),
    ("rBr_head.final_layer.2.weight", (1, 16, 3, 4, 4), None, None),
]
COLUMN = {"rgb": 1, "rgbt": 2, "thermal": 3}


def bp_head_entries() -> list[tuple[str, tuple]]:
    """Entries 26-135 of the reference's key table (the blood-pressure head of NF/LF files)."""

    def convs(name, indices, last):
        out = []
        for n, i in enumerate(indices):
            c_in = 1 if n == 0 else 8
            out += [(f"{name}.{i}.conv_block_2d.0.weight", (8, c_in, 3, 3)), (f"{name}.{i}.conv_block_2d.0.bias", (8,))]
        return out + [(f"{name}.{last}.weight", (1, 8, 3, 3)), (f"{name}.{last}.bias", (1,))]

    entries = []
    for group, indices, last in [
        ("bvp_embeddings_phase_extractor", {"SBP": [1, 2, 4, 5], "DBP": [1, 2, 4, 5]}, {"SBP": 6, "DBP": 6}),
        ("bvp_stft_feature_extractor", {"SBP": [0, 1, 2, 4, 5], "DBP": [0, 1, 2, 4, 5, 6, 8, 9]}, {"SBP": 6, "DBP": 10}),
        ("rsp_stft_feature_extractor", {"SBP": [0, 1, 3, 4], "DBP": [0, 1, 3, 4]}, {"SBP": 5, "DBP": 5}),
    ]:
        for bp in ("SBP", "DBP"):
            entries += convs(f"rBP_head.{group}_{bp}", indices[bp], last[bp])
    for group, n in [("bvp_phase_dense", 25), ("bvp_stft_dense", 21), ("rsp_stft_dense", 15),
                     ("final_residual_dense_layer", 3), ("final_all_feats_dense_layer", 61)]:
        for bp in ("SBP", "DBP"):
            name = f"rBP_head.{group}_{bp}"
            entries += [(f"{name}.0.weight", (n, n)), (f"{name}.0.bias", (n,)),
                        (f"{name}.2.weight", (1, n)), (f"{name}.2.bias", (1,))]
    return entries


def reference_state_dict(modality: str, fsam: bool = True, bp_head: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, *shapes in REFERENCE_KEYS:
        shape = shapes[COLUMN[modality] - 1] or shapes[0]
        if fsam or ".fsam." not in key:
            state["module." + key] = torch.randn(shape, generator=g) * 0.2
    if bp_head:
        for key, shape in bp_head_entries():
            state["module." + key] = torch.randn(shape, generator=g)
    return state


def test_bp_head_table_matches_the_spec_counts():
    entries = bp_head_entries()
    assert len(entries) == 110
    assert sum(torch.Size(s).numel() for _, s in entries) == 24_902


@pytest.mark.parametrize(
    "filename,modality,bp,expected",
    [
        ("SCAMPS_MMRPhysLEF_BVP_RSP_RGBx180x72_SFSAM_Label_Epoch0.pth", "rgb", False, ("early", "rgb", 72, 26)),
        ("BP4D_MMRPhysLNF_BVP_RSP_RGBTx180x72_SFSAM_Label_Fold1_Epoch4.pth", "rgbt", True, ("per_task", "rgbt", 72, 136)),
        ("BP4D_MMRPhysSNF_BVP_RSP_RGBTx180x9_SFSAM_Label_Fold1_Epoch4.pth", "rgbt", True, ("per_task", "rgbt", 9, 136)),
        ("BP4D_MMRPhysMEF_BVP_RSP_Tx180x36_SFSAM_Label_Fold1_Epoch4.pth", "thermal", False, ("early", "thermal", 36, 26)),
    ],
)
def test_released_layouts_load_and_infer_the_variant(tmp_path, caplog, filename, modality, bp, expected):
    state = reference_state_dict(modality, bp_head=bp)
    fusion, modality_out, resolution, entries = expected
    assert len(state) == entries
    path = tmp_path / filename
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger="mmrphys.model.checkpoint"):
        model = load_reference_checkpoint(path)
    c = model.config
    assert (c.fusion, c.modality, c.resolution, c.attention, c.frames) == (fusion, modality_out, resolution, "tsfm", 180)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["module." + key])
    assert ("rBP_head" in caplog.text) == bp


def test_loaded_model_computes_with_the_checkpoint_weights(tmp_path):
    state = reference_state_dict("rgbt", bp_head=True)
    path = tmp_path / "BP4D_MMRPhysSNF_BVP_RSP_RGBTx180x9_SFSAM_Label_Fold1_Epoch4.pth"
    torch.save(state, path)
    model = load_reference_checkpoint(path).double()
    twin = MMRPhys(variant("SNF", frames=8)).double().eval()
    twin.load_state_dict({k[len("module."):]: v for k, v in state.items() if "rBP_head" not in k})
    x = torch.rand(2, 4, 9, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        a, b = model(x), twin(x)
    for task in ("bvp", "rsp"):
        torch.testing.assert_close(a[task], b[task], rtol=0, atol=0)


def test_base_checkpoint_gives_attention_none_and_resolution_argument_wins(tmp_path):
    state = reference_state_dict("rgb", fsam=False)
    assert len(state) == 18
    path = tmp_path / "base.pth"
    torch.save(state, path)
    model = load_reference_checkpoint(path, resolution=9)
    assert model.config.attention == "none" and model.config.resolution == 9


def test_fp16_plain_dict_loads_as_float32(tmp_path):
    state = {k: v.half() for k, v in reference_state_dict("rgb").items()}
    path = tmp_path / "SCAMPS_MultiTask_x180x72.pth"
    torch.save(dict(state), path)
    model = load_reference_checkpoint(path)
    assert next(model.parameters()).dtype == torch.float32


def test_bias1_is_skipped(tmp_path, caplog):
    state = reference_state_dict("rgb")
    state["module.rppg_head.bias1"] = torch.tensor(1.0)
    path = tmp_path / "x180x9.pth"
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger="mmrphys.model.checkpoint"):
        load_reference_checkpoint(path)
    assert "bias1" in caplog.text


# ---- bad checkpoints ------------------------------------------------------------------


def test_missing_key_is_named(tmp_path):
    state = reference_state_dict("rgb")
    del state["module.rBr_head.final_layer.2.weight"]
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['rBr_head.final_layer.2.weight'\]"):
        load_reference_checkpoint(tmp_path / "a.pth", resolution=72)


def test_unexpected_key_is_named(tmp_path):
    state = reference_state_dict("rgb")
    state["module.rppg_head.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['rppg_head.extra.weight'\]"):
        load_reference_checkpoint(tmp_path / "a.pth", resolution=72)


def test_wrong_shape_is_named_with_the_expected_shape(tmp_path):
    state = reference_state_dict("rgb")
    state["module.rppg_head.final_layer.2.weight"] = torch.zeros(1, 8, 3, 3, 2)
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"final_layer.2.weight: \(1, 8, 3, 3, 2\) vs model \(1, 8, 3, 3, 3\)"):
        load_reference_checkpoint(tmp_path / "a.pth", resolution=72)


def test_checkpoint_matching_no_variant(tmp_path):
    state = reference_state_dict("rgb")
    state["module.bvp_feature_extractor.bvp_feature_extractor.0.conv_block_3d.0.weight"] = torch.zeros(8, 2, 3, 3, 3)
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"matches no MMRPhys variant: extractor input channels \(BVP, RSP\) = \(2, 3\)"):
        load_reference_checkpoint(tmp_path / "a.pth", resolution=72)
    torch.save({"module.encoder.weight": torch.zeros(2)}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"matches no MMRPhys variant"):
        load_reference_checkpoint(tmp_path / "b.pth", resolution=72)


def test_unknown_resolution_and_unreadable_files(tmp_path):
    torch.save(reference_state_dict("rgb"), tmp_path / "noname.pth")
    with pytest.raises(CheckpointError, match=r"cannot tell the resolution.*pass resolution="):
        load_reference_checkpoint(tmp_path / "noname.pth")
    with pytest.raises(CheckpointError, match=r"resolution 64 is not one of"):
        load_reference_checkpoint(tmp_path / "noname.pth", resolution=64)
    with pytest.raises(CheckpointError, match=r"no such checkpoint file"):
        load_reference_checkpoint(tmp_path / "missing.pth", resolution=9)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk.pth: cannot read"):
        load_reference_checkpoint(tmp_path / "junk.pth", resolution=9)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match=r"expected a state dict"):
        load_reference_checkpoint(tmp_path / "list.pth", resolution=9)
