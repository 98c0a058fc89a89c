"""Paging a listing to its end, each entry once, checked against the server's count: a state
machine with no I/O.

A listing (the runs table, models, versions, the projects list) is read by offset, in pages
of whatever length the server hands back: a page shorter than asked for is not the end.
The end is the count the server gives with every page (``matchingItemCount``), reached or
passed. Fed a page with nothing new while its count says there is more, the listing fails
("ended at N of M"): a backup that misses entries must say so, never pass for complete.

Offsets shift when entries before them go (deleted, trashed) or come (restored) while the
listing is read, which would skip entries unseen. So each page after the first starts one
entry early, at the last entry of the page before (the anchor): if it is not there, the
listing starts again from the top, and the entries already given are dropped. A list that
keeps changing under it fails after :data:`MAX_RESTARTS` tries. (A server that hands out
one entry a page leaves no room for the anchor: that listing goes on by plain offsets.)

The runs table is sorted by creation time, ascending, and offset paging stops at the
server's cap (offset + limit may not pass 10,000); from there a keyset filter on
``sys/creation_time >= last`` starts a new window. Only objects created at that very time
can come twice, and the ids given in the window are remembered to drop them, so memory is
bounded by a window, not the table. Objects created in the same millisecond are neither
lost nor repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from ..domain import PageRequest
from ..errors import FetchError

MAX_TABLE_OFFSET = 10_000
TABLE_PAGE = 1_000
MAX_RESTARTS = 5

T = TypeVar("T")


class IncompleteListing(FetchError):
    """A listing could not be read to its end: what it gave is only part of it."""


class KeysetPager(Generic[T]):
    """Ask :meth:`next_request` what to fetch, :meth:`feed` it the answer; None means done,
    and :class:`IncompleteListing` that the listing cannot be completed (the entries given
    until then stay given).

    ``key`` names an entry (its sys id, a project's name). Without ``cap`` the listing has no
    offset limit and needs no creation times (the projects list).
    """

    def __init__(
        self,
        what: str,
        noun: str,
        key: Callable[[T], str],
        *,
        cap: int | None = MAX_TABLE_OFFSET,
        page: int = TABLE_PAGE,
    ) -> None:
        self._what = what
        self._noun = noun
        self._key = key
        self._cap = cap
        self._page = page
        self._after: str | None = None
        self._seen: set[str] = set()  # keys given in this window, and those of its boundary time
        self._given = 0  # entries given in all
        self._restarts = 0
        self._plain = False  # pages of one entry: no room for an anchor
        self._done = False
        self._failure: IncompleteListing | None = None
        self._new_window()

    def _new_window(self) -> None:
        self._offset = 0  # where the next entry is, in this window's listing
        self._anchor: str | None = None  # the key of the entry just before it
        self._window_new = 0
        self._before = self._given - len(self._seen)  # given in earlier windows, and not in this one
        self._last_time: str | None = None
        self._tail: set[str] = set()  # keys created at `_last_time`

    def next_request(self) -> PageRequest | None:
        if self._failure is not None:
            raise self._failure
        if self._done:
            return None
        start = self._offset - 1 if self._anchor is not None and not self._plain else self._offset
        room = self._page if self._cap is None else min(self._page, self._cap - start)
        return PageRequest(self._after, start, room)

    def feed(self, entries: Sequence[tuple[T, str | None]], matching: int) -> list[T]:
        """The entries (with their creation times) of an answer not given before; ``matching``
        is the count the answer gave."""
        request = self.next_request()
        assert request is not None, "fed after the last page"
        keys = [self._key(entry) for entry, _ in entries]
        anchored = request.offset < self._offset
        # The anchor is gone from its place, or the list shrank below it (an empty page while the
        # count still covers the anchor is a server that stops short, not a shift).
        shifted = anchored and (keys[0] != self._anchor if keys else matching < self._offset)
        batch: list[T] = []
        for (entry, created), key in zip(entries, keys, strict=True):
            if created != self._last_time:
                self._last_time, self._tail = created, set()
            self._tail.add(key)
            if key not in self._seen:
                self._seen.add(key)
                batch.append(entry)
        self._given += len(batch)
        self._window_new += len(batch)
        if shifted:
            self._restart()
            return batch
        reached = request.offset + len(entries)
        fresh = reached - self._offset  # entries past the anchor
        self._offset, self._anchor = reached, keys[-1] if keys else None
        if reached >= matching:
            self._done = True
        elif anchored and len(keys) == 1:  # the server hands out one entry a page: page on without anchors
            self._plain = True
        elif fresh <= 0:
            self._failure = IncompleteListing(
                f"the listing ended at {self._given} of {self._before + matching} {self._noun}: Neptune"
                " sent no more, short of its own count; run the same command again"
            )
        elif self._cap is not None and reached >= self._cap:
            if self._window_new == 0 or self._last_time is None:
                self._failure = IncompleteListing(
                    f"{self._what}: more than {self._cap} share one creation time, so the table"
                    " cannot be paged past them"
                )
            else:
                self._after, self._seen = self._last_time, self._tail
                self._new_window()
        return batch

    def _restart(self) -> None:
        """The listing moved under the offset: read this window again from its top."""
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            self._failure = IncompleteListing(
                f"the {self._noun} changed {self._restarts} times while they were listed (some were"
                f" deleted or restored meanwhile); {self._given} were listed; run the same command again"
            )
        self._offset, self._anchor = 0, None
