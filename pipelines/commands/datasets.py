"""`mmrphys datasets`: list the recordings a dataset reader finds under a folder, and with
`--check` validate their labels and frame counts before a long ingest.

The check loads every recording's labels (which reads the label file, counts the frames
and compares RGB with thermal) but decodes no video, so it takes seconds, not the hours
of an ingest. Problems are printed with the file they concern; the exit status is 1 when
any recording fails.
"""

from __future__ import annotations

import argparse

from mmrphys.data.datasets import READERS, read_dataset
from mmrphys.data.recording import DatasetError, Recording


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--dataset", required=True, choices=sorted(READERS), help="dataset layout to read")
    parser.add_argument("--root", required=True, help="the dataset's folder")
    parser.add_argument(
        "--check", action="store_true",
        help="load every recording's labels to find missing, short or NaN labels and frame-count mismatches",
    )


def describe(recording: Recording, check: bool) -> tuple[str, str | None]:
    """One line about `recording`, and the problem found when `check` loads its labels."""
    modalities = "RGB+thermal" if recording.load_thermal is not None else "RGB"
    line = f"{recording.recording_id:<32} {recording.fps:6.2f} fps  {modalities:<11}"
    if not check:
        return f"{line}  {recording.source}", None
    try:
        labels = recording.load_labels()
    except DatasetError as err:
        return f"{line}  FAILED", str(err)
    frames = len(next(iter(labels.values())))
    return f"{line}  {frames:6d} frames  labels: {', '.join(sorted(labels))}", None


def run(args: argparse.Namespace) -> int:
    """List (and check) the recordings; 1 if the dataset or any recording is bad."""
    recordings = list(read_dataset(args.dataset, args.root))
    problems = []
    for recording in recordings:
        line, problem = describe(recording, args.check)
        print(line)
        if problem:
            problems.append(problem)
    subjects = len({r.subject for r in recordings})
    print(f"{len(recordings)} recordings of {subjects} subjects in {args.root}", end="")
    if args.check:
        print(f"; {len(recordings) - len(problems)} passed the check, {len(problems)} failed")
        for problem in problems:
            print(f"  {problem}")
    else:
        print()
    return 1 if problems else 0
