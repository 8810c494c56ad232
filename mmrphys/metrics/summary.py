"""Dataset-level statistics over window rates: MAE, RMSE, MAPE, Pearson, SNR, MACC with the
"standard errors" each profile prints, and Bland-Altman agreement.

All windows are pooled with equal weight, as in the references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mmrphys.profiles import Profile, get_profile

# the normal quantile of 95% limits of agreement
LOA_Z = 1.96
# summary keys after n and n_invalid, in print order
METRICS = tuple(f"{m}{se}" for m in ("MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC") for se in ("", "_SE"))


class Summary(dict):
    """`summarize`'s result: metric name -> number (None where the profile defines none).

    A plain dict (ready for `mlflow.log_metrics` after dropping None) that also records
    the `profile` and `task` it was computed under.
    """

    def __init__(self, values: dict, profile: str, task: str):
        super().__init__(values)
        self.profile = profile
        self.task = task


def _array(values: Sequence[float] | np.ndarray | None, name: str, n: int) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values but there are {n} rates")
    return arr


def _mean_and_se(values: np.ndarray, ddof: int, drop_nan: bool) -> tuple[float, float]:
    if drop_nan:
        values = values[np.isfinite(values)]
    n = values.size
    if n == 0 or n <= ddof:
        return (float(np.mean(values)) if n else math.nan), math.nan
    return float(np.mean(values)), float(np.std(values, ddof=ddof) / math.sqrt(n))


def _rmse_se(squared: np.ndarray, rmse: float, formula: str, ddof: int) -> float:
    n = squared.size
    if formula == "toolbox":
        return float(np.sqrt(np.std(squared) / np.sqrt(n)))
    if formula == "mmrphys":
        return float(np.sqrt(np.std(squared)) / np.sqrt(n))
    if formula == "bigsmall":
        return float(np.std(squared) / np.sqrt(n))
    # delta method: se(sqrt(m)) = se(m) / (2 sqrt(m))
    if n <= ddof:
        return math.nan
    spread = float(np.std(squared, ddof=ddof))
    return 0.0 if spread == 0 else spread / (2.0 * rmse * math.sqrt(n))


def empty_summary(
    profile: str | Profile, task: str, n_invalid: int = 0, has_snr: bool = True, has_macc: bool = True
) -> Summary:
    """The summary of no usable window: n = 0 and every metric NaN (None where not defined)."""
    prof = get_profile(profile)
    values: dict = {"n": 0, "n_invalid": n_invalid, **{k: math.nan for k in METRICS}}
    for name, present in (("SNR", has_snr), ("MACC", has_macc and prof.task(task).macc is not None)):
        if not present:
            values[name] = values[f"{name}_SE"] = None
    return Summary(values, profile=prof.name, task=task)


def summarize(
    rate_pred: Sequence[float] | np.ndarray,
    rate_label: Sequence[float] | np.ndarray,
    snr: Sequence[float] | np.ndarray | None = None,
    macc: Sequence[float] | np.ndarray | None = None,
    profile: str | Profile = "default",
    task: str = "bvp",
) -> Summary:
    """Pool window rates into MAE, RMSE, MAPE, Pearson, SNR and MACC, each with its SE.

    Keys: n, n_invalid, MAE, MAE_SE, RMSE, RMSE_SE, MAPE, MAPE_SE, Pearson, Pearson_SE,
    SNR, SNR_SE, MACC, MACC_SE. SNR/MACC are None when not given, and MACC also where the
    profile defines none for the task. Reference profiles propagate NaN rates into every
    mean as the references do; the default profile leaves such windows out and counts
    them in `n_invalid` (all metrics NaN when no window is left, as for a model that
    predicts a constant).
    """
    prof = get_profile(profile)
    rules = prof.task(task)
    pred = np.asarray(rate_pred, dtype=np.float64).reshape(-1)
    label = np.asarray(rate_label, dtype=np.float64).reshape(-1)
    if pred.shape != label.shape:
        raise ValueError(f"{pred.size} predicted rates but {label.size} label rates")
    snr_arr = _array(snr, "snr", pred.size)
    macc_arr = None if rules.macc is None else _array(macc, "macc", pred.size)
    n_invalid = 0
    if prof.drop_invalid_windows:
        keep = np.isfinite(pred) & np.isfinite(label)
        n_invalid = int((~keep).sum())
        pred, label = pred[keep], label[keep]
        snr_arr = None if snr_arr is None else snr_arr[keep]
        macc_arr = None if macc_arr is None else macc_arr[keep]
    n = pred.size
    if n == 0 and n_invalid == 0:
        raise ValueError("no rates to summarize")
    if n == 0:
        # e.g. a collapsed model predicting a constant: report it, do not stop training
        return empty_summary(prof, task, n_invalid, has_snr=snr_arr is not None, has_macc=macc_arr is not None)
    ddof, drop = prof.se_ddof, prof.drop_invalid_windows

    with np.errstate(divide="ignore", invalid="ignore"):
        error = pred - label
        mae, mae_se = _mean_and_se(np.abs(error), ddof, False)
        squared = error**2
        rmse = float(np.sqrt(np.mean(squared)))
        mape, mape_se = _mean_and_se(np.abs(error / label) * 100.0, ddof, False)
        if n >= 2 and np.std(pred) > 0 and np.std(label) > 0:
            r = float(np.corrcoef(pred, label)[0, 1])
        else:
            r = math.nan
        r_se = float(np.sqrt((1 - r**2) / (n - 2))) if n > 2 else math.nan
        values = {
            "n": n,
            "n_invalid": n_invalid,
            "MAE": mae,
            "MAE_SE": mae_se,
            "RMSE": rmse,
            "RMSE_SE": _rmse_se(squared, rmse, rules.rmse_se, ddof),
            "MAPE": mape,
            "MAPE_SE": mape_se,
            "Pearson": r,
            "Pearson_SE": r_se,
            "SNR": None,
            "SNR_SE": None,
            "MACC": None,
            "MACC_SE": None,
        }
        if snr_arr is not None:
            values["SNR"], values["SNR_SE"] = _mean_and_se(snr_arr, ddof, drop)
        if macc_arr is not None:
            values["MACC"], values["MACC_SE"] = _mean_and_se(macc_arr, ddof, drop)
    return Summary(values, profile=prof.name, task=task)


def bland_altman(
    rate_pred: Sequence[float] | np.ndarray,
    rate_label: Sequence[float] | np.ndarray,
    profile: str | Profile = "default",
) -> dict[str, float]:
    """Bland-Altman bias and 95% limits of agreement of predicted vs label rates.

    Reference profiles: differences are label - prediction and the limits are
    bias +- 1.96 sqrt(2) SD (the references' `averaged=True`). Default: prediction -
    label, bias +- 1.96 SD. SD uses the n - 1 denominator in both.
    """
    prof = get_profile(profile)
    pred = np.asarray(rate_pred, dtype=np.float64).reshape(-1)
    label = np.asarray(rate_label, dtype=np.float64).reshape(-1)
    if prof.drop_invalid_windows:
        keep = np.isfinite(pred) & np.isfinite(label)
        pred, label = pred[keep], label[keep]
    diff = pred - label if prof.bland_altman_sign == "pred_minus_label" else label - pred
    with np.errstate(divide="ignore", invalid="ignore"):
        bias = float(np.mean(diff)) if diff.size else math.nan
        sd = float(np.std(diff, ddof=1)) if diff.size > 1 else math.nan
    half = LOA_Z * prof.bland_altman_loa_scale * sd
    return {"BA_bias": bias, "BA_sd": sd, "BA_loa_lower": bias - half, "BA_loa_upper": bias + half}

