"""End to end: a backup of the fake server, read with open_backup(), gives back every atom,
series point and file the server held, exactly, in pandas and in polars."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from data_world import world_and_backup
from expect import objects_of
from neptune_backup_async.data import BackupDataWarning, open_backup
from neptune_backup_async.errors import NotABackupError
from neptune_backup_async.testing import World
from neptune_backup_async.testing import model as m
from optional import need

pd = need("pandas", "data")
need("pyarrow", "data")
pl = need("polars", "data")

UTC = dt.timezone.utc
KIND = {"run": "runs", "model": "models", "modelVersion": "versions", "project": "project"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    return world_and_backup(tmp_path_factory.mktemp("data"))


def plain(value: Any) -> Any:
    """A frame's cell as a plain Python value, whichever backend it came from."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return type(a) is type(b) and a == b


def expected_cell(value: m.Value) -> tuple[bool, Any]:
    """(whether the objects frame has a column for the field, the value it must hold)."""
    if isinstance(value, m.Float):
        return True, value.value
    if isinstance(value, (m.Int, m.Bool, m.String, m.State)):
        return True, value.value
    if isinstance(value, m.Datetime):
        return True, value.value
    if isinstance(value, m.StringSet):
        return True, sorted(value.values)
    if isinstance(value, m.Artifact):
        return True, value.hash
    if isinstance(value, m.FloatSeries):
        return True, value.points[-1].value if value.points else None
    return isinstance(value, (m.GitRef, m.NotebookRef)), None


def rows_by_object(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["project"], r["kind"], r["object_id"]): r for r in records}


def check_objects(world: World, rows: dict[tuple[str, str, str], dict[str, Any]]) -> int:
    checked = 0
    for name, project in world.projects.items():
        for container in objects_of(project):
            row = rows.pop((name, KIND[container.kind], container.sys_id))
            assert row["ok"] is True
            for path, value in container.fields.items():
                has_column, want = expected_cell(value)
                if not has_column:
                    assert path not in row, path
                    continue
                got = plain(row[path])
                where = f"{container.sys_id}/{path}: {got!r} != {want!r}"
                if isinstance(value, m.Datetime):
                    assert got.utcoffset() == dt.timedelta(0) and got == want, where
                elif isinstance(value, (m.GitRef, m.NotebookRef)):
                    continue
                elif isinstance(value, m.StringSet):
                    assert isinstance(got, list) and got == want, where
                else:
                    assert same(got, want), where
                checked += 1
            for ref in (v for v in container.fields.values() if isinstance(v, m.GitRef)):
                texts = [json.loads(plain(row[p])) for p, v in container.fields.items() if v is ref]
                assert texts[0]["commit"]["commit_id"] == ref.commit_id
    assert rows == {}, "objects the server does not have"
    return checked


def test_objects_hold_every_atom_exactly_in_pandas(saved: tuple[World, Path]) -> None:
    world, dest = saved
    frame = open_backup(dest).objects(kind=None)
    assert list(frame.columns[:4]) == ["project", "object_id", "kind", "ok"]
    assert str(frame["edge/nan"].dtype) == "float64"
    assert str(frame["edge/big_int"].dtype) == "Int64"
    assert str(frame["edge/when"].dtype) == "datetime64[ns, UTC]"
    assert frame["edge/big_int"].dropna().iloc[0] == 2**62  # no detour through a float
    assert check_objects(world, rows_by_object(frame.to_dict("records"))) > 100


def test_objects_hold_every_atom_exactly_in_polars(saved: tuple[World, Path]) -> None:
    world, dest = saved
    frame = open_backup(dest, backend="polars").objects(kind=None)
    assert isinstance(frame, pl.DataFrame)
    assert frame.schema["edge/when"] == pl.Datetime("ns", "UTC")
    assert frame.schema["edge/empty_set"] == pl.List(pl.String)
    assert check_objects(world, rows_by_object(frame.to_dicts())) > 100


def test_objects_of_one_kind_and_project(saved: tuple[World, Path]) -> None:
    world, dest = saved
    name, project = next(iter(world.projects.items()))
    frame = open_backup(dest).objects("runs", projects=[name])
    assert sorted(frame["object_id"]) == sorted(c.sys_id for c in objects_of(project, ("run",)))
    assert set(frame["kind"]) == {"runs"}
    with pytest.raises(ValueError, match="kind must be one of"):
        open_backup(dest).objects("experiments")


