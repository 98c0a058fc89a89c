"""A backup of the demo workspace, with the values a reader gets wrong most easily added to
one run (NaN and the infinities, unicode paths, microseconds), shared by the data tests."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import anyio

from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, World, generate, serve
from neptune_backup_async.testing import model as m

EPOCH_MS = 1_704_067_200_000  # 2024-01-01 UTC


def hard_values() -> dict[str, m.Value]:
    plus_one = dt.timezone(dt.timedelta(hours=1))  # Neptune keeps milliseconds of a datetime
    return {
        "edge/nan": m.Float(math.nan),
        "edge/inf": m.Float(math.inf),
        "edge/-inf": m.Float(-math.inf),
        "edge/tiny": m.Float(5e-324),
        "edge/big_int": m.Int(2**62),
        "edge/when": m.Datetime(dt.datetime(2023, 6, 1, 13, 0, 0, 123000, tzinfo=plus_one)),
        "édge/ünïcødé ✓": m.String('välue, "quoted"\nnew line'),
        "edge/empty_set": m.StringSet(frozenset()),
        "edge/curve": m.FloatSeries(
            tuple(
                m.FloatPoint(float(i), v, EPOCH_MS + i)
                for i, v in enumerate((math.nan, math.inf, -0.0, -math.inf))
            )
        ),
        "edge/ünï log": m.StringSeries(
            (m.StringPoint(0.0, 'a, "b"', EPOCH_MS), m.StringPoint(1.5, "ünï\nline", EPOCH_MS + 1001))
        ),
    }


def world_and_backup(tmp: Path) -> tuple[World, Path]:
    world = generate(WORKLOADS["demo"], artifact_root=tmp / "artifact-sources")
    project = next(iter(world.projects.values()))
    next(r for r in project.runs if not r.trashed).fields.update(hard_values())
    dest = tmp / "backup"
    with serve(world) as server:
        report = anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=4))
    assert report.exit_code == 0, report.failures
    return world, dest
