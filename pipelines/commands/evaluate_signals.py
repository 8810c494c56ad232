"""`mmrphys evaluate-signals`: HR/RR metrics of predicted waveforms against label waveforms
read from files (NumPy, CSV or Parquet), printed as a table, optionally with a report."""

from __future__ import annotations

import argparse
import json
import sys

from mmrphys.metrics import evaluate_recordings
from mmrphys.profiles import PROFILES, TASKS
from mmrphys.report import write_report
from pipelines.data.signal_files import SignalFileError, check_not_self_scored, read_signals, sampling_rates


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--predictions", required=True,
                        help="predicted waveforms (.npz, .npy, .csv, .parquet, or batch prediction's waveforms/ folder)")
    parser.add_argument("--labels",
                        help="label waveforms, same layout and recording ids (default: the label_<task> columns "
                             "of the predictions file, as batch prediction writes them)")
    parser.add_argument("--fs", type=float,
                        help="sampling rate in Hz; required unless a file has an fps column (or key), "
                             "and overrides the files' fps when given")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, help="tasks to score (default: those in both files)")
    parser.add_argument("--profile", default="default", choices=list(PROFILES), help="evaluation profile")
    parser.add_argument("--method", default="fft", choices=["fft", "peak"], help="rate estimator")
    parser.add_argument("--window-seconds", type=float, help="fixed evaluation windows (default: whole recordings)")
    parser.add_argument("--label-diff", action="store_true", help="signals are first differences (DiffNormalized)")
    parser.add_argument("--out", help="write the report (plots, JSON, CSV) into this folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")


def format_table(evaluation) -> str:
    """The summary as an aligned text table, one row per task."""
    columns = ("n", "MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC")
    names = {"bvp": "HR (beats/min)", "rsp": "RR (breaths/min)"}
    lines = [f"{'':18}" + "".join(f"{c:>16}" for c in columns)]
    for task, summary in evaluation.summary.items():
        cells = []
        for c in columns:
            value, se = summary.get(c), summary.get(f"{c}_SE")
            if value is None:
                cells.append(f"{'-':>16}")
            elif c == "n":
                cells.append(f"{value:>16d}")
            else:
                cells.append(f"{value:>9.3f} ±{se:<5.2f}" if se is not None else f"{value:>16.3f}")
        lines.append(f"{names[task]:18}" + "".join(cells))
    windows = "whole recordings" if evaluation.window_seconds is None else f"{evaluation.window_seconds:g}-s windows"
    lines.append(f"profile {evaluation.profile}, method {evaluation.method}, {windows}; ± is the profile's standard error")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Read both files, evaluate, print the table; 2 on bad input."""
    try:
        requested = tuple(args.tasks) if args.tasks else None
        predictions = read_signals(args.predictions, requested, role="predictions")
        labels = read_signals(args.labels or args.predictions, requested, role="labels")
        tasks = tuple(t for t in labels.signals if t in predictions.signals)
        if not tasks:
            raise SignalFileError(f"{args.predictions} and {args.labels} share no task ({list(TASKS)})")
        check_not_self_scored(predictions, labels, tasks)
        fs = sampling_rates(args.fs, predictions, labels)
        evaluation = evaluate_recordings(
            predictions.signals,
            labels.signals,
            fs,
            tasks=tasks,
            window_seconds=args.window_seconds,
            profile=args.profile,
            method=args.method,
            label_diff=args.label_diff,
        )
    except ValueError as err:  # SignalFileError, SignalError and bad combinations are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(evaluation.to_dict()["summary"], indent=2) if args.json else format_table(evaluation))
    if evaluation.skipped:
        print(f"{len(evaluation.skipped)} window(s) skipped, e.g. {evaluation.skipped[0]}", file=sys.stderr)
    if args.out:
        waveforms = {
            t: {rec: (predictions.signals[t][rec], labels.signals[t][rec]) for rec in labels.signals[t]} for t in tasks
        }
        files = write_report(evaluation, args.out, waveforms=waveforms, fs=fs)
        print(f"report written to {args.out}: {', '.join(sorted(p.name for p in files.values()))}")
    return 0
