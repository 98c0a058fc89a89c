"""End to end: a notebook ref's checkpoint is saved beside the ref, as ``<path>.ipynb``.

The ref (ids and names) stays in ``simple_metadata.json``; the checkpoint comes from
``getCheckpoint`` (its size) and ``getCheckpointContent`` (the notebook), is recorded in the
manifest and checked by ``verify``. Where the server refuses it, the ref alone is kept (with
the copy an earlier backup saved, if any) and the report says so once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.format.verify import verify
from neptune_backup_async.remote.http import RetryPolicy
from neptune_backup_async.testing import MINIMAL, generate, serve
from neptune_backup_async.testing.model import Int, NotebookRef, World

pytestmark = pytest.mark.anyio

PROJECT = "workspace-0/project-0"
WORLD = replace(MINIMAL, runs_per_project=3, notebook_every=1)
FIELD = "source_code/notebook"
QUICK = RetryPolicy(attempts=2, base=0.0, cap=0.0)


def _world() -> World:
    world = generate(WORLD)
    assert len(world.checkpoints) == 3  # one a run
    return world


def _notebook(dest: Path, sys_id: str) -> Path:
    return dest / "workspace-0" / "project-0" / sys_id / "source_code" / "notebook.ipynb"


def _record(dest: Path, sys_id: str) -> dict[str, object]:
    manifest = json.loads((_notebook(dest, sys_id).parents[1] / ".manifest.json").read_text(encoding="utf-8"))
    record: dict[str, object] = manifest["fields"][FIELD]
    return record


async def test_each_checkpoint_is_saved_beside_its_ref_and_reused_while_it_is_the_same(
    tmp_path: Path,
) -> None:
    world = _world()
    runs = world.project(PROJECT).runs
    with serve(world) as server:
        report = await backup("all", tmp_path, api_token=server.api_token)
        first = dict(server.stats.by_operation)
        # One run changes another field: its notebook is the same checkpoint, not fetched again.
        world.set_field(PROJECT, runs[0].sys_id, "parameters/p1", Int(7))
        server.stats.reset()
        again = await backup("all", tmp_path, api_token=server.api_token)
        second = dict(server.stats.by_operation)
    assert (report.exit_code, report.failures, report.notices) == (0, [], [])
    assert check_backup(world, tmp_path) == 4  # every .ipynb byte for byte, refs in simple_metadata
    assert first["getCheckpoint"] == first["getCheckpointContent"] == 3
    for run in runs:
        ref = run.fields[FIELD]
        assert isinstance(ref, NotebookRef)
        record = _record(tmp_path, run.sys_id)
        assert record["files"] == ["source_code/notebook.ipynb"]
        assert record["checkpoint_id"] == ref.checkpoint_id
        assert json.loads(_notebook(tmp_path, run.sys_id).read_bytes())["nbformat"] == 4
    assert (again.exit_code, again.failures) == (0, [])
    # The changed run's fields and the project's (only they say when it changed) were listed.
    assert "getCheckpointContent" not in second and second["getExperimentAttributes"] == 2
    assert check_backup(world, tmp_path) == 4
    assert verify(tmp_path, deep=True).problems == []
    # The manifest holds the notebook's size and hash: a damaged one is named.
    damaged = _notebook(tmp_path, runs[1].sys_id)
    damaged.write_bytes(damaged.read_bytes().replace(b"explored", b"EXPLORED"))
    [problem] = verify(tmp_path).problems
    assert (problem.kind, problem.detail) == ("corrupt", "sha256 differs from the manifest")
    assert problem.path.endswith("P0-2/source_code/notebook.ipynb")


async def test_an_answer_that_cannot_be_the_notebook_is_tried_again(tmp_path: Path) -> None:
    world = _world()
    with serve(world) as server:
        # Half the notebook with a length to match, a gateway's HTML page, and `{}`, all with a 200.
        server.faults.script("getCheckpointContent", "truncated_json", "html", "empty_json")
        report = await backup("all", tmp_path, api_token=server.api_token)
        asked = server.stats.by_operation["getCheckpointContent"]
    assert (report.exit_code, report.failures, report.notices) == (0, [], [])
    assert asked == 3 + 3
    assert sum(report.retries.values()) == 3
    assert check_backup(world, tmp_path) == 4


@pytest.mark.parametrize(("operation", "status"), [("getCheckpointContent", 403), ("getCheckpoint", 404)])
async def test_a_refused_checkpoint_leaves_the_ref_and_one_notice(
    tmp_path: Path, operation: str, status: int
) -> None:
    world = _world()
    with serve(world) as server:
        server.faults.always(operation, status)
        report = await backup("all", tmp_path, api_token=server.api_token)
    assert (report.exit_code, report.failures) == (0, [])
    [notice] = report.notices  # one for the whole backup, not one per notebook
    assert f"refused notebook checkpoints (HTTP {status})" in notice.reason
    assert "simple_metadata.json keeps their notebook refs" in notice.reason
    world.checkpoints.clear()  # what check_backup expects: no .ipynb, each ref in simple_metadata
    assert check_backup(world, tmp_path) == 4
    for run in world.project(PROJECT).runs:
        assert _record(tmp_path, run.sys_id)["files"] == ["simple_metadata.json"]
    assert verify(tmp_path, deep=True).problems == []


async def test_a_checkpoint_saved_once_is_kept_when_the_server_refuses_it_later(tmp_path: Path) -> None:
    world = _world()
    run = world.project(PROJECT).runs[0]
    ref = run.fields[FIELD]
    assert isinstance(ref, NotebookRef)
    saved = world.checkpoints[ref.checkpoint_id].content
    with serve(world) as server:
        assert (await backup("all", tmp_path, api_token=server.api_token)).exit_code == 0
        # A backup that fails the checkpoint keeps the copy, marked stale ...
        server.faults.always("getCheckpointContent", 500)
        failed = await backup("all", tmp_path, api_token=server.api_token, full=True, retry=QUICK)
        assert failed.exit_code == 1 and "stale" in _record(tmp_path, run.sys_id)
        server.faults.clear()
        # ... and one it is refused to keeps that copy too, current again.
        del world.checkpoints[ref.checkpoint_id]  # deleted in Neptune: 404 from now on
        report = await backup("all", tmp_path, api_token=server.api_token, full=True)
    assert (report.exit_code, report.failures) == (0, [])
    [notice] = report.notices
    assert "HTTP 404" in notice.reason and notice.run == run.sys_id
    assert _notebook(tmp_path, run.sys_id).read_bytes() == saved
    record = _record(tmp_path, run.sys_id)
    assert record["checkpoint_id"] == ref.checkpoint_id and "stale" not in record
    assert verify(tmp_path, deep=True).problems == []


async def test_a_notebook_ref_gone_from_neptune_keeps_its_ref_and_its_notebook(tmp_path: Path) -> None:
    world = _world()
    run = world.project(PROJECT).runs[0]
    ref = run.fields[FIELD]
    assert isinstance(ref, NotebookRef)
    with serve(world) as server:
        assert (await backup("all", tmp_path, api_token=server.api_token)).exit_code == 0
        world.set_field(PROJECT, run.sys_id, FIELD, None)
        report = await backup("all", tmp_path, api_token=server.api_token)
    assert (report.exit_code, report.failures) == (0, [])
    folder = _notebook(tmp_path, run.sys_id).parents[1]
    simple = json.loads((folder / "simple_metadata.json").read_text(encoding="utf-8"))
    assert simple[FIELD]["checkpoint_id"] == ref.checkpoint_id
    assert _notebook(tmp_path, run.sys_id).read_bytes() == world.checkpoints[ref.checkpoint_id].content
    assert _record(tmp_path, run.sys_id)["removed_upstream"] is True
    assert verify(tmp_path, deep=True).problems == []
