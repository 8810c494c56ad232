"""`mmrphys model`: layer summary, parameter count and forward time; bad arguments."""

from __future__ import annotations

import torch

from mmrphys.model import MMRPhys, variant
from mmrphys.model.summary import layer_summary, synthetic_clip
from pipelines.cli import main


def test_model_command_prints_layers_parameters_and_time(capsys):
    assert main(["model", "--variant", "SEF", "--modality", "rgb", "model.frames=16", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "MMRPhys SEF: resolution 9, modality rgb (3 ch)" in out
    assert "parameters: 88,256" in out
    assert "rppg_head.final_layer.2" in out and "8->1 k3x3x3 s1x1x1 p1x0x0" in out
    assert "not run (training only)" in out
    assert "output: bvp (1, 16), rsp (1, 16)" in out
    assert "forward (eval, batch 1" in out and "ms median of 1" in out


def test_model_command_rejects_an_impossible_variant(capsys):
    assert main(["model", "--variant", "SNF", "--modality", "rgb"]) == 2
    assert "needs modality 'rgbt'" in capsys.readouterr().err
    assert main(["model", "--variant", "SEF", "model.attention=sometimes"]) == 2
    assert "ModelConfig.attention" in capsys.readouterr().err


def test_model_command_loads_a_checkpoint(tmp_path, capsys):
    model = MMRPhys(variant("SEF", modality="thermal"))
    path = tmp_path / "x180x9.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    assert main(["model", "--checkpoint", str(path), "model.frames=8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "modality thermal (1 ch)" in out and "parameters: 86,960" in out and "bvp (1, 8)" in out


def test_summary_rows_cover_every_parameter_and_the_clip_is_realistic():
    config = variant("SLF", frames=8)
    model = MMRPhys(config).eval()
    clip = synthetic_clip(config, batch=2)
    assert clip.shape == (2, 4, 9, 9, 9) and clip.min() >= 0 and clip.max() <= 255
    rows = layer_summary(model, clip)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert all(r.output is not None for r in rows if r.kind != "FeaturesFactorizationModule")
