"""Finding and killing real processes from outside, for the fault drills: the drill
never asks the code under test to fail, it kills the process with SIGKILL.

Only descendants of a given process (by default this one) are ever looked at: other
programs on the machine, other Ray clusters included, are never touched.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _parents() -> dict[int, int]:
    """PID -> parent PID of every process, from /proc/<pid>/stat."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name in parentheses may hold spaces: the fields after it are fixed
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(root: int) -> list[int]:
    """PIDs of every process below `root`: its children, theirs, and so on."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return sorted(found)


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_named(fragment: str, root: int | None = None) -> list[int]:
    """Descendants of `root` (default: this process) whose command line holds `fragment`
    (Ray names its workers `ray::<actor class>...`, its task workers `ray::<function>`)."""
    return [pid for pid in descendants(os.getpid() if root is None else root) if fragment in _cmdline(pid)]


def kill_when(ready: Callable[[], bool], fragment: str, *, root: int | None = None,
              timeout_s: float = 900.0, poll_s: float = 0.2) -> dict:
    """In a background thread: once `ready()` holds, SIGKILL one descendant of `root`
    named `fragment` (the newest).

    Returns a record the drill reads after the run: `killed` (the PID, or None), `at`
    (time), `cmdline`, and `seen` (whatever `ready()` returned that was truthy).
    """
    record: dict = {"killed": None, "at": None, "cmdline": None, "seen": None}

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = ready()
            if seen:
                pids = processes_named(fragment, root)
                if pids:
                    record["cmdline"] = _cmdline(pids[-1])
                    os.kill(pids[-1], signal.SIGKILL)
                    record.update(killed=pids[-1], at=time.time(), seen=seen)
                    return
            time.sleep(poll_s)

    threading.Thread(target=watch, daemon=True).start()
    return record


def kill_tree(root: int) -> list[int]:
    """SIGKILL `root` and every descendant (listed first, so none is re-parented away
    unseen); returns the PIDs signalled."""
    pids = descendants(root) + [root]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
