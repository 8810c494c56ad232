"""Strides and paddings of every conv block per input resolution (docs/model.md, "Layers").

The reference's L (72x72), M (36x36) and S (9x9) models differ only in these numbers;
channel widths and kernels are shared, so parameter counts do not depend on resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

Triple = tuple[int, int, int]
StridePad = tuple[Triple, Triple]

ONE: Triple = (1, 1, 1)
HALF_SPACE: Triple = (1, 2, 2)
HALF_TIME: Triple = (2, 1, 1)
HALF_ALL: Triple = (2, 2, 2)
PAD_TIME: Triple = (1, 0, 0)
PAD_ALL: Triple = (1, 1, 1)


@dataclass(frozen=True)
class ResolutionLayout:
    """(stride, padding) of each conv block of one resolution, in network order."""

    bvp_extractor: tuple[StridePad, StridePad, StridePad]
    rsp_extractor: tuple[StridePad, StridePad, StridePad]
    bvp_head: tuple[StridePad, StridePad, StridePad]
    bvp_final: tuple[StridePad, StridePad]
    rsp_head: tuple[StridePad, StridePad, StridePad, StridePad]
    rsp_final: StridePad


_HEADS_L_M = dict(
    bvp_head=((HALF_SPACE, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME)),
    bvp_final=((HALF_SPACE, PAD_TIME), (ONE, PAD_TIME)),
    rsp_head=((ONE, PAD_TIME), (HALF_ALL, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME)),
    rsp_final=(HALF_SPACE, PAD_TIME),
)

LAYOUTS: dict[int, ResolutionLayout] = {
    72: ResolutionLayout(
        bvp_extractor=((HALF_SPACE, PAD_TIME), (ONE, PAD_TIME), (ONE, PAD_TIME)),
        rsp_extractor=((ONE, PAD_TIME), (HALF_ALL, PAD_TIME), (ONE, PAD_TIME)),
        **_HEADS_L_M,
    ),
    36: ResolutionLayout(
        bvp_extractor=((ONE, PAD_ALL), (ONE, PAD_TIME), (ONE, PAD_TIME)),
        rsp_extractor=((ONE, PAD_ALL), (HALF_TIME, PAD_TIME), (ONE, PAD_TIME)),
        **_HEADS_L_M,
    ),
    9: ResolutionLayout(
        bvp_extractor=((ONE, PAD_ALL), (ONE, PAD_ALL), (ONE, PAD_ALL)),
        rsp_extractor=((ONE, PAD_ALL), (HALF_TIME, PAD_ALL), (ONE, PAD_ALL)),
        bvp_head=((ONE, PAD_ALL), (ONE, PAD_ALL), (ONE, PAD_TIME)),
        bvp_final=((ONE, PAD_TIME), (ONE, PAD_TIME)),
        rsp_head=((ONE, PAD_ALL), (HALF_TIME, PAD_ALL), (ONE, PAD_ALL), (ONE, PAD_ALL)),
        rsp_final=(HALF_SPACE, PAD_TIME),
    ),
}
