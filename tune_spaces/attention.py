"""Search space `attention`: attention type x NMF steps x rank x layout and constraint.

Only combinations in which every searched value changes the model are included (the
measurements are in docs/model.md, "Options that make steps and rank matter"), so no two
trials train the same network under different names:

- `none` (the Base model) has no factorization: one point.
- `tsfm` with constraint `target` (the reference's TSFM) is the rank-1 projection of the
  features onto the rescaled target: steps, rank and initial bases change nothing. Only
  `factor_layout` is searched.
- `fsam` (unconstrained NMF): the steps matter. With `bases_init: reference` all initial
  bases are identical and stay so, so the rank does not; with `seeded` bases the rank
  matters most of all (18 % of the attention term), so it is searched there.
- `tsfm` with `target_harmonics`: the steps matter, the rank does not (distinct bases
  collapse after one step), so rank 1 with the reference bases.
- `tsfm` with `rbf`: the steps matter strongly, the rank barely; only with `seeded` bases,
  since the reference's RBF mode draws new random bases on every call (its output is not
  a function of the config).

Every point searches `factor_layout` (`reference` memory reshape or `time_aligned`),
which changes what the factorization sees. 99 points: use random search.
"""

from __future__ import annotations

import itertools
from typing import Any

from ray import tune

NMF_STEPS: tuple[int, ...] = tuple(range(1, 9))
SEEDED_RANKS: tuple[int, ...] = (1, 2, 4)
LAYOUTS: tuple[str, ...] = ("reference", "time_aligned")


def combinations() -> list[dict[str, Any]]:
    """The attention settings worth training, each a mapping of config fields."""
    points: list[dict[str, Any]] = [{"model.attention": "none"}]
    for layout in LAYOUTS:
        points.append({"model.attention": "tsfm", "model.constraint": "target", "model.factor_layout": layout})
    for layout, steps in itertools.product(LAYOUTS, NMF_STEPS):
        def point(attention: str, constraint: str, bases: str, rank: int = 1) -> dict[str, Any]:
            return {"model.attention": attention, "model.constraint": constraint, "model.factor_layout": layout,
                    "model.nmf_steps": steps, "model.bases_init": bases, "model.nmf_rank": rank}

        points.append(point("fsam", "target", "reference"))
        points.extend(point("fsam", "target", "seeded", rank) for rank in SEEDED_RANKS)
        points.append(point("tsfm", "target_harmonics", "reference"))
        points.append(point("tsfm", "rbf", "seeded"))
    return points


def space() -> dict[str, Any]:
    """Every meaningful attention setting, as one Tune grid dimension."""
    return {"attention": tune.grid_search(combinations())}
