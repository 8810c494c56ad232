"""The presets are ordered in difficulty as a model trained on real faces sees them: the
released BP4D+ 9x9 RGB+T MMRPhys checkpoint, run without training on a few recordings of
each preset, errs least on `clean` and most on `hard` (docs/data.md section 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic.calibration import score_preset
from mmrphys.inference.artifact import load_model

RELEASED = Path(__file__).resolve().parents[1].parent / "shared" / "checkpoints"
BP4D_RGBT = RELEASED / "BP4D_MMRPhysSNF_BVP_RSP_RGBTx180x9_SFSAM_Label_Fold1_Epoch4.pth"


@pytest.mark.skipif(not BP4D_RGBT.is_file(), reason=f"released checkpoint not found at {BP4D_RGBT}")
def test_a_real_data_checkpoint_finds_clean_easier_than_realistic_easier_than_hard(tmp_path):
    model = load_model(BP4D_RGBT)
    errors = {}
    for preset in ("clean", "realistic", "hard"):
        (evaluation,) = score_preset([model], SyntheticConfig.from_preset(preset), tmp_path / preset,
                                     recordings=4, seconds=30.0, seed=1)
        errors[preset] = evaluation.summary["bvp"]["MAE"]
        assert evaluation.summary["bvp"]["n"] == 4 and evaluation.summary["rsp"]["n"] == 4
    assert errors["clean"] < 1.5 and errors["clean"] < errors["realistic"] < errors["hard"], errors
