"""Heart-rate and respiration-rate metrics from predicted and label waveforms.

Per window (`window_rates`), over a dataset (`summarize`, `bland_altman`), and over whole
recordings (`assemble_recordings`, `evaluate_recordings` -> `Evaluation`), each under a
named profile from `mmrphys.profiles`: "default", "rppg-toolbox" or "mmrphys".
"""

from mmrphys.metrics.recordings import (
    Evaluation,
    assemble_recordings,
    evaluate_recordings,
    window_bounds,
)
from mmrphys.metrics.summary import Summary, bland_altman, summarize
from mmrphys.metrics.window import (
    WindowRates,
    min_window_samples,
    preprocess,
    waveform_rates,
    window_rates,
)
from mmrphys.profiles import PROFILES, get_profile
from mmrphys.signals import SignalError, WindowTooShortError

__all__ = [
    "PROFILES",
    "Evaluation",
    "SignalError",
    "Summary",
    "WindowRates",
    "WindowTooShortError",
    "assemble_recordings",
    "bland_altman",
    "evaluate_recordings",
    "get_profile",
    "min_window_samples",
    "preprocess",
    "summarize",
    "waveform_rates",
    "window_bounds",
    "window_rates",
]
