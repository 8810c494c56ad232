"""Search space `attention`: attention type x NMF steps x rank x layout and constraint.

Only combinations in which every searched value can change the model are included, so
no two trials train the same network under different names:

- `none` (the Base model) has no factorization: one point, whatever the other fields.
- `tsfm` with constraint `target` is a rank-1 projection of the features onto the
  rescaled target (reference architecture notes, 5.5): neither the NMF steps, nor the
  rank, nor the initial bases change the result. Only `factor_layout` is searched.
- `fsam` (unconstrained NMF): the steps always matter (the bases are updated by every
  iteration). With `bases_init: reference` all initial bases are identical and stay
  identical, so any rank equals rank 1; the rank is searched only with `seeded` bases.
- `tsfm` with constraint `target_harmonics` or `rbf`: the dictionary has several
  columns, so the steps matter; as for FSAM, the rank matters only with `seeded` bases.

Every point also searches `factor_layout` (`reference` memory reshape or
`time_aligned`), which changes which features each target sample lines up with.
"""

from __future__ import annotations

import itertools
from typing import Any

from ray import tune

NMF_STEPS: tuple[int, ...] = tuple(range(1, 9))
SEEDED_RANKS: tuple[int, ...] = (1, 2, 4)
LAYOUTS: tuple[str, ...] = ("reference", "time_aligned")
#: (attention, constraint) pairs whose factorization iterates, so steps matter
ITERATIVE: tuple[tuple[str, str], ...] = (
    ("fsam", "target"),
    ("tsfm", "target_harmonics"),
    ("tsfm", "rbf"),
)


def combinations() -> list[dict[str, Any]]:
    """The attention settings worth training, each a mapping of config fields."""
    points: list[dict[str, Any]] = [{"model.attention": "none"}]
    for layout in LAYOUTS:
        points.append(
            {"model.attention": "tsfm", "model.constraint": "target", "model.factor_layout": layout}
        )
    for (attention, constraint), layout, steps in itertools.product(ITERATIVE, LAYOUTS, NMF_STEPS):
        common = {
            "model.attention": attention,
            "model.constraint": constraint,
            "model.factor_layout": layout,
            "model.nmf_steps": steps,
        }
        points.append({**common, "model.bases_init": "reference", "model.nmf_rank": 1})
        points.extend(
            {**common, "model.bases_init": "seeded", "model.nmf_rank": rank} for rank in SEEDED_RANKS
        )
    return points


def space() -> dict[str, Any]:
    """Every meaningful attention setting, as one Tune grid dimension."""
    return {"attention": tune.grid_search(combinations())}
