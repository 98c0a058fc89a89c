"""Profile one backup in-process under pyinstrument, with the fake server in another process.

    python benchmarks/profile.py --workload W1 --latency 0 [--concurrency 16] [--mode inline]

pyinstrument samples one thread only, and the backup does its blocking work (every Neptune
request, JSON decoding, file writes) in worker threads. So by default (``--mode inline``)
those calls run on the event-loop thread instead: ``anyio.to_thread.run_sync`` and the
loop's default executor (aiofiles) call their function directly. The profile then holds
all of the backup's Python work, at the price of one request at a time. ``--mode threads``
keeps the real threads and profiles the event loop alone: its scheduling overhead, and
how long it waits. The client's start-up (importing and starting ``neptune``) is left out
unless ``--include-startup``. The text profile goes to ``benchmarks/results/``.

``--mode memory`` profiles memory instead, with real threads: tracemalloc snapshots are taken
as the traced total grows, and the allocation sites of the largest one are written out.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from pyinstrument import Profiler

from fakeserver import ServerProcess, spec_field
from neptune_backup_async import api
from run import source_digest

HERE = Path(__file__).resolve().parent


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """An executor that runs each call at once in the caller's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future


async def _run_inline(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
    return func(*args)


def go_inline() -> None:
    """Make every blocking call of the backup run on the event-loop thread."""
    anyio.to_thread.run_sync = _run_inline  # type: ignore[assignment]
    asyncio.get_running_loop().set_default_executor(InlineExecutor())


class PeakSnapshots:
    """Takes a tracemalloc snapshot each time traced memory grows by a tenth over the last one."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.best: tracemalloc.Snapshot | None = None
        self.best_size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            current, _ = tracemalloc.get_traced_memory()
            if current > self.best_size * 1.1:
                self.best, self.best_size = tracemalloc.take_snapshot(), current

    def __enter__(self) -> PeakSnapshots:
        tracemalloc.start(8)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    def text(self, top: int = 25) -> str:
        lines = [
            f"peak traced {self.peak / 2**20:.1f} MiB; largest snapshot {self.best_size / 2**20:.1f} MiB:"
        ]
        if self.best is not None:
            stats = self.best.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            for stat in stats.statistics("traceback")[:top]:
                lines.append(f"\n{stat.size / 2**20:8.1f} MiB in {stat.count} blocks, allocated at:")
                lines += [f"    {line}" for line in stat.traceback.format(most_recent_first=True)[:8]]
        return "\n".join(lines) + "\n"


async def memory_backup(
    args: argparse.Namespace, server: ServerProcess, dest: Path
) -> tuple[PeakSnapshots, Any]:
    source = await api.connect(server.api_token, args.concurrency)
    try:
        with PeakSnapshots() as snapshots:
            report = await api.backup("all", dest, concurrency=args.concurrency, source=source)
    finally:
        source.close()
    return snapshots, report


async def profiled_backup(
    args: argparse.Namespace, server: ServerProcess, dest: Path
) -> tuple[Profiler, Any]:
    if args.mode == "inline":
        go_inline()
    profiler = Profiler(interval=args.interval, async_mode="disabled")
    if args.include_startup:
        profiler.start()
        source = await api.connect(server.api_token, args.concurrency)
    else:
        source = await api.connect(server.api_token, args.concurrency)
        profiler.start()
    try:
        report = await api.backup("all", dest, concurrency=args.concurrency, source=source)
    finally:
        profiler.stop()
        source.close()
    return profiler, report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="W1")
    p.add_argument("--latency", type=float, default=0.0, help="seconds the server adds to every request")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--mode", choices=("inline", "threads", "memory"), default="inline")
    p.add_argument("--show-all", action="store_true", help="show library frames too")
    p.add_argument("--include-startup", action="store_true", help="also profile the client's start-up")
    p.add_argument("--interval", type=float, default=0.001, help="sampling interval in seconds")
    p.add_argument("--set", type=spec_field, action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--out", type=Path, default=HERE / "results")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with (
        ServerProcess(args.workload, args.latency, dict(args.set)) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        server.reset()
        started = time.perf_counter()
        runner = memory_backup if args.mode == "memory" else profiled_backup
        profiler, report = anyio.run(runner, args, server, Path(tmp))
        wall = time.perf_counter() - started
        stats = server.stats()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"profile-{args.workload}-c{args.concurrency}-{args.mode}-{stamp}.txt"
    args.out.mkdir(parents=True, exist_ok=True)
    summary = (
        f"# {' '.join(sys.argv)} (source digest {source_digest()})\n# {report.summary().splitlines()[0]}\n"
        f"# wall {wall:.2f}s; {stats['total']} requests; server CPU {stats['cpu_s']:.2f}s"
        f" (time the client waits on the server shows as socket reads below)\n"
    )
    if isinstance(profiler, PeakSnapshots):
        text = summary + profiler.text()
    else:
        text = summary + profiler.output_text(unicode=True, color=False, show_all=args.show_all)
    (args.out / name).write_text(text)
    print(text)
    print(f"wrote {args.out / name}", file=sys.stderr)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
