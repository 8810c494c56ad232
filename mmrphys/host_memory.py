"""Start processes with freed host memory kept for reuse: a large speed-up of CPU training.

A training step allocates and frees the same large activation buffers (tens to hundreds
of MB each) every step. glibc's malloc serves each of them with a fresh mmap and unmaps
it on free, so every step faults all of its activation memory back in from the kernel,
4 KiB page by page. On this project's 2-core VMs that costs more than the arithmetic:
tanh of a 225 MB tensor takes 25 ms into reused memory and 110 ms into fresh pages.

glibc reads its malloc settings ("tunables") from GLIBC_TUNABLES when a process starts;
`reuse_env()` gives that variable for processes about to start (Ray Train workers):
- large blocks from malloc's heap instead of one mmap each (mmap_max=0), and the heap
  never trimmed, so freed pages stay mapped and later steps reuse them;
- one arena: the per-thread arenas cannot hold blocks over 64 MB and would mmap those
  anyway (a Ray Train loop runs in a thread);
- transparent huge pages for the heap where the kernel allows them (hugetlb=1): 512x
  fewer faults while the heap first grows.
The price: a worker keeps its peak memory until it exits (0-15% above the default's
peak at 72x72 in BENCHMARKS.md, from heap fragmentation). glibc ignores tunables it does
not know; other C libraries ignore the variable.
"""

from __future__ import annotations

import os
from typing import Mapping

REUSE_TUNABLES = ":".join(
    [
        "glibc.malloc.mmap_max=0",
        f"glibc.malloc.trim_threshold={2**31 - 1}",
        "glibc.malloc.arena_max=1",
        "glibc.malloc.hugetlb=1",
    ]
)


def reuse_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables that start a process with freed memory kept for reuse:
    GLIBC_TUNABLES, with any tunables already set in `environ` (default os.environ) after
    these, so that the user's own settings win."""
    current = (os.environ if environ is None else environ).get("GLIBC_TUNABLES", "")
    return {"GLIBC_TUNABLES": f"{REUSE_TUNABLES}:{current}" if current else REUSE_TUNABLES}


def started_with_reuse(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a process with this environment (default: this one) started with the
    tunables of `reuse_env`."""
    return REUSE_TUNABLES in (os.environ if environ is None else environ).get("GLIBC_TUNABLES", "")
