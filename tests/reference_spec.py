"""An independent, literal transcription of the reference evaluation code as docs/evaluation.md
(`reference/evaluation-metrics.md`) describes it: dense-inverse detrend, one window at a
time, loops for MACC, torch float32 tensors for the diff path. Slow on purpose; the
tests compare `mmrphys.metrics` with it to 1e-6.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.signal
import torch
from scipy.sparse import spdiags


def nextpow2(n: int) -> int:
    return 1 if n == 0 else 2 ** (n - 1).bit_length()


def detrend(z: np.ndarray, lam: float = 100.0) -> np.ndarray:
    n = z.shape[0]
    d = spdiags(np.array([np.ones(n), -2 * np.ones(n), np.ones(n)]), np.array([0, 1, 2]), n - 2, n).toarray()
    eye = np.identity(n)
    return np.dot(eye - np.linalg.inv(eye + lam**2 * np.dot(d.T, d)), z)


def filt(x: np.ndarray, fs: float, low: float, high: float, order: int) -> np.ndarray:
    b, a = scipy.signal.butter(order, [low / fs * 2, high / fs * 2], btype="bandpass")
    return scipy.signal.filtfilt(b, a, np.double(x))


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - np.mean(x)) / np.std(x)


def welch(x: np.ndarray, fs: float):
    nperseg = len(x) // 2
    return scipy.signal.welch(x, fs=fs, nperseg=nperseg, noverlap=nperseg // 2, nfft=nperseg, detrend=False)


def fft_rate(x, fs, low, high, mmrphys: bool, zscore_first: bool = False):
    if zscore_first:
        x = zscore(x)
    if mmrphys and len(x) > 30 * fs:
        f, p = welch(x, fs)
    else:
        f, p = scipy.signal.periodogram(x, fs=fs, nfft=nextpow2(len(x)), detrend=False)
    mask = np.argwhere((f >= low) & (f <= high))
    return float(np.take(f, mask)[np.argmax(np.take(p, mask), 0)].ravel()[0]) * 60


def peak_rate(x, fs):
    peaks, _ = scipy.signal.find_peaks(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer than 2 peaks: mean of empty -> NaN, as the references
        return 60 / (np.mean(np.diff(peaks)) / fs)


def snr(pred, rate, fs, low, high, mmrphys: bool):
    if mmrphys:
        pred = zscore(pred)
    n = len(pred)
    if mmrphys and n >= 256:
        f, p = welch(pred, fs)
    else:
        f, p = scipy.signal.periodogram(pred, fs=fs, nfft=nextpow2(n), detrend=False)
    f0, dev = rate / 60, 6 / 60
    h1 = (f >= f0 - dev) & (f <= f0 + dev)
    h2 = (f >= 2 * f0 - dev) & (f <= 2 * f0 + dev)
    rem = (f >= low) & (f <= high) & ~h1 & ~h2
    power = (lambda m: np.sum(p[m] ** 2)) if mmrphys else (lambda m: np.sum(p[m]))
    if power(rem) == 0:
        return 0
    return 10 * np.log10((power(h1) + power(h2)) / power(rem))


def macc(pred, label):
    n = min(len(pred), len(label))
    return max(abs(np.corrcoef(pred[:n], np.roll(label[:n], k))[0][1]) for k in range(n - 1))


def per_window(pred, label, fs, profile: str, task: str, diff: bool, method: str):
    """(label_rate, pred_rate, snr, macc) as the reference's per-window function returns them."""
    pred = torch.tensor(np.asarray(pred), dtype=torch.float32)
    label = torch.tensor(np.asarray(label), dtype=torch.float32)
    if diff:
        pred, label = torch.cumsum(pred, 0), torch.cumsum(label, 0)
    pred, label = pred.numpy(), label.numpy()
    mmrphys = profile == "mmrphys"
    if task == "bvp":
        band, snr_band, order = (0.6, 3.3), (0.6, 3.3), (2 if mmrphys else 1)
    else:
        band, order = (0.13, 0.5), (2 if mmrphys else 1)
        snr_band = (0.1, 0.54) if mmrphys else band
    if not mmrphys:
        pred, label = detrend(pred), detrend(label)
    pred, label = filt(pred, fs, *band, order), filt(label, fs, *band, order)
    if method == "fft":
        zs = mmrphys and task == "rsp"
        rate_p = fft_rate(pred, fs, *band, mmrphys, zs)
        rate_l = fft_rate(label, fs, *band, mmrphys, zs)
    else:
        rate_p, rate_l = peak_rate(pred, fs), peak_rate(label, fs)
    m = None if (task == "rsp" and not mmrphys) else macc(pred, label)
    return rate_l, rate_p, snr(pred, rate_l, fs, *snr_band, mmrphys), m
