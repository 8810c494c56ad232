"""Search space `resolution_modality`: input resolution x modality pairing.

Resolution is one of the reference's three frame sizes (72 = L, 36 = M, 9 = S). A
modality pairing is one (modality, fusion) pair the model accepts:

| pairing            | modality | fusion     | what it means                                  |
|--------------------|----------|------------|------------------------------------------------|
| `rgb`              | rgb      | early      | RGB video feeds both branches                   |
| `thermal`          | thermal  | early      | thermal video feeds both branches               |
| `rgbt_early`       | rgbt     | early      | RGB + thermal stacked as 4 channels (EF)        |
| `rgbt_per_task`    | rgbt     | per_task   | RGB to the BVP branch, thermal to RSP (NF)      |
| `rgbt_late`        | rgbt     | late       | separate RGB and thermal streams, joined late (LF) |

`per_task` and `late` fusion need both streams, so they never appear with a single
modality (ModelConfig rejects those pairs). The grid is 3 x 5 = 15 trials.
"""

from __future__ import annotations

from typing import Any

from ray import tune

RESOLUTIONS: tuple[int, ...] = (72, 36, 9)

#: pairing name -> the config fields it sets
PAIRINGS: dict[str, dict[str, str]] = {
    "rgb": {"model.modality": "rgb", "model.fusion": "early"},
    "thermal": {"model.modality": "thermal", "model.fusion": "early"},
    "rgbt_early": {"model.modality": "rgbt", "model.fusion": "early"},
    "rgbt_per_task": {"model.modality": "rgbt", "model.fusion": "per_task"},
    "rgbt_late": {"model.modality": "rgbt", "model.fusion": "late"},
}


def space() -> dict[str, Any]:
    """Every resolution with every modality pairing, as a Tune grid."""
    return {
        "model.resolution": tune.grid_search(list(RESOLUTIONS)),
        "pairing": tune.grid_search([dict(fields) for fields in PAIRINGS.values()]),
    }
