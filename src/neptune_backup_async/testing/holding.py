"""Requests held in the server, so that a test meets the client at a point it chooses rather
than one the timing of a busy machine gives: with many requests in flight at once
(:class:`Gather`), or stopped after a number of requests (:class:`Hold`).

Switched on through :class:`~.server.Faults` (``gather``, ``hold``); start-up operations are
never held. A request is held after it is counted in flight, before it is answered, and
:meth:`~.server.FakeNeptuneServer.stop` lets every held request go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Gather:
    """Hold requests of ``operations`` (of every operation when None) until ``count`` requests
    are in flight at once; then let them all go, and hold no more.

    A client that can have ``count`` requests in flight is so seen with that many, however
    slowly a busy machine lets it send them. One that has fewer in flight (its bound still
    growing, or fewer requests left) sends no more while they are held: once ``quiet``
    seconds pass without a new request, the held ones go on (one more of :attr:`rounds`), and
    gathering starts over with the next request.
    """

    def __init__(self, count: int, operations: Iterable[str] | None = None, quiet: float = 1.0) -> None:
        self.count = count
        self.operations = None if operations is None else frozenset(operations)
        self.quiet = quiet
        self.rounds = 0
        self._changed = threading.Condition()
        self._arrivals = 0
        self._done = False

    @property
    def reached(self) -> bool:
        """Whether ``count`` requests were in flight at once (or the server stopped)."""
        with self._changed:
            return self._done

    def arrive(self, operation: str, in_flight: int) -> None:
        """A request of ``operation`` arrives with ``in_flight`` requests in flight, itself
        among them; return when it may be answered."""
        with self._changed:
            self._arrivals += 1
            self._done = self._done or in_flight >= self.count
            self._changed.notify_all()
            if self.operations is not None and operation not in self.operations:
                return
            started = self.rounds
            while not self._done and self.rounds == started:
                arrivals = self._arrivals
                self._changed.wait(self.quiet)
                if (self._arrivals, self._done, self.rounds) == (arrivals, False, started):
                    self.rounds += 1  # nothing new came: the client sends no more until these go
                    self._changed.notify_all()

    def release(self) -> None:
        """Let every held request go, and hold no more."""
        with self._changed:
            self._done = True
            self._changed.notify_all()


class Hold:
    """Let ``after`` requests through, then hold every later one until :meth:`release`: the
    client stands still after exactly that many requests (to be killed there, say).

    :attr:`reached` is set once a request is held.
    """

    def __init__(self, after: int = 0) -> None:
        self.reached = threading.Event()
        self._left = after
        self._released = False
        self._changed = threading.Condition()

    def arrive(self) -> None:
        """A request arrives; return when it may be answered."""
        with self._changed:
            if self._released:
                return
            if self._left > 0:
                self._left -= 1
                return
            self.reached.set()
            while not self._released:
                self._changed.wait()

    def release(self) -> None:
        """Let every held request go, and hold no more."""
        with self._changed:
            self._released = True
            self._changed.notify_all()
