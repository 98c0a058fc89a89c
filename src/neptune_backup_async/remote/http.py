"""What an HTTP answer means for a retry: the statuses worth another try, how long the
server asks us to wait, and the budgets of retrying (:class:`RetryPolicy`).

Pure: the waiting itself is :mod:`..engine.retry`'s, in async code.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
from dataclasses import dataclass, field

LOST_AFTER = 30.0
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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


@dataclass
class RetryPolicy:
    """The budgets: ``attempts`` tries for errors, ``patience`` seconds of 429 waits, and
    ``lost_after`` seconds without any success while connections fail."""

    attempts: int = 8
    base: float = 0.25
    cap: float = 20.0
    patience: float = 900.0
    lost_after: float = LOST_AFTER
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's ``Retry-After``, else full-jitter exponential backoff for ``attempt`` (from 0)."""
        if retry_after is not None:
            return retry_after
        return self.rng.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 32)))
