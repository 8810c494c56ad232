"""FactorizePhys's own options (`ModelConfig.factorizephys`) and what it supports of the
fields MMRPhys varies (docs/factorizephys.md, "Options")."""

from __future__ import annotations

import dataclasses
from typing import Literal

from mmrphys.config.base import Config

Transform = Literal["T_KAB", "TK_AB", "K_TAB"]

#: FactorizePhys's input sizes: 72 = the standard model, 128 = Big (HighRes)
FACTORIZEPHYS_RESOLUTIONS: tuple[int, ...] = (72, 128)
#: ModelConfig fields FactorizePhys fixes, with the one value it takes
FACTORIZEPHYS_ONLY: dict[str, object] = {"tasks": ("bvp",), "fusion": "early", "constraint": "target"}


@dataclasses.dataclass(frozen=True)
class FactorizePhysOptions(Config):
    """FactorizePhys options beyond the shared ModelConfig fields.

    residual: FSAM's fusion: true adds IN(Z) to the head tensor (the reference's FSAM_Res,
        the proposed model), false replaces the head tensor by IN(Z) (its FSAM).
    transform: how the (channels K, time T, height A, width B) embedding becomes FSAM's
        matrix, always by a raw memory reshape: `T_KAB` (rows T, the default), `TK_AB`
        (rows K*T, columns A*B) or `K_TAB` (rows K). TSFM takes `T_KAB` only.
    """

    residual: bool = True
    transform: Transform = "T_KAB"
