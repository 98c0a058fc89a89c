"""The backup folder is input too: what a backup, ``verify`` and ``report`` read from DEST is
checked before anything acts on it. Each test builds a hostile folder on purpose, inside a
sandbox, and checks that nothing outside DEST changed, that the next backup heals what it
can, and that ``verify`` agrees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from cli_helpers import no_traceback, run_here
from neptune_backup_async import backup
from neptune_backup_async.disk.files import WrittenFile
from neptune_backup_async.format.layout import MANIFEST
from neptune_backup_async.format.manifest import FieldRecord, Manifest
from neptune_backup_async.format.reader import read_saved
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, World, generate, serve

RUN = "workspace-0/project-0/P0-1"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return generate(replace(MINIMAL, runs_per_project=2, file_size=100), artifact_root=tmp_path / "sources")


@pytest.fixture
def server(world: World) -> Iterator[FakeNeptuneServer]:
    with serve(world) as s:
        yield s


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A folder around DEST, with files of its own that no backup may touch."""
    root = tmp_path / "sandbox"
    for rel, data in (
        ("x/a.txt", b"not the backup's"),
        ("elsewhere/b.txt", b"nor this"),
        ("outside/c.txt", b"c"),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(root: Path, skip: Path) -> dict[str, str]:
    """Every file, folder and link below ``root`` but in ``skip``: its size and sha256, or where it points."""
    out = {}
    for here, folders, files in os.walk(root):
        folders[:] = [f for f in folders if Path(here, f) != skip]
        for name in [*folders, *files]:
            path = Path(here, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = f"-> {os.readlink(path)}"
            elif path.is_file():
                data = path.read_bytes()
                out[rel] = f"{len(data)} {sha256(data)}"
            else:
                out[rel] = "folder"
    return out


def back_up(server: FakeNeptuneServer, dest: Path) -> Any:
    return anyio.run(lambda: backup("all", dest, api_token=server.api_token))


def cli_backup(server: FakeNeptuneServer, dest: Path) -> Any:
    result = run_here("--projects", "all", "--output", str(dest), "--quiet", token=server.api_token)
    no_traceback(result.stderr)
    return result


def verify(dest: Path) -> Any:
    result = run_here("verify", str(dest))
    no_traceback(result.stderr)
    return result


def report(dest: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((dest / "backup-report.json").read_text())
    return doc


def notices(dest: Path) -> list[str]:
    return [f"{n['run']}: {n['reason']}" for n in report(dest)["notices"]]


def manifest(dest: Path, rel: str = RUN) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((dest / rel / ".manifest.json").read_text())
    return doc


def test_a_manifest_naming_paths_outside_its_folder_is_never_followed_and_the_next_backup_heals_it(
    server: FakeNeptuneServer, sandbox: Path
) -> None:
    dest = sandbox / "dest"
    assert cli_backup(server, dest).returncode == 0
    run = dest / RUN
    doc = manifest(dest)
    a = (run / "../../../../x/a.txt").read_bytes()
    b = sandbox / "elsewhere" / "b.txt"
    # Files of no field (the next backup used to delete them), and a field's file.
    doc["files"]["../../../../x/a.txt"] = {"size": len(a), "sha256": sha256(a)}
    doc["files"][str(b)] = {"size": len(b.read_bytes()), "sha256": sha256(b.read_bytes())}
    doc["fields"]["planted"] = {"type": "file", "status": "ok", "files": [str(b)], "ext": "txt"}
    doc["complete"] = False  # so that the next backup looks at the run again
    (run / ".manifest.json").write_text(json.dumps(doc))
    before = listing(sandbox, dest)

    checked = verify(dest)
    assert checked.returncode == 1
    assert (
        f"corrupt: {RUN}/.manifest.json: the path '../../../../x/a.txt' leaves its object folder"
        in checked.stdout
    )

    healed = cli_backup(server, dest)
    assert healed.returncode == 0, healed.stderr
    assert listing(sandbox, dest) == before
    assert any(
        n.startswith("P0-1: damaged .manifest.json: the path '../../../../x/a.txt'") for n in notices(dest)
    )
    assert "../../../../x/a.txt" not in manifest(dest)["files"]
    assert verify(dest).returncode == 0


WRONG_SHAPES = {
    "a list": lambda doc: [],
    "a string": lambda doc: "a manifest",
    "no fields": lambda doc: {k: v for k, v in doc.items() if k != "fields"},
    "a size that is text": lambda doc: {
        **doc,
        "files": {p: {**f, "size": str(f["size"])} for p, f in doc["files"].items()},
    },
    "a record that is a list": lambda doc: {**doc, "fields": {p: [r] for p, r in doc["fields"].items()}},
    "an extension that is a number": lambda doc: {
        **doc,
        "fields": {p: {**r, "ext": 7} if r["type"] == "file" else r for p, r in doc["fields"].items()},
    },
}


@pytest.mark.parametrize("shape", sorted(WRONG_SHAPES))
def test_a_manifest_of_the_wrong_shape_is_a_damaged_object_fetched_again_never_a_crash(
    server: FakeNeptuneServer, sandbox: Path, shape: str
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    expected = (dest / RUN / ".manifest.json").read_bytes()
    damaged = WRONG_SHAPES[shape](manifest(dest))
    (dest / RUN / ".manifest.json").write_text(json.dumps(damaged))
    before = listing(sandbox, dest)

    checked = verify(dest)
    assert checked.returncode == 1
    assert f"corrupt: {RUN}/.manifest.json: " in checked.stdout
    summary = run_here("report", str(dest))
    assert summary.returncode == 0, summary.stderr

    result = back_up(server, dest)
    assert result.exit_code == 0
    assert [n.run for n in result.notices] == ["P0-1"]
    assert "damaged .manifest.json" in result.notices[0].reason
    assert (dest / RUN / ".manifest.json").read_bytes() == expected
    assert listing(sandbox, dest) == before
    assert verify(dest).returncode == 0


def test_journal_lines_of_the_wrong_shape_or_naming_paths_outside_are_left_out(
    server: FakeNeptuneServer, sandbox: Path
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    run = dest / RUN
    doc = manifest(dest)
    series = next(p for p, r in doc["fields"].items() if r["type"] == "floatSeries")
    a = (sandbox / "x" / "a.txt").read_bytes()
    outside = {"type": "floatSeries", "status": "ok", "files": ["../../../../x/a.txt"], "last_step": 1.0}
    lines = [
        [],
        {"field": series, "record": "ok", "files": {}},
        # A saved field whose file is outside: the field is fetched again, and its old file was deleted.
        {
            "format": 2,
            "field": series,
            "record": outside,
            "files": {"../../../../x/a.txt": [len(a), sha256(a)]},
        },
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"field": "cut sh'
    (run / ".journal.jsonl").write_text(text)
    before = listing(sandbox, dest)

    result = back_up(server, dest)
    assert result.exit_code == 0
    reasons = [n.reason for n in result.notices]
    assert len(reasons) == 3 and all(r.startswith("damaged .journal.jsonl line ") for r in reasons)
    assert "the path '../../../../x/a.txt' leaves its object folder" in reasons[2]
    assert listing(sandbox, dest) == before
    assert not (run / ".journal.jsonl").exists()
    assert verify(dest).returncode == 0


@pytest.mark.parametrize("where", [RUN, "workspace-0/project-0"])
def test_a_file_where_a_folder_should_be_fails_each_object_below_it_with_its_path(
    server: FakeNeptuneServer, sandbox: Path, where: str
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    folder = dest / where
    shutil.rmtree(folder)
    folder.write_bytes(b"someone's file")

    result = cli_backup(server, dest)
    assert result.returncode == 1
    assert "finishes the move" not in result.stderr
    failures = report(dest)["failures"]
    below = ["P0-1"] if where == RUN else ["P0", "P0-1", "P0-2"]  # P0: the project's own fields
    assert sorted(f["run"] for f in failures) == below
    assert all(
        f["reason"].startswith(f"{folder} is a file where a folder of the backup should be.")
        for f in failures
    )
    assert report(dest)["totals"]["runs_done"] == (1 if where == RUN else 0)
    assert folder.read_bytes() == b"someone's file"


def test_a_symbolic_link_in_place_of_an_object_folder_is_not_followed(
    server: FakeNeptuneServer, sandbox: Path
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    run = dest / RUN
    os.rename(run, sandbox / "outside" / "P0-1")  # a copy outside, which the link leads to
    run.symlink_to(sandbox / "outside" / "P0-1")
    before = listing(sandbox, dest)

    result = back_up(server, dest)
    assert result.exit_code == 1
    assert [(f.run, f.reason.split(",")[0]) for f in result.failures] == [
        ("P0-1", f"{run} is a symbolic link")
    ]
    assert listing(sandbox, dest) == before
    checked = verify(dest)
    assert checked.returncode == 1
    assert f"unexpected: {RUN}: a symbolic link (to {sandbox / 'outside' / 'P0-1'})" in checked.stdout


def test_verify_reports_symbolic_links_anywhere_and_follows_none(
    server: FakeNeptuneServer, sandbox: Path
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    assert verify(dest).returncode == 0
    (dest / "loop").symlink_to("..")
    (dest / "root").symlink_to("/")
    (dest / RUN / "loop").symlink_to("..")
    (dest / RUN / "secret.txt").symlink_to(sandbox / "x" / "a.txt")
    checked = verify(dest)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert sorted(line for line in lines if "symbolic link" in line) == sorted(
        [
            f"unexpected: {RUN}/loop: a symbolic link (to ..), which a backup never writes; not followed",
            f"unexpected: {RUN}/secret.txt: a symbolic link (to {sandbox / 'x' / 'a.txt'}), which a backup never"
            " writes; not followed",
            "unexpected: loop: a symbolic link (to ..), which a backup never writes; not followed",
            "unexpected: root: a symbolic link (to /), which a backup never writes; not followed",
        ]
    )
    assert len(lines) == 4
    assert "Verified 3 objects" in checked.stderr  # two runs and the project's own fields


@pytest.mark.parametrize(
    "text", ["[]", '"a report"', '{"format": 2, "totals": [], "projects": {}, "exit_code": 0}']
)
def test_a_report_of_the_wrong_shape_is_named_never_a_crash(
    server: FakeNeptuneServer, sandbox: Path, text: str
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    (dest / "backup-report.json").write_text(text)
    summary = run_here("report", str(dest))
    no_traceback(summary.stderr)
    assert summary.returncode == 2
    assert f"error: Cannot read {dest / 'backup-report.json'} (" in summary.stderr
    assert "Run the backup again to rewrite it." in summary.stderr
    site = run_here("view", str(dest))
    no_traceback(site.stderr)
    assert site.returncode == 0, site.stderr

    assert back_up(server, dest).previous_backup is None
    assert run_here("report", str(dest)).returncode == 0


def test_a_manifest_path_that_leads_out_through_a_symbolic_link_is_damage_and_not_followed(
    server: FakeNeptuneServer, sandbox: Path
) -> None:
    dest = sandbox / "dest"
    back_up(server, dest)
    saved = sorted(p for p in manifest(dest)["files"] if "/" in p)[0]
    folder = saved.rsplit("/", 1)[0]
    os.rename(dest / RUN / folder, sandbox / "outside" / "moved")
    (dest / RUN / folder).symlink_to(sandbox / "outside" / "moved")
    checked = verify(dest)
    assert checked.returncode == 1
    assert (
        f"corrupt: {RUN}/.manifest.json: the path {saved!r} leads out of its object folder through a symbolic link"
        in checked.stdout
    )
    assert (
        f"unexpected: {RUN}/{folder}: a symbolic link (to {sandbox / 'outside' / 'moved'})" in checked.stdout
    )


@pytest.mark.parametrize(
    ("named", "damaged"),
    [
        (["real/a.csv", "inner/a.csv", "inner/a.csv"], None),  # a link that stays inside
        (["real/a.csv", "out/b.csv"], "out/b.csv"),  # a folder that leads out
        (["real/a.csv", "out.csv"], "out.csv"),  # a file that leads out
        (["inner/deeper/out.csv"], "inner/deeper/out.csv"),  # below a link that stays inside
    ],
)
def test_only_a_path_that_a_link_leads_out_of_its_object_folder_is_damage(
    tmp_path: Path, named: list[str], damaged: str | None
) -> None:
    """Links met on a manifest's paths, and only they, are resolved: one that stays in the
    object folder is no damage, one that leads out is, at any depth, once each path."""
    root, outside = tmp_path / "P0-1", tmp_path / "outside"
    (root / "real" / "deeper").mkdir(parents=True)
    outside.mkdir()
    (outside / "b.csv").write_text("b")
    (root / "inner").symlink_to(root / "real", target_is_directory=True)
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "out.csv").symlink_to(outside / "b.csv")
    (root / "real" / "deeper" / "out.csv").symlink_to(outside / "b.csv")
    written = Manifest("run", "workspace-0/project-0", "P0-1", "P0-1", None)
    for number, rel in enumerate(named):
        written.add_file(WrittenFile(rel, 1, hashlib.sha256(b"b").hexdigest()))
        written.fields[f"f{number}"] = FieldRecord("string", "ok", [rel])
    (root / MANIFEST).write_text(json.dumps(written.to_json()))
    saved = read_saved(root)
    if damaged is None:
        assert saved.damage == [] and saved.manifest is not None
    else:
        assert saved.manifest is None
        [damage] = saved.damage
        assert damage.why == f"the path {damaged!r} leads out of its object folder through a symbolic link"
