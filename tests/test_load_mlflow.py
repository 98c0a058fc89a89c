"""load-mlflow end to end: a backup of the fake server, loaded into a real MLflow, read back whole.

What MLflow holds is compared with the backup's own files, parsed here (JSON, CSV, zip),
not with the loader's reading of them.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from cli_helpers import run_cli, run_here
from expect import SIMPLE_FIELD_TYPES
from memory_source import MemorySource
from neptune_backup_async import ServerUnreachableError, backup, load_mlflow
from neptune_backup_async.testing import MINIMAL, WORKLOADS, World, generate
from neptune_backup_async.testing import model as m
from optional import need

mlflow = need("mlflow", "mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from neptune_backup_async.to_mlflow import tracking  # noqa: E402

HOME = ".mlflow"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its tables made once: creating them costs seconds per database."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


def fresh_db(empty_db: Path, where: Path) -> str:
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_db, where)
    return f"sqlite:///{where}"


def make_backup(world: World, dest: Path) -> None:
    report = anyio.run(
        lambda: backup("all", dest, source=MemorySource(world), concurrency=4, download_artifacts=True)
    )
    assert report.exit_code == 0, report.failures


def load(dest: Path, uri: str | None = None, **kw: Any) -> Any:
    return anyio.run(lambda: load_mlflow(dest, uri, concurrency=4, **kw))


# -- reading the backup and MLflow back ------------------------------------------------------


def object_folders(dest: Path) -> Iterator[Path]:
    for manifest in sorted(dest.rglob(".manifest.json")):
        if HOME not in manifest.relative_to(dest).parts:
            yield manifest.parent


def param_text(field_type: str, saved: Any) -> str:
    if isinstance(saved, str):
        return saved
    if field_type == "float":
        return repr(float(saved))
    return json.dumps(saved, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def ms(text: str) -> int:
    return (dt.datetime.fromisoformat(text) - EPOCH) // dt.timedelta(milliseconds=1)


def csv_points(path: Path) -> list[tuple[float, float, int]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "value", "timestamp"]
    return [(float(s), float(v), ms(t)) for s, v, t in rows[1:]]


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def find_run(client: MlflowClient, experiment: str, sys_id: str) -> Any:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`neptune.id` = '{sys_id}'")
    assert len(runs) == 1, f"{experiment} {sys_id}: {len(runs)} runs"
    return runs[0]


def check_mlflow(dest: Path, uri: str, tmp: Path, prefix: str = "") -> int:
    """Every object of the backup is one MLflow run holding all of it; returns how many."""
    client = MlflowClient(tracking_uri=uri)
    checked = 0
    for folder in object_folders(dest):
        manifest = json.loads((folder / ".manifest.json").read_text())
        saved = folder / "simple_metadata.json"
        meta = json.loads(saved.read_text()) if saved.exists() else {}
        models, project = manifest["kind"] in ("model", "modelVersion"), manifest["kind"] == "project"
        suffix = "/models" if models else "/project-fields" if project else ""
        run = find_run(client, prefix + manifest["project"] + suffix, manifest["sys_id"])
        got = tmp / f"artifacts-{checked}"
        client.download_artifacts(run.info.run_id, "", str(got))
        fields = json.loads((got / "neptune" / "fields.json").read_text())["fields"]
        assert set(fields) == set(manifest["fields"])
        keys = [f["key"] for f in fields.values()]
        assert len({k.casefold() for k in keys}) == len(keys), "two fields share a key"
        params, tags = run.data.params, run.data.tags
        metrics: set[str] = set()
        for path, record in manifest["fields"].items():
            key, kind = fields[path]["key"], record["type"]
            where = f"{folder.name}/{path}"
            if kind in SIMPLE_FIELD_TYPES or kind == "artifact":
                expected = param_text(kind, meta[path])
                held = tags if descriptive(path, kind) else params
                assert (key in params) == (not descriptive(path, kind)), where
                if len(expected) > (8000 if held is tags else 6000):
                    assert (got / "neptune" / "values" / f"{key}.txt").read_text() == expected, where
                    assert held[key].endswith(f"neptune/values/{key}.txt)"), where
                else:
                    assert held[key] == expected, where
                if kind == "stringSet":
                    assert tags[key] == held[key], where
            if kind == "floatSeries":
                metrics.add(key)
                points = csv_points(folder / record["files"][0])
                history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda p: p.step)
                assert len(history) == len(points), where
                integral = all(s.is_integer() for s, _, _ in points)
                assert fields[path]["steps"] == ("step" if integral else "index")
                for i, (h, (step, value, stamp)) in enumerate(zip(history, points, strict=True)):
                    assert h.step == (int(step) if integral else i), where
                    assert same(h.value, value) and h.timestamp == stamp, where
            files = [f for f in record["files"] if f != "simple_metadata.json"]
            if kind in ("floatSeries", "stringSeries"):
                assert (got / f"{key}.csv").read_bytes() == (folder / files[0]).read_bytes(), where
            elif kind == "file":
                name = f"{key}.{record['ext']}" if record.get("ext") else key
                assert (got / name).read_bytes() == (folder / files[0]).read_bytes(), where
            elif kind == "fileSet":
                with zipfile.ZipFile(folder / files[0]) as z:
                    for member in (i for i in z.infolist() if not i.is_dir()):
                        assert (got / key / member.filename).read_bytes() == z.read(member), where
            elif kind == "imageSeries":
                stem = next(f for f in files if f.endswith("/index.json"))[: -len("/index.json")]
                for f in files:
                    assert (got / key / f[len(stem) + 1 :]).read_bytes() == (folder / f).read_bytes()
                assert len(json.loads((got / key / "index.json").read_text())) == record["count"]
            elif kind == "artifact":
                listing = next(f for f in files if f.endswith(".artifact.json"))
                assert (got / f"{key}.artifact.json").read_bytes() == (folder / listing).read_bytes()
                stem = listing[: -len(".artifact.json")]
                for f in files:
                    if f.startswith(stem + "/"):
                        assert (got / key / f[len(stem) + 1 :]).read_bytes() == (folder / f).read_bytes()
        assert set(run.data.metrics) == metrics
        assert tags["neptune.id"] == manifest["sys_id"] and tags["neptune.kind"] == manifest["kind"]
        assert tags["neptune.load_status"] == "complete"
        if project:  # in a run of its own, and its single values are tags of the runs' experiment
            assert run.info.run_name == f"project fields of {manifest['project']}"
            experiment = client.get_experiment_by_name(prefix + manifest["project"])
            for path, record in manifest["fields"].items():
                if record["type"] in SIMPLE_FIELD_TYPES:
                    key = fields[path]["key"]
                    assert (
                        experiment.tags[key] == (tags if descriptive(path, record["type"]) else params)[key]
                    )
        else:
            assert run.info.run_name == (meta.get("sys/name") or manifest["sys_id"])
        if "sys/creation_time" in meta:
            assert run.info.start_time == ms(meta["sys/creation_time"])
        if meta.get("sys/owner"):
            assert tags["mlflow.user"] == meta["sys/owner"]
        state = "RUNNING" if meta.get("sys/state") == "running" else "FINISHED"
        assert run.info.status == state
        checked += 1
    return checked


def descriptive(path: str, kind: str) -> bool:
    """Held as a tag, not a param: what Neptune changes (sys/), and what describes a run."""
    return path.startswith(("sys/", "monitoring/")) or kind in ("gitRef", "artifact")


def deleted_runs(uri: str) -> int:
    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(ids, run_view_type=mlflow.entities.ViewType.DELETED_ONLY))


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_holds_every_field_of_the_backup_and_a_rerun_writes_nothing(
    tmp_path: Path, empty_db: Path
) -> None:
    world = generate(WORKLOADS["demo"], artifact_root=tmp_path / "artifact-sources")
    dest = tmp_path / "backup"
    make_backup(world, dest)
    objects = sum(1 for _ in object_folders(dest))
    points = sum(len(v.points) for p in world.projects.values() for c in [p.container, *p.containers.values()]
                 for v in c.fields.values() if isinstance(v, m.FloatSeries))  # fmt: skip
    plan = load(dest, dry_run=True)  # no database yet: it makes none
    assert (plan.objects_loaded, plan.points, plan.exit_code) == (objects, points, 0)
    assert not (dest / HOME).exists() and not (dest / "load-mlflow-report.json").exists()
    uri = fresh_db(empty_db, dest / HOME / "mlflow.db")  # where the load puts it by default

    report = load(dest)

    assert (report.exit_code, report.objects_loaded, report.failures) == (0, objects, [])
    assert report.points == points
    assert check_mlflow(dest, uri, tmp_path) == objects
    kinds = {json.loads((f / ".manifest.json").read_text())["kind"] for f in object_folders(dest)}
    assert kinds == {"run", "model", "modelVersion", "project"}
    saved = json.loads((dest / "load-mlflow-report.json").read_text())
    assert saved["exit_code"] == 0 and saved["totals"]["points"] == report.points > 0

    again = load(dest)
    assert (again.objects_unchanged, again.objects_loaded, again.points, again.params) == (objects, 0, 0, 0)
    assert load(dest, dry_run=True).objects_unchanged == objects


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on, below the kernel's ephemeral range: a socket bound
    to port 0 (every fake server's, in this suite or one beside it) or an outgoing connection
    never takes it in the seconds before MLflow binds it."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(max(1024, ephemeral - 8192), ephemeral)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # taken: another
                continue
            return port


@pytest.fixture
def mlflow_server(tmp_path: Path, empty_db: Path) -> Iterator[str]:
    port = free_port()
    db = fresh_db(empty_db, tmp_path / "server" / "mlflow.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db, "--host", "127.0.0.1",
         "--port", str(port), "--artifacts-destination", str(tmp_path / "server" / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(
            proc.pid, signal.SIGKILL
        )  # its database goes with tmp_path: no need to wait for a clean stop
        proc.wait(timeout=30)


@pytest.mark.slow
def test_load_through_a_real_mlflow_server(tmp_path: Path, mlflow_server: str) -> None:
    spec = replace(WORKLOADS["demo"], projects_per_workspace=1, runs_per_project=2)
    world = generate(spec, artifact_root=tmp_path / "artifact-sources")
    dest = tmp_path / "backup"
    make_backup(world, dest)

    report = load(dest, mlflow_server, experiment_prefix="neptune/")

    assert (report.exit_code, report.failures) == (0, [])
    assert check_mlflow(dest, mlflow_server, tmp_path, prefix="neptune/") == report.objects_loaded > 0
    assert load(dest, mlflow_server, experiment_prefix="neptune/").objects_unchanged == report.objects_loaded


@pytest.mark.slow
def test_incremental_backup_loads_only_what_changed_and_equals_a_fresh_load(
    tmp_path: Path, empty_db: Path
) -> None:
    world = generate(WORKLOADS["demo"], artifact_root=tmp_path / "artifact-sources")
    dest = tmp_path / "backup"
    make_backup(world, dest)
    uri = fresh_db(empty_db, tmp_path / "incremental.db")
    objects = sum(1 for _ in object_folders(dest))
    assert load(dest, uri).objects_loaded == objects

    proj = "workspace-0/project-0"
    project = world.project(proj)
    later = max(c.fields["sys/creation_time"].value for c in project.runs) + dt.timedelta(seconds=10)  # type: ignore[union-attr]
    template = project.containers["P0-1"]
    world.add_container(
        proj,
        m.Container("P0-99", "run", dict(template.fields, **{"sys/id": m.String("P0-99"), "sys/creation_time": m.Datetime(later)})),
    )  # fmt: skip
    loss = project.containers["P0-2"].fields["metrics/train/loss"]
    assert isinstance(loss, m.FloatSeries)
    grown = loss.points + tuple(
        m.FloatPoint(float(s), s / 7, 1_800_000_000_000 + s) for s in range(1000, 1010)
    )
    world.set_field(proj, "P0-2", "metrics/train/loss", m.FloatSeries(grown))
    world.set_field(proj, "P0-2", "parameters/new", m.String("added later"))
    world.set_field(proj, "P0-3", "parameters/p1", m.Int(42))  # MLflow cannot change a param: loaded anew
    world.set_field(proj, "P0-3", "data/extra", m.File("extra", "txt", b"new file\n"))
    make_backup(world, dest)

    report = load(dest, uri)

    assert (report.exit_code, report.objects_found) == (0, objects + 1)
    assert report.objects_loaded == 3  # P0-2, P0-3 and P0-99
    assert report.objects_unchanged == objects - 2
    assert [(n.run, n.reason.split(";")[0]) for n in report.notices] == [
        ("P0-3", "loaded anew (the value of param parameters/p1 changed)")
    ]
    assert report.objects_replaced == 1 and deleted_runs(uri) == 1
    assert report.points == 10 + sum(  # the grown series, and the runs P0-99 and P0-3 in full
        len(v.points) for run in ("P0-99", "P0-3") for v in project.containers[run].fields.values()
        if isinstance(v, m.FloatSeries)
    )  # fmt: skip
    assert check_mlflow(dest, uri, tmp_path / "a") == objects + 1
    fresh = fresh_db(empty_db, tmp_path / "fresh.db")
    assert load(dest, fresh).objects_loaded == objects + 1
    assert check_mlflow(dest, fresh, tmp_path / "b") == objects + 1


def small_world(tmp_path: Path) -> World:
    spec = replace(MINIMAL, runs_per_project=3, float_series=2, float_series_length=1_200, file_size=2_000)
    return generate(spec, artifact_root=tmp_path / "artifact-sources")


class Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("method", "nth", "after"),
    [
        ("create_run", 2, True),  # the run exists, nothing in it yet (the quick suite's one)
        pytest.param("log_batch", 1, False, marks=pytest.mark.slow),
        # points in MLflow, nothing recorded about them
        pytest.param("log_batch", 2, True, marks=pytest.mark.slow),
        pytest.param("log_artifacts", 2, True, marks=pytest.mark.slow),
        # a run's last call: it is complete, but not yet marked so
        pytest.param("log_batch", 4, True, marks=pytest.mark.slow),
    ],
)
def test_a_load_stopped_anywhere_and_rerun_equals_an_uninterrupted_one(
    tmp_path: Path, empty_db: Path, monkeypatch: pytest.MonkeyPatch, method: str, nth: int, after: bool
) -> None:
    dest = tmp_path / "backup"
    make_backup(small_world(tmp_path), dest)
    uri = fresh_db(empty_db, tmp_path / "mlflow.db")
    real = getattr(tracking.Tracking, method)
    calls = {"n": 0}

    def failing(self: tracking.Tracking, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == nth and not after:
            raise Stop(f"{method} #{nth}")
        out = real(self, *args)
        if calls["n"] == nth:
            raise Stop(f"after {method} #{nth}")
        return out

    monkeypatch.setattr(tracking.Tracking, method, failing)
    stopped = anyio.run(lambda: load_mlflow(dest, uri, concurrency=1))
    assert calls["n"] >= nth and stopped.exit_code == 1 and "Stop" in stopped.failures[0].reason
    monkeypatch.setattr(tracking.Tracking, method, real)
    before = metric_rows(tmp_path / "mlflow.db")

    report = load(dest, uri)

    assert (report.exit_code, report.objects_replaced, report.failures) == (0, 0, [])
    assert report.points == 3 * 2 * 1_200 - before  # only what was missing is sent again
    assert check_mlflow(dest, uri, tmp_path) == 4  # 3 runs and the project's own fields
    assert deleted_runs(uri) == 0


@pytest.mark.slow
def test_an_update_stopped_after_a_batch_and_rerun_sends_each_new_point_once(
    tmp_path: Path, empty_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = small_world(tmp_path)
    dest = tmp_path / "backup"
    make_backup(world, dest)
    uri = fresh_db(empty_db, tmp_path / "mlflow.db")
    assert load(dest, uri).exit_code == 0
    loss = world.project("workspace-0/project-0").containers["P0-1"].fields["metrics/train/loss"]
    assert isinstance(loss, m.FloatSeries)
    more = tuple(m.FloatPoint(float(s), s / 3, 1_800_000_000_000 + s) for s in range(5_000, 6_500))
    world.set_field("workspace-0/project-0", "P0-1", "metrics/train/loss", m.FloatSeries(loss.points + more))
    make_backup(world, dest)
    real = tracking.Tracking.log_batch
    sent: list[int] = []

    def stop_after_the_first_points(self: tracking.Tracking, run_id: str, batch: Any) -> None:
        real(self, run_id, batch)
        if batch.metrics:  # some of the 1,500 new points are in; nothing recorded that
            sent.append(len(batch.metrics))
            raise Stop("after the first points")

    monkeypatch.setattr(tracking.Tracking, "log_batch", stop_after_the_first_points)
    assert load(dest, uri).exit_code == 1
    monkeypatch.setattr(tracking.Tracking, "log_batch", real)
    assert 0 < sent[0] < 1_500 and metric_rows(tmp_path / "mlflow.db") == 3 * 2 * 1_200 + sent[0]

    report = load(dest, uri)

    assert (report.exit_code, report.points, report.objects_replaced) == (0, 1_500 - sent[0], 0)
    assert check_mlflow(dest, uri, tmp_path) == 4


def metric_rows(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
        return int(c.execute("SELECT count(*) FROM metrics").fetchone()[0])


@pytest.mark.slow
def test_a_load_killed_with_sigkill_and_rerun_loads_every_point_once(tmp_path: Path, empty_db: Path) -> None:
    spec = replace(MINIMAL, runs_per_project=4, float_series=2, float_series_length=2_000)
    dest = tmp_path / "backup"
    make_backup(generate(spec), dest)
    db = tmp_path / "mlflow.db"
    uri = fresh_db(empty_db, db)
    total = 4 * 2 * 2_000
    command = [sys.executable, "-m", "neptune_backup_async", "load-mlflow", str(dest), "--tracking-uri", uri,
               "--quiet", "--concurrency", "2"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while (rows := metric_rows(db)) < 1_000:  # several batches in, many to go
            assert proc.poll() is None
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = metric_rows(db)
    assert rows <= before < total
    (dest / HOME / "staging" / "999999999").mkdir(parents=True)  # as a killed load leaves it

    done = subprocess.run(command, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert metric_rows(db) == total
    sent = json.loads((dest / "load-mlflow-report.json").read_text())["totals"]["points"]
    assert sent == total - before  # no point sent twice
    assert list((dest / HOME / "staging").iterdir()) == []
    assert check_mlflow(dest, uri, tmp_path) == 5


def test_a_run_the_backup_did_not_finish_is_named_and_the_rest_loaded(tmp_path: Path, empty_db: Path) -> None:
    dest = tmp_path / "backup"
    make_backup(small_world(tmp_path), dest)
    (dest / "workspace-0" / "project-0" / "P0-2" / ".manifest.json").unlink()
    uri = fresh_db(empty_db, tmp_path / "mlflow.db")

    report = load(dest, uri)

    assert report.exit_code == 1 and report.objects_loaded == 3
    assert [(n.run, n.reason.split(":")[0]) for n in report.failures] == [("P0-2", "no manifest")]
    assert check_mlflow(dest, uri, tmp_path) == 3


@pytest.mark.slow
def test_cli_says_what_is_wrong_and_exits_2(tmp_path: Path) -> None:
    not_backup = run_here("load-mlflow", str(tmp_path))
    assert not_backup.returncode == 2 and "is not a backup" in not_backup.stderr
    dest = tmp_path / "backup"
    dest.mkdir()
    (dest / "backup-report.json").write_text("{}")
    port = free_port()  # nothing listens there
    unreachable = run_cli("load-mlflow", str(dest), "--tracking-uri", f"http://user:secret@127.0.0.1:{port}")
    assert unreachable.returncode == 2 and "Cannot reach the MLflow tracking server" in unreachable.stderr
    assert "secret" not in unreachable.stderr
    with pytest.raises(ServerUnreachableError, match="MLflow cannot use the tracking URI bogus://x"):
        load(dest, "bogus://x")


def test_cli_without_mlflow_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['mlflow'] = None\n"  # `import mlflow` fails, as when it is not installed
        "from neptune_backup_async.cli.main import main\n"
        f"sys.exit(main(['load-mlflow', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert 'pip install "neptune-backup-async[mlflow]"' in done.stderr
    assert "Traceback" not in done.stderr
