"""Synthetic RGB + thermal face video with known pulse and breathing: the embedded default.

Each recording is rendered from a static face (skin tone, shading, eyes, brows, mouth,
a map of where the pulse is strong) that moves with breathing and head motion, talks and
blinks, under changing light seen by cameras with their own noise and glitches:

- RGB: the blood-volume pulse darkens the skin in proportion to each channel's
  pulsatility (green strongest, as in real skin), at 0.3-2 intensity levels peak to peak
  in green: below the per-pixel sensor noise, as in real face video.
- Thermal (degrees Celsius): a warm face on a cooler background; the nostril/mouth region
  cools on inhale and warms on exhale; a weak pulse; the sensor's noise, drift and
  flat-field corrections.
- Labels: BVP and RSP at the frame times; the face box of every frame (ground truth, or
  with a detector's jitter and drift).

`SyntheticConfig.from_preset` picks the nuisances: `clean` (none: what fast tests use),
`realistic` and `hard` (docs/data.md section 1). One module per nuisance family:
`face` (appearance, talking and blinking layers), `motion` (head pose, animation, boxes),
`light` (illumination, auto exposure and white balance), `camera` (frame glitches,
codecs), `thermal` (the microbolometer), `render` (the frames), `dataset` (the folder
layout: `clean` losslessly, RGB as FFV1 video, bit-exact with the pinned OpenCV, and
thermal as float32 NumPy). Everything is deterministic given the seed.
"""

from mmrphys.data.synthetic.dataset import (
    BOXES_FILE,
    LABELS_FILE,
    META_FILE,
    RGB_FILE,
    THERMAL_FILE,
    THERMAL_UNIT,
    generate_dataset,
    write_recording,
)
from mmrphys.data.synthetic.face import SKIN_PULSATILITY, SKIN_TONES
from mmrphys.data.synthetic.render import SyntheticRecording, render

__all__ = [
    "BOXES_FILE", "LABELS_FILE", "META_FILE", "RGB_FILE", "SKIN_PULSATILITY", "SKIN_TONES", "SyntheticRecording",
    "THERMAL_FILE", "THERMAL_UNIT", "generate_dataset", "render", "write_recording",
]
