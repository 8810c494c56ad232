"""The console line of each epoch, printed by the driver as rank 0 records the epoch.

Rank 0 appends every epoch's metrics to the run's `history.jsonl` (pipelines.train.worker);
the driver follows that file while `fit()` runs and prints one line per new record. The
line is printed here, not by the worker, so it appears exactly once whether or not
Ray forwards the workers' output (`--verbose`), and a resumed run says where it resumed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

#: metrics shown on an epoch's line, in order, when the run reports them
SHOWN = ("train_loss", "val_loss", "val_hr_mae", "val_rr_mae", "val_rate_mae")


def epoch_line(metrics: dict[str, Any], epochs: int) -> str:
    """`[mmrphys] epoch 3/10 train_loss=... (12s)` for one history record."""
    parts = [f"{k}={metrics[k]:.3f}" for k in SHOWN if k in metrics]
    return f"[mmrphys] epoch {metrics['epoch'] + 1}/{epochs} " + " ".join(parts) + f" ({metrics['epoch_seconds']:.0f}s)"


class EpochPrinter:
    """Prints the epochs appended to `history` after it was opened; use as a context manager
    around `fit()`. Lines already in the file (an earlier attempt of a resumed run) are not
    printed again."""

    def __init__(self, history: Path, epochs: int, poll_seconds: float = 0.5):
        self.history, self.epochs, self.poll_seconds = Path(history), epochs, poll_seconds
        self._offset = self.history.stat().st_size if self.history.is_file() else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="mmrphys-epochs", daemon=True)
        self._resumed_said = False

    def __enter__(self) -> EpochPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._print_new()  # the last epoch may land between the final poll and the stop

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._print_new()

    def _print_new(self) -> None:
        if not self.history.is_file():
            return
        with self.history.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._offset += len(complete)
        for raw in complete.splitlines():
            if not raw.strip():
                continue
            metrics = json.loads(raw)
            if not self._resumed_said and metrics.get("started_at_epoch"):
                start = int(metrics["started_at_epoch"])
                print(f"[mmrphys] resumed at epoch {start + 1} from the checkpoint of epoch {start}", flush=True)
            self._resumed_said = True
            print(epoch_line(metrics, self.epochs), flush=True)
