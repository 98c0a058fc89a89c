"""Files written from worker threads: a series page is fetched, formatted and written in its
request's thread, and a thread that outlives its cancel never touches the disk again."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from pathlib import Path, PurePosixPath

import anyio
import pytest

from neptune_backup_async import backup
from neptune_backup_async.disk.files import TEMP_SUFFIX, Abandoned, ThreadFile, thread_file
from neptune_backup_async.domain import FieldInfo, ObjectRef, SeriesPage
from neptune_backup_async.remote.neptune.client import connect
from neptune_backup_async.testing import MINIMAL, generate, serve


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{TEMP_SUFFIX}")]


def test_a_thread_file_takes_its_name_only_when_committed(tmp_path: Path) -> None:
    out = ThreadFile(tmp_path, PurePosixPath("a/b.csv"))
    assert not (tmp_path / "a").exists()  # created by the first write, not before
    out.write(b"step,", b"value\n")
    out.write(b"1,2\n")
    assert not (tmp_path / "a" / "b.csv").exists()
    assert temporaries(tmp_path) == [out.temp]
    written = out.commit()
    assert (tmp_path / "a" / "b.csv").read_bytes() == b"step,value\n1,2\n"
    assert written.size == 15 and written.sha256 == hashlib.sha256(b"step,value\n1,2\n").hexdigest()
    assert temporaries(tmp_path) == []


def test_a_thread_file_given_up_refuses_every_later_call(tmp_path: Path) -> None:
    out = ThreadFile(tmp_path, PurePosixPath("a.csv"))
    out.write(b"half")
    out.abort()
    assert temporaries(tmp_path) == []
    # What an abandoned thread would do next: nothing of it reaches the disk.
    for late in (lambda: out.write(b"more"), out.reset, out.commit):
        with pytest.raises(Abandoned):
            late()
    assert list(tmp_path.iterdir()) == []


def test_an_abort_waits_for_a_write_in_progress(tmp_path: Path) -> None:
    """A call that holds the file when the abort comes finishes first; the abort then removes it all."""
    out = ThreadFile(tmp_path, PurePosixPath("a.csv"))
    out.write(b"x" * 10)
    aborter = threading.Thread(target=out.abort)
    with out._lock:  # as a write in another thread holds it
        aborter.start()
        aborter.join(0.2)
        assert aborter.is_alive() and out.temp.exists()
    aborter.join(10)
    assert not aborter.is_alive() and temporaries(tmp_path) == []


@pytest.mark.anyio
async def test_thread_file_aborts_unless_committed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        async with thread_file(tmp_path, PurePosixPath("x.csv")) as out:
            await anyio.to_thread.run_sync(out.write, b"data")
            raise RuntimeError("the server lied")
    assert list(tmp_path.iterdir()) == []
    async with thread_file(tmp_path, PurePosixPath("x.csv")) as out:
        await anyio.to_thread.run_sync(out.write, b"data")
        await anyio.to_thread.run_sync(out.commit)
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


@pytest.mark.parametrize("held_page", [0, 1], ids=["first page", "second page"])
def test_a_page_answered_after_its_cancel_writes_nothing(tmp_path: Path, held_page: int) -> None:
    """The backup is cancelled while series pages are in flight; their worker threads are
    abandoned, and get their answers only after the cancel (and the abort of their files).
    Held on its first page, a series has no file yet: the late answer must not create one.
    Held on its second, the first page's rows are in a temporary file the cancel removed:
    the late answer must not bring it back, nor rename anything into place."""
    world = generate(replace(MINIMAL, runs_per_project=2, float_series=2, float_series_length=30))
    dest = tmp_path / "dest"
    with serve(world) as server:
        source = anyio.run(connect, server.api_token)
        source.series_page_limit = 10  # three pages a series
        real = source.series_page
        held, release = threading.Event(), threading.Event()
        threads: list[threading.Thread] = []
        answered: list[int] = []

        def series_page(run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage:
            if offset == held_page * limit:
                threads.append(threading.current_thread())
                if len(threads) == 4:  # every series of both runs waits here
                    held.set()
                release.wait(30)
            page = real(run, field, offset, limit)
            answered.append(len(page.points))
            return page

        source.series_page = series_page  # type: ignore[method-assign]

        async def main() -> None:
            with anyio.fail_after(60):  # a guard against hanging, not a speed check
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: backup("all", dest, api_token=server.api_token, source=source))
                    await anyio.to_thread.run_sync(held.wait, 30)
                    if held_page:  # the first page of each series is on disk, under a temporary name
                        assert len([p for p in temporaries(dest) if ".csv." in p.name]) == 4
                    tg.cancel_scope.cancel()

        try:
            anyio.run(main)
            assert temporaries(dest) == []
            release.set()
            # The event loop has ended, so each worker thread stops once its page is handled.
            for thread in threads:
                thread.join(30)
                assert not thread.is_alive()
        finally:
            release.set()
            source.close()
    assert answered[-4:] == [10, 10, 10, 10]  # each late page came, with its points
    assert temporaries(dest) == []
    assert list(dest.rglob("*.csv")) == []
