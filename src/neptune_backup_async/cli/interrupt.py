"""Ctrl-C and stop signals on the command line: the first stops the work cleanly, a second
stops at once.

The work runs under a cancel scope that a signal receiver cancels on SIGINT, SIGTERM or
SIGHUP, so an interrupted backup unwinds as any cancelled one does: its temporaries go, and
it writes its report, whose exit code (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP) the
process then exits with. The receiver installs handlers of its own, so SIGTERM stops the
work even as PID 1 in a container, where its default action is to be ignored. A signal the
process was started ignoring stays ignored (``nohup`` means a hangup to go unheard). Requests
left running in worker threads are abandoned: the process ends without waiting for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import NoReturn, TypeVar

import anyio

from ..errors import EXIT_INTERRUPTED, Interrupted, Stop, not_ignored, stopping

T = TypeVar("T")
log = logging.getLogger("neptune_backup_async")

__all__ = ["EXIT_INTERRUPTED", "Interrupted", "exit_now", "handle_stop_signals", "run_async", "what"]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def what(signum: int) -> str:
    """``Ctrl-C``, or the name of another stop signal."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _raise(signum: int, _: FrameType | None) -> None:
    raise Interrupted(signum)


def handle_stop_signals() -> None:
    """Outside an event loop, SIGTERM and SIGHUP raise :class:`Interrupted` as Ctrl-C raises
    KeyboardInterrupt (explicitly installed: as PID 1 their default action is to be ignored),
    unless the process was started ignoring them. Called first, before any other handler."""
    for signum in not_ignored(*STOP_SIGNALS[1:]):
        signal.signal(signum, _raise)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in an event loop. The first stop signal cancels it and, once it has unwound
    (an interrupted backup writes its report), raises :class:`Interrupted`; a second one stops
    at once."""
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        return anyio.run(_interruptible, work)
    finally:
        # The event loop leaves the signals it handled at their default actions.
        with contextlib.suppress(ValueError, TypeError):  # not the main thread; none set from Python
            for signum, handler in handlers.items():
                signal.signal(signum, handler)


async def _interruptible(work: Callable[[], Awaitable[T]]) -> T:
    error: Exception | None = None
    stop = Stop()
    stopping.set(stop)  # what a cancel below stands for, for the report written on the way out
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(_cancel_on_signal, scope, stop)
            try:
                result = await work()
            except Exception as e:  # raised below as it is, not in a task group's bundle
                error = e
        tg.cancel_scope.cancel()  # the watcher
    if error is not None:
        raise error
    if scope.cancelled_caught:
        raise Interrupted(stop.exit_code - 128)
    return result


async def _cancel_on_signal(scope: anyio.CancelScope, stop: Stop) -> None:
    with contextlib.ExitStack() as stack:
        try:
            received = stack.enter_context(anyio.open_signal_receiver(*not_ignored(*STOP_SIGNALS)))
        except NotImplementedError:  # no signal handlers in this event loop: Ctrl-C raises KeyboardInterrupt
            return
        # Once the receiver is closed (the work has unwound), a second signal would find the
        # default handler while the event loop tears down: it still stops at once.
        stack.callback(_at_once_from_now_on, scope, stop)
        async for signum in received:
            if scope.cancel_called:
                _stop_at_once(signum, stop)
            log.warning("%s received: stopping (a second one stops at once)", what(signum))
            stop.exit_code = 128 + signum
            scope.cancel()


def _stop_at_once(signum: int, stop: Stop) -> NoReturn:
    log.warning("%s again: stopped at once", what(signum))
    print(
        "\nStopped at once. Finished files are kept; run the same command again to resume.", file=sys.stderr
    )
    exit_now(stop.exit_code)


def _at_once_from_now_on(scope: anyio.CancelScope, stop: Stop) -> None:
    """Once stopping, until :func:`run_async` restores the handlers it found, a stop signal
    stops at once."""
    if not scope.cancel_called:
        return
    for signum in not_ignored(*STOP_SIGNALS):
        signal.signal(signum, lambda received, _: _stop_at_once(received, stop))


def exit_now(code: int) -> NoReturn:
    """End the process without waiting for worker threads, whose requests nobody waits for any more.

    Files are written under temporary names and renamed when complete, so stopping anywhere
    leaves no damaged file under a final name. A stop signal from here on is ignored: one
    raising KeyboardInterrupt in these last steps would leave the process waiting for them.
    """
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
