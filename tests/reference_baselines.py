"""An independent, literal transcription of the unsupervised baselines as rPPG-Toolbox
computes them (docs/baselines.md), plus the default profile's
changes as docs/baselines.md states them. One window, one frame, one cumulant entry at a
time, the dense-inverse detrend, scipy's sqrtm, the full SVD. Slow on purpose; the tests
compare `mmrphys.baselines` with it to 1e-9.

Every function takes the per-frame means (T, 3) and keeps their dtype where the toolbox
does, so float32 means follow its float32 driver.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.linalg
import scipy.signal
from scipy.sparse import spdiags


@functools.cache
def detrend_matrix(n: int, lam: float) -> np.ndarray:
    """I - (I + lam^2 D2'D2)^-1, the toolbox's dense detrend operator (cached: it is O(n^3))."""
    d = spdiags(np.array([np.ones(n), -2 * np.ones(n), np.ones(n)]), np.array([0, 1, 2]), n - 2, n).toarray()
    eye = np.identity(n)
    return eye - np.linalg.inv(eye + lam**2 * np.dot(d.T, d))


def detrend(z: np.ndarray, lam: float) -> np.ndarray:
    """The dense-inverse detrend of the centred trace. Centring changes nothing in exact
    arithmetic (the detrend removes constants) but keeps the dense inverse's rounding,
    1e-10 of the skin's brightness, out of comparisons at 1e-9."""
    return np.dot(detrend_matrix(len(z), lam), z - np.mean(z))


def spatial_mean(frames: np.ndarray) -> np.ndarray:
    """The toolbox's per-frame mean of float32 frames: rows first, then columns."""
    frames = frames.astype(np.float32)
    out = []
    for frame in frames:
        out.append(np.sum(np.sum(frame, axis=0), axis=0) / (frame.shape[0] * frame.shape[1]))
    return np.asarray(out)


def window_length(fs: float) -> int:
    return math.ceil(1.6 * fs)


def butter_filtfilt(x: np.ndarray, fs: float, low: float, high: float, order: int) -> np.ndarray:
    b, a = scipy.signal.butter(order, [low / (fs / 2), high / (fs / 2)], btype="bandpass")
    return scipy.signal.filtfilt(b, a, x)


# --- POS ---------------------------------------------------------------------------------

def pos(means: np.ndarray, fs: float, paper_loop: bool = False, guards: bool = False) -> np.ndarray:
    """paper_loop: windows end at n = l ... T (the default); else n = l ... T-1 (toolbox).
    guards: a window with a zero channel mean adds nothing; std(S2) = 0 gives alpha = 0."""
    t = means.shape[0]
    l = window_length(fs)
    h_total = np.zeros(t)
    last = t + 1 if paper_loop else t
    for n in range(last):
        m = n - l
        if m < 0:
            continue
        window = means[m:n, :]
        mu = np.mean(window, axis=0)
        if guards and np.any(mu == 0):
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            c = (window / mu).T  # (3, l)
            c = c.astype(np.float64)
            s1 = c[1] - c[2]
            s2 = -2 * c[0] + c[1] + c[2]
            if guards and np.std(s2) == 0:
                alpha = 0.0
            else:
                alpha = np.std(s1) / np.std(s2)
            h = s1 + alpha * s2
        h = h - np.mean(h)
        for k in range(l):
            h_total[m + k] = h_total[m + k] + h[k]
    out = butter_filtfilt(detrend(h_total, 100.0), fs, 0.75, 3.0, 1)
    return -(out - out.mean()) if guards else out


# --- CHROM -------------------------------------------------------------------------------

def chrom(means: np.ndarray, fs: float) -> np.ndarray:
    t = means.shape[0]
    win = window_length(fs)
    if win % 2:
        win += 1
    half = win // 2
    n_win = math.floor((t - half) / half)
    s_total = np.zeros(half * (n_win + 1))
    taper = np.array([0.5 - 0.5 * math.cos(2 * math.pi * k / (win - 1)) for k in range(win)])
    for i in range(n_win):
        start, mid, end = i * half, i * half + half, i * half + win
        mu = np.mean(means[start:end, :], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = means[start:end, :] / mu
            x = 3 * c[:, 0] - 2 * c[:, 1]
            y = 1.5 * c[:, 0] + c[:, 1] - 1.5 * c[:, 2]
            xf = butter_filtfilt(x, fs, 0.7, 2.5, 3)
            yf = butter_filtfilt(y, fs, 0.7, 2.5, 3)
            alpha = np.std(xf) / np.std(yf)
        s = (xf - alpha * yf) * taper
        s_total[start:mid] = s_total[start:mid] + s[:half]
        s_total[mid:end] = s[half:]
    return s_total


def chrom_default(means: np.ndarray, fs: float) -> np.ndarray:
    """docs/baselines.md: periodic Hann, windows every half window plus one ending at the
    last frame, sum / max(1, taper sum), guards, then the default convention (sign +)."""
    t = means.shape[0]
    win = window_length(fs)
    if win % 2:
        win += 1
    half = win // 2
    starts = list(range(0, t - win + 1, half))
    if starts[-1] + win < t:
        starts.append(t - win)
    taper = np.array([0.5 - 0.5 * math.cos(2 * math.pi * k / win) for k in range(win)])
    total, weight = np.zeros(t), np.zeros(t)
    for start in starts:
        window = means[start : start + win, :]
        mu = np.mean(window, axis=0)
        if np.any(mu == 0):
            continue
        c = window / mu
        xf = butter_filtfilt(3 * c[:, 0] - 2 * c[:, 1], fs, 0.7, 2.5, 3)
        yf = butter_filtfilt(1.5 * c[:, 0] + c[:, 1] - 1.5 * c[:, 2], fs, 0.7, 2.5, 3)
        alpha = np.std(xf) / np.std(yf) if np.std(yf) > 0 else 0.0
        for k in range(win):
            total[start + k] += (xf[k] - alpha * yf[k]) * taper[k]
            weight[start + k] += taper[k]
    out = np.array([total[k] / max(1.0, weight[k]) for k in range(t)])
    return out - out.mean()


# --- ICA (JADE) --------------------------------------------------------------------------

def jade(z: np.ndarray) -> np.ndarray:
    """Sources S = V^H Y of z (3, T), step by step as docs/baselines.md lists them."""
    m, t = z.shape
    z = z.astype(complex)
    iw = scipy.linalg.sqrtm(np.dot(z, z.T) / t)
    w = np.linalg.inv(iw)
    y = np.dot(w, z)
    r = np.dot(y, y.conj().T) / t
    c = np.dot(y, y.T) / t
    qm = np.zeros((m * m, m * m), dtype=complex)
    for l in range(m):
        for k in range(m):
            for j in range(m):
                for i in range(m):
                    fourth = np.sum(y[l] * np.conj(y[k]) * np.conj(y[j]) * y[i]) / t
                    qm[m * l + k, m * j + i] = (
                        fourth - r[i, j] * r[l, k] - r[i, k] * r[l, j] - c[i, l] * np.conj(c[j, k])
                    )
    values, vectors = np.linalg.eig(qm)
    order = np.argsort(np.abs(values))
    blocks = []
    for rank in range(m):
        idx = order[len(order) - 1 - rank]
        zr = np.zeros((m, m), dtype=complex)
        for a in range(m):
            for b in range(m):
                zr[a, b] = vectors[m * a + b, idx]
        blocks.append(zr * abs(values[idx]))
    big = np.hstack(blocks)
    v = np.eye(m, dtype=complex)
    theta = 1 / math.sqrt(t) / 100
    bmat = np.array([[1, 0, 0], [0, 1, 1], [0, -1j, 1j]])
    again = True
    while again:
        again = False
        for p, q in [(0, 1), (0, 2), (1, 2)]:
            ip = [p, p + 3, p + 6]
            iq = [q, q + 3, q + 6]
            g = np.array([big[p, ip] - big[q, iq], big[p, iq], big[q, ip]])
            g3 = np.real(bmat @ g @ g.conj().T @ bmat.conj().T)
            vals, vecs = np.linalg.eig(g3)
            vec = vecs[:, np.argmax(vals)]
            if vec[0] < 0:
                vec = -vec
            cos = math.sqrt(0.5 + vec[0] / 2)
            sin = 0.5 * (vec[1] - 1j * vec[2]) / cos
            if abs(sin) > theta:
                again = True
                rot = np.array([[cos, -np.conj(sin)], [sin, cos]])
                v[:, [p, q]] = v[:, [p, q]] @ rot
                big[[p, q], :] = rot.conj().T @ big[[p, q], :]
                new_p = cos * big[:, ip] + sin * big[:, iq]
                new_q = -np.conj(sin) * big[:, ip] + cos * big[:, iq]
                big[:, ip] = new_p
                big[:, iq] = new_q
    return v.conj().T @ y


def ica(means: np.ndarray, fs: float, band_limited: bool = False) -> np.ndarray:
    """band_limited: the default's selection, the largest share of non-DC power in one
    bin of 0.7-2.5 Hz (zero-padded to 0.1 Hz or finer), then the default convention."""
    t = means.shape[0]
    z = np.zeros((3, t))
    for ch in range(3):
        d = detrend(means[:, ch].astype(np.float64), 100.0)
        z[ch] = (d - np.mean(d)) / np.std(d)
    sources = jade(z)
    scores = []
    for ch in range(3):
        if band_limited:
            nfft = 1
            while nfft < max(t, math.ceil(fs / 0.1)):
                nfft *= 2
            spectrum = np.fft.fft(sources[ch].real, n=nfft)
            power = np.abs(spectrum[1 : nfft // 2 + 1]) ** 2
            freqs = np.arange(1, nfft // 2 + 1) * fs / nfft
            band = (freqs >= 0.7) & (freqs <= 2.5)
            scores.append(power[band].max() / power.sum())
        else:
            spectrum = np.fft.fft(sources[ch])[1:]
            n = len(spectrum)
            power = np.abs(spectrum[: n // 2]) ** 2
            power = power / np.sum(power)
            scores.append(np.max(power))
    chosen = int(np.argmax(scores))
    out = butter_filtfilt(np.real(sources[chosen]), fs, 0.7, 2.5, 3)
    if not band_limited:
        return out
    green = butter_filtfilt(z[1], fs, 0.7, 2.5, 3)
    sign = -1.0 if np.sum(out * green) > 0 else 1.0
    return sign * (out - out.mean())


# --- GREEN, LGI, PBV, OMIT ---------------------------------------------------------------

def green(means: np.ndarray) -> np.ndarray:
    return means[:, 1].copy()


def lgi(means: np.ndarray) -> np.ndarray:
    x = np.array(means.T)
    u, _, _ = np.linalg.svd(x, full_matrices=True)
    s = u[:, 0:1]
    p = np.identity(3) - s @ s.T
    return (p @ x)[1]


def omit(means: np.ndarray, first_frame: bool = True) -> np.ndarray:
    """first_frame: the toolbox's QR direction; else the default's mean colour (raw output)."""
    x = np.array(means.T)
    if first_frame:
        q, _ = np.linalg.qr(x)
        s = q[:, 0:1]
    else:
        x = x.astype(np.float64)
        colour = x.mean(axis=1)
        s = (colour / np.sqrt(np.sum(colour**2)))[:, None]
    p = np.identity(3) - s @ s.T
    return (p @ x)[1]


def pbv(means: np.ndarray, centred: bool = False) -> np.ndarray:
    """centred: the default's Q, the covariance of c (raw output, float64)."""
    x = np.array(means.T)
    if centred:
        x = x.astype(np.float64)
    mu = np.mean(x, axis=1)
    c = np.array([x[k] / mu[k] for k in range(3)])
    sigma = np.array([np.std(c[k]) for k in range(3)])
    signature = sigma / np.sqrt(np.sum(sigma**2))
    if centred:
        d = c - np.mean(c, axis=1)[:, None]
        q = sum(np.outer(d[:, i], d[:, i]) for i in range(c.shape[1]))
    else:
        q = c @ c.T
    w = np.linalg.solve(q, signature)
    return np.array([c[:, i] @ w for i in range(c.shape[1])]) / (signature @ w)
