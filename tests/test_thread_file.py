"""Files written from worker threads: a series page is fetched, formatted and written in its
request's thread, and a thread that outlives its cancel never touches the disk again. The
same writer, driven from async code, streams downloads (under the limiter it is given) and,
in its resume mode, keeps a partial download across tries."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from pathlib import Path, PurePosixPath

import anyio
import pytest

from neptune_backup_async import backup
from neptune_backup_async.disk.files import (
    TEMP_SUFFIX,
    Abandoned,
    AtomicFile,
    Resume,
    ThreadFile,
    thread_file,
)
from neptune_backup_async.disk.place import Place
from neptune_backup_async.domain import FieldInfo, ObjectRef, SeriesPage
from neptune_backup_async.remote.neptune.client import connect
from neptune_backup_async.testing import MINIMAL, generate, serve


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{TEMP_SUFFIX}")]


def test_a_thread_file_takes_its_name_only_when_committed(tmp_path: Path) -> None:
    out = ThreadFile(Place(tmp_path), PurePosixPath("a/b.csv"))
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
    out = ThreadFile(Place(tmp_path), PurePosixPath("a.csv"))
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
    out = ThreadFile(Place(tmp_path), PurePosixPath("a.csv"))
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
        async with thread_file(Place(tmp_path), PurePosixPath("x.csv")) as out:
            await anyio.to_thread.run_sync(out.write, b"data")
            raise RuntimeError("the server lied")
    assert list(tmp_path.iterdir()) == []
    async with thread_file(Place(tmp_path), PurePosixPath("x.csv")) as out:
        await anyio.to_thread.run_sync(out.write, b"data")
        await anyio.to_thread.run_sync(out.commit)
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_a_thread_file_given_up_before_its_first_write_never_creates_anything(tmp_path: Path) -> None:
    out = ThreadFile(Place(tmp_path), PurePosixPath("metrics/a.csv"))
    out.abort()
    for late in (lambda: out.write(b"late"), out.reset, out.commit):
        with pytest.raises(Abandoned):
            late()
    assert list(tmp_path.iterdir()) == []  # not even its folder


def test_a_vet_that_refuses_keeps_the_file_from_its_name(tmp_path: Path) -> None:
    def vet(out: ThreadFile) -> None:
        assert out.size == 4 and out.sha256 == hashlib.sha256(b"half").hexdigest()
        raise ValueError("not what was promised")

    out = ThreadFile(Place(tmp_path), PurePosixPath("a.bin"), vet=vet)
    out.write(b"half")
    with pytest.raises(ValueError):
        out.commit()
    out.abort()
    assert list(tmp_path.iterdir()) == []


def resumed(tmp_path: Path, held: bytes) -> Resume:
    """The resume mode over ``held``, kept in ``partial/k.part`` by an earlier try."""
    (tmp_path / "partial").mkdir(exist_ok=True)
    (tmp_path / "partial" / "k.part").write_bytes(held)
    hashes = {"sha256": hashlib.sha256(held), "md5": hashlib.md5(held)}
    return Resume(Place(tmp_path, "partial"), PurePosixPath("k.part"), len(held), hashes)


def test_a_resumed_file_goes_on_from_the_bytes_held_and_keeps_them_when_given_up(tmp_path: Path) -> None:
    out = ThreadFile(Place(tmp_path, "run"), PurePosixPath("files/a.bin"), resume=resumed(tmp_path, b"held "))
    out.write(b"more ")
    out.abort()  # a cut download: the bytes stay for the next try
    assert (tmp_path / "partial" / "k.part").read_bytes() == b"held more "
    with pytest.raises(Abandoned):
        out.write(b"late")
    assert (tmp_path / "partial" / "k.part").read_bytes() == b"held more "

    again = ThreadFile(
        Place(tmp_path, "run"), PurePosixPath("files/a.bin"), resume=resumed(tmp_path, b"held more ")
    )
    again.write(b"and the rest")
    written = again.commit()
    whole = b"held more and the rest"
    assert (tmp_path / "run" / "files" / "a.bin").read_bytes() == whole
    assert written.size == len(whole) and written.sha256 == hashlib.sha256(whole).hexdigest()
    assert again.hashes["md5"].hexdigest() == hashlib.md5(whole).hexdigest()  # every digest it was given
    assert not (tmp_path / "partial" / "k.part").exists() and temporaries(tmp_path) == []


def test_an_atomic_file_commits_on_a_clean_way_out_and_leaves_nothing_on_a_failure(tmp_path: Path) -> None:
    counted: list[int] = []

    async def main() -> None:
        with pytest.raises(RuntimeError):
            async with AtomicFile(Place(tmp_path), PurePosixPath("f/x.bin"), on_bytes=counted.append) as out:
                await out.write(b"abc")
                raise RuntimeError("cut off")
        assert temporaries(tmp_path) == [] and not (tmp_path / "f" / "x.bin").exists()
        async with AtomicFile(Place(tmp_path), PurePosixPath("f/x.bin"), on_bytes=counted.append) as out:
            await out.write(b"abc")
            await out.write(b"def")
        assert out.result is not None and out.result.size == 6

    anyio.run(main)
    assert (tmp_path / "f" / "x.bin").read_bytes() == b"abcdef"
    assert counted == [3, 3, 3] and temporaries(tmp_path) == []


def test_an_atomic_file_writes_only_under_the_limiter_it_is_given(tmp_path: Path) -> None:
    """With the limiter's one token held elsewhere, a write waits; it goes on once it is free."""

    async def main() -> None:
        limiter = anyio.CapacityLimiter(1)
        done = anyio.Event()

        async def write() -> None:
            async with AtomicFile(Place(tmp_path), PurePosixPath("x.bin"), limiter=limiter) as out:
                await out.write(b"data")
            done.set()

        async with anyio.create_task_group() as tg:
            await limiter.acquire()
            tg.start_soon(write)
            await anyio.wait_all_tasks_blocked()
            assert limiter.statistics().tasks_waiting == 1 and list(tmp_path.iterdir()) == []
            limiter.release()
            await done.wait()

    anyio.run(main)
    assert (tmp_path / "x.bin").read_bytes() == b"data"


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
