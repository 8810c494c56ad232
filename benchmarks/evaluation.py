"""Evaluation speed: the banded detrend vs the references' dense inverse, the FFT MACC vs
the references' per-lag loop, and `evaluate_recordings` as training validation calls it.

Each pair is timed side by side in one run, best of `--repeats`. Run:
    python benchmarks/evaluation.py
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from scipy.sparse import spdiags

from mmrphys import signals
from mmrphys.metrics import evaluate_recordings
from timing import best_of


def dense_detrend(z: np.ndarray, lam: float = 100.0) -> np.ndarray:
    """The references' formula: a dense N x N inverse."""
    n = z.shape[0]
    d = spdiags(np.array([np.ones(n), -2 * np.ones(n), np.ones(n)]), np.array([0, 1, 2]), n - 2, n).toarray()
    eye = np.identity(n)
    return (eye - np.linalg.inv(eye + lam**2 * d.T @ d)) @ z


def loop_macc(pred: np.ndarray, label: np.ndarray) -> float:
    """The references' MACC: one Pearson r per circular lag."""
    return max(abs(np.corrcoef(pred, np.roll(label, k))[0, 1]) for k in range(len(pred) - 1))


def validation_inputs(recordings: int, seconds: float, fs: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    labels = {
        "bvp": {f"r{i}": np.sin(2 * np.pi * rng.uniform(1, 2) * t) for i in range(recordings)},
        "rsp": {f"r{i}": np.sin(2 * np.pi * rng.uniform(0.15, 0.4) * t) for i in range(recordings)},
    }
    preds = {task: {r: x + rng.normal(size=x.size) for r, x in recs.items()} for task, recs in labels.items()}
    return preds, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, numpy {np.__version__}")

    print("\n| N (30 fps) | dense inverse (s) | banded solve (s) | speed-up | max abs diff |")
    print("|---|---|---|---|---|")
    for n in (900, 1800, 3600):
        z = np.random.default_rng(n).normal(size=n).cumsum()
        dense = best_of(lambda: dense_detrend(z), args.repeats)
        banded = best_of(lambda: signals.detrend_smoothness_priors(z, 100.0), args.repeats)
        diff = np.max(np.abs(dense_detrend(z) - signals.detrend_smoothness_priors(z, 100.0)))
        print(f"| {n} | {dense:.3f} | {banded:.5f} | {dense / banded:.0f}x | {diff:.1e} |")

    print("\n| N | MACC loop (s) | MACC FFT (s) | speed-up | abs diff |")
    print("|---|---|---|---|---|")
    for n in (900, 1800):
        pred, label = np.random.default_rng(n).normal(size=(2, n))
        loop = best_of(lambda: loop_macc(pred, label), args.repeats)
        fft = best_of(lambda: signals.max_cross_correlation(pred, label), args.repeats)
        diff = abs(loop_macc(pred, label) - signals.max_cross_correlation(pred, label))
        print(f"| {n} | {loop:.3f} | {fft:.5f} | {loop / fft:.0f}x | {diff:.1e} |")

    print("\n| evaluate_recordings, BVP + RSP | profile | windows | time (s) | per recording (ms) |")
    print("|---|---|---|---|---|")
    for recordings, seconds in ((8, 60.0), (32, 60.0)):
        preds, labels = validation_inputs(recordings, seconds, 30.0)
        for profile in ("default", "rppg-toolbox", "mmrphys"):
            for window in (None, 30.0):
                took = best_of(
                    lambda: evaluate_recordings(preds, labels, 30.0, window_seconds=window, profile=profile),
                    args.repeats,
                )
                label = "whole" if window is None else f"{window:g} s"
                print(f"| {recordings} x {seconds:g} s | {profile} | {label} | {took:.3f} | {1000 * took / recordings:.1f} |")


if __name__ == "__main__":
    main()
