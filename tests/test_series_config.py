"""A float series' own properties (its config: ``min``, ``max``, ``unit``) are kept in the
manifest, and a later backup keeps them current. End to end, the real neptune client against
the fake server."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from cli_helpers import run_here
from expect import check_backup, folder_of
from neptune_backup_async import backup
from neptune_backup_async.testing import MINIMAL, FakeNeptuneServer, World, generate, serve
from neptune_backup_async.testing import model as m

PROJECT = "workspace-0/project-0"
WITH, WITHOUT = "metrics/train/loss", "metrics/train/acc"


def world_with_config() -> World:
    world = generate(
        replace(MINIMAL, runs_per_project=1, parameters=1, float_series=2, float_series_length=5)
    )
    [run] = world.project(PROJECT).runs
    loss = run.fields[WITH]
    assert isinstance(loss, m.FloatSeries) and isinstance(run.fields[WITHOUT], m.FloatSeries)
    run.fields[WITH] = replace(loss, min=0.0, max=2.5, unit="nats")
    return world


def fields(dest: Path, world: World) -> dict[str, Any]:
    [run] = world.project(PROJECT).runs
    folder = folder_of(dest, world.project(PROJECT), run)
    return json.loads((folder / ".manifest.json").read_text(encoding="utf-8"))["fields"]  # type: ignore[no-any-return]


def run_backup(server: FakeNeptuneServer, dest: Path) -> None:
    report = anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=4))
    assert (report.exit_code, report.failures) == (0, [])


def test_a_float_series_keeps_its_min_max_and_unit(tmp_path: Path) -> None:
    world = world_with_config()
    [run] = world.project(PROJECT).runs
    with serve(world) as server:
        run_backup(server, tmp_path)
        saved = fields(tmp_path, world)
        assert saved[WITH]["config"] == {"min": 0.0, "max": 2.5, "unit": "nats"}
        assert "config" not in saved[WITHOUT]  # none set: none kept
        check_backup(world, tmp_path)

        # Only the unit changes: the next backup keeps the new one.
        loss = run.fields[WITH]
        assert isinstance(loss, m.FloatSeries)
        world.set_field(PROJECT, run.sys_id, WITH, replace(loss, unit="bits", max=None))
        run_backup(server, tmp_path)
    assert fields(tmp_path, world)[WITH]["config"] == {"min": 0.0, "unit": "bits"}
    check_backup(world, tmp_path)
    assert run_here("verify", "--deep", str(tmp_path)).returncode == 0
