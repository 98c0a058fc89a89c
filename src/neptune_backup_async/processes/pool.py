"""Worker processes of a backup (``--processes N``): the parent lists, the workers back up.

The parent is the one producer, exactly as in one process; its jobs go to worker processes
(:mod:`.worker`), each to the one with the fewest jobs unfinished, at most :func:`capacity`
each, so memory stays flat. Each worker says when each job is finished and how
(:mod:`.messages`), so the parent always knows which jobs a worker holds. ``--concurrency``
stays the total of requests in flight (:func:`shares`). Embedded, the parent only lists,
keeping one request for it, so the caller's event loop stays free. The command line's
parent backs up too, with tasks of its own that take jobs from the same stream: on a small
machine every process that starts a Neptune client costs most of a second of CPU. Once the
listing is over, shares follow the work: whoever has nothing left to do gives its share
to a worker that still has jobs (:meth:`ProcessPool.work`).

A worker that dies (killed, crashed, out of memory) is named in a notice for each job it
held, its temporary files are swept, a replacement is started (up to N times in all) and its
jobs go to another worker; a job that two dead workers held fails. Stopping (the end, an
error, a cancel, Ctrl-C) closes every worker's stdin, which makes it cancel its backup and
remove its temporary files; a worker still running after :data:`STOP_WAIT` is killed, and
the temporary files of every worker are swept.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream

from ..disk.files import remove_temporaries, temp_tag
from ..engine.pipeline import Job, Pipeline, Tasks
from ..errors import BackupError
from ..settings import TOKEN_ENV, BackupSettings
from . import messages
from .ledger import FieldLedger
from .shares import capacity

log = logging.getLogger("neptune_backup_async")
STOP_WAIT = 10.0  # seconds workers get to clean up after their stdin closes, before they are killed


def exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {-code}, {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit status {code}"


@dataclass
class _Held:
    job: Job
    deaths: list[str] = field(default_factory=list)  # how each worker that held it died


@dataclass
class _Worker:
    name: str
    share: int
    process: Process
    tag: str
    held: dict[int, _Held] = field(default_factory=dict)
    tally: messages.Tally = field(default_factory=messages.Tally)
    read: anyio.Event = field(default_factory=anyio.Event)  # everything it said has been read
    ended: bool = False  # its end has been dealt with: it takes no more jobs
    retired: bool = False  # it had nothing left to do, and its share went to another

    @property
    def sweep_tag(self) -> str:
        """What its temporary files' names carry (see :func:`~..disk.files.remove_temporaries`)."""
        return f"{self.tag}{self.process.pid}-"


