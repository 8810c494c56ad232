"""Search space `default`: a joint search of the choices that matter most, with the
learning rate.

- resolution 72 or 36 (9 x 9 is the cheap S variant; search it with
  `resolution_modality`);
- the three RGB + thermal pairings (early, per-task and late fusion), since thermal
  carries most of the respiration signal;
- attention FSAM or TSFM (target constraint) at the reference's 4 NMF steps;
- learning rate log-uniform in [1e-4, 3e-3] around the reference's 1e-3.

Meant for random search (`--algorithm random --num-samples N`); under a grid the
learning rate is drawn once per grid point.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces.resolution_modality import PAIRINGS


def space() -> dict[str, Any]:
    """Resolution x RGB+thermal pairing x attention x learning rate."""
    return {
        "model.resolution": tune.grid_search([72, 36]),
        "pairing": tune.grid_search(
            [dict(PAIRINGS[name]) for name in ("rgbt_early", "rgbt_per_task", "rgbt_late")]
        ),
        "attention": tune.grid_search(
            [
                {"model.attention": "fsam", "model.constraint": "target", "model.nmf_steps": 4},
                {"model.attention": "tsfm", "model.constraint": "target"},
            ]
        ),
        "train.lr": tune.loguniform(1e-4, 3e-3),
    }
