"""Through the backup, from the fake's world in memory (the client is not what is tested here):
fields named to meet each other on disk are each saved losslessly, verify --deep reads each
file by its role, and a backup of format 1 is moved to format 2."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import run_here
from expect import check_series, check_simple
from memory_source import MemorySource
from neptune_backup_async import DestinationError, backup
from neptune_backup_async.disk.place import Place
from neptune_backup_async.format import layout
from neptune_backup_async.format.reader import load_previous
from neptune_backup_async.format.verify import verify
from neptune_backup_async.testing import MINIMAL, World, generate
from neptune_backup_async.testing import model as m
from neptune_backup_async.testing.generator import tiny_png

PROJECT = "workspace-0/project-0"
T0 = 1_704_067_200_000


def series(seed: int, length: int = 4) -> m.FloatSeries:
    """Values unique to each field, so that two fields sharing a file cannot pass."""
    return m.FloatSeries(tuple(m.FloatPoint(float(k), seed * 1000.0 + k, T0 + k) for k in range(length)))


def images(seed: int) -> m.ImageSeries:
    return m.ImageSeries(
        tuple(m.ImagePoint(float(k), T0 + k, f"i{k}", "", tiny_png((seed, k, 0))) for k in range(2))
    )


def artifact(root: Path, name: str, files: dict[str, bytes]) -> m.Artifact:
    entries = []
    for inner, data in files.items():
        source = root / name / inner
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        entries.append(
            m.ArtifactFile(inner, f"h-{inner}", "Local", len(data), (("file_path", source.as_uri()),))
        )
    return m.Artifact(f"hash-{name}", tuple(entries))


def adversarial(root: Path) -> dict[str, m.Value]:
    """Fields named after each other's files: case variants, our mark, our suffixes."""
    return {
        "metrics/loss": series(1),
        "metrics/Loss": series(2),
        "metrics/Loss~5082800c": series(3),  # format 1's file name of metrics/Loss beside metrics/loss
        "metrics/LOSS": series(4),
        "Metrics/acc": series(5),  # a folder that differs from "metrics" only in case
        "metrics/loss.csv": series(6),
        "metrics/x": m.File("x", "csv", b"a,b\n1,2\n"),
        "metrics/x.csv": series(7),
        "images/pred": images(1),
        "images/Pred": images(2),
        "art": artifact(
            root, "art", {"train.csv": b"not,a\nseries\n", "Train.csv": b"other\n", "m.json": b"{"}
        ),
    }


def one_run_world(root: Path) -> World:
    return generate(replace(MINIMAL, runs_per_project=1, float_series=3, parameters=2), artifact_root=root)


def run_of(world: World) -> m.Container:
    return world.project(PROJECT).containers["P0-1"]


