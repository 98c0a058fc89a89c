"""Thread hops and client CPU per request of one backup, in-process, with the fake server in
another process.

    python benchmarks/hops.py --workload W1 --concurrency 16 [--latency 0] [--repeat 3]

Counts every call that hands work to a thread: ``anyio.to_thread.run_sync`` (the backup's
own thread calls and ``anyio.Path``) and the event loop's ``run_in_executor`` (aiofiles),
and the process's CPU time (all threads) from the first runs-table request's set-up to the
end, without the client's start-up (importing and starting ``neptune``). The backup gets
the progress callback the command line passes with ``--quiet`` unless ``--no-progress``. Per request means
per request the server answered after start-up. The counting wraps the calls from outside,
in this script only; the product is unchanged. Put another source first on ``PYTHONPATH``
to measure it (e.g. a checkout of an older commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from fakeserver import ServerProcess, spec_field
from neptune_backup_async import api

hops: Counter[str] = Counter()


def count_hops() -> None:
    """Wrap anyio's thread calls and the running loop's executor calls with counters (anyio's
    once per process: each backup's loop is new, anyio's function is not)."""
    run_sync = anyio.to_thread.run_sync
    if getattr(run_sync, "counted", False):
        run_sync = run_sync.__wrapped__  # type: ignore[attr-defined]

    async def counted_run_sync(*args: Any, **kwargs: Any) -> Any:
        hops["anyio"] += 1
        return await run_sync(*args, **kwargs)

    counted_run_sync.counted = True  # type: ignore[attr-defined]
    counted_run_sync.__wrapped__ = run_sync  # type: ignore[attr-defined]
    anyio.to_thread.run_sync = counted_run_sync  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    run_in_executor = loop.run_in_executor

    def counted_run_in_executor(*args: Any) -> Any:
        hops["executor"] += 1
        return run_in_executor(*args)

    loop.run_in_executor = counted_run_in_executor  # type: ignore[method-assign]


def cli_progress() -> Any:
    """The progress callback the command line passes with ``--quiet``: no bars, a line in the log now and then."""
    from neptune_backup_async.cli.display import Bars
    from neptune_backup_async.cli.logfile import LogProgress
    from neptune_backup_async.format.report import CONNECTING

    bars, in_log = Bars(False, CONNECTING), LogProgress()

    def progress(p: Any) -> None:
        bars(p)
        in_log(p)

    return progress


async def one_backup(
    server: ServerProcess, concurrency: int, dest: Path, progress: bool
) -> tuple[float, dict[str, int]]:
    source = await api.connect(server.api_token, concurrency)
    try:
        server.reset()
        count_hops()
        hops.clear()
        cpu = time.process_time()
        report = await api.backup(
            "all", dest, concurrency=concurrency, source=source, progress=cli_progress() if progress else None
        )
        cpu = time.process_time() - cpu
    finally:
        source.close()
    assert report.exit_code == 0, report.summary()
    return cpu, dict(hops)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="W1")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--no-progress", action="store_true", help="no progress callback (the CLI always passes one)"
    )
    p.add_argument("--set", type=spec_field, action="append", default=[], metavar="FIELD=VALUE")
    args = p.parse_args(argv)
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    cpus: list[float] = []
    with ServerProcess(args.workload, args.latency, dict(args.set)) as server:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                cpu, counted = anyio.run(
                    one_backup, server, args.concurrency, Path(tmp), not args.no_progress
                )
            requests = server.stats()["total"]
            cpus.append(cpu / requests * 1000)
            per = {k: round(v / requests, 2) for k, v in sorted(counted.items())}
            print(
                f"{args.workload} c={args.concurrency}: {requests} requests, client CPU"
                f" {cpu / requests * 1000:.2f} ms/request, thread hops/request {per}"
                f" (total {sum(counted.values()) / requests:.2f})"
            )
    print(f"median client CPU {statistics.median(cpus):.2f} ms/request ({Path(api.__file__).parent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
