"""load-wandb's online path, where no W&B server can be reached: wandb's real client writes
each run (offline, in place of sending it), and a folder of those runs stands in for the
server: it keeps every run sent and answers with the run file ``neptune/loaded.json``, as
the server's API would. So what an online rerun sends (only what W&B lacks, its history rows
with steps continuing) is read back from wandb's own logs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import test_load_wandb as e2e  # skips this module too when wandb is not installed
from neptune_backup_async import load_wandb
from neptune_backup_async.testing import model as m
from neptune_backup_async.to_wandb import client
from neptune_backup_async.to_wandb.plan import Run
from wandb_log import LoggedRun, read_all

wandb_home = e2e.wandb_home  # the fixture, shared with the end-to-end tests


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder of runs that stands in for the W&B server."""
    store = tmp_path / "server"
    sent: list[tuple[str, Path]] = []
    write, teardown = client.write, client.teardown

    def offline_write(entity: str | None, project: str, run: Run, offline: bool, *rest: Any) -> Path:
        assert not offline
        folder = write(entity, project, run, True, *rest)
        sent.append((run.id, folder))
        return folder

    def teardown_and_keep() -> None:
        teardown()  # the logs are whole now: the "server" has them
        for run_id, folder in sent:  # named as load-wandb names offline runs, in the order sent
            order = len(list(store.glob("wandb/*")))
            shutil.copytree(folder, store / "wandb" / f"offline-run-20000101_{order:06d}-{run_id}")
        sent.clear()

    def state(entity: str | None, project: str, run_id: str, name: str) -> bytes | None:
        runs = sorted((store / "wandb").glob(f"offline-run-*-{run_id}")) if store.exists() else []
        return (runs[-1] / "files" / name).read_bytes() if runs else None

    monkeypatch.setattr(client, "write", offline_write)
    monkeypatch.setattr(client, "teardown", teardown_and_keep)
    monkeypatch.setattr(client, "read_online_state", state)
    yield store


def load(dest: Path) -> Any:
    return anyio.run(lambda: load_wandb(dest, concurrency=2))


def runs_of(store: Path, sys_id: str) -> list[LoggedRun]:
    return next(r for r in read_all(store / "wandb").values() if r[0].config["sys"]["id"] == sys_id)


def test_an_online_rerun_sends_only_what_changed_with_steps_continuing(tmp_path: Path, server: Path) -> None:
    world = e2e.small_world(tmp_path, runs=2)
    dest = tmp_path / "backup"
    e2e.make_backup(world, dest)
    first = load(dest)
    assert (first.exit_code, first.objects_loaded, first.points) == (0, 3, e2e.total_points(dest))
    loss = world.project(e2e.PROJECT).containers["P0-1"].fields["metrics/train/loss"]
    assert isinstance(loss, m.FloatSeries)
    more = tuple(m.FloatPoint(float(s) + 0.5, s / 7, e2e.T0 + s) for s in range(1000, 1010))
    world.set_field(e2e.PROJECT, "P0-1", "metrics/train/loss", m.FloatSeries(loss.points + more))
    world.set_field(e2e.PROJECT, "P0-1", "parameters/new", m.String("added later"))
    e2e.make_backup(world, dest)

    report = load(dest)

    assert (report.exit_code, report.objects_loaded, report.objects_unchanged, report.points) == (0, 1, 2, 10)
    before, after = runs_of(server, "P0-1")
    assert [r["_step"] for r in after.history] == list(range(len(before.history), len(before.history) + 10))
    assert [(r["metrics/train/loss@step"], r["metrics/train/loss"]) for r in after.history] == [
        (p.step, p.value) for p in more
    ]
    assert set(after.config) == {"parameters", "sys"}  # sys/modification_time moved on too
    assert after.config["parameters"] == before.config["parameters"] | {"new": "added later"}
    sent = {f for f in after.files if f.startswith("neptune/files/")}
    assert sent == {"neptune/files/metrics/train/loss.csv"}  # the one file that changed
    assert e2e.logged_points(server) == e2e.total_points(dest)  # every point once, over both runs

    world.set_field(
        e2e.PROJECT, "P0-2", "metrics/train/loss", m.FloatSeries((m.FloatPoint(0.0, 9.0, e2e.T0),))
    )
    e2e.make_backup(world, dest)
    rewritten = load(dest)
    assert rewritten.exit_code == 1 and rewritten.objects_failed == 1
    assert "was rewritten" in rewritten.failures[0].reason and len(runs_of(server, "P0-2")) == 1
