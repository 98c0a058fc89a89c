"""Retries in async code: errors have a budget of attempts, 429s a budget of patience and delay
only their own request, Retry-After is exact, and a lost server is named once its time is up."""

from __future__ import annotations

import email.utils
import time

import anyio
import pytest

from neptune_backup_async.engine.limiter import Gate
from neptune_backup_async.engine.retry import Retrier
from neptune_backup_async.errors import FetchError, Retry, ServerLostError, TransientError
from neptune_backup_async.remote.artifacts.s3 import _s3_error
from neptune_backup_async.remote.http import RetryPolicy, parse_retry_after

pytestmark = pytest.mark.anyio


def http(status: int, retry_after: float | None = None) -> TransientError:
    reason = Retry.THROTTLED if status == 429 else Retry.STATUS
    return TransientError(f"HTTP {status}", reason=reason, status=status, retry_after=retry_after)


def refused() -> TransientError:
    return TransientError("connection failed (ConnectionError)", reason=Retry.CONNECTION)


def slow_down() -> TransientError:
    error = _s3_error(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "s3://b/k"
    )
    assert isinstance(error, TransientError)
    return error


class Flaky:
    """Fails with the given errors, in order, then returns 'ok'. An attempt, as the Retrier runs it."""

    def __init__(self, *errors: TransientError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retrier(policy: RetryPolicy, retried: list[tuple[str, float]] | None = None) -> Retrier:
    log = retried if retried is not None else []
    return Retrier(Gate(4), policy, on_retry=lambda error, seconds: log.append((error.label, seconds)))


def test_retry_after_is_read_whole_not_by_its_first_digit() -> None:
    assert parse_retry_after("20") == 20.0  # the neptune client waits 2 s here
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(later) or 0) <= 30


async def test_errors_use_up_the_attempts_and_are_counted_by_reason() -> None:
    retried: list[tuple[str, float]] = []
    policy = RetryPolicy(attempts=3, base=0.0)
    assert await retrier(policy, retried).run(Flaky(http(503), http(502)), "a page") == "ok"
    assert [reason for reason, _ in retried] == ["HTTP 503", "HTTP 502"]
    failing = Flaky(*(http(503) for _ in range(3)))
    with pytest.raises(FetchError, match=r"^a page: gave up after 3 tries \(HTTP 503\)$") as raised:
        await retrier(policy).run(failing, "a page")
    assert type(raised.value) is FetchError and failing.calls == 3


async def test_429s_do_not_use_up_the_attempts_but_run_out_of_patience() -> None:
    retried: list[tuple[str, float]] = []
    policy = RetryPolicy(attempts=2, patience=0.1)
    many = Flaky(*(http(429, retry_after=0.0) for _ in range(50)))
    assert await retrier(policy).run(many, "a page") == "ok" and many.calls == 51
    endless = Flaky(*(http(429, retry_after=0.03) for _ in range(50)))
    with pytest.raises(FetchError, match="kept answering HTTP 429"):
        await retrier(policy, retried).run(endless, "a page")
    assert endless.calls == 4  # 0.03 s each: the fourth wait would pass the 0.1 s of patience
    assert retried == [("HTTP 429", 0.03)] * 3  # each wait is the server's Retry-After, exactly


class Highest:
    """A random source that always draws the top of the range: the backoff's bound itself."""

    def uniform(self, low: float, high: float) -> float:
        return high


async def test_a_throttle_without_retry_after_backs_off_exponentially() -> None:
    retried: list[tuple[str, float]] = []
    policy = RetryPolicy(attempts=2, base=0.001, cap=0.004, rng=Highest())  # type: ignore[arg-type]
    throttled = Flaky(*(http(429) for _ in range(4)))
    assert await retrier(policy, retried).run(throttled, "a page") == "ok"
    assert retried == [("HTTP 429", 0.001), ("HTTP 429", 0.002), ("HTTP 429", 0.004), ("HTTP 429", 0.004)]


async def test_s3_slow_down_is_a_throttle_counted_waited_out_and_narrowing_the_bound() -> None:
    retried: list[tuple[str, float]] = []
    gate = Gate(16, start=16)
    r = Retrier(gate, RetryPolicy(attempts=2, base=0.0), on_retry=lambda e, s: retried.append((e.label, s)))
    errors = [slow_down() for _ in range(3)]
    assert all(e.throttled and not e.connection_failed for e in errors)

    async def attempt() -> str:
        async with gate.slot():
            if errors:
                raise errors.pop(0)
            return "ok"

    assert await r.run(attempt, "an artifact file") == "ok"  # 3 throttles do not use up 2 tries
    assert [label for label, _ in retried] == ["S3 SlowDown"] * 3
    assert gate.limit == 4  # each retry was sent after the last cut: 16, 11, 7, 4


