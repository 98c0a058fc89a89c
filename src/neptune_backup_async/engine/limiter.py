"""The one bound on concurrency: Neptune requests in flight, adapted to what the server takes.

It works like TCP's congestion window. It starts at :data:`START` requests in flight and
doubles each window of completed requests (a window is as many requests as the bound) up to
``--concurrency``; only requests completed while the bound was full count, as a bound that
does not bind says nothing about the server. A 429 on a request sent after the last cut is a
new congestion event: the bound drops to :data:`DECREASE` of itself, once; 429s of requests
sent before that cut are the same event and change nothing. After the first cut the bound
grows by one per window without a 429, except that it tries the bound that got the last 429
again only after :data:`PROBE` quiet windows, twice as many each time that bound is refused
again. The request that got the 429 waits its ``Retry-After`` alone (:mod:`.retry`); every
other worker goes on. Behind a server that takes N requests at once the bound settles at N,
with ever rarer probes above it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio

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
        # Threads run only inside a request token, so this never binds; it exists because
        # anyio's default thread limiter (40) would cap a larger --concurrency.
        self._threads = anyio.CapacityLimiter(concurrency)
        self._events = 0  # congestion events so far
        self._ceiling = concurrency  # the bound at the last congestion event
        self._probe = PROBE  # quiet windows before trying that bound again
        self._window = 0  # requests completed since the bound last changed

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
        """Let the bound grow up to ``concurrency`` from now on (a share of ``--concurrency``
        another process handed over); it grows there as it always does, window by window."""
        self.concurrency = concurrency
        self._threads.total_tokens = concurrency

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

    def _resize(self, limit: int) -> None:
        self._window = 0
        if limit != self.limit:
            log.debug("requests in flight: at most %d", limit)
            self.requests.total_tokens = limit

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in a worker thread; the caller must hold a request token.

        A cancel returns at once and abandons the thread, which runs ``fn`` to its end: what
        ``fn`` writes must go through a :class:`~.store.ThreadFile`, which refuses every
        write once its owner has given it up."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._threads, abandon_on_cancel=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """One attempt of one Neptune request, in a thread, under the bound."""
        async with self.slot():
            return await self.thread(fn, *args)
