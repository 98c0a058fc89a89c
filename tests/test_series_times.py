"""Series times past year 9999 (a user who passed milliseconds where seconds were due) are
kept exactly, as epoch milliseconds, and read back by ``verify --deep``, the view and the
MLflow load. End to end, the real neptune client against the fake server."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import run_here
from expect import folder_of
from neptune_backup_async import backup, load_mlflow
from neptune_backup_async.testing import MINIMAL, World, generate, serve
from neptune_backup_async.testing import model as m
from neptune_backup_async.view.charts import drawn_points
from neptune_backup_async.view.data import read_float_series
from optional import need

PROJECT = "workspace-0/project-0"
FLOATS, STRINGS, IMAGES = "metrics/train/loss", "logs/train", "images/predictions"
FAR = 1_704_067_200_000 * 1000  # 2024-01-01 in milliseconds, taken for seconds: year ~55970


def far_world() -> World:
    world = generate(
        replace(
            MINIMAL,
            runs_per_project=1,
            parameters=1,
            float_series=1,
            float_series_length=5,
            string_series=1,
            string_series_length=3,
            images=2,
        )
    )
    [run] = world.project(PROJECT).runs
    loss, logs, images = run.fields[FLOATS], run.fields[STRINGS], run.fields[IMAGES]
    assert isinstance(loss, m.FloatSeries) and isinstance(logs, m.StringSeries)
    assert isinstance(images, m.ImageSeries)
    points = list(loss.points)
    points[3] = replace(points[3], timestamp_ms=FAR)
    points[4] = replace(points[4], timestamp_ms=FAR + 1)
    run.fields[FLOATS] = m.FloatSeries(tuple(points))
    run.fields[STRINGS] = m.StringSeries((*logs.points[:2], replace(logs.points[2], timestamp_ms=FAR)))
    run.fields[IMAGES] = m.ImageSeries((images.images[0], replace(images.images[1], timestamp_ms=FAR)))
    return world


def test_times_past_year_9999_are_kept_as_epoch_milliseconds_and_read_back(tmp_path: Path) -> None:
    world = far_world()
    [run] = world.project(PROJECT).runs
    dest = tmp_path / "backup"
    with serve(world) as server:
        report = anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=4))
    assert (report.exit_code, report.failures) == (0, [])
    folder = folder_of(dest, world.project(PROJECT), run)

    for path in (FLOATS, STRINGS):
        series = run.fields[path]
        assert isinstance(series, (m.FloatSeries, m.StringSeries))
        with (folder / f"{path}.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))[1:]
        assert [float(r[0]) for r in rows] == [p.step for p in series.points]
        assert [r[1] for r in rows] == [repr(p.value) if path == FLOATS else p.value for p in series.points]
        for row, point in zip(rows, series.points, strict=True):
            if point.timestamp_ms in (FAR, FAR + 1):
                assert row[2] == str(point.timestamp_ms)
            else:
                assert row[2].endswith("+00:00")
    index = json.loads((folder / IMAGES / "index.json").read_text(encoding="utf-8"))
    assert [item["timestamp"] for item in index][1] == FAR and isinstance(index[0]["timestamp"], str)

    deep = run_here("verify", "--deep", str(dest))
    assert deep.returncode == 0, deep.stdout

    # The view draws every point at its time: seconds after the first (to ten digits).
    drawn = json.loads(drawn_points(read_float_series(folder / f"{FLOATS}.csv"), 100).data)
    loss = run.fields[FLOATS]
    assert isinstance(loss, m.FloatSeries)
    first = loss.points[0].timestamp_ms
    assert drawn[3] * 1000 == first
    assert drawn[2] == [pytest.approx((p.timestamp_ms - first) / 1000, rel=1e-9) for p in loss.points]

    # The MLflow load gives MLflow the same milliseconds.
    need("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    home = dest / ".mlflow"
    loaded = anyio.run(lambda: load_mlflow(dest, None, concurrency=2))
    assert (loaded.exit_code, loaded.failures) == (0, [])
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    [mlflow_run] = client.search_runs(experiments, filter_string="tags.`neptune.id` = 'P0-1'")
    [key] = mlflow_run.data.metrics
    history = sorted(client.get_metric_history(mlflow_run.info.run_id, key), key=lambda p: p.step)
    assert [h.timestamp for h in history] == [p.timestamp_ms for p in loss.points]
