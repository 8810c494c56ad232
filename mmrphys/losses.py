"""Training losses: the reference's multitask Smooth L1 on per-chunk z-scored signals, and
negative Pearson in two forms.

The reference sums Smooth L1 (beta 1, mean) of z(prediction) against z(label) over the
BVP and RSP tasks with equal weights; z standardises each sample along time with the
unbiased std floored at 1e-8 (1e-3 in its fp16 recipe).

`neg_pearson` is 1 - Pearson r of each sample over time, averaged over the batch.
`neg_pearson_across_batch` is the FactorizePhys / rPPG-Toolbox loss as their trainer
computes it (docs/factorizephys.md, "Loss"): after one z-score of the whole batch, the
correlation is taken across the batch at every time step, then averaged over time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_KINDS = ("smooth_l1", "neg_pearson", "neg_pearson_across_batch")
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


def task_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "smooth_l1", eps: float = 1e-8) -> torch.Tensor:
    """One task's loss between a (B, T) prediction and its label."""
    _check_pair(pred, target, kind)
    target = target.to(dtype=pred.dtype, device=pred.device)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(zscore(pred, eps), zscore(target, eps), beta=1.0)
    if kind == "neg_pearson":
        return neg_pearson(pred, target, eps)
    if kind == "neg_pearson_across_batch":
        return neg_pearson_across_batch(pred, target, eps)
    raise ValueError(f"loss kind: {kind!r} is not one of {list(LOSS_KINDS)}")


def multitask_loss(
    pred: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    weights: dict[str, float] | None = None,
    kind: str = "smooth_l1",
    eps: float = 1e-8,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of per-task losses over the tasks in `pred`.

    Returns (total, {task: loss}). Missing weights default to 1.0 (the reference's equal
    weights); a weight or label for a task the model did not predict is an error.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind: {kind!r} is not one of {list(LOSS_KINDS)}")
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
        loss = task_loss(prediction, labels[task], kind, eps)
        per_task[task] = loss
        weighted = weights.get(task, 1.0) * loss
        total = weighted if total is None else total + weighted
    return total, per_task
