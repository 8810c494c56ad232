"""Training losses: the reference's multitask Smooth L1 on per-chunk z-scored signals,
negative Pearson in two forms, and RhythmFormer's hybrid pulse loss.

The reference sums Smooth L1 (beta 1, mean) of z(prediction) against z(label) over the
BVP and RSP tasks with equal weights; z standardises each sample along time with the
unbiased std floored at 1e-8 (1e-3 in its fp16 recipe).

`neg_pearson` is 1 - Pearson r of each sample over time, averaged over the batch.
`neg_pearson_across_batch` is the FactorizePhys / rPPG-Toolbox loss as their trainer
computes it (docs/factorizephys.md, "Loss"): after one z-score of the whole batch, the
correlation is taken across the batch at every time step, then averaged over time.

The hybrid loss (docs/rhythmformer.md, "Loss") is 0.2 x negative Pearson + a frequency
cross-entropy + a heart-rate-distribution KL, per sample, averaged over the batch; it
needs each clip's frame rate. `rhythmformer_hybrid` is the canonical form (its KL term
has no gradient), `rhythmformer_hybrid_corrected` replaces that term with a
differentiable KL of the predicted spectrum; `hybrid_terms(form="toolbox")` gives the
rPPG-Toolbox port's values for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from mmrphys.signals import (
    bandpass,
    detrend_smoothness_priors,
    next_pow2,
    periodogram,
    spectral_peak_rate,
)

#: TrainConfig.loss value -> form of the hybrid loss
HYBRID_LOSSES = {"rhythmformer_hybrid": "canonical", "rhythmformer_hybrid_corrected": "corrected"}
LOSS_KINDS = ("smooth_l1", "neg_pearson", "neg_pearson_across_batch", *HYBRID_LOSSES)
HybridForm = Literal["canonical", "corrected", "toolbox"]
#: one frame rate for the batch or one per clip
FrameRates = float | Sequence[float] | np.ndarray | torch.Tensor
#: eps of the reference's cosine similarity across the batch
COSINE_EPS = 1e-6


def zscore(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Standardise each row of (B, T) along time: (x - mean) / max(unbiased std, eps).

    The floor keeps a constant row finite (it becomes zeros) where the reference's label
    z-score returns NaN.
    """
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=True)
    return (x - mean) / torch.clamp(std, min=eps)


