"""End to end: `neptune-backup export-parquet` writes what the server held, exactly, in
Parquet files DuckDB queries as the README shows; its exit codes are those of the others."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest

from data_world import world_and_backup
from expect import objects_of
from neptune_backup_async.cli.main import main
from neptune_backup_async.data import backup, parquet
from neptune_backup_async.data.backup import CHUNK_ROWS
from neptune_backup_async.testing import World
from neptune_backup_async.testing import model as m
from optional import need
from test_data_reader import check_objects, expected_points, key, rows_by_object

need("pandas", "data")
pa = need("pyarrow", "data")
pq = need("pyarrow.parquet", "data")
duckdb = need("duckdb", "data")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path, Path]:
    tmp = tmp_path_factory.mktemp("parquet")
    world, dest = world_and_backup(tmp)
    assert main(["export-parquet", str(dest), str(tmp / "out")]) == 0
    return world, dest, tmp / "out"


def test_objects_parquet_holds_every_atom(exported: tuple[World, Path, Path]) -> None:
    world, _, out = exported
    table = pq.read_table(out / "objects.parquet")
    assert table.schema.field("edge/when").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("edge/big_int").type == pa.int64()
    assert check_objects(world, rows_by_object(table.to_pylist())) > 100


@pytest.mark.parametrize(("kind", "series"), [("float", m.FloatSeries), ("string", m.StringSeries)])
def test_series_parquet_holds_every_point_sorted_by_object_and_path(
    exported: tuple[World, Path, Path], kind: str, series: Any
) -> None:
    world, _, out = exported
    file = pq.ParquetFile(out / f"{kind}_series.parquet")
    assert file.schema_arrow.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert file.schema_arrow.field("step").type == pa.float64()
    assert all(file.metadata.row_group(i).num_rows <= CHUNK_ROWS for i in range(file.num_row_groups))
    rows = file.read().to_pylist()
    got = [
        (
            r["project"],
            r["object_id"],
            r["path"],
            r["step"],
            r["value"],
            int(r["timestamp"].timestamp() * 1000),
        )
        for r in rows
    ]
    assert sorted(map(key, got)) == sorted(map(key, expected_points(world, series)))
    # Each series in one stretch of rows, and an object's series one after another by path.
    stretches = [k for k, _ in itertools.groupby((r["project"], r["object_id"], r["path"]) for r in rows)]
    assert len(stretches) == len(set(stretches))
    objects = [(o, [p for *_, p in paths]) for o, paths in itertools.groupby(stretches, lambda s: s[:2])]
    assert len(objects) == len({o for o, _ in objects}) > 4
    assert all(paths == sorted(paths) for _, paths in objects)


def test_row_groups_are_of_chunk_rows_across_series_and_objects(
    exported: tuple[World, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, dest, out = exported
    monkeypatch.setattr(parquet, "CHUNK_ROWS", 7)
    monkeypatch.setattr(backup, "FILE_ROWS", 5)
    assert main(["export-parquet", str(dest), str(tmp_path / "small")]) == 0
    file = pq.ParquetFile(tmp_path / "small" / "float_series.parquet")
    sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    assert set(sizes[:-1]) == {7} and 0 < sizes[-1] <= 7 and len(sizes) > 10
    # repr: NaN is a value here, equal to itself, and -0.0 not 0.0
    assert repr(file.read().to_pylist()) == repr(pq.read_table(out / "float_series.parquet").to_pylist())
    files = pq.ParquetFile(tmp_path / "small" / "files.parquet")
    assert files.num_row_groups > 10 and files.metadata.row_group(0).num_rows == 5
    assert files.read().equals(pq.read_table(out / "files.parquet"))


def test_files_parquet_lists_every_file(exported: tuple[World, Path, Path]) -> None:
    world, dest, out = exported
    rows = pq.read_table(out / "files.parquet").to_pylist()
    files = {(r["object_id"], r["path"]): r for r in rows if r["type"] == "file"}
    expected = {
        (c.sys_id, p): v.data
        for project in world.projects.values()
        for c in objects_of(project)
        for p, v in c.fields.items()
        if isinstance(v, m.File)
    }
    assert set(files) == set(expected)
    for where, data in expected.items():
        assert (dest / files[where]["file"]).read_bytes() == data
        assert files[where]["size"] == len(data)


def test_the_readme_queries_run_in_duckdb(exported: tuple[World, Path, Path]) -> None:
    world, _, out = exported
    lr_path, acc_path = (
        "parameters/optimizer/p0",
        "metrics/train/loss",
    )  # the demo's float parameter and metric
    runs = [c for p in world.projects.values() for c in objects_of(p, ("run",))]
    lr = {c.sys_id: c.fields[lr_path] for c in runs if isinstance(c.fields.get(lr_path), m.Float)}
    acc = {c.sys_id: c.fields[acc_path] for c in runs if isinstance(c.fields.get(acc_path), m.FloatSeries)}
    assert len(lr) == len(acc) == len(runs) > 2
    threshold = sorted(v.value for v in lr.values())[len(lr) // 2]
    found = duckdb.sql(
        f"""SELECT object_id, "{acc_path}" FROM '{out}/objects.parquet'
            WHERE kind = 'runs' AND "{lr_path}" < {threshold!r} ORDER BY "{acc_path}" DESC"""
    ).fetchall()
    want = sorted(
        ((i, acc[i].points[-1].value) for i, v in lr.items() if v.value < threshold), key=lambda r: -r[1]
    )
    assert found == want
    joined = duckdb.sql(
        f"""SELECT o.object_id, max(s.step) AS last_step
            FROM '{out}/float_series.parquet' s JOIN '{out}/objects.parquet' o USING (project, object_id)
            WHERE s.path = 'edge/curve' GROUP BY o.object_id"""
    ).fetchall()
    assert [last for _, last in joined] == [3.0]


def test_a_damaged_backup_exits_1_and_a_folder_not_a_backup_2(
    exported: tuple[World, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world, source, _ = exported
    dest = tmp_path / "copy"
    shutil.copytree(source, dest)
    name, project = next(iter(world.projects.items()))
    run = objects_of(project, ("run",))[0]
    (dest / name / run.sys_id / ".manifest.json").write_text("{}")
    assert main(["export-parquet", str(dest), str(tmp_path / "out")]) == 1
    assert f"skipped: {name}/{run.sys_id}: .manifest.json:" in capsys.readouterr().err
    ids = pq.read_table(tmp_path / "out" / "objects.parquet").column("object_id").to_pylist()
    assert run.sys_id not in ids and len(ids) > 0
    assert main(["export-parquet", str(tmp_path / "out"), str(tmp_path / "out2")]) == 2
    assert "is not a backup" in capsys.readouterr().err
