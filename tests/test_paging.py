"""Paging a listing to its count, as a state machine fed by a table that obeys the server's cap,
hands back pages of any length, and may change while it is read."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from neptune_backup_async.domain import ObjectRef, PageRequest
from neptune_backup_async.engine.paging import MAX_RESTARTS, IncompleteListing, KeysetPager
from neptune_backup_async.errors import FetchError

Rows = list[tuple[ObjectRef, str]]


def table(times: list[str]) -> Rows:
    """Objects R-0, R-1... created at ``times``, sorted as the server sorts them."""
    return sorted(((ObjectRef(f"R-{i}", f"id-{i}"), t) for i, t in enumerate(times)), key=lambda e: e[1])


def answer(rows: Rows, request: PageRequest, most: int | None = None) -> tuple[Rows, int]:
    """What the server answers: created at or after ``after``, from ``offset``, at most ``limit``
    (and at most ``most``, for a server with a page length of its own); and their count."""
    matching = [r for r in rows if request.after is None or r[1] >= request.after]
    limit = request.limit if most is None else min(request.limit, most)
    return matching[request.offset : request.offset + limit], len(matching)


def pager(cap: int | None = 6, page: int = 4) -> KeysetPager[ObjectRef]:
    return KeysetPager("listing runs", "runs", key=lambda ref: ref.sys_id, cap=cap, page=page)


def page_through(
    rows: Rows | Callable[[int], Rows],
    pages: KeysetPager[ObjectRef],
    most: int | None = None,
    cap: int | None = 6,
) -> list[str]:
    """Every id the pager gives; ``rows`` may be a function of the request's number (a table
    that changes while it is read)."""
    listed: list[str] = []
    asked = 0
    while (request := pages.next_request()) is not None:
        assert cap is None or request.offset + request.limit <= cap  # never past the cap
        now = rows(asked) if callable(rows) else rows
        asked += 1
        entries, count = answer(now, request, most)
        listed += [ref.sys_id for ref in pages.feed(entries, count)]
    return listed


def ids(rows: Rows) -> list[str]:
    return [ref.sys_id for ref, _ in rows]


def test_every_object_once_across_windows_even_when_a_time_spans_the_boundary() -> None:
    times = ["t1", "t2", "t3", "t4", "t5", "t5", "t5", "t6", "t7", "t7", "t8", "t9", "t9", "t9"]
    rows = table(times)
    listed = page_through(rows, pager())
    assert sorted(listed) == sorted(ids(rows))
    assert len(listed) == len(set(listed))


def test_an_empty_table_takes_one_request() -> None:
    pages = pager()
    assert page_through([], pages) == [] and pages.next_request() is None


def test_the_count_ends_the_listing_without_asking_for_an_empty_page() -> None:
    rows = table([f"t{i}" for i in range(4)])
    pages, requests, listed = pager(cap=None, page=4), 0, []
    while (request := pages.next_request()) is not None:
        requests += 1
        listed += pages.feed(*answer(rows, request))
    assert requests == 1 and len(listed) == 4


def test_more_objects_of_one_time_than_a_window_holds_is_an_error_not_a_loop() -> None:
    rows = table(["t0"] + ["t1"] * 8)
    with pytest.raises(FetchError, match="more than 6 share one creation time"):
        page_through(rows, pager())


@pytest.mark.parametrize("most", [1, 2, 3])
def test_pages_shorter_than_asked_for_are_not_the_end(most: int) -> None:
    """A server that hands back at most ``most`` entries a page: every object still comes, once,
    across keyset windows too (pages of one entry leave no room for the anchor)."""
    rows = table([f"t{i:02}" for i in range(15)])
    listed = page_through(rows, pager(), most=most)
    assert listed == ids(rows)


def test_an_empty_page_before_the_count_fails_the_listing_after_giving_what_came() -> None:
    rows = table([f"t{i}" for i in range(10)])
    pages, listed = pager(cap=None, page=4), []
    request = pages.next_request()
    assert request is not None
    entries, _ = answer(rows, request)
    listed += pages.feed(entries, 10)
    request = pages.next_request()
    assert request is not None
    listed += pages.feed([], 10)  # the server stops handing out entries at 4 of its 10
    with pytest.raises(IncompleteListing, match="ended at 4 of 10 runs") as caught:
        pages.next_request()
    assert "run the same command again" in str(caught.value)
    assert [ref.sys_id for ref in listed] == ids(rows)[:4]


def test_an_empty_first_page_of_a_counted_table_fails() -> None:
    pages = pager()
    request = pages.next_request()
    assert request is not None and request.offset == 0
    assert pages.feed([], 3) == []
    with pytest.raises(IncompleteListing, match="ended at 0 of 3 runs"):
        pages.next_request()


def test_a_count_that_grows_while_listing_is_followed_to_its_new_end() -> None:
    """Runs created while the table is read come last (creation order): they are listed too."""
    rows = table([f"t{i:02}" for i in range(12)])
    listed = page_through(lambda asked: rows[: 5 + 3 * asked], pager(cap=None, page=3), cap=None)
    assert listed == ids(rows)


def test_objects_deleted_before_the_offset_neither_hide_nor_repeat_others() -> None:
    """Two runs deleted after the first page: a plain offset would skip the two that moved up.
    The anchor is missed, the listing starts again, and each survivor comes exactly once."""
    rows = table([f"t{i:02}" for i in range(10)])
    after = [r for r in rows if r[0].sys_id not in ("R-0", "R-1")]
    listed = page_through(lambda asked: rows if asked == 0 else after, pager(cap=None, page=4), cap=None)
    assert sorted(listed) == sorted(ids(rows)) and len(listed) == len(set(listed))


def test_a_delete_and_a_create_that_keep_the_count_are_still_caught() -> None:
    rows = table([f"t{i:02}" for i in range(8)])
    created = (ObjectRef("R-NEW", "id-new"), "t99")
    later = [r for r in rows if r[0].sys_id != "R-1"] + [created]
    listed = page_through(lambda asked: rows if asked == 0 else later, pager(cap=None, page=3), cap=None)
    assert sorted(listed) == sorted([*ids(rows), "R-NEW"]) and len(listed) == len(set(listed))


def test_a_count_that_shrinks_below_the_offset_starts_again_rather_than_stop() -> None:
    rows = table([f"t{i:02}" for i in range(9)])
    fewer = rows[:1] + rows[7:]  # six gone: three left, and the anchor's place (3) is past them
    listed = page_through(lambda asked: rows if asked == 0 else fewer, pager(cap=None, page=4), cap=None)
    assert listed == ids(rows[:4] + rows[7:])


def test_a_table_that_keeps_changing_fails_rather_than_loop() -> None:
    rows = table([f"t{i:02}" for i in range(40)])

    def churning(asked: int) -> Rows:
        return rows[asked:]  # one more of the oldest gone before every request

    with pytest.raises(IncompleteListing, match=f"changed {MAX_RESTARTS + 1} times"):
        page_through(churning, pager(cap=None, page=4), cap=None)


def test_a_listing_without_a_cap_has_no_windows() -> None:
    names = [(f"ws/p{i}", None) for i in range(7)]
    pages = KeysetPager[str]("listing projects", "projects", key=str, cap=None, page=3)
    listed: list[str] = []
    while (request := pages.next_request()) is not None:
        assert request.after is None
        listed += pages.feed(names[request.offset : request.offset + 2], len(names))
    assert listed == [name for name, _ in names]
