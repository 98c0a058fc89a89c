"""Keyset paging of the runs table, as a state machine fed by a table that obeys the server's cap."""

from __future__ import annotations

import pytest

from neptune_backup_async.domain import ObjectRef, PageRequest
from neptune_backup_async.engine.paging import KeysetPager
from neptune_backup_async.errors import FetchError


def table(times: list[str]) -> list[tuple[ObjectRef, str]]:
    """Objects R-0, R-1... created at ``times``, sorted as the server sorts them."""
    return sorted(((ObjectRef(f"R-{i}", f"id-{i}"), t) for i, t in enumerate(times)), key=lambda e: e[1])


def answer(rows: list[tuple[ObjectRef, str]], request: PageRequest) -> list[tuple[ObjectRef, str]]:
    """What the server answers: created at or after ``after``, from ``offset``, at most ``limit``."""
    matching = [r for r in rows if request.after is None or r[1] >= request.after]
    return matching[request.offset : request.offset + request.limit]


def page_through(rows: list[tuple[ObjectRef, str]], pager: KeysetPager) -> list[str]:
    listed = []
    while (request := pager.next_request()) is not None:
        assert request.offset + request.limit <= 6  # never past the cap
        listed += [ref.sys_id for ref in pager.feed(answer(rows, request))]
    return listed


def test_every_object_once_across_windows_even_when_a_time_spans_the_boundary() -> None:
    times = ["t1", "t2", "t3", "t4", "t5", "t5", "t5", "t6", "t7", "t7", "t8", "t9", "t9", "t9"]
    rows = table(times)
    listed = page_through(rows, KeysetPager("listing runs", cap=6, page=4))
    assert sorted(listed) == sorted(ref.sys_id for ref, _ in rows)
    assert len(listed) == len(set(listed))


def test_an_empty_table_takes_one_request() -> None:
    pager = KeysetPager("listing runs", cap=6, page=4)
    assert page_through([], pager) == [] and pager.next_request() is None


def test_more_objects_of_one_time_than_a_window_holds_is_an_error_not_a_loop() -> None:
    rows = table(["t0"] + ["t1"] * 8)
    with pytest.raises(FetchError, match="more than 6 share one creation time"):
        page_through(rows, KeysetPager("listing runs", cap=6, page=4))
