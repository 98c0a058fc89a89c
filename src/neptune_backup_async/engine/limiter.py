"""Every bound of a backup, all from ``--concurrency``, in one place; and the gate that adapts
the first of them to what the server takes.

``--concurrency`` (C) is the total of requests in flight. With ``--processes`` it is shared
out (:func:`~..processes.shares.shares`); each process holds its share S, which grows when
another process hands its own over, in one :class:`Limits`:

- **Requests** (:class:`Gate`): at most S Neptune and S3 requests in flight, fewer while
  the server pushes back (below). A streamed download holds its token from its first byte
  to its last.
- **Request threads** (:attr:`Gate.threads`, S): every attempt of a request runs in one,
  holding a request token; so does the start-up (importing and connecting the client).
- **Disk threads** (:attr:`Limits.disk`, S): every other blocking call on the backup
  folder: reading what the last backup left, journal lines, whole files, commits, the
  scan for runs gone from Neptune, sweeping temporary files. The layers below the engine
  take it as a parameter.
- **Tasks**: S per process back up one object at a time each; within an object at most C
  (:attr:`Limits.tasks`) save its fields, and within an image series at most C its
  images, pulling them from a bounded stream (:func:`each`). So one huge run or series can
  use the whole bound, even once the share has grown to C, and nothing spawns a task per
  field or image.

So a process starts at most 2S threads for the network and the disk; the client's start-up
(its import and each round trip, a few of them at once) runs in request threads too. Besides
them: a worker process's one reader of its parent's pipe, and asyncio's default executor,
which resolves the server's name at start-up. A request the transport decodes also takes
one of its decoding slots (at most 4, and no more than S), a bound on CPU within the
request threads. A cancel abandons a request's thread, which runs to its end outside the
bound (see :meth:`Gate.thread`).

The request bound works like TCP's congestion window. It starts at :data:`START` requests
in flight and doubles each window of completed requests (a window is as many requests as
the bound) up to the share; only requests completed while the bound was full count, as a
bound that does not bind says nothing about the server. A 429 on a request sent after the
last cut is a new congestion event: the bound drops to :data:`DECREASE` of itself, once;
429s of requests sent before that cut are the same event and change nothing. After the
first cut the bound grows by one per window without a 429, except that it tries the bound
that got the last 429 again only after :data:`PROBE` quiet windows, twice as many each time
that bound is refused again. The request that got the 429 waits its ``Retry-After`` alone
(:mod:`.retry`); every other worker goes on. Behind a server that takes N requests at once
the bound settles at N, with ever rarer probes above it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ..errors import TransientError

log = logging.getLogger("neptune_backup_async")
T = TypeVar("T")
START = 8
DECREASE = 0.7  # as CUBIC: keeps a server's cap of N busy at N - 1 after a cut to N + 1
PROBE = 4  # windows without a 429 before trying again the bound that last got one...
MAX_PROBE = 32  # ...doubled each time it gets one again, up to this


class Gate:
    def __init__(self, concurrency: int, start: int = START) -> None:
        self.concurrency = concurrency
        self.requests = anyio.CapacityLimiter(min(concurrency, start))
        # Request threads run inside a request token, so this hardly binds; without it they
        # would share anyio's default thread limiter (40), which caps a larger --concurrency.
        self.threads = anyio.CapacityLimiter(concurrency)
        self._events = 0  # congestion events so far
        self._ceiling = concurrency  # the bound at the last congestion event
        self._probe = PROBE  # quiet windows before trying that bound again
        self._window = 0  # requests completed since the bound last changed
        self._low: int | None = None  # the lowest bound a 429 has cut it to

    @property
    def limit(self) -> int:
        return int(self.requests.total_tokens)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request token while the request (or a download, first byte to last) runs;
        tell the bound how it went while still holding it."""
        async with self.requests:
            sent_at = self._events
            try:
                yield
            except TransientError as e:
                if e.throttled:
                    self.congested(sent_at)
                raise
            self.completed(int(self.requests.borrowed_tokens))

    def widen(self, concurrency: int) -> None:
        """Let the bound grow up to ``concurrency`` from now on; it grows there as it always
        does, window by window."""
        self.concurrency = concurrency
        self.threads.total_tokens = concurrency

    def completed(self, in_flight: int) -> None:
        """A request succeeded: after a whole window of them, grow (or after PROBE windows,
        to the bound at which the server last pushed back).

        Only requests that completed while the bound was full (``in_flight``, this one
        included) count: a bound that did not bind says nothing about whether the server
        would take more.
        """
        if in_flight < self.limit:
            return
        self._window += 1
        if not self._events:
            if self._window >= self.limit:
                self._resize(min(self.concurrency, self.limit * 2))
            return
        windows = self._probe if self.limit + 1 == self._ceiling else 1
        if self._window >= self.limit * windows:
            self._resize(min(self.concurrency, self.limit + 1))

    def congested(self, sent_at: int) -> None:
        """A request sent when ``sent_at`` events had happened got a 429."""
        if sent_at != self._events:
            return  # sent before the last cut: that cut was the answer to it
        self._events += 1
        # Pushed back at about the same bound again: that is the server's limit, try it less often.
        same = abs(self.limit - self._ceiling) <= 1
        self._probe = min(self._probe * 2, MAX_PROBE) if same else PROBE
        self._ceiling = self.limit
        self._resize(max(1, int(self.limit * DECREASE)))
        # Only the new lows go to the log: every cut and regrowth would fill it under a trickle of 429s.
        if self._low is None or self.limit < self._low:
            self._low = self.limit
            log.debug("requests in flight: at most %d", self.limit)

    def _resize(self, limit: int) -> None:
        self._window = 0
        self.requests.total_tokens = limit

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in a worker thread; the caller must hold a request token.

        A cancel returns at once and abandons the thread, which runs ``fn`` to its end: what
        ``fn`` writes must go through a :class:`~..disk.files.ThreadFile`, which refuses every
        write once its owner has given it up."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.threads, abandon_on_cancel=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """One attempt of one Neptune request, in a thread, under the bound."""
        async with self.slot():
            return await self.thread(fn, *args)


class Limits:
    """The bounds of one process's backup (see above): its ``share`` of ``--concurrency`` in
    requests, request threads and disk threads, and ``tasks`` (the whole ``--concurrency``)
    tasks per object's fields or per series' images."""

    def __init__(self, share: int, tasks: int) -> None:
        self.gate = Gate(share)
        self.disk = anyio.CapacityLimiter(share)
        self.tasks = tasks

    @property
    def share(self) -> int:
        return self.gate.concurrency

    def widen(self, share: int) -> None:
        """Take ``share`` from now on: another process handed its own over."""
        self.gate.widen(share)
        self.disk.total_tokens = share


async def pull(
    receive: MemoryObjectReceiveStream[T], work: Callable[[T], Awaitable[object]], tasks: int
) -> None:
    """``work`` on every item of ``receive`` until it ends, by ``tasks`` tasks that each take
    one item at a time."""

    async def worker(items: MemoryObjectReceiveStream[T]) -> None:
        async with items:
            async for item in items:
                await work(item)

    async with receive, anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(worker, receive.clone())


async def each(items: Sequence[T], work: Callable[[T], Coroutine[Any, Any, object]], tasks: int) -> None:
    """``work`` on every one of ``items``, by at most ``tasks`` tasks pulling them from a
    bounded stream: a long list keeps them all busy, and none spawns more. A list no longer
    than ``tasks`` (an object's few fields) gets a task an item, with no stream to pay for."""
    if len(items) <= tasks:
        async with anyio.create_task_group() as tg:
            for item in items:
                tg.start_soon(work, item)
        return
    send, receive = anyio.create_memory_object_stream[T]()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pull, receive, work, min(tasks, len(items)))
        async with send:
            with contextlib.suppress(anyio.BrokenResourceError):  # the tasks stopped: their error says why
                for item in items:
                    await send.send(item)
