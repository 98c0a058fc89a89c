"""`export-parquet` again into the same OUT: only the series whose CSV changed since the last
export are read, the others copied from its Parquet files, and the files are those a fresh
export writes. An export cut short leaves each file whole: the old one, or the new one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from neptune_backup_async import backup
from neptune_backup_async.data import BackupDataWarning, export_parquet, open_backup
from neptune_backup_async.data import parquet as export
from neptune_backup_async.testing import MINIMAL, World, generate, serve
from neptune_backup_async.testing import model as m
from optional import need

pa = need("pyarrow", "data")
pq = need("pyarrow.parquet", "data")

SPEC = replace(MINIMAL, runs_per_project=3, float_series=2, float_series_length=40, string_series=1)
NAMES = export.NAMES
PROJECT = "workspace-0/project-0"
GROWN = ("P0-2", "metrics/train/loss")


def _backup(world: World, dest: Path) -> None:
    with serve(world) as server:
        report = anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=2))
    assert report.exit_code == 0, report.failures


def _grow(world: World) -> None:
    run, path = GROWN
    old = world.project(PROJECT).containers[run].fields[path]
    assert isinstance(old, m.FloatSeries)
    more = tuple(m.FloatPoint(float(s), s / 7, 1_800_000_000_000 + s) for s in range(1000, 1003))
    world.set_field(PROJECT, run, path, m.FloatSeries(old.points + more))


def _same(a: Path, b: Path) -> None:
    for name in NAMES:
        assert pq.read_table(a / name).equals(pq.read_table(b / name)), name


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[World, Path, Path, int]:
    """A backup exported once: the world, DEST, OUT and how many series it has. Row groups of
    7 rows: a series copied from the last export spans several, and shares them with others."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 7)
    world = generate(SPEC)
    dest, out = tmp_path / "backup", tmp_path / "out"
    _backup(world, dest)
    first = export_parquet(open_backup(dest), out)
    assert first.reused == 0 and first.read == 3 * (2 + 1)  # every series of every run, read
    return world, dest, out, first.read


def test_a_rerun_after_one_grown_series_reads_only_its_csv_and_writes_what_a_fresh_export_does(
    exported: tuple[World, Path, Path, int], tmp_path: Path
) -> None:
    world, dest, out, series = exported
    _grow(world)
    _backup(world, dest)
    again = export_parquet(open_backup(dest), out)
    assert (again.read, again.reused) == (1, series - 1)
    fresh = export_parquet(open_backup(dest), tmp_path / "fresh")
    assert fresh.read == series
    _same(out, tmp_path / "fresh")
    rows = pq.read_table(out / "float_series.parquet").to_pylist()
    grown = [r["step"] for r in rows if (r["object_id"], r["path"]) == GROWN]
    assert grown[-3:] == [1000.0, 1001.0, 1002.0]
    nothing = export_parquet(open_backup(dest), out)  # nothing changed: no CSV read at all
    assert (nothing.read, nothing.reused) == (0, series)
    _same(out, tmp_path / "fresh")


def test_an_export_cut_short_leaves_whole_files_and_the_next_one_trusts_only_what_it_wrote(
    exported: tuple[World, Path, Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, dest, out, series = exported
    _grow(world)
    _backup(world, dest)
    before = {name: (out / name).read_bytes() for name in (*NAMES, export.STATE)}
    write = export._write

    def cut(out: Path, name: str, tables: Iterable[object], schema: object) -> int:
        """Stops the export after one row group of the string series: the float series file
        is in place by then, the state is not."""

        def one_then_stop() -> Iterator[object]:
            yield next(iter(tables))
            raise KeyboardInterrupt

        return write(out, name, one_then_stop() if name == "string_series.parquet" else tables, schema)

    monkeypatch.setattr(export, "_write", cut)
    with pytest.raises(KeyboardInterrupt):
        export_parquet(open_backup(dest), out)
    assert sorted(p.name for p in out.iterdir()) == sorted((*NAMES, export.STATE))  # no temporary left
    killed = out / ".float_series.parquet.4242-0.partial"  # as a SIGKILL would leave it
    killed.write_bytes(b"PAR1 half")
    assert (out / "float_series.parquet").read_bytes() != before["float_series.parquet"]
    for name in ("string_series.parquet", export.STATE):
        assert (out / name).read_bytes() == before[name], name
    monkeypatch.setattr(export, "_write", write)
    again = export_parquet(open_backup(dest), out)
    # The state does not name the new float series file: all its series are read again.
    assert (again.read, again.reused) == (3 * 2, series - 3 * 2)
    assert not killed.exists()
    export_parquet(open_backup(dest), tmp_path / "fresh")
    _same(out, tmp_path / "fresh")


def test_a_series_file_that_is_not_the_one_the_state_names_is_not_copied_from(
    exported: tuple[World, Path, Path, int], tmp_path: Path
) -> None:
    _, dest, out, series = exported
    export_parquet(open_backup(dest), tmp_path / "other")
    (tmp_path / "other" / "string_series.parquet").replace(out / "string_series.parquet")
    again = export_parquet(open_backup(dest), out)
    assert (again.read, again.reused) == (3, series - 3)


def test_a_damaged_state_costs_csv_reads_not_a_wrong_file(
    exported: tuple[World, Path, Path, int], tmp_path: Path
) -> None:
    _, dest, out, series = exported
    lines = (out / export.STATE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + series
    # Cut short in the 4th entry: the three before are trusted, the rest read again.
    (out / export.STATE).write_text("\n".join([*lines[:4], lines[4][:20]]), encoding="utf-8")
    again = export_parquet(open_backup(dest), out)
    assert (again.read, again.reused) == (series - 3, 3)
    export_parquet(open_backup(dest), tmp_path / "fresh")
    _same(out, tmp_path / "fresh")


def test_a_manifest_damaged_after_the_backup_was_opened_is_warned_of_and_not_ok(
    exported: tuple[World, Path, Path, int],
) -> None:
    _, dest, _, _ = exported
    opened = open_backup(dest)
    (dest / PROJECT / "P0-2" / ".manifest.json").write_text("{}")
    with pytest.warns(
        BackupDataWarning, match="ok=False: workspace-0/project-0/P0-2: its manifest no longer reads"
    ):
        rows = {r["object_id"]: r for r in opened.objects_table().to_pylist()}
    assert rows["P0-2"]["ok"] is False and rows["P0-2"]["metrics/train/loss"] is None
    assert rows["P0-1"]["ok"] is True and rows["P0-1"]["metrics/train/loss"] is not None