class ProcessPool:
    """The worker processes; a :class:`~..engine.pipeline.Workers` for :meth:`~..engine.pipeline.Pipeline.run`."""

    def __init__(
        self, settings: BackupSettings, shares: list[int], token: str, disk: anyio.CapacityLimiter
    ) -> None:
        """With ``work_here`` in ``settings`` this process backs up too, with tasks of its own;
        else it only lists. Made inside the backup's :func:`~.files.tagged_temporaries`.
        ``disk`` bounds the threads that sweep the workers' temporary files."""
        self._settings = settings
        self._disk = disk
        self._shares = shares
        self._work_here = settings.work_here
        self._tag = temp_tag.get()
        self._listed = False  # every job has been received
        self._here_done = False  # this process has no more use for its share
        self._env = _worker_env(token)
        self._numbers = itertools.count(1)
        self._names = itertools.count(1)
        self._live: list[_Worker] = []
        self._all: list[_Worker] = []
        self._restarts = len(shares)
        self._starting = 0  # replacements being started
        self._unfinished = 0  # jobs received and not finished
        self._changed = anyio.Event()
        self._closing = False
        self._error: BaseException | None = None
        self._pipeline: Pipeline | None = None
        self._fields: FieldLedger | None = None  # each job's fields, counted once
        self._tg: TaskGroup | None = None
        self._body = anyio.CancelScope()

    # -- the pool's life ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ProcessPool]:
        """Start the workers (they connect while the caller does); inside, :meth:`work`; on the
        way out, stop them and sweep what they left."""
        clean = False
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                try:
                    with self._body:
                        for share in self._shares:
                            await self._spawn(share)
                        yield self
                        clean = True
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._stop()
                if self._error is not None:
                    raise self._error
        finally:
            if not clean:
                with anyio.CancelScope(shield=True):
                    await self._sweep(self._all)

    async def _spawn(self, share: int) -> None:
        assert self._tg is not None
        name = f"w{next(self._names)}"
        process = await anyio.open_process(
            [sys.executable, "-m", "neptune_backup_async.processes.worker"],
            env=self._env,
            stderr=None,  # the parent's: where a crash says why
            start_new_session=True,  # a terminal's Ctrl-C goes to the parent only
        )
        worker = _Worker(name, share, process, f"{self._tag}{name}-")
        self._all.append(worker)  # from here it is stopped with the others
        self._tg.start_soon(self._read, worker)
        levels = {
            name: logging.getLogger(name).getEffectiveLevel() for name in ("neptune_backup_async", "neptune")
        }
        start = messages.Start(self._settings, share, worker.tag, levels)
        assert process.stdin is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await process.stdin.send(messages.encode(start))  # before any job
        log.debug(
            "worker process %s started (pid %d, %d requests in flight at most)", name, process.pid, share
        )
        if not worker.ended:
            self._live.append(worker)
            self._notify()  # jobs may be waiting for a worker

    async def _stop(self) -> None:
        """Close every worker's stdin, give them STOP_WAIT to finish, then kill what is left."""
        self._closing = True
        for worker in self._all:
            if worker.process.stdin is not None:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await worker.process.stdin.aclose()
        # The process's own end, not only its reader's: a cancel (Ctrl-C) ends the readers at
        # once, while the workers still clean up.
        with anyio.move_on_after(STOP_WAIT):
            for worker in self._all:
                await worker.read.wait()
                await worker.process.wait()
        for worker in self._all:
            if worker.process.returncode is None:  # the wait really ran out
                log.warning("worker process %s did not stop in %.0f s: killed", worker.name, STOP_WAIT)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
        for worker in self._all:
            await worker.process.wait()

    async def _sweep(self, workers: list[_Worker]) -> None:
        for worker in workers:
            await anyio.to_thread.run_sync(
                remove_temporaries, self._settings.destination, worker.sweep_tag, limiter=self._disk
            )

    def _fail(self, error: BaseException) -> None:
        """Stop the backup with ``error`` (the first one wins)."""
        if self._error is None:
            self._error = error
        self._body.cancel()

    # -- jobs ---------------------------------------------------------------------------------

    async def work(self, pipeline: Pipeline, jobs: MemoryObjectReceiveStream[Job]) -> None:
        """Hand every job to a worker, or to this process's own tasks; return once all are finished.

        Shares follow the work at the end: once the listing is over, whoever has nothing left
        to do (this process, or a worker) gives its share to a worker that still has jobs, so
        that one huge run still gets the whole of ``--concurrency``.
        """
        self._pipeline = pipeline
        self._fields = FieldLedger(pipeline.report)
        async with anyio.create_task_group() as tg:
            if self._work_here:
                tg.start_soon(self._work_here_too, pipeline, jobs.clone())
            async with jobs:
                while True:
                    # Take a job only once a worker has room: this process's own tasks may take it meanwhile.
                    while not any(len(w.held) < capacity(w.share) for w in self._live):
                        await self._wait_for_change()
                    try:
                        job = await jobs.receive()
                    except anyio.EndOfStream:
                        break
                    self._unfinished += 1
                    await self._give(_Held(replace(job, number=next(self._numbers))))
            self._listed = True
            if not self._work_here:
                self._here_done = True
                await self._share_out(pipeline.limits.share, "listing done")
            self._retire_idle()
        while self._unfinished:
            await self._wait_for_change()

    async def _work_here_too(self, pipeline: Pipeline, jobs: MemoryObjectReceiveStream[Job]) -> None:
        await Tasks().work(pipeline, jobs)
        self._here_done = True
        await self._share_out(pipeline.limits.share, "this process's jobs are done")

    async def _give(self, held: _Held) -> None:
        """Send a job to the worker with the fewest unfinished, once one has room."""
        while True:
            if self._live:
                worker = min(self._live, key=lambda w: len(w.held) / w.share)
                if len(worker.held) < capacity(worker.share):
                    worker.held[held.job.number] = held  # from here its reader answers for it
                    assert worker.process.stdin is not None
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        await worker.process.stdin.send(messages.encode(held.job))
                    return
            await self._wait_for_change()

    async def _share_out(self, share: int, why: str) -> None:
        """Give ``share`` requests in flight, no longer used where they were, to the worker with
        the most jobs left; to none if none has any (the backup is finishing)."""
        busy = [w for w in self._live if w.held]
        if not busy:
            return
        worker = max(busy, key=lambda w: (len(w.held), -w.share))
        worker.share += share
        log.debug("%s: worker process %s may have %d requests in flight", why, worker.name, worker.share)
        assert worker.process.stdin is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await worker.process.stdin.send(messages.encode(messages.Bound(worker.share)))

    def _retire_idle(self) -> None:
        """Once the listing is over, stop each worker that has nothing left to do while others
        have, and give its share to them (it sends no request any more)."""
        if not self._listed:
            return
        for worker in [w for w in self._live if not w.held]:
            if not self._here_done or any(w.held for w in self._live if w is not worker):
                self._live.remove(worker)
                worker.retired = True
                assert self._tg is not None
                self._tg.start_soon(self._retire, worker)

    async def _retire(self, worker: _Worker) -> None:
        why = f"worker process {worker.name} had nothing left to do"
        if self._here_done:
            await self._share_out(worker.share, why)
        else:
            assert self._pipeline is not None
            limits = self._pipeline.limits
            limits.widen(limits.share + worker.share)
            log.debug("%s: this process may have %d requests in flight", why, limits.share)
        assert worker.process.stdin is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await worker.process.stdin.aclose()  # it stops

    async def _wait_for_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- what a worker says -------------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        assert worker.process.stdout is not None
        stream = BufferedByteReceiveStream(worker.process.stdout)
        try:
            with contextlib.suppress(anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                while True:
                    self._heard(worker, await messages.receive(stream))
            await self._ended(worker, await worker.process.wait())
        except Exception as e:  # a bug, or the progress callback raised: it stops the backup
            self._fail(e)
        finally:
            worker.read.set()

    def _heard(self, worker: _Worker, message: object) -> None:
        if isinstance(message, messages.LogLine):
            record = logging.makeLogRecord(
                {
                    "name": message.name,
                    "levelno": message.level,
                    "levelname": logging.getLevelName(message.level),
                    "msg": message.message,
                    "created": message.created,
                    "msecs": (message.created % 1) * 1000,
                }
            )
            logging.getLogger(message.name).handle(record)
        elif isinstance(message, messages.Tally):
            self._merge(worker, message)
        elif isinstance(message, messages.Finished):
            held = worker.held.pop(message.number)
            self._unfinished -= 1
            assert self._pipeline is not None and self._fields is not None
            self._fields.finished(message.number, message.outcome is True, message.fields)
            self._pipeline.finished(held.job, message.outcome)
            self._retire_idle()
            self._notify()
        elif isinstance(message, messages.Stopped):
            self._fail(message.error)
        elif isinstance(message, messages.Ready):
            log.debug("worker process %s connected", worker.name)

    def _merge(self, worker: _Worker, tally: messages.Tally) -> None:
        """Add what the worker did since its last tally to the backup's report."""
        if self._pipeline is None or self._fields is None:  # stopped before the backup began: it did nothing
            return
        report, old = self._pipeline.report, worker.tally
        for number, held in worker.held.items():
            if (
                fields := tally.fields.get((held.job.project.qualified_name, held.job.ref.sys_id))
            ) is not None:
                self._fields.tallied(number, fields)
        report.bytes_written += tally.bytes_written - old.bytes_written
        report.throttled_seconds += tally.throttled_seconds - old.throttled_seconds
        for reason, count in tally.retries.items():
            report.retries[reason] = report.retries.get(reason, 0) + count - old.retries.get(reason, 0)
        report.failures += tally.failures
        report.notices += tally.notices
        worker.tally = tally
        self._pipeline.recorder.changed()

    async def _ended(self, worker: _Worker, code: int) -> None:
        """The worker's output has ended and it has exited: if it was not asked to, it died."""
        worker.ended = True
        if worker in self._live:
            self._live.remove(worker)
        orphans = list(worker.held.values())
        worker.held.clear()
        if self._closing or self._error is not None or worker.retired:
            if code and self._error is None:
                log.warning("worker process %s ended with %s", worker.name, exit_status(code))
            return
        status = exit_status(code)
        log.error(
            "worker process %s (pid %d) died (%s) holding %d jobs",
            worker.name,
            worker.process.pid,
            status,
            len(orphans),
        )
        await self._sweep([worker])
        if self._restarts > 0:
            self._restarts -= 1
            self._starting += 1
            try:
                await self._spawn(worker.share)
            finally:
                self._starting -= 1
        elif not self._live and not self._starting:
            self._fail(
                BackupError(
                    f"Every worker process died (the last: {status}). Finished runs are kept; run the same"
                    " command again, with --processes 1 if it happens again."
                )
            )
            return
        pipeline = self._pipeline
        for held in orphans:
            assert pipeline is not None and self._fields is not None  # it has given out jobs
            held.deaths.append(status)
            self._fields.died(held.job.number)
            where = held.job.project.qualified_name, held.job.ref.sys_id
            if len(held.deaths) < 2:
                await self._give(held)
                reason = (
                    f"the worker process backing it up ({worker.name}) died ({status}); handed to another"
                )
                pipeline.recorder.notice(*where, None, reason)
                continue
            how = held.deaths[0] if len(set(held.deaths)) == 1 else "; ".join(held.deaths)
            pipeline.recorder.fail(
                *where,
                None,
                f"the worker process backing it up died twice ({how}); run the same command again",
            )
            pipeline.finished(held.job, None)
            self._fields.failed(held.job.number)
            self._unfinished -= 1
        self._notify()


def _worker_env(token: str) -> dict[str, str]:
    """The workers' environment: the token (never on their command line), and this package
    first on the path, so they run the same code as the parent."""
    env = dict(os.environ, **{TOKEN_ENV: token})
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env
