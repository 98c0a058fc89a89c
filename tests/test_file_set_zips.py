"""End to end: a file set's zip that the server takes long to build.

Neptune builds the zip on request and says where to download it once it is built. One
backup waits for it only so long; its request is kept in ``DEST/.neptune-backup/`` so that
the next backup polls the same request instead of asking anew (which would start the build
over, and never end for a zip that always takes longer than one backup waits). What is kept
there is read as hostile input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.engine import file_sets
from neptune_backup_async.format.verify import verify
from neptune_backup_async.remote.http import RetryPolicy
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, generate, serve
from neptune_backup_async.testing.model import FileSet, World

pytestmark = pytest.mark.anyio

PROJECT = "workspace-0/project-0"
PREPARE = "prepareForDownloadFileSetAttributeZip"  # POST .../downloadFileSetZipRequest
POLL = "getDownloadPrepareRequest"
NEVER = 10**9  # polls before a zip is built: not in this test's life
QUICK = RetryPolicy(attempts=2, base=0.0, cap=0.0)


def _world() -> World:
    return generate(replace(MINIMAL, runs_per_project=1, file_set_files=3))


def _kept(dest: Path) -> list[Path]:
    folder = dest / ".neptune-backup" / "zip-requests"
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def _timed_out(server: FakeNeptuneServer, dest: Path) -> None:
    """A backup during which the zip is not built: it fails the field, and keeps the request."""
    server.faults.zip_polls = NEVER
    report = await backup("all", dest, api_token=server.api_token)
    [failure] = report.failures
    assert report.exit_code == 1 and failure.field == "source_code/files"
    assert "did not prepare the zip" in failure.reason and "the same zip" in failure.reason
    server.faults.zip_polls = 0  # built now
    assert len(_kept(dest)) == 1


@pytest.fixture(autouse=True)
def _short_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_sets, "ZIP_PATIENCE", 0.5)


async def test_a_zip_built_in_a_few_polls_is_waited_for(tmp_path: Path) -> None:
    world = _world()
    with serve(world) as server:
        server.faults.zip_polls = 2
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    assert (asked[PREPARE], asked[POLL]) == (1, 3)
    assert check_backup(world, tmp_path) == 2
    assert _kept(tmp_path) == []  # saved: nothing left to go on with


async def test_the_next_backup_polls_the_request_one_that_timed_out_made(tmp_path: Path) -> None:
    world = _world()
    with serve(world) as server:
        await _timed_out(server, tmp_path)
        polled = server.stats.by_operation[POLL]
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    assert asked[PREPARE] == 1  # one request, over both backups
    assert asked[POLL] == polled + 1
    assert check_backup(world, tmp_path) == 2
    assert _kept(tmp_path) == []
    assert verify(tmp_path, deep=True).problems == []


def _edit(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        doc = json.loads(path.read_text(encoding="utf-8"))
        changed = change(doc)
        path.write_text(json.dumps(doc if changed is None else changed), encoding="utf-8")

    return edit


HOSTILE: dict[str, Callable[[Path], None]] = {
    "not json": lambda p: p.write_bytes(b"\x00{not json"),
    "a list": _edit(lambda doc: [doc]),
    "an id naming a path": _edit(lambda doc: doc.update(request="../../../etc/passwd")),
    "an id too long": _edit(lambda doc: doc.update(request="a" * 1000)),
    "an id not a string": _edit(lambda doc: doc.update(request=7)),
    "another object's": _edit(lambda doc: doc.update(object="someone-else")),
    "a size of another type": _edit(lambda doc: doc.update(size=str(doc["size"]))),
    "an id the server does not know": _edit(lambda doc: doc.update(request="no-such-request")),
}


@pytest.mark.parametrize("spoil", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_kept_request_is_checked_before_it_is_used(
    tmp_path: Path, spoil: Callable[[Path], None]
) -> None:
    world = _world()
    with serve(world) as server:
        await _timed_out(server, tmp_path)
        [kept] = _kept(tmp_path)
        spoil(kept)
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    assert asked[PREPARE] == 2  # asked anew
    assert check_backup(world, tmp_path) == 2
    assert _kept(tmp_path) == []


async def test_a_file_set_changed_since_its_request_is_asked_for_anew(tmp_path: Path) -> None:
    world = _world()
    [run] = world.project(PROJECT).runs
    with serve(world) as server:
        await _timed_out(server, tmp_path)
        files = FileSet((("src/new.py", b"NEW = 1\n"),))
        world.set_field(PROJECT, run.sys_id, "source_code/files", files)
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    assert asked[PREPARE] == 2  # the old request would give the old files
    assert check_backup(world, tmp_path) == 2


async def test_a_zip_that_fails_to_download_is_asked_for_anew_next_time(tmp_path: Path) -> None:
    world = _world()
    with serve(world) as server:
        server.faults.always("downloadFileSetZip", "not_zip")
        report = await backup("all", tmp_path, api_token=server.api_token, retry=QUICK)
        assert report.exit_code == 1 and "not a zip" in report.failures[0].reason
        assert _kept(tmp_path) == []  # that request's zip is no good
        server.faults.clear()
        again = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation
    assert (again.exit_code, again.failures) == (0, [])
    assert asked[PREPARE] == 2
    assert check_backup(world, tmp_path) == 2
