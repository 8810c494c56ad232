"""Search space `architectures`: MMRPhys, FactorizePhys and RhythmFormer in one search.

Each point is the bundle of one trainable built-in `mmrphys compare` entry
(pipelines/compare/entries.py, docs/compare.md): `mmrphys` (the base config's MMRPhys,
TSFM), `factorizephys` (72x72 RGB, BVP, FSAM with residual) and `rhythmformer` (64x64 RGB,
BVP), every trial on the same shards with the same recipe. The two BVP-only networks have
no respiration term in `val_rate_mae`, so rank this search by heart rate:

    mmrphys tune --data SHARDS --space architectures --metric val_hr_mae train.epochs=5

The shards must hold crops of 72 or more (ingest `--size`). The unsupervised methods are
not searched (nothing trains); `mmrphys compare` scores them beside trained models.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from mmrphys.config.base import parse_override

#: the compare entries this space searches
ARCHITECTURE_ENTRIES: tuple[str, ...] = ("mmrphys", "factorizephys", "rhythmformer")


def space() -> dict[str, Any]:
    """One grid point per trainable architecture, each a bundle of its entry's fields."""
    # imported here: the comparison package imports the training driver, which imports tune_spaces
    from pipelines.compare.entries import ENTRIES

    bundles = [dict(parse_override(override) for override in ENTRIES[name]) for name in ARCHITECTURE_ENTRIES]
    return {"architecture": tune.grid_search(bundles)}
