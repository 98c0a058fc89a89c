"""load-wandb end to end, offline: a backup of the fake server (every field type, hostile
names, models, the project's own fields) loaded with ``load-wandb --offline``, and the runs'
transaction logs read back (tests/wandb_log.py) and compared with the backup's own files,
parsed here (JSON, CSV, zip), not with the loader's reading of them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from cli_helpers import run_cli, run_here
from expect import SIMPLE_FIELD_TYPES
from memory_source import MemorySource
from neptune_backup_async import backup, load_wandb
from neptune_backup_async.loading.report import LoadProgress
from neptune_backup_async.testing import MINIMAL, WorkloadSpec, World, generate
from neptune_backup_async.testing import model as m
from optional import need

need("wandb", "wandb")
from wandb_log import LoggedRun, read_all, records  # noqa: E402

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
PROJECT = "workspace-0/project-0"
HOSTILE_RUN = "P0-1"
T0 = 1_700_000_000_000
HOSTILE: dict[str, m.Value] = {
    "metrics/loss": m.FloatSeries(tuple(m.FloatPoint(float(i), i / 3, T0 + i) for i in range(5))),
    "metrics/Loss": m.FloatSeries(tuple(m.FloatPoint(float(i), -i, T0 + i) for i in range(3))),
    "metrics/frac": m.FloatSeries(
        (
            m.FloatPoint(0.5, math.nan, T0),
            m.FloatPoint(1.25, math.inf, T0 + 1),
            m.FloatPoint(2.75, -math.inf, T0 + 2),
            m.FloatPoint(1e300, 1e308, T0 + 3),
        )
    ),
    "a.b/c.d": m.FloatSeries((m.FloatPoint(1.0, 2.0, T0),)),
    "x@step": m.FloatSeries((m.FloatPoint(3.0, 4.0, T0),)),
    "glob*/q?": m.FloatSeries((m.FloatPoint(0.0, 1.0, T0 + 7),)),
    "long/" + "x" * 300: m.FloatSeries((m.FloatPoint(0.0, 1.0, T0),)),
    "long/" + "x" * 299 + "y": m.FloatSeries((m.FloatPoint(0.0, 2.0, T0),)),
    "_private": m.Int(2**53 + 1),
    "100%": m.String("percent"),
    "emoji ✓/v": m.StringSeries(
        (
            m.StringPoint(0.5, 'a, "quoted"\nline', T0),
            m.StringPoint(1.0, "", T0 + 1),
            m.StringPoint(7.0, "ü", T0 + 2),
        )
    ),
    "neptune/fields": m.String("not ours"),
    "dots/../up": m.Float(math.nan),
    "inf": m.Float(-math.inf),
    "when": m.Datetime(dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.timezone.utc)),
    "config.yaml": m.File("config", "yaml", b"not W&B's config\n"),
    "sys/tags": m.StringSet(frozenset({"gpu", "GPU", "a/b?", "t" * 80})),
    "sys/group_tags": m.StringSet(frozenset({"group-b", "group-a"})),
    "sys/failed": m.Bool(True),
}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def wandb_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """wandb's own folders (settings, cache, artifact staging) in a temporary place, and quiet."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
            mp.setenv(var, str(home / var.lower()))
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_API_KEY", raising=False)
        yield home


def hostile_world(tmp_path: Path, spec: WorkloadSpec | None = None) -> World:
    spec = spec or WorkloadSpec(
        runs_per_project=2, float_series_length=40, string_series_length=6, monitoring_float_length=10,
        monitoring_string_length=4, file_size=300, images=2, artifact_files=1, notebook_every=1, versions_per_model=1,
    )  # fmt: skip
    world = generate(spec, artifact_root=tmp_path / "artifact-sources")
    for path, value in HOSTILE.items():
        world.set_field(PROJECT, HOSTILE_RUN, path, value)
    return world


def make_backup(world: World, dest: Path) -> None:
    report = anyio.run(
        lambda: backup("all", dest, source=MemorySource(world), concurrency=4, download_artifacts=True)
    )
    assert report.exit_code == 0, report.failures