def neg_pearson(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of 1 - Pearson r between rows of pred and target (B, T).

    0 for a perfect fit, 2 for a perfectly inverted one; rows with no variance count as r = 0.
    """
    _check_pair(pred, target, "neg_pearson")
    p = pred - pred.mean(dim=-1, keepdim=True)
    t = target - target.mean(dim=-1, keepdim=True)
    denominator = torch.clamp(p.norm(dim=-1) * t.norm(dim=-1), min=eps)
    r = (p * t).sum(dim=-1) / denominator
    return (1 - r).mean()


def batch_zscore(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Standardise a whole (B, T) batch with one mean and one unbiased std (floored at eps,
    where the reference's constant batch gives NaN)."""
    return (x - x.mean()) / torch.clamp(x.std(unbiased=True), min=eps)


def neg_pearson_across_batch(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The FactorizePhys reference's negative Pearson of (B, T) prediction and label.

    Both are z-scored as whole batches (`batch_zscore`); then at every time step t the
    batch mean is removed and r_t is the cosine similarity across the batch (eps 1e-6);
    the loss is the mean over t of 1 - r_t. It is invariant to any per-time-step offset
    and positive scale, but not to per-sample ones; B = 1 gives exactly 1 with zero
    gradient, and B = 2 gives r_t in {-1, 0, 1}.
    """
    _check_pair(pred, target, "neg_pearson_across_batch")
    p, t = batch_zscore(pred, eps), batch_zscore(target, eps)
    p = p - p.mean(dim=0, keepdim=True)
    t = t - t.mean(dim=0, keepdim=True)
    return (1 - F.cosine_similarity(p, t, dim=0, eps=COSINE_EPS)).mean()


def _check_pair(pred: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if pred.dim() != 2 or pred.shape != target.shape:
        raise ValueError(
            f"{what}: expected prediction and label of the same shape (B, T), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def task_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str = "smooth_l1", eps: float = 1e-8, fps: FrameRates | None = None
) -> torch.Tensor:
    """One task's loss between a (B, T) prediction and its label (fps: the hybrid losses' frame rates)."""
    _check_pair(pred, target, kind)
    target = target.to(dtype=pred.dtype, device=pred.device)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(zscore(pred, eps), zscore(target, eps), beta=1.0)
    if kind == "neg_pearson":
        return neg_pearson(pred, target, eps)
    if kind == "neg_pearson_across_batch":
        return neg_pearson_across_batch(pred, target, eps)
    if kind in HYBRID_LOSSES:
        if fps is None:
            raise ValueError(f"loss kind {kind!r}: needs the frame rate (fps) of every clip; batches must carry 'fps'")
        return rhythmformer_hybrid_loss(pred, target, fps, HYBRID_LOSSES[kind], eps)
    raise ValueError(f"loss kind: {kind!r} is not one of {list(LOSS_KINDS)}")


def multitask_loss(
    pred: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    weights: dict[str, float] | None = None,
    kind: str = "smooth_l1",
    eps: float = 1e-8,
    fps: FrameRates | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of per-task losses over the tasks in `pred`.

    Returns (total, {task: loss}). Missing weights default to 1.0 (the reference's equal
    weights); a weight or label for a task the model did not predict is an error. fps:
    frame rate per clip (or one for all), needed by the hybrid losses (BVP only).
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind: {kind!r} is not one of {list(LOSS_KINDS)}")
    if kind in HYBRID_LOSSES and set(pred) != {"bvp"}:
        raise ValueError(f"loss kind {kind!r}: a pulse (BVP) loss; predicted tasks {sorted(pred)} must be ['bvp']")
    if not pred:
        raise ValueError("multitask_loss: no predictions")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(pred))
    if unknown:
        raise ValueError(f"loss weights: task {unknown[0]!r} is not predicted; predicted tasks: {sorted(pred)}")
    per_task: dict[str, torch.Tensor] = {}
    total = None
    for task, prediction in pred.items():
        if task not in labels:
            raise ValueError(f"labels: missing {task!r}; the loss needs a label for every predicted task {sorted(pred)}")
        loss = task_loss(prediction, labels[task], kind, eps, fps)
        per_task[task] = loss
        weighted = weights.get(task, 1.0) * loss
        total = weighted if total is None else total + weighted
    return total, per_task


# ---- RhythmFormer's hybrid loss (docs/rhythmformer.md, "Loss") ---------------------------

#: weights of the negative Pearson, frequency cross-entropy and HR-distribution KL terms
HYBRID_WEIGHTS = {"time": 0.2, "ce": 1.0, "hr": 1.0}
#: heart rates (bpm) of the cross-entropy's classes: 45, 46, ..., 149
HYBRID_BPM = tuple(range(45, 150))
#: the canonical HR estimator's band (Hz, band-pass and exclusive Welch band) and detrend lambda
HYBRID_BAND = (0.75, 2.5)
TOOLBOX_BAND = (0.6, 3.3)
DETREND_LAMBDA = 100.0
#: std (in bins) of the HR-distribution Gaussians, and the floor of their values
HR_SIGMA = 3.0
HR_FLOOR = 1e-15


def frame_rates(fps: FrameRates, batch: int) -> np.ndarray:
    """Per-sample frame rates (B,) float64 from one rate or one per sample, checked."""
    if isinstance(fps, torch.Tensor):
        fps = fps.detach().cpu().numpy()
    rates = np.asarray(fps, dtype=np.float64).reshape(-1)
    if rates.size == 1:
        rates = np.full(batch, rates[0])
    if rates.shape != (batch,):
        raise ValueError(f"fps: expected one frame rate or {batch} (one per clip), got {rates.size}")
    if not (np.isfinite(rates).all() and (rates > 0).all()):
        raise ValueError(f"fps: frame rates must be finite and > 0, got {rates.tolist()}")
    return rates


def welch_band_psd(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """The canonical HR estimator's spectrum of one signal: detrend (lambda 100), order-1
    Butterworth 0.75-2.5 Hz (filtfilt), Welch (nfft int(1e5 / fs), nperseg min(N-1, 256),
    Hann, half overlap, constant detrend), bins strictly inside 0.75-2.5 Hz."""
    x = detrend_smoothness_priors(np.asarray(x, dtype=np.float64), DETREND_LAMBDA)
    x = bandpass(x, fs, *HYBRID_BAND, order=1)
    freqs, power = scipy.signal.welch(x, fs, nfft=int(1e5 / fs), nperseg=min(len(x) - 1, 256))
    band = (freqs > HYBRID_BAND[0]) & (freqs < HYBRID_BAND[1])
    return freqs[band], power[band]


def welch_hr(x: np.ndarray, fs: float) -> float:
    """Heart rate (bpm) at the peak of `welch_band_psd` (the canonical loss's HR)."""
    freqs, power = welch_band_psd(x, fs)
    return float(freqs[np.argmax(power)] * 60.0)


def periodogram_hr(x: np.ndarray, fs: float) -> float:
    """The rPPG-Toolbox port's HR (bpm): detrend (lambda 100), order-1 Butterworth
    0.6-3.3 Hz, periodogram with nfft the next power of two, peak within 0.6-3.3 Hz."""
    x = detrend_smoothness_priors(np.asarray(x, dtype=np.float64), DETREND_LAMBDA)
    x = bandpass(x, fs, *TOOLBOX_BAND, order=1)
    freqs, power = periodogram(x, fs, next_pow2(len(x)))
    return float(spectral_peak_rate(freqs, power, *TOOLBOX_BAND))


def hr_class_power(z: torch.Tensor, fps: np.ndarray) -> torch.Tensor:
    """Hann-windowed DFT power (B, 105) of each row at 45, 46, ..., 149 bpm (fractional bins)."""
    n = z.shape[-1]
    steps = torch.arange(n, dtype=z.dtype, device=z.device)
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * steps / (n - 1))
    hz = torch.tensor(HYBRID_BPM, dtype=z.dtype, device=z.device) / 60.0
    seconds = steps[None, :] / torch.as_tensor(fps, dtype=z.dtype, device=z.device)[:, None]
    phase = 2 * math.pi * hz[None, :, None] * seconds[:, None, :]  # (B, 105, N)
    windowed = (z * window)[:, None, :]
    return (windowed * torch.sin(phase)).sum(-1) ** 2 + (windowed * torch.cos(phase)).sum(-1) ** 2


def _pearson_term(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - r per row from the sums formula; 0 where r is undefined (the reference's NaN -> 0)."""
    n = z.shape[-1]
    sx, sy = z.sum(-1), y.sum(-1)
    sxy, sxx, syy = (z * y).sum(-1), (z * z).sum(-1), (y * y).sum(-1)
    denominator = (n * sxx - sx**2) * (n * syy - sy**2)
    defined = denominator > 0
    r = (n * sxy - sx * sy) / torch.sqrt(torch.where(defined, denominator, torch.ones_like(denominator)))
    return torch.where(defined, 1 - r, torch.zeros_like(r))


def _gaussian(mean: float, length: int) -> np.ndarray:
    """exp(-(i - mean)^2 / (2 sigma^2)) / (sigma sqrt(2 pi)) over bins 0..length-1, floored."""
    i = np.arange(length, dtype=np.float64)
    g = np.exp(-((i - mean) ** 2) / (2 * HR_SIGMA**2)) / (HR_SIGMA * math.sqrt(2 * math.pi))
    return np.maximum(g, HR_FLOOR)


def _welch_peak_kl(z: np.ndarray, y: np.ndarray, fs: float) -> float:
    """The canonical HR-distribution term: KL between Gaussians at the label's and the
    prediction's Welch-peak bins (detached values: it has no gradient)."""
    _, power_p = welch_band_psd(z, fs)
    _, power_y = welch_band_psd(y, fs)
    g_p = _gaussian(float(np.argmax(power_p)), len(power_p))
    g_y = _gaussian(float(np.argmax(power_y)), len(power_y))
    return float(np.sum(g_y * (np.log(g_y) - np.log(g_p))))


def _spectrum_kl(share: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The corrected HR-distribution term: KL(g || share) per row, g a Gaussian (sigma 3
    classes, normalised) at each target class, share the predicted power share (B, 105)."""
    classes = torch.arange(share.shape[-1], dtype=share.dtype, device=share.device)
    g = torch.exp(-((classes[None, :] - target[:, None].to(share.dtype)) ** 2) / (2 * HR_SIGMA**2))
    g = g / g.sum(-1, keepdim=True)
    # xlogy: classes where g underflows to 0 (float32, far from the target) contribute 0
    return (torch.xlogy(g, g) - torch.xlogy(g, share.clamp_min(HR_FLOOR))).sum(-1)


def hybrid_terms(
    pred: torch.Tensor, target: torch.Tensor, fps: FrameRates, form: HybridForm = "canonical", eps: float = 1e-8
) -> dict[str, torch.Tensor]:
    """The hybrid loss's unweighted terms per sample: {"time", "ce", "hr"}, each (B,).

    pred: raw model output (B, T), z-scored per row here (unbiased std, floored at eps);
    target: the label (B, T) (its scale does not matter); fps: frame rate(s).
    form: `canonical` (the authors' code: CE target from the label's Welch HR, HR term from
    Welch-peak Gaussians, no gradient), `corrected` (HR term = differentiable KL of the
    predicted power share from a Gaussian at the CE target), `toolbox` (rPPG-Toolbox's
    port: CE target from the periodogram HR, HR term 0; raises where the port crashes).
    """
    _check_pair(pred, target, "hybrid loss")
    if form not in ("canonical", "corrected", "toolbox"):
        raise ValueError(f"hybrid loss form: {form!r} is not one of ['canonical', 'corrected', 'toolbox']")
    rates = frame_rates(fps, pred.shape[0])
    y = target.to(dtype=pred.dtype, device=pred.device)
    z = zscore(pred, eps)
    power = hr_class_power(z, rates)
    share = power / power.sum(-1, keepdim=True)
    labels_np = y.detach().cpu().double().numpy()
    estimate = periodogram_hr if form == "toolbox" else welch_hr
    classes = []
    for b, (row, fs) in enumerate(zip(labels_np, rates)):
        hr = estimate(row, fs)
        j = math.trunc(hr - HYBRID_BPM[0])
        if not 0 <= j < len(HYBRID_BPM):
            raise ValueError(
                f"hybrid loss ({form}): sample {b}: label heart rate {hr:.1f} bpm is outside "
                f"[{HYBRID_BPM[0]}, {HYBRID_BPM[-1] + 1}) bpm, no cross-entropy class (the port crashes here)"
            )
        classes.append(j)
    target_class = torch.tensor(classes, device=pred.device)
    ce = F.cross_entropy(share, target_class, reduction="none")
    if form == "canonical":
        z_np = z.detach().cpu().double().numpy()
        hr_term = torch.tensor(
            [_welch_peak_kl(zr, yr, fs) for zr, yr, fs in zip(z_np, labels_np, rates)], dtype=pred.dtype, device=pred.device
        )
    elif form == "corrected":
        hr_term = _spectrum_kl(share, target_class)
    else:
        hr_term = torch.zeros_like(ce)
    return {"time": _pearson_term(z, y), "ce": ce, "hr": hr_term}


def rhythmformer_hybrid_loss(
    pred: torch.Tensor, target: torch.Tensor, fps: FrameRates, form: HybridForm = "canonical", eps: float = 1e-8
) -> torch.Tensor:
    """Mean over the batch of 0.2 x (1 - Pearson) + frequency CE + HR-distribution KL."""
    terms = hybrid_terms(pred, target, fps, form, eps)
    return sum(HYBRID_WEIGHTS[name] * value for name, value in terms.items()).mean()
