"""The retry policy: errors have a budget of attempts, 429s a budget of patience, Retry-After is exact."""

from __future__ import annotations

import email.utils
import time

import pytest

from neptune_backup_async.pipeline import Gate
from neptune_backup_async.retry import RetryPolicy, Throttle, TransientError, parse_retry_after


class Flaky:
    """Fails with the given errors, in order, then returns 'ok'."""

    def __init__(self, *errors: TransientError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_after_is_read_whole_not_by_its_first_digit() -> None:
    assert parse_retry_after("20") == 20.0  # the neptune client waits 2 s here
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(later) or 0) <= 30


def test_errors_use_up_the_attempts() -> None:
    policy = RetryPolicy(attempts=3, base=0.0)
    assert policy.call(Flaky(TransientError("503", status=503), TransientError("503", status=503))) == "ok"
    failing = Flaky(*(TransientError("503", status=503) for _ in range(3)))
    with pytest.raises(TransientError):
        policy.call(failing)
    assert failing.calls == 3


def test_429s_do_not_use_up_the_attempts_but_run_out_of_patience() -> None:
    policy = RetryPolicy(attempts=2, patience=1.0)
    many = Flaky(*(TransientError("429", status=429, retry_after=0.0) for _ in range(50)))
    assert policy.call(many) == "ok" and many.calls == 51
    endless = Flaky(*(TransientError("429", status=429, retry_after=0.3) for _ in range(50)))
    with pytest.raises(TransientError):
        policy.call(endless)
    assert endless.calls == 4  # 0.3 s each: the fourth wait would pass the 1 s of patience


def test_a_429_pauses_every_thread_through_the_throttle() -> None:
    clock = [100.0]
    throttle = Throttle(clock=lambda: clock[0])
    throttle.pause(5.0)
    assert throttle.remaining() == 5.0
    clock[0] += 4.0
    assert throttle.remaining() == 1.0
    throttle.pause(0.5)  # a shorter pause never shortens a longer one
    assert throttle.remaining() == 1.0


def test_the_gate_halves_at_the_first_429_and_grows_back_one_per_quiet_window() -> None:
    refused = [0]
    gate = Gate(16, lambda: refused[0])
    limits = []

    def complete(n: int, new_429s: int = 0) -> None:
        for _ in range(n):
            refused[0] += new_429s
            gate.observe()
            limits.append(gate.limit)

    complete(20)
    assert gate.limit == 16  # nothing to grow into
    complete(1, new_429s=1)
    assert gate.limit == 8  # at once, not at the end of a window
    complete(7, new_429s=1)  # 429s of requests sent before the cut: no second cut...
    assert gate.limit == 8
    complete(1)  # ...and no growth after that window either
    assert gate.limit == 8
    complete(8)  # a quiet window
    assert gate.limit == 9
    complete(1, new_429s=1)  # a new 429 after the grace window cuts again
    assert gate.limit == 4
    complete(4 + 4 + 5 + 6)  # the grace window, then quiet windows of 4, 5 and 6
    assert gate.limit == 7
    assert min(limits) == 4 and all(1 <= x <= 16 for x in limits)
