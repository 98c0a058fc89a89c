"""Ctrl-C on the command line: the first stops the work cleanly, a second stops at once.

The work runs under a cancel scope that a signal receiver cancels on SIGINT, so an
interrupted backup unwinds as any cancelled one does (and writes its report). Requests
left running in worker threads are abandoned: the process ends without waiting for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import anyio

T = TypeVar("T")
log = logging.getLogger("neptune_backup_async")

EXIT_INTERRUPTED = 130


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in an event loop. The first Ctrl-C cancels it and, once it has unwound (an
    interrupted backup writes its report), raises KeyboardInterrupt; a second one stops at once."""
    return anyio.run(_interruptible, work)


async def _interruptible(work: Callable[[], Awaitable[T]]) -> T:
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(_cancel_on_ctrl_c, scope)
            try:
                result = await work()
            except Exception as e:  # raised below as it is, not in a task group's bundle
                error = e
        tg.cancel_scope.cancel()  # the watcher
    if error is not None:
        raise error
    if scope.cancelled_caught:
        raise KeyboardInterrupt
    return result


async def _cancel_on_ctrl_c(scope: anyio.CancelScope) -> None:
    with contextlib.ExitStack() as stack:
        try:
            received = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT))
        except NotImplementedError:  # no signal handlers in this event loop: Ctrl-C raises KeyboardInterrupt
            return
        async for _ in received:
            if scope.cancel_called:
                log.warning("interrupted again by Ctrl-C: stopped at once")
                print(
                    "\nStopped at once. Finished files are kept; run the same command again to resume.",
                    file=sys.stderr,
                )
                exit_now(EXIT_INTERRUPTED)
            scope.cancel()


def exit_now(code: int) -> NoReturn:
    """End the process without waiting for worker threads, whose requests nobody waits for any more.

    Files are written under temporary names and renamed when complete, so stopping anywhere
    leaves no damaged file under a final name.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