def expected_points(
    world: World, series: type[m.FloatSeries] | type[m.StringSeries]
) -> list[tuple[Any, ...]]:
    out = []
    for name, project in world.projects.items():
        for container in objects_of(project):
            for path, value in container.fields.items():
                if isinstance(value, series):
                    out.extend(
                        (name, container.sys_id, path, p.step, p.value, p.timestamp_ms) for p in value.points
                    )
    return out


def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with NaN spelled out, so rows compare (NaN != NaN) and sort."""
    return tuple(repr(v) if isinstance(v, float) else v for v in row)


def frame_points(frame: Any) -> list[tuple[Any, ...]]:
    out = []
    for r in frame.to_dict("records"):
        stamp = plain(r["timestamp"])
        assert stamp.utcoffset() == dt.timedelta(0)
        ms = (stamp - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)
        out.append((r["project"], r["object_id"], r["path"], plain(r["step"]), plain(r["value"]), ms))
    return out


@pytest.mark.parametrize(("kind", "series"), [("float", m.FloatSeries), ("string", m.StringSeries)])
def test_series_hold_every_point(saved: tuple[World, Path], kind: str, series: Any) -> None:
    world, dest = saved
    frame = open_backup(dest).series(kind=kind)
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"
    got, want = frame_points(frame), expected_points(world, series)
    assert sorted(map(key, got)) == sorted(map(key, want))
    assert len(want) > 100


def test_series_by_pattern_and_object(saved: tuple[World, Path]) -> None:
    world, dest = saved
    run = next(c for c in world.projects[next(iter(world.projects))].runs if "edge/curve" in c.fields)
    frame = open_backup(dest, backend="polars").series("edge/*", objects=[run.sys_id])
    assert set(frame["path"]) == {"edge/curve"}
    assert [repr(v) for v in frame["value"]] == ["nan", "inf", "-0.0", "-inf"]


def test_files_are_those_of_the_manifests(saved: tuple[World, Path]) -> None:
    world, dest = saved
    frame = open_backup(dest).files()
    rows = {(r["object_id"], r["path"], r["type"]): r for r in frame.to_dict("records")}
    checked = 0
    for project in world.projects.values():
        for container in objects_of(project):
            for path, value in container.fields.items():
                if isinstance(value, m.File):
                    row = rows[(container.sys_id, path, "file")]
                    assert row["size"] == len(value.data)
                    assert row["sha256"] == hashlib.sha256(value.data).hexdigest()
                    assert (dest / row["file"]).read_bytes() == value.data
                    checked += 1
    assert checked > 0
    assert all((dest / f).is_file() for f in frame["file"])


def test_a_damaged_object_is_named_never_passed_over(saved: tuple[World, Path], tmp_path: Path) -> None:
    import shutil

    world, source = saved
    dest = tmp_path / "copy"
    shutil.copytree(source, dest)
    name, project = next(iter(world.projects.items()))
    run = next(c for c in project.runs if "edge/curve" in c.fields)
    other = next(c for c in objects_of(project, ("run",)) if c is not run)
    folder = dest / name / run.sys_id
    with (folder / "edge" / "curve.csv").open("a") as f:
        f.write("4.0,1.0,2024-01-01T00:00:00.000+00:00\n")
    (dest / name / other.sys_id / ".manifest.json").write_text("[]")
    with pytest.warns(BackupDataWarning) as caught:
        backup = open_backup(dest)
    said = "\n".join(str(w.message) for w in caught)
    assert f"ok=False: {name}/{run.sys_id}: edge/curve.csv is" in said
    assert f"skipped: {name}/{other.sys_id}: .manifest.json:" in said
    frame = backup.objects()
    assert other.sys_id not in set(frame["object_id"])
    row = frame[frame["object_id"] == run.sys_id].iloc[0]
    assert not row["ok"] and "edge/curve" not in frame.columns  # the damaged file is not read
    assert "edge/curve" not in set(backup.series(objects=[run.sys_id])["path"])


def test_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(NotABackupError):
        open_backup(tmp_path)
