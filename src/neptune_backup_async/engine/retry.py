"""When and how long to retry a Neptune request, and the async loop that does it.

Every wait is here, in async code (``anyio.sleep``), never in a worker thread: a worker
thread makes one attempt of one request and returns or raises. So a cancel stops every
backoff and ``Retry-After`` wait at once, and no abandoned thread sends anything later.

- Errors (5xx, dropped connections, garbled answers) get ``attempts`` tries, with
  full-jitter exponential backoff.
- A throttle (a 429, or S3's SlowDown) says "not now" rather than "failed": the request
  that got it waits the server's ``Retry-After``, read whole (the ``neptune`` client reads
  only its first digit), or without one backs off as errors do, for up to ``patience``
  seconds in all, without using up its tries. Other requests go on; the
  :class:`~.limiter.Gate` lowers the bound instead.
- A lost server is named fast: when connections fail and no request has succeeded for
  ``lost_after`` seconds, :class:`~.errors.ServerLostError` stops the backup. Until then a
  request whose connection fails does not give up while nothing else succeeds either: its
  failure says nothing about it, only about the server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ..errors import FetchError, HttpStatusError, MalformedAnswerError, ServerLostError, TransientError
from ..remote.http import RetryPolicy
from .limiter import Gate

T = TypeVar("T")


class Retrier:
    """Runs requests to the end: each attempt under the gate, every wait between them here.

    ``on_retry(error, seconds)`` hears of every retry: the error it follows, and how long it
    waits first.
    """

    def __init__(
        self,
        gate: Gate,
        policy: RetryPolicy | None = None,
        *,
        on_retry: Callable[[TransientError, float], None] = lambda error, seconds: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gate = gate
        self.policy = policy or RetryPolicy()
        self._on_retry = on_retry
        self._clock = clock
        self._last_success = clock()

    def alive(self) -> None:
        """Note that the server answered: a request, or a chunk of a download, came through."""
        self._last_success = self._clock()

    async def call(self, fn: Callable[..., T], *args: object, what: str) -> T:
        """``fn(*args)`` (one blocking request) in a worker thread, retried until it succeeds."""
        return await self.run(lambda: self.gate.call(fn, *args), what)

    async def run(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        """``attempt()`` until it succeeds, raises a non-transient error, or a budget runs out.

        A :class:`TransientError` that uses up the budget becomes a :class:`FetchError` that
        names ``what``.
        """
        policy = self.policy
        errors = 0
        throttles = 0
        waited = 0.0  # on throttles
        failed_at: float | None = None  # when this request's connection last failed
        while True:
            try:
                result = await attempt()
            except TransientError as e:
                now = self._clock()
                if e.throttled:
                    self.alive()  # an answer, if not the one hoped for
                    wait = policy.delay(throttles, e.retry_after)
                    throttles += 1
                    waited += wait
                    if waited > policy.patience:
                        raise FetchError(
                            f"{what}: the server kept answering {e.label} (too many requests) for"
                            f" {waited:.0f} s; run the same command again later"
                        ) from None
                else:
                    errors += 1
                    wait = policy.delay(errors - 1, e.retry_after)
                    # While nothing else succeeds either, a failing connection is the server's
                    # fault, not this request's: it waits for the server rather than giving up.
                    blamed = failed_at is None or self._last_success > failed_at
                    if e.connection_failed:
                        failed_at = now
                        silent = now - self._last_success
                        if silent >= policy.lost_after:
                            raise ServerLostError(
                                f"Lost the Neptune server: no request has succeeded for {policy.lost_after:g} s and"
                                f" connections fail ({e}). Everything finished so far is kept; run the"
                                " same command again to resume."
                            ) from None
                        # Wake in time to name a lost server when its deadline comes.
                        wait = min(wait, policy.lost_after - silent)
                    if errors >= policy.attempts and blamed:
                        raise FetchError(f"{what}: gave up after {errors} tries ({e})") from None
                self._on_retry(e, wait)
                await anyio.sleep(wait)
            except (HttpStatusError, MalformedAnswerError):  # an answer, if a useless one
                self.alive()
                raise
            else:
                self.alive()
                return result
