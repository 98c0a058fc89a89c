"""A backup never writes through a symbolic link, nor outside its folder (issue 22).

Each attack is built on purpose: a link planted in the backup folder (DEST) that points to a
folder outside it, or a path that climbs out. The backup must refuse, with an error naming
the path and saying what to do, and nothing outside DEST may change: no file written,
created, appended to or deleted there (each test compares a listing of it, with sizes and
sha256, before and after).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path, PurePosixPath

import anyio
import pytest

from cli_helpers import no_traceback, run_here
from neptune_backup_async.disk.files import (
    AtomicFile,
    Journal,
    ThreadFile,
    WrittenFile,
    write_file,
    write_whole,
)
from neptune_backup_async.disk.place import Place, UnsafePath
from neptune_backup_async.domain import ArtifactFileInfo, Download, FieldInfo, FieldType
from neptune_backup_async.errors import DamagedError, DestinationError
from neptune_backup_async.format import migration
from neptune_backup_async.format.manifest import FieldRecord, Manifest
from neptune_backup_async.format.object_folder import RunFolder
from neptune_backup_async.format.reader import Previous
from neptune_backup_async.format.report import BackupReport
from neptune_backup_async.remote.artifacts.files import PARTIAL_DIR, ArtifactFiles
from neptune_backup_async.testing import MINIMAL, generate, serve

RUN = PurePosixPath("workspace-0/project-0/P0-1")


def listing(folder: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry below ``folder``: its kind, and a file's size and sha256 (a link's target)."""
    out: dict[str, tuple[str, int, str]] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            out[rel] = ("folder", 0, "")
        else:
            data = path.read_bytes()
            out[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """DEST, and a folder outside it holding a file, a folder and its file."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (outside / "run").mkdir(parents=True)
    (outside / "run" / "old.png").write_bytes(b"an old image, outside")
    (outside / "secret.txt").write_text("not the backup's\n")
    dest.mkdir()
    return dest, outside


def refused(raised: pytest.ExceptionInfo[DestinationError], link: Path) -> None:
    message = str(raised.value)
    assert message.startswith(f"{link} is a symbolic link"), message
    assert "Remove the link" in message and "run the same command again" in message


def run_folder(dest: Path, previous: Previous | None = None) -> RunFolder:
    report = BackupReport(str(dest), dt.datetime.now(dt.timezone.utc))
    manifest = Manifest("run", "workspace-0/project-0", "P0-1", "P0-1", None)
    return RunFolder(Place(dest, RUN), manifest, previous, report, lambda n: None, lambda p, r: None)


# -- a journal that is a link -----------------------------------------------------------------


@pytest.mark.parametrize("target", ["secret.txt", "missing.txt"], ids=["to a file", "to nothing"])
def test_a_journal_that_is_a_link_is_refused_not_appended_to(sandbox: tuple[Path, Path], target: str) -> None:
    dest, outside = sandbox
    (dest / RUN).mkdir(parents=True)
    journal = dest / RUN / ".journal.jsonl"
    journal.symlink_to(outside / target)
    before = listing(outside)

    async def main() -> None:
        folder = run_folder(dest)
        try:
            await folder.saved(FieldInfo("a", FieldType.FILE), [], {})
        finally:
            await folder.close()

    with pytest.raises(DestinationError) as raised:
        anyio.run(main)
    refused(raised, journal)
    assert listing(outside) == before  # no line appended, no file created
    assert journal.is_symlink()


# -- an object folder that is a link ----------------------------------------------------------


def test_no_writer_writes_into_an_object_folder_that_is_a_link(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    (dest / RUN).parent.mkdir(parents=True)
    (dest / RUN).symlink_to(outside / "run", target_is_directory=True)
    place = Place(dest, RUN)
    before = listing(outside)

    with pytest.raises(DestinationError) as raised:
        write_whole(place, PurePosixPath("simple_metadata.json"), b"{}")
    refused(raised, dest / RUN)
    with pytest.raises(DestinationError) as raised:
        ThreadFile(place, PurePosixPath("metrics/loss.csv")).write(b"step,value\n")
    refused(raised, dest / RUN)
    with pytest.raises(DestinationError) as raised:
        anyio.run(lambda: write_file(place, PurePosixPath("index.json"), b"[]"))
    refused(raised, dest / RUN)

    async def stream() -> None:
        async with AtomicFile(place, PurePosixPath("files/model.bin")) as out:
            await out.write(b"weights")

    with pytest.raises(DestinationError) as raised:
        anyio.run(stream)
    refused(raised, dest / RUN)
    with pytest.raises(DestinationError) as raised:
        Journal(place, PurePosixPath(".journal.jsonl")).append(b"{}\n")
    refused(raised, dest / RUN)

    async def commit() -> None:  # the manifest and simple_metadata.json of a run
        folder = run_folder(dest)
        folder.keep_simple(FieldInfo("sys/name", FieldType.STRING, "x"), "x")
        await folder.commit({"sys/name"}, {"sys/name"})

    with pytest.raises(DestinationError) as raised:
        anyio.run(commit)
    refused(raised, dest / RUN)
    assert listing(outside) == before


def test_a_link_deeper_in_an_object_folder_is_refused_too(sandbox: tuple[Path, Path]) -> None:
    """A folder of fields that is a link, several levels below DEST."""
    dest, outside = sandbox
    (dest / RUN).mkdir(parents=True)
    (dest / RUN / "images").symlink_to(outside / "run", target_is_directory=True)
    before = listing(outside)
    with pytest.raises(DestinationError) as raised:
        write_whole(Place(dest, RUN), PurePosixPath("images/deeper/0.png"), b"png")
    refused(raised, dest / RUN / "images")
    assert listing(outside) == before


def test_a_file_that_is_a_link_is_replaced_not_written_through(sandbox: tuple[Path, Path]) -> None:
    """A link in a file's own place is not followed: the new file takes the link's place."""
    dest, outside = sandbox
    (dest / RUN).mkdir(parents=True)
    (dest / RUN / "loss.csv").symlink_to(outside / "secret.txt")
    before = listing(outside)
    write_whole(Place(dest, RUN), PurePosixPath("loss.csv"), b"step,value\n")
    assert not (dest / RUN / "loss.csv").is_symlink()
    assert (dest / RUN / "loss.csv").read_bytes() == b"step,value\n"
    assert listing(outside) == before


def test_the_tidy_step_deletes_nothing_through_a_link(sandbox: tuple[Path, Path]) -> None:
    """The earlier backup named a file in a folder that is now a link to outside; the field
    has no image now: the commit, which deletes the files the new manifest no longer names,
    refuses instead."""
    dest, outside = sandbox
    (dest / RUN).mkdir(parents=True)
    (dest / RUN / "images").symlink_to(outside / "run", target_is_directory=True)
    old = Manifest("run", "workspace-0/project-0", "P0-1", "P0-1", None)
    old.fields["images"] = FieldRecord("imageSeries", "ok", ["images/old.png"])
    old.add_file(WrittenFile("images/old.png", 21, hashlib.sha256(b"an old image, outside").hexdigest()))
    before = listing(outside)

    async def commit() -> None:
        folder = run_folder(dest, Previous(old, set()))
        try:
            await folder.saved(FieldInfo("images", FieldType.IMAGE_SERIES), [], {"count": 0})
            await folder.commit({"images"}, {"images"})
        finally:
            await folder.close()

    with pytest.raises(DestinationError) as raised:
        anyio.run(commit)
    refused(raised, dest / RUN / "images")
    assert listing(outside) == before
    assert (outside / "run" / "old.png").exists()


# -- a folder a place checked, then removed or moved -------------------------------------------


def test_a_folder_removed_then_planted_as_a_link_is_checked_again(sandbox: tuple[Path, Path]) -> None:
    """A place remembers the folders it checked; the tidy step's rmdir makes it forget them, so
    a link planted where one was is refused (by the places made from it too)."""
    dest, outside = sandbox
    place = Place(dest, RUN)
    write_whole(place, PurePosixPath("images/deeper/0.png"), b"png")
    place.unlink("images/deeper/0.png")
    place.rmdir("images/deeper")
    place.rmdir("images")
    (dest / RUN / "images").symlink_to(outside / "run", target_is_directory=True)
    before = listing(outside)
    with pytest.raises(DestinationError) as raised:
        write_whole(place, PurePosixPath("images/1.png"), b"png")
    refused(raised, dest / RUN / "images")
    with pytest.raises(DestinationError) as raised:
        write_whole(place / "images", PurePosixPath("2.png"), b"png")
    refused(raised, dest / RUN / "images")
    assert listing(outside) == before


def test_a_link_renamed_into_a_checked_folders_place_is_refused(sandbox: tuple[Path, Path]) -> None:
    """A rename of a folder or a link (a planted migration plan moves what it names) makes a
    place forget what it checked: a link moved where a checked folder was is not followed."""
    dest, outside = sandbox
    place = Place(dest, RUN)
    write_whole(place, PurePosixPath("a/0.png"), b"png")
    (dest / RUN / "link").symlink_to(outside / "run", target_is_directory=True)
    place.replace("a", place, "b")
    place.replace("link", place, "a")
    before = listing(outside)
    with pytest.raises(DestinationError) as raised:
        write_whole(place, PurePosixPath("a/1.png"), b"png")
    refused(raised, dest / RUN / "a")
    assert listing(outside) == before
    assert (dest / RUN / "b" / "0.png").read_bytes() == b"png"


# -- a partial-downloads folder that is a link ------------------------------------------------


@pytest.mark.parametrize("linked", [PARTIAL_DIR, PARTIAL_DIR.parent], ids=["partial", ".neptune-backup"])
def test_artifact_downloads_never_go_through_a_linked_partial_folder(
    sandbox: tuple[Path, Path], linked: PurePosixPath
) -> None:
    dest, outside = sandbox
    (dest / linked).parent.mkdir(parents=True, exist_ok=True)
    (dest / linked).symlink_to(outside / "run", target_is_directory=True)
    source = outside / "source.bin"  # the tracked file, read (not written) by the download
    source.write_bytes(b"artifact bytes")
    info = ArtifactFileInfo(
        "data/source.bin",
        hashlib.sha1(b"artifact bytes").hexdigest(),
        "File",
        14,
        {"file_path": f"file://{source}"},
    )
    before = listing(outside)
    files = ArtifactFiles(dest)
    try:
        fetch = files.fetch(info, Place(dest, RUN), PurePosixPath("artifacts/data/source.bin"))
        with pytest.raises(DestinationError) as raised:
            fetch.open()
        refused(raised, dest / linked)

        async def save() -> None:  # nor does a sink, given a body all the same
            async with fetch.sink(Download(iter([]))) as out:
                await out.write(b"artifact bytes")

        with pytest.raises(DestinationError) as raised:
            anyio.run(save)
        refused(raised, dest / linked)
    finally:
        files.close()
    assert listing(outside) == before
    assert not (dest / RUN / "artifacts").exists()


# -- paths that climb out ---------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["../outside/escape.txt", "a/../../outside/escape.txt"])
def test_a_path_that_climbs_out_is_refused_loudly(sandbox: tuple[Path, Path], rel: str) -> None:
    dest, outside = sandbox
    before = listing(outside)
    with pytest.raises(UnsafePath, match="would leave the backup folder"):
        write_whole(Place(dest), PurePosixPath(rel), b"x")
    with pytest.raises(UnsafePath):
        Place(dest, rel)
    with pytest.raises(UnsafePath):
        Place(dest) / rel
    with pytest.raises(UnsafePath):
        Place(dest).unlink(f"{rel}/../secret.txt")
    assert listing(outside) == before
    assert listing(dest) == {}


def test_an_absolute_path_is_refused_loudly(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    before = listing(outside)
    for write in (
        lambda: write_whole(Place(dest), PurePosixPath(outside / "escape.txt"), b"x"),
        lambda: ThreadFile(Place(dest), PurePosixPath(outside / "escape.txt")).write(b"x"),
        lambda: Journal(Place(dest), PurePosixPath(outside / "secret.txt")).append(b"x"),
        lambda: Place(dest).unlink(outside / "secret.txt"),  # type: ignore[arg-type]
    ):
        with pytest.raises(UnsafePath, match="would leave the backup folder"):
            write()
    assert listing(outside) == before


def test_a_migration_plan_that_names_a_path_outside_is_refused(sandbox: tuple[Path, Path]) -> None:
    """A format-1 move is carried out from the plan on disk, name by name; a name that climbs
    out (a damaged or planted plan) moves nothing."""
    dest, outside = sandbox
    (dest / RUN).mkdir(parents=True)
    plan = {"moves": [["../../../../outside/secret.txt", "stolen.txt"]], "staged": False}
    (dest / RUN / ".migration.json").write_text(json.dumps(plan))
    before = listing(outside)
    with pytest.raises(DamagedError, match="leaves its object folder"):
        migration.finish(Place(dest, RUN))
    assert listing(outside) == before
    assert not (dest / RUN / "stolen.txt").exists()


# -- the same, end to end: the command line against the fake server ----------------------------


@pytest.mark.parametrize("planted", ["journal", "partial folder", "log folder"])
def test_a_backup_refuses_a_planted_link_with_exit_2_and_changes_nothing_outside(
    tmp_path: Path, planted: str
) -> None:
    world = generate(replace(MINIMAL, artifact_files=2), artifact_root=tmp_path / "sources")
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (outside / "run").mkdir(parents=True)
    (outside / "secret.txt").write_text("not the backup's\n")
    if planted == "journal":
        link, target = dest / RUN / ".journal.jsonl", outside / "secret.txt"
        (dest / RUN).mkdir(parents=True)
    elif planted == "partial folder":
        link, target = dest / PARTIAL_DIR, outside / "run"
        link.parent.mkdir(parents=True)
    else:  # where the log and the partial downloads go
        link, target = dest / PARTIAL_DIR.parent, outside / "run"
        dest.mkdir()
    link.symlink_to(target)
    before = listing(outside)
    with serve(world) as server:
        args = ["--projects", "all", "--output", str(dest), "--quiet", "--download-artifacts"]
        result = run_here(*args, token=server.api_token)
    assert result.returncode == 2, result.stderr
    no_traceback(result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {link} is a symbolic link"), line
    assert "Remove the link" in line
    assert listing(outside) == before
    assert link.is_symlink()


def test_a_linked_run_folder_fails_that_run_alone_and_changes_nothing_outside(tmp_path: Path) -> None:
    """A run folder that is a link is not followed: that run fails, naming the link, and the
    rest of the backup is saved (exit 1, as for any failed object)."""
    world = generate(MINIMAL)
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    (outside / "run").mkdir(parents=True)
    (dest / RUN).parent.mkdir(parents=True)
    (dest / RUN).symlink_to(outside / "run")
    before = listing(outside)
    with serve(world) as server:
        result = run_here("--projects", "all", "--output", str(dest), "--quiet", token=server.api_token)
    assert result.returncode == 1, result.stderr
    no_traceback(result.stderr)
    assert f"{dest / RUN} is a symbolic link, which a backup never writes" in result.stderr
    report = json.loads((dest / "backup-report.json").read_text())
    assert [(f["run"], f["field"]) for f in report["failures"]] == [(RUN.name, None)]
    project = report["projects"]["workspace-0/project-0"]
    assert (project["runs_failed"], project["runs_done"]) == (1, project["runs_found"] - 1)
    assert project["runs_found"] > 1
    assert listing(outside) == before
    assert (dest / RUN).is_symlink()