async def test_a_429_delays_only_the_request_that_got_it() -> None:
    events: list[str] = []
    r = retrier(RetryPolicy())

    async def throttled() -> None:
        attempt = Flaky(http(429, retry_after=0.5))
        await r.run(attempt, "throttled")
        events.append(f"throttled done after {attempt.calls} attempts")

    async def other(name: str) -> None:
        await anyio.sleep(0.05)  # after the 429
        await r.run(Flaky(), name)
        events.append(f"{name} done")

    async with anyio.create_task_group() as tg:
        tg.start_soon(throttled)
        tg.start_soon(other, "a")
        tg.start_soon(other, "b")
    assert events == ["a done", "b done", "throttled done after 2 attempts"]


async def test_a_lost_server_is_named_once_nothing_has_succeeded_for_lost_after() -> None:
    # Far more failures than attempts: while nothing succeeds, the request waits for the
    # server instead of giving up, and the backup is told the server is lost.
    # On a clock that the waits alone move forward: the server is named lost when, and only
    # when, the waits add up to lost_after, the last one cut short to end right then.
    waits: list[float] = []
    r = Retrier(
        Gate(4),
        RetryPolicy(attempts=2, base=0.01, cap=0.01, lost_after=0.05, rng=Highest()),  # type: ignore[arg-type]
        on_retry=lambda error, seconds: waits.append(seconds),
        clock=lambda: sum(waits),
    )
    failing = Flaky(*(refused() for _ in range(1000)))
    with pytest.raises(ServerLostError, match="Lost the Neptune server: no request has succeeded") as raised:
        await r.run(failing, "a page")
    assert sum(waits) == pytest.approx(0.05) and sum(waits[:-1]) < 0.05
    assert failing.calls == len(waits) + 1 > 2
    assert raised.value.exit_code == 2 and "run the same command again to resume" in str(raised.value)


async def test_a_request_whose_connection_fails_while_others_succeed_gives_up_alone() -> None:
    r = retrier(RetryPolicy(attempts=3, base=0.02, cap=0.02, lost_after=30.0))
    failing = Flaky(*(refused() for _ in range(1000)))
    done = anyio.Event()

    async def others() -> None:
        while not done.is_set():
            await r.run(Flaky(), "other")
            await anyio.sleep(0.002)

    async with anyio.create_task_group() as tg:
        tg.start_soon(others)
        with pytest.raises(FetchError, match=r"^a page: gave up after \d+ tries") as raised:
            await r.run(failing, "a page")
        done.set()
    # Its 3 tries, give or take one whose wait was too short for another request to succeed.
    assert not isinstance(raised.value, ServerLostError) and 3 <= failing.calls <= 5


async def test_a_cancel_stops_a_retry_after_wait_at_once() -> None:
    attempt = Flaky(http(429, retry_after=30.0))
    with anyio.move_on_after(0.2) as scope:
        await retrier(RetryPolicy()).run(attempt, "a page")
    assert scope.cancelled_caught and attempt.calls == 1


def test_the_gate_starts_small_and_doubles_until_the_first_429() -> None:
    gate = Gate(64)
    assert gate.limit == 8
    for _ in range(100):
        gate.completed(in_flight=3)
    assert gate.limit == 8  # a bound that does not bind does not grow
    for expected in (16, 32, 64):
        for _ in range(gate.limit):
            gate.completed(in_flight=gate.limit)
        assert gate.limit == expected
    for _ in range(200):
        gate.completed(in_flight=gate.limit)
    assert gate.limit == 64  # no more than --concurrency


def full_windows(gate: Gate, windows: int) -> list[int]:
    """Complete ``windows`` windows of requests with the bound full; the bound after each request."""
    limits = []
    for _ in range(windows):
        for _ in range(gate.limit):
            gate.completed(in_flight=gate.limit)
            limits.append(gate.limit)
    return limits


def test_the_gate_cuts_once_per_congestion_event_and_grows_back_one_per_quiet_window() -> None:
    gate = Gate(16, start=16)
    gate.congested(sent_at=0)  # a request sent when no 429 had come yet
    assert gate.limit == 11  # at once, to 70 %
    for _ in range(7):
        gate.congested(sent_at=0)  # 429s of requests sent before the cut: the same event
    assert gate.limit == 11
    for _ in range(10):
        gate.completed(in_flight=11)
    assert gate.limit == 11  # not a whole window yet
    gate.completed(in_flight=11)
    assert gate.limit == 12  # after the first cut, one per window, not doubling
    gate.congested(sent_at=1)  # a request sent after the cut: a new event
    assert gate.limit == 8
    limits = full_windows(gate, 3)
    assert gate.limit == 11 and min(limits) == 8


def test_the_gate_settles_at_the_bound_the_server_takes() -> None:
    gate = Gate(64)
    events = 0
    history = []
    for _ in range(2000):  # a server that takes 4 at once: a 5th request in flight gets a 429
        if gate.limit > 4:
            gate.congested(sent_at=events)
            events += 1
        else:
            gate.completed(in_flight=gate.limit)
        history.append(gate.limit)
    late = history[1000:]
    assert late.count(4) > 0.9 * len(late)  # at the server's bound nearly all the time...
    assert events < 20  # ...after a few 429s, ever fewer: the bound it got one at is tried less often
    assert min(late) >= 2
