"""Finding and killing real processes from outside, for the fault drills: the drill
never asks the code under test to fail, it kills the process with SIGKILL."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path


def processes_named(fragment: str) -> list[int]:
    """PIDs whose command line (Ray sets it to `ray::<actor class>...`) holds `fragment`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def kill_when(ready: Callable[[], bool], fragment: str, *, timeout_s: float = 900.0) -> dict:
    """In a background thread: once `ready()` holds, SIGKILL one process named `fragment`.

    Returns a record the test reads after the run: `killed` (the PID, or None) and when.
    """
    record: dict = {"killed": None, "at": None}

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                pids = processes_named(fragment)
                if pids:
                    os.kill(pids[-1], signal.SIGKILL)
                    record.update(killed=pids[-1], at=time.time())
                    return
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    return record