def load(dest: Path, out: Path, **kw: Any) -> Any:
    return anyio.run(lambda: load_wandb(dest, offline=out, concurrency=4, **kw))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """One backup with everything, loaded once: (backup, offline DIR, report). Tests only read it."""
    tmp = tmp_path_factory.mktemp("loaded")
    dest, out = tmp / "backup", tmp / "offline"
    make_backup(hostile_world(tmp), dest)
    return dest, out, load(dest, out)


# -- reading the backup and W&B's logs back --------------------------------------------------


def object_folders(dest: Path) -> Iterator[Path]:
    for manifest in sorted(dest.rglob(".manifest.json")):
        if ".neptune-backup" not in manifest.relative_to(dest).parts:
            yield manifest.parent


def ms(text: str) -> int:
    return (dt.datetime.fromisoformat(text) - EPOCH) // dt.timedelta(milliseconds=1)


def csv_points(path: Path) -> list[tuple[float, Any, int]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["step", "value", "timestamp"]
    return [(float(s), v, ms(t)) for s, v, t in rows[1:]]


def key_of_point(p: tuple[float, Any, int]) -> tuple[float, str, int]:
    return (p[0], repr(float(p[1])) if isinstance(p[1], float) else repr(p[1]), p[2])


def newest(out: Path) -> dict[tuple[str, str], LoggedRun]:
    """The newest offline run of each object, by (project, sys id) as its fields.json says."""
    found: dict[tuple[str, str], LoggedRun] = {}
    for runs in read_all(out / "wandb").values():
        run = runs[-1]
        doc = json.loads((run.dir / "files" / "neptune" / "fields.json").read_text())
        found[(doc["project"], doc["sys_id"])] = run
    return found


def at(config: dict[str, Any], key: str) -> Any:
    value: Any = config
    for segment in key.split("/"):
        value = value[segment]
    return value


def same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def check_wandb(dest: Path, out: Path) -> int:
    """Every object of the backup is one offline run holding all of it; returns how many."""
    runs = newest(out)
    checked = 0
    for folder in object_folders(dest):
        manifest = json.loads((folder / ".manifest.json").read_text())
        saved = folder / "simple_metadata.json"
        meta = json.loads(saved.read_text()) if saved.exists() else {}
        run = runs[(manifest["project"], manifest["sys_id"])]
        assert run.finished, run.dir
        files = run.dir / "files"
        fields = json.loads((files / "neptune" / "fields.json").read_text())["fields"]
        assert set(fields) == set(manifest["fields"])
        keys = [f["key"] for f in fields.values()]
        assert len({k.casefold() for k in keys}) == len(keys), "two fields share a key"
        assert all(not k.startswith("_") and "." not in k for k in keys)
        if saved.exists():
            assert (files / "neptune" / "simple_metadata.json").read_bytes() == saved.read_bytes()
        rows = run.history
        assert [r["_step"] for r in rows] == list(range(len(rows)))
        logged = set(run.files)
        for path, record in manifest["fields"].items():
            key, kind, where = fields[path]["key"], record["type"], f"{folder.name}/{path}"
            if kind in SIMPLE_FIELD_TYPES or kind == "artifact":
                assert same(at(run.config, key), meta[path]), where
            if kind in ("floatSeries", "stringSeries"):
                points = csv_points(folder / record["files"][0])
                step = key + "@step"
                assert run.metrics[key]["step_metric"] == step, where
                got = [(float(r[step]), r[key], round(r["_timestamp"] * 1000)) for r in rows if key in r]
                if kind == "floatSeries":  # wandb writes an integral float as an int: 2.0 as 2
                    points = [(s, float(v), t) for s, v, t in points]
                    got = [(s, float(v), t) for s, v, t in got]
                assert sorted(map(key_of_point, got)) == sorted(map(key_of_point, points)), where
            if kind == "imageSeries":  # each item also a wandb.Image at its step, its bytes kept
                stem = next(f for f in record["files"] if f.endswith("/index.json"))[: -len("index.json")]
                items = json.loads((folder / stem / "index.json").read_text())
                shown = sorted((r[key + "@step"], r[key]["sha256"], r[key]["path"]) for r in rows if key in r)
                assert [s for s, _, _ in shown] == sorted(i["step"] for i in items) and items, where
                for item, (_, digest, media) in zip(
                    sorted(items, key=lambda i: i["step"]), shown, strict=True
                ):
                    data = (folder / stem / item["file"]).read_bytes()
                    assert hashlib.sha256(data).hexdigest() == digest and (files / media).read_bytes() == data
            for target, source in expected_files(folder, record, key):
                assert (files / target).read_bytes() == source, f"{where}: {target}"
                assert target in logged, f"{where}: {target} has no FilesRecord"
        assert run.name == (
            f"project fields of {manifest['project']}"
            if manifest["kind"] == "project"
            else meta.get("sys/name") or manifest["sys_id"]
        )
        assert run.notes == meta.get("sys/description", "")
        assert run.project == manifest["project"].replace("/", "-")
        tags = meta.get("sys/tags", [])
        assert set(run.tags) >= {t for t in tags if len(t) <= 64} and len(run.tags) == len(tags)
        assert run.group == ",".join(sorted(meta.get("sys/group_tags", [])))
        assert exit_code(run) == (1 if meta.get("sys/failed") else 0)  # W&B's "failed" state
        checked += 1
    return checked


def exit_code(run: LoggedRun) -> int:
    (log,) = run.dir.glob("run-*.wandb")
    return next(r.exit.exit_code for r in records(log) if r.WhichOneof("record_type") == "exit")


def expected_files(folder: Path, record: dict[str, Any], key: str) -> Iterator[tuple[str, bytes]]:
    """(run file, its bytes) of one field, as the mapping places them (docs/WANDB.md)."""
    base = f"neptune/files/{key}"
    files = [f for f in record["files"] if f != "simple_metadata.json"]
    kind = record["type"]
    if kind in ("floatSeries", "stringSeries"):
        yield f"{base}.csv", (folder / files[0]).read_bytes()
    elif kind == "file":
        ext = record.get("ext")
        yield (f"{base}.{ext}" if ext else base), (folder / files[0]).read_bytes()
    elif kind == "fileSet":
        with zipfile.ZipFile(folder / files[0]) as z:
            for member in (i for i in z.infolist() if not i.is_dir()):
                yield f"{base}/{member.filename}", z.read(member)
    elif kind == "imageSeries":
        stem = next(f for f in files if f.endswith("/index.json"))[: -len("/index.json")]
        for f in files:
            yield f"{base}/{f[len(stem) + 1 :]}", (folder / f).read_bytes()
    elif kind == "artifact":
        listing = next(f for f in files if f.endswith(".artifact.json"))
        yield f"{base}.artifact.json", (folder / listing).read_bytes()
        stem = listing[: -len(".artifact.json")]
        for f in files:
            if f.startswith(stem + "/"):
                yield f"{base}/{f[len(stem) + 1 :]}", (folder / f).read_bytes()
    elif kind == "notebookRef":
        for f in files:
            yield f"{base}.ipynb", (folder / f).read_bytes()


def total_points(dest: Path) -> int:
    return sum(
        len(csv_points(folder / r["files"][0]))
        for folder in object_folders(dest)
        for r in json.loads((folder / ".manifest.json").read_text())["fields"].values()
        if r["type"] in ("floatSeries", "stringSeries")
    )


def logged_points(out: Path) -> int:
    """Every float and string series point in every offline run in DIR/wandb (so a point there
    twice counts twice); images are dicts in history."""
    count = 0
    for runs in read_all(out / "wandb").values():
        for run in runs:
            count += sum(
                1
                for row in run.history
                for k, v in row.items()
                if k + "@step" in row and not isinstance(v, dict)
            )
    return count


# -- the tests -------------------------------------------------------------------------------


def test_every_point_config_value_tag_and_file_round_trips(loaded: tuple[Path, Path, Any]) -> None:
    dest, out, report = loaded
    objects = sum(1 for _ in object_folders(dest))
    assert (report.exit_code, report.failures, report.objects_loaded) == (0, [], objects)
    assert report.points == total_points(dest) == logged_points(out)
    assert check_wandb(dest, out) == objects
    kinds = {json.loads((f / ".manifest.json").read_text())["kind"] for f in object_folders(dest)}
    assert kinds == {"run", "model", "modelVersion", "project"}
    assert {runs[-1].config["sys"]["id"] for runs in read_all(out / "wandb").values()} >= {"P0-1", "P0-MOD"}
    saved = json.loads((dest / "load-wandb-report.json").read_text())
    assert saved["exit_code"] == 0 and saved["totals"]["points"] == report.points
    assert saved["projects"] == {"workspace-0-project-0": "workspace-0-project-0"}
    assert not list((out / ".neptune-backup" / "wandb-staging").glob("*/*"))  # nothing half written left


def test_hostile_names_map_injectively_and_back(loaded: tuple[Path, Path, Any]) -> None:
    from neptune_backup_async.to_wandb import naming

    _, out, _ = loaded
    run = newest(out)[(PROJECT, HOSTILE_RUN)]
    fields = json.loads((run.dir / "files" / "neptune" / "fields.json").read_text())["fields"]
    keys = {path: fields[path]["key"] for path in HOSTILE if path in fields}
    assert set(keys) == set(HOSTILE)
    assert keys["metrics/loss"] == "metrics/loss" and keys["metrics/Loss"].startswith("metrics/Loss-")
    assert keys["a.b/c.d"] == "a%2Eb/c%2Ed" and keys["_private"] == "%5Fprivate" and keys["100%"] == "100%25"
    assert keys["emoji ✓/v"] == "emoji ✓/v" and keys["dots/../up"] == "dots/%2E%2E/up"
    for path, key in keys.items():  # reversible where not cut or told apart by a hash
        if not key.startswith(("long/", "metrics/Loss")):
            assert naming.decode(key) == path
    assert len({keys["long/" + "x" * 300], keys["long/" + "x" * 299 + "y"]}) == 2
    assert run.config["%5Fprivate"] == 2**53 + 1 and run.config["dots"]["%2E%2E"]["up"] == "NaN"
    assert run.config["when"] == "2024-05-06T07:08:09.123+00:00"
    assert sorted(run.config["sys"]["tags"]) == sorted(HOSTILE["sys/tags"].values)  # type: ignore[union-attr]
    assert "a/b?" in run.tags and "gpu" in run.tags and "GPU" in run.tags
    assert all(len(t) <= 64 for t in run.tags) and any(t.startswith("t" * 47 + "-") for t in run.tags)
    assert run.group == "group-a,group-b"
    fractional = [(r["metrics/frac@step"], r["metrics/frac"]) for r in run.history if "metrics/frac" in r]
    assert [s for s, _ in fractional] == [0.5, 1.25, 2.75, 1e300]
    assert math.isnan(fractional[0][1]) and fractional[1][1] == math.inf and fractional[2][1] == -math.inf


def test_a_rerun_of_the_same_backup_writes_nothing(loaded: tuple[Path, Path, Any]) -> None:
    dest, out, first = loaded
    before = sorted(p.name for p in (out / "wandb").iterdir())

    again = load(dest, out)

    assert (again.objects_unchanged, again.objects_loaded, again.points, again.exit_code) == (
        first.objects_loaded, 0, 0, 0,
    )  # fmt: skip
    assert sorted(p.name for p in (out / "wandb").iterdir()) == before
    dry = anyio.run(lambda: load_wandb(dest, offline=out, dry_run=True))
    assert (dry.objects_unchanged, dry.objects_loaded) == (first.objects_loaded, 0)


def small_world(tmp_path: Path, runs: int = 3) -> World:
    spec = replace(MINIMAL, runs_per_project=runs, float_series=2, float_series_length=300, file_size=500)
    return generate(spec, artifact_root=tmp_path / "artifact-sources")


def first_point_edited(tmp_path: Path, edit: Callable[[str, str, str], str], *, in_manifest: bool) -> str:
    """Back up the small world into ``tmp_path / "backup"``, then rewrite the first row of P0-2's
    first float series with ``edit(step, value, time)``, and with ``in_manifest`` its size and
    sha256 in the manifest too; the CSV's path in the run folder."""
    make_backup(small_world(tmp_path), tmp_path / "backup")
    folder = tmp_path / "backup" / PROJECT / "P0-2"
    manifest = json.loads((folder / ".manifest.json").read_text())
    csv_file: str = min(r["files"][0] for r in manifest["fields"].values() if r["type"] == "floatSeries")
    lines = (folder / csv_file).read_text().split("\n")
    lines[1] = edit(*lines[1].split(","))
    data = "\n".join(lines).encode()
    (folder / csv_file).write_bytes(data)
    if in_manifest:
        manifest["files"][csv_file] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (folder / ".manifest.json").write_text(json.dumps(manifest))
    return csv_file


def test_a_tampered_file_is_named_with_exit_1_and_not_loaded(tmp_path: Path) -> None:
    dest, out = tmp_path / "backup", tmp_path / "offline"
    csv_file = first_point_edited(  # same size, another value
        tmp_path, lambda step, value, when: f"{step},{value[:-1]}{'1' if value[-1] != '1' else '2'},{when}",
        in_manifest=False,
    )  # fmt: skip

    done = run_cli("load-wandb", str(dest), "--offline", str(out), "--quiet")  # what wandb prints, too

    assert done.returncode == 1, done.stderr
    report = json.loads((dest / "load-wandb-report.json").read_text())
    assert [(f["run"], f["reason"].split(" differs")[0]) for f in report["failures"]] == [("P0-2", csv_file)]
    loaded = {sys_id for _, sys_id in newest(out)}
    assert "P0-2" not in loaded and {"P0-1", "P0-3"} <= loaded
    assert "wandb:" not in done.stderr  # wandb's own chatter is not on the terminal


def test_a_point_whose_time_cannot_be_read_fails_its_object_never_lands_in_1970(tmp_path: Path) -> None:
    """A series CSV the manifest agrees with (size and sha256 rewritten too), with a time no
    backup writes: the object fails, named; the point is not given some other time."""
    dest, out = tmp_path / "backup", tmp_path / "offline"
    csv_file = first_point_edited(
        tmp_path, lambda step, value, _: f"{step},{value},yesterday", in_manifest=True
    )

    report = load(dest, out)

    assert report.exit_code == 1
    [failure] = report.failures
    assert failure.run == "P0-2", failure
    assert f"{csv_file}: a series point has an unreadable timestamp 'yesterday'" in failure.reason
    loaded = {sys_id for _, sys_id in newest(out)}
    assert "P0-2" not in loaded and {"P0-1", "P0-3"} <= loaded


@pytest.mark.slow  # an interrupted process, as the README's quick part leaves out
def test_a_load_killed_with_sigkill_and_rerun_has_every_point_once(tmp_path: Path) -> None:
    dest, out = tmp_path / "backup", tmp_path / "offline"
    make_backup(small_world(tmp_path, runs=6), dest)
    command = [sys.executable, "-m", "neptune_backup_async", "load-wandb", str(dest), "--offline", str(out),
               "--quiet", "--concurrency", "1"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed once the first batch (4 runs) is in place, with runs of the next being written
        while len(list((out / "wandb").glob("offline-run-*"))) < 4:
            assert proc.poll() is None, "the load ended before it could be killed"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    placed = len(list((out / "wandb").glob("offline-run-*")))
    assert 4 <= placed < 7

    done = subprocess.run(command, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert all(len(runs) == 1 for runs in read_all(out / "wandb").values())
    assert len(read_all(out / "wandb")) == 7 and logged_points(out) == total_points(dest)  # no point twice
    sent = json.loads((dest / "load-wandb-report.json").read_text())["totals"]
    assert sent["objects_unchanged"] == placed
    assert check_wandb(dest, out) == 7
    assert not list((out / ".neptune-backup" / "wandb-staging").glob("*/*"))


def test_a_rerun_after_a_new_backup_adds_only_what_changed(tmp_path: Path) -> None:
    world = small_world(tmp_path)
    dest, out = tmp_path / "backup", tmp_path / "offline"
    make_backup(world, dest)
    assert load(dest, out).objects_loaded == 4
    first = {
        run.config["sys"]["id"]: run.dir.name for runs in read_all(out / "wandb").values() for run in runs
    }
    loss = world.project(PROJECT).containers["P0-2"].fields["metrics/train/loss"]
    assert isinstance(loss, m.FloatSeries)
    more = tuple(m.FloatPoint(float(s), s / 7, T0 + s) for s in range(1000, 1010))
    world.set_field(PROJECT, "P0-2", "metrics/train/loss", m.FloatSeries(loss.points + more))
    world.set_field(PROJECT, "P0-3", "parameters/p1", m.Int(42))
    make_backup(world, dest)

    report = load(dest, out)

    assert (report.exit_code, report.objects_loaded, report.objects_unchanged) == (0, 2, 2)
    runs = read_all(out / "wandb")
    now = {r[-1].config["sys"]["id"]: r[-1].dir.name for r in runs.values()}
    assert all(len(r) == 1 for r in runs.values())  # the earlier folder of a changed run is moved aside
    assert {k for k in now if now[k] != first[k]} == {"P0-2", "P0-3"}
    superseded = sorted(p.name for p in (out / ".neptune-backup" / "wandb-superseded").iterdir())
    assert superseded == sorted(first[k] for k in ("P0-2", "P0-3"))
    assert check_wandb(dest, out) == 4
    assert newest(out)[(PROJECT, "P0-3")].config["parameters"]["p1"] == 42
    # A load stopped between renaming the new folder in and moving the old one aside left both:
    old = out / ".neptune-backup" / "wandb-superseded" / first["P0-3"]
    old.rename(out / "wandb" / old.name)
    assert load(dest, out).objects_unchanged == 4
    assert all(len(r) == 1 for r in read_all(out / "wandb").values()) and old.is_dir()


def test_cli_says_what_is_wrong_and_exits_2(tmp_path: Path) -> None:
    not_backup = run_here("load-wandb", str(tmp_path), "--offline", str(tmp_path / "o"))
    assert not_backup.returncode == 2 and "is not a backup" in not_backup.stderr
    code = (
        "import sys; sys.modules['wandb'] = None\n"  # `import wandb` fails, as when it is not installed
        "from neptune_backup_async.cli.main import main\n"
        f"sys.exit(main(['load-wandb', {str(tmp_path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and 'pip install "neptune-backup-async[wandb]"' in done.stderr
    assert "Traceback" not in done.stderr
    clash = run_here("load-wandb", str(tmp_path), "--project", "a", "--project-map", "w/p=b")
    assert clash.returncode == 2


def test_one_project_of_an_entity_and_process_state_left_as_it_was(
    loaded: tuple[Path, Path, Any], tmp_path: Path
) -> None:
    dest, _, _ = loaded
    environ, hook = dict(os.environ), sys.excepthook
    seen: list[LoadProgress] = []
    load(dest, tmp_path / "again", runs=["P0-2"], progress=seen.append, project="imported", entity="team")
    assert dict(os.environ) == environ and sys.excepthook is hook
    (run,) = (runs[0] for runs in read_all(tmp_path / "again" / "wandb").values())
    assert (run.project, run.entity, run.config["sys"]["id"]) == ("imported", "team", "P0-2")
    assert seen[0] == LoadProgress(1, 0, 0, 0, starting=True) and seen[-1].objects_done == 1
