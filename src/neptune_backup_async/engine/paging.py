"""Paging a runs table to its end, each object once: a state machine with no I/O.

The table is sorted by creation time, ascending. Offset paging stops at the server's cap
(offset + limit may not pass 10,000); from there a keyset filter on
``sys/creation_time >= last`` starts a new window. Only objects created at that very time
can come twice, so only their ids are remembered and dropped: objects created in the same
millisecond are neither lost nor repeated, and memory does not grow with the table.
"""

from __future__ import annotations

from ..domain import ObjectRef, PageRequest
from ..errors import FetchError

MAX_TABLE_OFFSET = 10_000
TABLE_PAGE = 1_000


class KeysetPager:
    """Ask :meth:`next_request` what to fetch, :meth:`feed` it the answer; None means done."""

    def __init__(self, what: str, *, cap: int = MAX_TABLE_OFFSET, page: int = TABLE_PAGE) -> None:
        self._what = what
        self._cap = cap
        self._page = page
        self._after: str | None = None
        self._boundary: set[str] = set()  # ids created at `_after`, listed in the previous window
        self._done = False
        self._new_window()

    def _new_window(self) -> None:
        self._offset = 0
        self._window_new = 0
        self._last_time: str | None = None
        self._tail: set[str] = set()  # ids created at `_last_time`

    def next_request(self) -> PageRequest | None:
        if self._done:
            return None
        return PageRequest(self._after, self._offset, min(self._page, self._cap - self._offset))

    def feed(self, entries: list[tuple[ObjectRef, str | None]]) -> list[ObjectRef]:
        """The objects of an answer (object, creation time) not listed before."""
        request = self.next_request()
        assert request is not None, "fed after the last page"
        batch: list[ObjectRef] = []
        for ref, created in entries:
            if created != self._last_time:
                self._last_time, self._tail = created, set()
            self._tail.add(ref.sys_id)
            if created != self._after or ref.sys_id not in self._boundary:
                batch.append(ref)
        self._window_new += len(batch)
        if len(entries) < request.limit:
            self._done = True
            return batch
        self._offset += len(entries)
        if self._offset >= self._cap:
            if self._window_new == 0 or self._last_time is None:
                raise FetchError(
                    f"{self._what}: more than {self._cap} share one creation time, so the table"
                    " cannot be paged past them"
                )
            self._after, self._boundary = self._last_time, self._tail
            self._new_window()
        return batch
