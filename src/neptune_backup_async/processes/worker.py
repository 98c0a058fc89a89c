"""A worker process of a backup with ``--processes``: it backs up the jobs its parent sends.

Started by :mod:`.pool` as ``python -m neptune_backup_async.processes.worker``, with the API
token in its environment. From the settings in its :class:`~.messages.Start` it builds the
same pipeline as a backup in one process (:func:`~..engine.assembly.build_pipeline`), with a
producer that reads jobs from stdin instead of listing, and answers on stdout (see
:mod:`.messages`): each job's outcome, its counters, failures and notices, and
its log records. It ignores Ctrl-C (the parent decides), and when its stdin closes (the
parent is done, stopped, or was killed), or SIGTERM or SIGHUP reaches it too, it cancels
what it is doing, which removes its temporary files, and exits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, NoReturn

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ..disk.files import tagged_temporaries
from ..engine.assembly import build_pipeline, connect, one_error
from ..engine.limiter import Limits
from ..engine.pipeline import Job, Tasks
from ..errors import BackupError, not_ignored
from ..format.report import BackupReport, FieldTally, Progress
from . import messages

TALLY_EVERY = 0.1  # seconds between counters sent for progress alone


class _Parent:
    """The pipe to the parent. Messages are small and the parent always reads, so each is
    written at once, from whichever thread (a log record may come from a request's thread)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        data = messages.encode(message)
        with self._lock, contextlib.suppress(OSError):  # the parent is gone: its stdin EOF stops us
            self._out.write(data)
            self._out.flush()


class _Forward(logging.Handler):
    """Send log records to the parent, which logs them where it logs its own."""

    def __init__(self, parent: _Parent) -> None:
        super().__init__()
        self.parent = parent

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.parent.send(messages.LogLine(record.name, record.levelno, message, record.created))


class _Tallies:
    """The worker's counters, sent at most every TALLY_EVERY seconds, and at once with a failure,
    a notice or a finished job."""

    def __init__(self, report: BackupReport, parent: _Parent) -> None:
        self.report = report
        self.parent = parent
        self._sent_at = -math.inf
        self._failures = self._notices = 0

    def __call__(self, _: Progress | None = None) -> None:
        r = self.report
        noted = len(r.failures) > self._failures or len(r.notices) > self._notices
        if not noted and time.monotonic() - self._sent_at < TALLY_EVERY:
            return
        self.send()

    def send(self) -> None:
        r = self.report
        tally = messages.Tally(
            {key: (t.done, t.failed) for key, t in (r.by_object or {}).items()},
            r.bytes_written,
            dict(r.retries),
            r.throttled_seconds,
            r.failures[self._failures :],
            r.notices[self._notices :],
        )
        self._failures, self._notices = len(r.failures), len(r.notices)
        self._sent_at = time.monotonic()
        self.parent.send(tally)


async def _read_jobs(
    stdin: IO[bytes], jobs: MemoryObjectSendStream[Job], limits: Limits, stop: anyio.CancelScope
) -> None:
    """Pass the parent's jobs on, and its word of a larger share; when stdin closes, stop everything.

    The one thread that reads the pipe is the process's own, outside the backup's bounds.
    """
    async with jobs:
        while (
            message := await anyio.to_thread.run_sync(messages.read, stdin, abandon_on_cancel=True)
        ) is not None:
            if isinstance(message, Job):
                jobs.send_nowait(message)  # the parent bounds how many it sends
            elif isinstance(message, messages.Bound):
                limits.widen(message.concurrency)
    stop.cancel()


async def _stop_on_signal(stop: anyio.CancelScope) -> None:
    """SIGTERM or SIGHUP (a service manager stopping every process of the backup, not only
    the parent) stops the worker as its stdin closing does: its temporaries go. One the
    worker was started ignoring (the parent's own, under ``nohup``) stays ignored."""
    answered = not_ignored(signal.SIGTERM, signal.SIGHUP)
    if not answered:
        return
    with anyio.open_signal_receiver(*answered) as signals:
        async for _ in signals:
            stop.cancel()


async def _back_up(start: messages.Start, stdin: IO[bytes], parent: _Parent) -> int:
    settings = start.settings
    report = BackupReport(destination=str(settings.destination), started_at=dt.datetime.now(dt.timezone.utc))
    report.by_object = {}  # the parent counts each job's fields once (see ProcessPool._settle)
    tallies = _Tallies(report, parent)
    send, receive = anyio.create_memory_object_stream[Job](max_buffer_size=math.inf)
    limits = Limits(start.share, settings.concurrency)

    def finished(job: Job, outcome: bool | None) -> None:
        assert report.by_object is not None
        fields = report.by_object.pop((job.project.qualified_name, job.ref.sys_id), FieldTally())
        tallies.send()  # first, so that the parent has the job's other counts when it hears of it
        parent.send(messages.Finished(job.number, outcome, (fields.done, fields.failed)))

    async def produce(into: MemoryObjectSendStream[Job]) -> None:
        async with into, receive:
            async for job in receive:
                await into.send(job)

    try:
        with tagged_temporaries(start.temp_tag), anyio.CancelScope() as stop:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_read_jobs, stdin, send, limits, stop)
                tg.start_soon(_stop_on_signal, stop)
                source = await connect(
                    None, limits.gate.threads, allow_insecure_http=settings.allow_insecure_http
                )
                try:
                    parent.send(messages.Ready())
                    with build_pipeline(
                        source, settings, limits, report=report, on_progress=tallies, on_finished=finished
                    ) as pipeline:
                        await pipeline.flow(produce, Tasks())
                finally:
                    source.close()
    except Exception as e:
        error = one_error(e)
        if not isinstance(error, BackupError):
            raise
        parent.send(messages.stopped(error))
        return 1
    finally:
        tallies.send()
    return 0


async def _main(stdin: IO[bytes], out: IO[bytes]) -> int:
    start = messages.read(stdin)
    if not isinstance(start, messages.Start):
        return 2
    parent = _Parent(out)
    forward = _Forward(parent)
    for name, level in start.log_levels.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(forward)
        logger.propagate = False
    return await _back_up(start, stdin, parent)


def main() -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent is the one that handles Ctrl-C
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # see cli._leave_out_unused_imports
    # Messages go to the real stdout; anything else printed there (the neptune client prints
    # its warnings on stdout) goes to stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    code = anyio.run(_main, sys.stdin.buffer, out)
    logging.shutdown()
    os._exit(code)  # abandoned request threads (a cancel leaves them) are not waited for


if __name__ == "__main__":
    main()
