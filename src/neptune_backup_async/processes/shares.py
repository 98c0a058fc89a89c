"""How ``--concurrency`` is shared out among the processes of a backup: pure arithmetic."""

from __future__ import annotations

import os

PARENT_SHARE = 1  # requests in flight the parent keeps while it lists


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def shares(processes: int, concurrency: int, *, work_here: bool = False) -> tuple[int, list[int]]:
    """This process's share of ``concurrency`` and each worker process's; no workers when the
    backup should run in this process (one process asked for, or too little concurrency to
    give a worker one request).

    This process keeps :data:`PARENT_SHARE` for listing; with ``work_here`` it backs up too,
    as one of the ``processes``, and takes a share like a worker's.
    """
    if processes <= 1:
        return concurrency, []
    if work_here:
        count = min(processes, concurrency)
        split = [concurrency // count + (i < concurrency % count) for i in range(count)]
        return split[0], split[1:]
    spread = concurrency - PARENT_SHARE
    workers = min(processes, spread)
    if workers < 1:
        return concurrency, []
    return PARENT_SHARE, [spread // workers + (i < spread % workers) for i in range(workers)]


def capacity(share: int) -> int:
    """The most jobs a worker holds at once: enough to keep its share busy, and no more, so
    that the jobs left at the end are not queued behind a busy worker while another idles."""
    return share + 2
