"""When and how long to retry a Neptune request.

Full-jitter exponential backoff, except that a server's ``Retry-After`` is honoured
exactly (the ``neptune`` client reads only its first digit). A 429 pauses every worker,
not just the one that saw it, through a shared :class:`Throttle`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TransientError(Exception):
    """A failure worth trying again: a retryable status, a dropped or cut connection."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Throttle:
    """A pause shared by every thread: after a 429 nobody sends until it has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    def wait(self) -> None:
        while (left := self.remaining()) > 0:
            time.sleep(left)


@dataclass
class RetryPolicy:
    """Errors (5xx, dropped connections) get ``attempts`` tries; 429s are waited out for up to ``patience`` seconds.

    A 429 says "not now" rather than "failed", so it does not use up the error budget.
    """

    attempts: int = 8
    base: float = 0.25
    cap: float = 20.0
    patience: float = 900.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    on_retry: Callable[[str], None] | None = field(default=None, repr=False)  # told why, before each retry

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return self.rng.uniform(0, min(self.cap, self.base * 2**attempt))

    def call(self, fn: Callable[[], T], throttle: Throttle | None = None) -> T:
        """Run ``fn`` until it succeeds, raises a non-transient error, or the budgets run out."""
        errors = 0
        waited = 0.0  # on 429s
        while True:
            if throttle is not None:
                throttle.wait()
            try:
                return fn()
            except TransientError as e:
                if e.status == 429:
                    wait = self.delay(min(errors, 6), e.retry_after)
                    waited += wait
                    if waited > self.patience:
                        raise
                    if self.on_retry is not None:
                        self.on_retry(str(e))
                    if throttle is not None:
                        throttle.pause(wait)
                    else:
                        time.sleep(wait)
                    continue
                errors += 1
                if errors >= self.attempts:
                    raise
                if self.on_retry is not None:
                    self.on_retry(str(e))
                time.sleep(self.delay(errors - 1, e.retry_after))