def check_lossless(container: m.Container, folder: Path) -> None:
    """Every field of ``container`` is in ``folder`` exactly, found through the manifest, and no
    two files differ only in case."""
    manifest = json.loads((folder / layout.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == 2 and manifest["complete"] is True
    assert set(manifest["fields"]) == set(container.fields)
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert on_disk == sorted([*manifest["files"], layout.MANIFEST])
    assert len({f.casefold() for f in on_disk}) == len(on_disk)
    simple = json.loads((folder / layout.SIMPLE_METADATA).read_text(encoding="utf-8"))
    for path, value in container.fields.items():
        files = [folder / f for f in manifest["fields"][path]["files"]]
        if isinstance(value, m.ATOM_TYPES):
            check_simple(value, simple[path], path)
        elif isinstance(value, (m.FloatSeries, m.StringSeries)):
            check_series(value, files[0])
        elif isinstance(value, m.File):
            assert files[0].read_bytes() == value.data, path
        elif isinstance(value, m.ImageSeries):
            assert [f.read_bytes() for f in files[:-1]] == [i.data for i in value.images], path
            assert files[-1].name == "index.json"
        elif isinstance(value, m.Artifact):
            assert simple[path] == value.hash
            listing = json.loads(files[0].read_text(encoding="utf-8"))
            assert [f["path"] for f in listing["files"]] == [f.file_path for f in value.files]
            sources = [Path(dict(f.metadata)["file_path"].removeprefix("file://")) for f in value.files]
            assert [f.read_bytes() for f in files[1:]] == [s.read_bytes() for s in sources], path
        else:
            raise AssertionError(f"{path}: unexpected {value!r}")


@pytest.mark.anyio
async def test_fields_named_after_each_others_files_are_all_saved(tmp_path: Path) -> None:
    world = one_run_world(tmp_path / "sources")
    run_of(world).fields.update(adversarial(tmp_path / "sources"))
    dest = tmp_path / "backup"
    with MemorySource(world) as source:
        report = await backup("all", dest, source=source, download_artifacts=True)
    assert (report.exit_code, report.failures) == (0, [])
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    check_lossless(run_of(world), folder)
    files = json.loads((folder / layout.MANIFEST).read_text())["fields"]
    assert files["metrics/loss"]["files"] == ["metrics/loss.csv"]  # ordinary names keep their place
    assert files["metrics/Loss~5082800c"]["files"] == ["metrics/Loss%7E5082800c.csv"]
    assert verify(dest, deep=True).problems == []


@pytest.mark.anyio
async def test_fields_named_after_each_others_files_are_all_saved_incrementally(tmp_path: Path) -> None:
    world = one_run_world(tmp_path / "sources")
    later = adversarial(tmp_path / "sources")
    first = {k: later.pop(k) for k in ["metrics/Loss", "Metrics/acc", "metrics/x", "images/Pred", "art"]}
    run_of(world).fields.update(first)
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        await backup("all", dest, source=source, download_artifacts=True)
        assert (folder / "metrics" / "Loss.csv").is_file()  # alone, it keeps its plain name
        for path, value in [*later.items(), ("metrics/acc", series(8))]:  # now they meet
            world.set_field(PROJECT, "P0-1", path, value)
        report = await backup("all", dest, source=source, download_artifacts=True)
        assert (report.exit_code, report.failures) == (0, [])
        check_lossless(run_of(world), folder)
        assert verify(dest, deep=True).problems == []
        # A series that grows under a marked name is extended, not fetched again.
        grown = series(2, length=6)
        world.set_field(PROJECT, "P0-1", "metrics/Loss", grown)
        source.requests.clear()
        report = await backup("all", dest, source=source, download_artifacts=True)
        assert report.exit_code == 0
        assert source.requests["getFloatSeriesValues"] == 1
    check_lossless(run_of(world), folder)
    assert verify(dest, deep=True).problems == []


@pytest.mark.anyio
async def test_the_layout_refuses_two_fields_one_file_and_the_backup_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every hash made equal, two marked names meet: one field fails, loudly; none is lost."""
    monkeypatch.setattr(layout, "_digest", lambda text, length: "0" * length)
    world = one_run_world(tmp_path / "sources")
    run_of(world).fields.update({"m/loss": series(1), "m/Loss": series(2), "m/LOSS": series(3)})
    with MemorySource(world) as source:
        report = await backup("all", tmp_path / "backup", source=source)
    assert report.exit_code == 1
    [failure] = report.failures
    assert failure.field in ("m/Loss", "m/LOSS") and "would be saved as m/" in failure.reason
    folder = tmp_path / "backup" / "workspace-0" / "project-0" / "P0-1"
    manifest = json.loads((folder / layout.MANIFEST).read_text())
    for path in {"m/loss", "m/Loss", "m/LOSS"} - {failure.field}:
        check_series(run_of(world).fields[path], folder / manifest["fields"][path]["files"][0])  # type: ignore[arg-type]


def test_verify_deep_passes_a_clean_backup_with_artifacts(tmp_path: Path) -> None:
    world = generate(
        replace(MINIMAL, runs_per_project=2, artifact_files=2), artifact_root=tmp_path / "sources"
    )
    run_of(world).fields.update(
        {
            "datasets/csv": artifact(
                tmp_path / "sources", "csv", {"train.csv": b"a,b\n1,2\n", "meta.json": b"{"}
            ),
            "data/table": m.File("table", "csv", b"x;y\n"),  # a user's CSV, not a series
            "data/notes": m.File("notes", "json", b"not json"),
        }
    )
    dest = tmp_path / "backup"
    with MemorySource(world) as source:
        report = anyio.run(lambda: backup("all", dest, source=source, download_artifacts=True))
    assert report.exit_code == 0
    assert (dest / "workspace-0" / "project-0" / "P0-1" / "datasets" / "csv" / "train.csv").is_file()
    deep = run_here("verify", str(dest), "--deep")
    assert (deep.returncode, deep.stdout) == (0, "")
    # Our own files are still parsed: a damaged series CSV whose hash the manifest agrees with.
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    manifest = json.loads((folder / layout.MANIFEST).read_text())
    csv_path = folder / "metrics" / "train" / "loss.csv"
    csv_path.write_text("step,value\n")
    manifest["files"]["metrics/train/loss.csv"] = {
        "size": csv_path.stat().st_size,
        "sha256": __import__("hashlib").sha256(csv_path.read_bytes()).hexdigest(),
    }
    (folder / layout.MANIFEST).write_text(json.dumps(manifest))
    assert [str(p) for p in verify(dest, deep=True).problems] == [
        "corrupt: workspace-0/project-0/P0-1/metrics/train/loss.csv: the header is not step,value,timestamp"
    ]


# -- format 1 ---------------------------------------------------------------------------------------

# Fields whose files format 1 named differently, with those names (docs/FORMAT.md of format 1:
# "~" kept as it is, no mark for a name that meets a sibling once suffixed, case marks only on
# the last segment).
OLD_NAMES = {
    "a~b": ["a~b.csv"],
    "loss.csv": ["loss.csv.csv"],
    "Metrics/acc": ["Metrics/acc.csv"],
    "data/f~1": ["data/f~1.bin"],
    "imgs~1": ["imgs~1/0.png", "imgs~1/1.png", "imgs~1/index.json"],
    "art~x": ["art~x.artifact.json", "art~x/f~1.bin", "art~x/F~1.bin"],
}


def old_format_world(root: Path) -> World:
    world = one_run_world(root)
    run_of(world).fields.update(
        {
            "a~b": series(1),
            "loss": series(2),
            "loss.csv": series(3),
            "Metrics/acc": series(4),
            "metrics/acc2": series(5),
            "data/f~1": m.File("f~1", "bin", b"file bytes"),
            "imgs~1": images(3),
            "art~x": artifact(root, "art", {"f~1.bin": b"one", "F~1.bin": b"two"}),
        }
    )
    return world


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def write_format_1(folder: Path) -> None:
    """Turn a run folder of format 2 into what format 1 wrote for the same fields."""
    manifest = json.loads((folder / layout.MANIFEST).read_text())
    renames: dict[str, str] = {}
    for path, old_files in OLD_NAMES.items():
        new_files = manifest["fields"][path]["files"]
        assert new_files != old_files and len(new_files) == len(old_files)
        renames.update(zip(new_files, old_files, strict=True))
    for new, old in renames.items():
        (folder / old).parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder / new, folder / old)
    for new in renames:  # folders of format 2 that are left empty
        for parent in Path(new).parents:
            if str(parent) != "." and (folder / parent).is_dir() and not any((folder / parent).iterdir()):
                (folder / parent).rmdir()
    for record in manifest["fields"].values():
        record["files"] = [renames.get(f, f) for f in record["files"]]
    manifest["files"] = {renames.get(f, f): v for f, v in manifest["files"].items()}
    manifest["format"] = 1
    (folder / layout.MANIFEST).write_text(json.dumps(manifest, sort_keys=True))


@pytest.mark.anyio
async def test_a_backup_of_format_1_is_moved_to_format_2_without_fetching_again(tmp_path: Path) -> None:
    world = old_format_world(tmp_path / "sources")
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        await backup("all", dest, source=source, download_artifacts=True)
        expected = tree(folder)
        write_format_1(folder)
        assert (folder / "a~b.csv").is_file() and (folder / "art~x" / "F~1.bin").is_file()
        assert verify(dest).problems == []  # verify reads either format
        source.requests.clear()
        report = await backup("all", dest, source=source, download_artifacts=True)
        assert (report.exit_code, report.runs_unchanged) == (0, 1)
        assert source.requests["getFloatSeriesValues"] == 0
        assert source.requests["downloadAttribute"] == 0
    assert tree(folder) == expected  # the same bytes under the same names as a fresh backup
    check_lossless(run_of(world), folder)
    assert verify(dest, deep=True).problems == []


def test_a_journal_of_format_1_is_moved_too(tmp_path: Path) -> None:
    """An interrupted backup of format 1 left a journal and no manifest; its files are moved."""
    world = old_format_world(tmp_path / "sources")
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        anyio.run(lambda: backup("all", dest, source=source, download_artifacts=True))
        expected = tree(folder)
        write_format_1(folder)
        manifest = json.loads((folder / layout.MANIFEST).read_text())
        lines = [
            json.dumps({"field": p, "record": r, "files": {f: [manifest["files"][f]["size"], manifest["files"][f]["sha256"]] for f in r["files"]}})
            for p, r in manifest["fields"].items()
            if p in OLD_NAMES
        ]  # fmt: skip
        (folder / layout.JOURNAL).write_text("\n".join(lines) + "\n")
        (folder / layout.MANIFEST).unlink()
        source.requests.clear()
        report = anyio.run(lambda: backup("all", dest, source=source, download_artifacts=True))
        assert report.exit_code == 0
        assert source.requests["downloadAttribute"] == 0  # the journaled file was kept
    assert tree(folder) == expected


class Crash(Exception):
    pass


def migrate_with_a_crash(folder: Path, monkeypatch: pytest.MonkeyPatch, renames_before: int) -> bool:
    """Let a backup read ``folder``, cut short at a rename after ``renames_before`` of them; True if cut."""
    real_replace = os.replace
    left = [renames_before]

    def replace_then_crash(src: str, dst: str) -> None:
        if left[0] == 0:
            raise Crash
        left[0] -= 1
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace_then_crash)
        try:
            load_previous(Place(folder))
        except Crash:
            return True
    return False


def test_a_move_to_format_2_cut_short_anywhere_is_finished_by_the_next_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = old_format_world(tmp_path / "sources")
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        anyio.run(lambda: backup("all", dest, source=source, download_artifacts=True))
    expected = tree(folder)
    write_format_1(folder)
    old = tmp_path / "format-1"
    shutil.copytree(folder, old)
    crashes = 0
    while True:  # a crash at the first rename, the second, ... until a run needs no more
        shutil.rmtree(folder)
        shutil.copytree(old, folder)
        if not migrate_with_a_crash(folder, monkeypatch, crashes):
            break
        previous = load_previous(Place(folder))  # the next backup
        assert previous is not None and previous.manifest.format == 2
        assert tree(folder) == expected, f"after a crash at rename {crashes}"
        crashes += 1
    assert tree(folder) == expected
    assert crashes > len(OLD_NAMES)  # every file moved twice, and the plan and manifest written


@pytest.mark.anyio
async def test_a_new_field_never_overwrites_the_kept_copy_of_a_field_gone_from_neptune(
    tmp_path: Path,
) -> None:
    """metrics/Loss is deleted and metrics/loss created: the kept copy of metrics/Loss.csv is the
    same file as metrics/loss.csv on a case-insensitive disk, so the new field fails, loudly."""
    world = one_run_world(tmp_path / "sources")
    run_of(world).fields["m/Loss"] = series(1)
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        await backup("all", dest, source=source)
        world.set_field(PROJECT, "P0-1", "m/Loss", None)
        world.set_field(PROJECT, "P0-1", "m/loss", series(2))
        report = await backup("all", dest, source=source)
    assert report.exit_code == 1
    assert [(f.field, "meets 'm/Loss'" in f.reason) for f in report.failures] == [("m/loss", True)]
    check_series(series(1), folder / "m" / "Loss.csv")
    assert not (folder / "m" / "loss.csv").exists()


@pytest.mark.anyio
async def test_two_fields_that_format_1_saved_in_one_file_are_fetched_again(tmp_path: Path) -> None:
    """Format 1 saved metrics/Loss and metrics/Loss~5082800c in one file, so one value was lost:
    the move to format 2 drops both copies, and the backup fetches both again."""
    world = one_run_world(tmp_path / "sources")
    run_of(world).fields.update(
        {"metrics/loss": series(1), "metrics/Loss": series(2), "metrics/Loss~5082800c": series(3)}
    )
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        await backup("all", dest, source=source)
        manifest = json.loads((folder / layout.MANIFEST).read_text())
        shared = "metrics/Loss~5082800c.csv"  # format 1's name for both fields
        os.replace(folder / "metrics/Loss%7E5082800c.csv", folder / shared)  # the last write wins
        entry = manifest["files"].pop("metrics/Loss%7E5082800c.csv")
        manifest["files"][shared] = entry
        manifest["fields"]["metrics/Loss~5082800c"]["files"] = [shared]
        manifest["format"] = 1
        (folder / layout.MANIFEST).write_text(json.dumps(manifest))
        source.requests.clear()
        report = await backup("all", dest, source=source)
        assert (report.exit_code, report.runs_unchanged) == (0, 0)
        assert source.requests["getFloatSeriesValues"] == 2  # the two, and only them
    check_lossless(run_of(world), folder)
    assert verify(dest, deep=True).problems == []


@pytest.mark.anyio
async def test_runs_with_escaped_ids_that_are_gone_are_named_by_their_folders(tmp_path: Path) -> None:
    """A folder name that escaping leaves as it is is the run's id; any other is read from its manifest."""
    world = one_run_world(tmp_path / "sources")
    odd = ["A~B", "x" * 300, "P0-2"]
    for sys_id in odd:
        fields = {k: v for k, v in run_of(world).fields.items() if k.startswith("sys/")}
        world.add_container(PROJECT, m.Container(sys_id, "run", {**fields, "sys/id": m.String(sys_id)}))
    dest = tmp_path / "backup"
    with MemorySource(world) as source:
        await backup("all", dest, source=source)
        folders = {sys_id: layout.object_segment(sys_id) for sys_id in odd}
        assert folders["A~B"] == "A%7EB" and (dest / PROJECT / folders["x" * 300]).is_dir()
        for sys_id in odd:
            world.remove_container(PROJECT, sys_id)
        report = await backup("all", dest, source=source)
    gone = sorted(n.run for n in report.notices if n.field is None)
    assert gone == sorted(folders.values())


@pytest.mark.anyio
async def test_a_folder_of_format_1_that_cannot_be_moved_stops_the_backup_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    world = old_format_world(tmp_path / "sources")
    dest = tmp_path / "backup"
    folder = dest / "workspace-0" / "project-0" / "P0-1"
    with MemorySource(world) as source:
        await backup("all", dest, source=source, download_artifacts=True)
        write_format_1(folder)
        (folder / "art~x.artifact.json").write_text("{")  # which files the artifact holds is lost
        before = tree(folder)
        with pytest.raises(
            DestinationError, match=r"P0-1 holds a backup of format 1 that cannot be moved"
        ) as e:
            await backup("all", dest, source=source, download_artifacts=True)
    assert "Move that folder out of the backup and run the backup again." in str(e.value)
    assert tree(folder) == before  # nothing was moved
