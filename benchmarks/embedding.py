"""How free the event loop stays for a service that embeds ``await backup(...)``.

    python benchmarks/embedding.py [--workload W1] [--concurrency 16] [--processes 1,2]
                                   [--latency 0.025] [--repeat 3]

The fake server runs in a process of its own (``fakeserver.py``). In this process, one
event loop runs the backup and, beside it, a ticker task that asks to wake every 5 ms: the
lag of each tick (how late it woke) is what a service's own tasks would wait while the
backup runs. Prints the lag's p50, p99 and max, the number of ticks and the backup's wall
time, for each ``--processes`` value; medians over ``--repeat`` backups.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from fakeserver import ServerProcess
from neptune_backup_async import backup

TICK = 0.005


async def ticker(lags: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await anyio.sleep(TICK)
        lags.append(max(0.0, time.perf_counter() - asked - TICK))


async def one_backup(
    server: ServerProcess, concurrency: int, processes: int, scratch: Path
) -> dict[str, Any]:
    dest = Path(tempfile.mkdtemp(prefix="embedded-", dir=scratch))
    lags: list[float] = []
    stop = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, lags, stop)
            start = time.perf_counter()
            # processes= only when asked, so the script also measures versions from before it
            more = {"processes": processes} if processes != 1 else {}
            report = await backup("all", dest, api_token=server.api_token, concurrency=concurrency, **more)
            wall = time.perf_counter() - start
            stop.set()
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if report.exit_code != 0:
        raise SystemExit(f"the backup failed: {report.summary()}")
    lags.sort()
    return {
        "wall_s": wall,
        "ticks": len(lags),
        "p50_ms": 1000 * lags[len(lags) // 2],
        "p99_ms": 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "max_ms": 1000 * lags[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="W1")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", default="1,2", help="comma-separated values to compare")
    parser.add_argument("--latency", type=float, default=0.025)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="embedding-bench-") as scratch,
        ServerProcess(args.workload, args.latency) as server,
    ):
        print(
            f"{args.workload}, c={args.concurrency}, latency {args.latency * 1000:g} ms, tick {TICK * 1000:g} ms"
        )
        print("| processes | wall s | lag p50 ms | lag p99 ms | lag max ms | ticks |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for processes in counts:
            samples = []
            for _ in range(args.repeat):
                samples.append(anyio.run(one_backup, server, args.concurrency, processes, Path(scratch)))
            m = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            print(
                f"| {processes} | {m['wall_s']:.2f} | {m['p50_ms']:.2f} | {m['p99_ms']:.1f} | {m['max_ms']:.1f}"
                f" | {m['ticks']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
