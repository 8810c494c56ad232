"""Whole-recording evaluation: reassemble chunked predictions, cut recordings into
evaluation windows, score every window and summarise per task.

`evaluate_recordings` is what training validation and the evaluation pipelines call; it
stacks windows of equal length and sampling rate so each group is scored in one
vectorised `window_rates` call.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mmrphys import signals
from mmrphys.metrics.summary import Summary, bland_altman, empty_summary, summarize
from mmrphys.metrics.window import (
    check_fs,
    check_signal,
    is_constant,
    min_window_samples,
    window_rates,
)
from mmrphys.profiles import Profile, get_profile

# the columns of `Evaluation.per_recording` rows, in table order
ROW_COLUMNS = (
    "recording_id", "task", "window", "start_s", "seconds",
    "rate_pred", "rate_label", "abs_error", "snr", "macc", "flags",
)


def assemble_recordings(
    recording_ids: Sequence[str],
    chunk_indices: Sequence[int],
    values: Sequence[np.ndarray] | np.ndarray,
    *,
    zscore_chunks: bool = False,
    on_gap: Literal["error", "concatenate"] = "error",
) -> dict[str, np.ndarray]:
    """Concatenate chunks into one signal per recording, in chunk-index order.

    `values[i]` is chunk `chunk_indices[i]` of recording `recording_ids[i]`, shape (T,)
    or (T, 1). `zscore_chunks` standardises each chunk first (n - 1 std, only when it
    is above 0.001), as the MMRPhys reference's test loop does. A recording whose chunk
    indices skip a number raises unless `on_gap="concatenate"` (the references join
    across gaps without a check). Duplicate chunks always raise.
    """
    if not (len(recording_ids) == len(chunk_indices) == len(values)):
        raise ValueError(
            f"{len(recording_ids)} recording ids, {len(chunk_indices)} chunk indices and "
            f"{len(values)} chunks: the three must have the same length"
        )
    chunks: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for rec, index, chunk in zip(recording_ids, chunk_indices, values):
        rec, index = str(rec), int(index)
        if index in chunks[rec]:
            raise ValueError(f"recording {rec!r}: chunk {index} appears twice")
        arr = np.asarray(chunk, dtype=np.float64)
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
        if arr.ndim != 1:
            raise ValueError(f"recording {rec!r} chunk {index}: expected shape (T,) or (T, 1), got {arr.shape}")
        if zscore_chunks and arr.size > 1:
            std = arr.std(ddof=1)
            if std > 0.001:
                arr = (arr - arr.mean()) / std
        chunks[rec][index] = arr
    out: dict[str, np.ndarray] = {}
    for rec, by_index in chunks.items():
        order = sorted(by_index)
        missing = sorted(set(range(order[0], order[-1] + 1)) - set(order))
        if missing and on_gap == "error":
            raise ValueError(
                f"recording {rec!r}: chunks {missing[:10]} are missing between {order[0]} and "
                f"{order[-1]}; joining across the gap would corrupt its spectrum "
                f"(pass on_gap='concatenate' to join anyway)"
            )
        out[rec] = np.concatenate([by_index[i] for i in order])
    return out


def window_bounds(n: int, size: int | None) -> list[tuple[int, int]]:
    """The references' windows: [0, n) when `size` is None, else [0, s), [s, 2s), ... with a short tail."""
    if size is None or size >= n:
        return [(0, n)]
    return [(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass
class Evaluation:
    """Result of `evaluate_recordings`.

    `summary[task]` is the `summarize` dict plus Bland-Altman keys (BA_bias, BA_sd,
    BA_loa_lower, BA_loa_upper); `per_recording` has one row per evaluated window
    (recording_id, task, window, start_s, seconds, rate_pred, rate_label, abs_error, snr,
    macc, flags); `skipped` lists windows left out and why.
    """

    summary: dict[str, Summary]
    per_recording: list[dict]
    profile: str
    method: str
    window_seconds: float | None
    label_diff: bool = False
    skipped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready view (NaN becomes None)."""

        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, (np.floating, np.integer)):
                return clean(value.item())
            return value

        return {
            "profile": self.profile,
            "method": self.method,
            "window_seconds": self.window_seconds,
            "label_diff": self.label_diff,
            "summary": {t: {k: clean(v) for k, v in s.items()} for t, s in self.summary.items()},
            "per_recording": [{k: clean(v) for k, v in row.items()} for row in self.per_recording],
            "skipped": self.skipped,
        }


def _fs_of(fs: float | Mapping[str, float], rec: str) -> float:
    if isinstance(fs, Mapping):
        if rec not in fs:
            raise ValueError(f"recording {rec!r}: no sampling rate in fs")
        return fs[rec]
    return fs


def _task_windows(
    task: str,
    predictions: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    fs: float | Mapping[str, float],
    window_seconds: float | None,
    prof: Profile,
    bandpass: bool,
    skipped: list[dict],
) -> list[tuple[str, int, int, int, float, np.ndarray, np.ndarray]]:
    """Check one task's recordings and cut them into (rec, window, start, stop, fs, pred, label)."""
    missing = [rec for rec in labels if rec not in predictions]
    extra = [rec for rec in predictions if rec not in labels]
    if missing or extra:
        raise ValueError(
            f"{task}: recordings without prediction {missing[:5]}, without label {extra[:5]}"
        )
    rules = prof.task(task)
    windows = []
    for rec, label in labels.items():
        rec_fs = check_fs(_fs_of(fs, rec), rules, f"{task} recording {rec!r}")
        pred = check_signal(predictions[rec], f"{task} prediction of recording {rec!r}")
        label = check_signal(label, f"{task} label of recording {rec!r}")
        if label.ndim == 1 and is_constant(label):
            raise signals.SignalError(f"{task} label of recording {rec!r} is constant: it holds no signal to compare with")
        if pred.ndim != 1 or pred.shape != label.shape:
            raise signals.SignalError(
                f"{task} recording {rec!r}: prediction shape {pred.shape} and label shape "
                f"{label.shape} must be equal and 1-D"
            )
        size = None if window_seconds is None else int(round(window_seconds * rec_fs))
        need = min_window_samples(prof, task, rec_fs, bandpass)
        for w, (start, stop) in enumerate(window_bounds(pred.size, size)):
            length = stop - start
            reason = None
            if prof.skip_below_samples is not None and length < prof.skip_below_samples:
                reason = f"{length} samples, below the reference guard of {prof.skip_below_samples}"
            elif size is not None and prof.min_tail_fraction is not None and w > 0 and length < prof.min_tail_fraction * size:
                reason = f"trailing window of {length} samples is under {prof.min_tail_fraction:.0%} of the window"
            elif prof.skip_below_samples is None and length < need:
                reason = (
                    f"{length} samples ({length / rec_fs:.1f} s), fewer than the {need} "
                    f"({need / rec_fs:.1f} s) {task} windows need under this profile"
                )
            if reason is not None:
                skipped.append({"recording_id": rec, "task": task, "window": w, "samples": length, "reason": reason})
                continue
            if length < need:
                raise signals.WindowTooShortError(
                    f"{task} recording {rec!r} window {w}: {length} samples, fewer than the {need} "
                    f"profile {prof.name!r} needs (the reference code fails here too; the default "
                    f"profile skips such windows)"
                )
            if rules.whole_recording_each_window:
                windows.append((rec, w, start, stop, rec_fs, pred, label))
            else:
                windows.append((rec, w, start, stop, rec_fs, pred[start:stop], label[start:stop]))
    return windows


def evaluate_recordings(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    labels: Mapping[str, Mapping[str, np.ndarray]],
    fs: float | Mapping[str, float],
    tasks: Sequence[str] = ("bvp", "rsp"),
    window_seconds: float | None = None,
    profile: str | Profile = "default",
    method: Literal["fft", "peak"] = "fft",
    *,
    label_diff: bool = False,
    bandpass: bool = True,
) -> Evaluation:
    """Score whole recordings: `predictions[task][recording_id]` against `labels[task][recording_id]`.

    `fs` is one sampling rate or one per recording id. `window_seconds=None` scores each
    recording as one window; otherwise non-overlapping windows of that length from the
    start, the last one shorter. Windows of equal length and rate are scored together.
    A task whose windows are all skipped as too short gets n = 0 and NaN metrics; the
    reasons are in `Evaluation.skipped`.
    """
    prof = get_profile(profile)
    if window_seconds is not None and not (isinstance(window_seconds, (int, float)) and window_seconds > 0):
        raise ValueError(f"window_seconds must be a positive number of seconds or None, got {window_seconds!r}")
    summary: dict[str, Summary] = {}
    rows: list[dict] = []
    skipped: list[dict] = []
    for task in tasks:
        prof.task(task)
        if task not in predictions or task not in labels:
            raise ValueError(
                f"task {task!r} missing from {'predictions' if task not in predictions else 'labels'} "
                f"(have predictions {sorted(predictions)}, labels {sorted(labels)})"
            )
        windows = _task_windows(task, predictions[task], labels[task], fs, window_seconds, prof, bandpass, skipped)
        if not windows:
            # recordings too short for the profile: NaN metrics, reasons in `skipped`
            summary[task] = empty_summary(prof, task)
            summary[task].update(bland_altman([], [], prof))
            continue
        groups: dict[tuple[float, int], list[int]] = defaultdict(list)
        for i, (_, _, _, _, rec_fs, pred, _) in enumerate(windows):
            groups[(rec_fs, pred.size)].append(i)
        task_rows: list[dict | None] = [None] * len(windows)
        for (rec_fs, length), members in groups.items():
            try:
                result = window_rates(
                    np.stack([windows[i][5] for i in members]),
                    np.stack([windows[i][6] for i in members]),
                    rec_fs,
                    task=task,
                    method=method,
                    profile=prof,
                    label_diff=label_diff,
                    bandpass=bandpass,
                )
            except signals.SignalError as err:
                where = sorted({f"{windows[i][0]}#{windows[i][1]}" for i in members})
                raise type(err)(f"{task} windows of {length} samples at {rec_fs} Hz ({', '.join(where[:5])}): {err}") from err
            for j, i in enumerate(members):
                rec, w, start, stop, _, _, _ = windows[i]
                task_rows[i] = {
                    "recording_id": rec,
                    "task": task,
                    "window": w,
                    "start_s": start / rec_fs,
                    "seconds": (stop - start) / rec_fs,
                    "rate_pred": float(result.rate_pred[j]),
                    "rate_label": float(result.rate_label[j]),
                    "abs_error": float(abs(result.rate_pred[j] - result.rate_label[j])),
                    "snr": float(result.snr[j]),
                    "macc": None if result.macc is None else float(result.macc[j]),
                    "flags": ";".join(result.flags[j]),
                }
        rows.extend(task_rows)
        task_summary = summarize(
            [r["rate_pred"] for r in task_rows],
            [r["rate_label"] for r in task_rows],
            snr=[r["snr"] for r in task_rows],
            macc=None if task_rows[0]["macc"] is None else [r["macc"] for r in task_rows],
            profile=prof,
            task=task,
        )
        task_summary.update(bland_altman([r["rate_pred"] for r in task_rows], [r["rate_label"] for r in task_rows], prof))
        summary[task] = task_summary
    return Evaluation(
        summary=summary,
        per_recording=rows,
        profile=prof.name,
        method=method,
        window_seconds=window_seconds,
        label_diff=label_diff,
        skipped=skipped,
    )
