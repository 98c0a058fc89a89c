"""Choosing what to back up: objects, run filters, field filters, shards and dry runs.

Run filters are checked against the generator's ground truth with predicates written
here in plain Python, and against the fake server's NQL: in memory (the fake's operations),
and from the command line through the real client.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import run_here
from expect import check_backup, check_container, folder_of, objects_of
from memory_source import MemorySource
from neptune_backup_async import backup
from neptune_backup_async.errors import UsageError
from neptune_backup_async.format.report import BackupReport
from neptune_backup_async.selection import FieldFilter, RunFilter, Selection, Shard
from neptune_backup_async.testing import MINIMAL, WORKLOADS, FakeNeptuneServer, World, generate, serve
from neptune_backup_async.testing import model as m

PROJECT = "workspace-0/project-0"


# -- pure: the query, the globs and the hash ------------------------------------------------


def test_the_default_query_leaves_out_only_the_trash() -> None:
    assert RunFilter().nql() == "(`sys/trashed`:bool = false)"
    assert RunFilter(include_trashed=True).nql() == ""
    assert not RunFilter(include_trashed=True).narrows and RunFilter(tags=("a",)).narrows


def test_conditions_are_joined_with_and_and_values_are_quoted() -> None:
    query = RunFilter(
        runs=("P-1", "P-2"),
        tags=("a", 'say "hi"'),
        states=("running",),
        created_since=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        include_trashed=True,
    ).nql()
    assert query == (
        '(((`sys/id`:string = "P-1") OR (`sys/id`:string = "P-2"))'
        ' AND (`sys/state`:experimentState = "running")'
        ' AND (`sys/tags`:stringSet CONTAINS "a")'
        ' AND (`sys/tags`:stringSet CONTAINS "say \\"hi\\"")'
        ' AND (`sys/creation_time`:datetime >= "2024-01-01T00:00:00.000+00:00"))'
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: RunFilter(states=("paused",)),
        lambda: RunFilter(created_since=dt.datetime(2024, 1, 1)),  # naive
        lambda: RunFilter(
            created_since=dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc),
            created_until=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        ),
        lambda: FieldFilter(exclude=("",)),
        lambda: Shard(4, 4),
        lambda: Shard.parse("1-4"),
        lambda: Selection(objects=frozenset({"experiments"})),
    ],
)
def test_bad_selections_are_usage_errors(make: Callable[[], object]) -> None:
    with pytest.raises(UsageError):
        make()


def test_field_globs_match_paths_and_the_namespaces_they_sit_in() -> None:
    f = FieldFilter(exclude=("monitoring/*", "source_code/files"))
    assert not f.keeps("monitoring/1a2b/cpu")  # * crosses /
    assert not f.keeps("source_code/files")
    assert f.keeps("source_code/git") and f.keeps("monitoringx/cpu") and f.keeps("metrics/loss")
    g = FieldFilter(include=("metrics",), exclude=("metrics/val/*",))
    assert g.keeps("metrics/train/loss") and not g.keeps("metrics/val/loss") and not g.keeps("sys/id")
    assert not g.keeps("metrics_old/loss")  # a namespace ends at a /
    assert not FieldFilter() and FieldFilter().to_json() is None


def test_shards_split_ids_with_no_overlap_and_no_gap() -> None:
    ids = [f"PROJ-{i}" for i in range(2_000)]
    shards = [Shard(k, 5) for k in range(5)]
    owners = [[s for s in shards if s.owns(i)] for i in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o[0] is s) for s in shards]
    assert min(sizes) > 300  # about 400 each
    assert Shard.parse(" 2/5 ") == Shard(2, 5) and str(Shard(2, 5)) == "2/5"


def test_the_shard_of_an_id_is_the_same_in_another_process() -> None:
    code = "from neptune_backup_async.selection import Shard; print([Shard(k, 7).owns('PROJ-42') for k in range(7)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([Shard(k, 7).owns("PROJ-42") for k in range(7)])


# -- run filters against the server ---------------------------------------------------------


@pytest.fixture(scope="module")
def filter_world() -> World:
    world = generate(
        replace(MINIMAL, runs_per_project=40, parameters=3, float_series=1, float_series_length=3)
    )
    runs = world.project(PROJECT).containers
    for sys_id in ("P0-3", "P0-17", "P0-28"):
        runs[sys_id].trashed = True
    return world


@pytest.fixture(scope="module")
def filter_server(filter_world: World) -> Iterator[FakeNeptuneServer]:
    with serve(filter_world) as s:
        yield s


@pytest.fixture
def filter_memory(filter_world: World) -> MemorySource:
    return MemorySource(filter_world)


def _value(run: m.Container, path: str) -> object:
    field = run.fields[path]
    return field.values if isinstance(field, m.StringSet) else field.value  # type: ignore[union-attr]


def _created(world: World, sys_id: str) -> dt.datetime:
    return _value(world.project(PROJECT).containers[sys_id], "sys/creation_time")  # type: ignore[return-value]


FILTERS: dict[str, tuple[Callable[[World], RunFilter], Callable[[World, m.Container], bool]]] = {
    "runs": (
        lambda w: RunFilter(runs=("P0-1", "P0-7", "P0-3")),  # P0-3 is trashed
        lambda w, r: r.sys_id in ("P0-1", "P0-7") and not r.trashed,
    ),
    "tags": (
        lambda w: RunFilter(tags=("baseline", "gpu")),
        lambda w, r: {"baseline", "gpu"} <= _value(r, "sys/tags") and not r.trashed,  # type: ignore[operator]
    ),
    "state": (
        lambda w: RunFilter(states=("running",)),
        lambda w, r: _value(r, "sys/state") == "running" and not r.trashed,
    ),
    "owner": (
        lambda w: RunFilter(owners=("alice", "carol")),
        lambda w, r: _value(r, "sys/owner") in ("alice", "carol") and not r.trashed,
    ),
    "query": (
        lambda w: RunFilter(query="`parameters/p1`:int > 0"),
        lambda w, r: _value(r, "parameters/p1") > 0 and not r.trashed,  # type: ignore[operator]
    ),
    "created window": (
        lambda w: RunFilter(created_since=_created(w, "P0-10"), created_until=_created(w, "P0-20")),
        lambda w, r: 10 <= int(r.sys_id.split("-")[1]) < 20 and not r.trashed,
    ),
    "modified since": (
        lambda w: RunFilter(
            modified_since=_value(w.project(PROJECT).containers["P0-5"], "sys/modification_time")
        ),  # type: ignore[arg-type]
        lambda w, r: (
            _value(r, "sys/modification_time")  # type: ignore[operator]
            >= _value(w.project(PROJECT).containers["P0-5"], "sys/modification_time")
            and not r.trashed
        ),
    ),
    "trashed too": (lambda w: RunFilter(include_trashed=True), lambda w, r: True),
    "combined": (
        lambda w: RunFilter(
            tags=("tuned",), owners=("bob", "alice"), created_since=_created(w, "P0-5"), include_trashed=True
        ),
        lambda w, r: (
            "tuned" in _value(r, "sys/tags")  # type: ignore[operator]
            and _value(r, "sys/owner") in ("bob", "alice")
            and int(r.sys_id.split("-")[1]) >= 5
        ),
    ),
}


@pytest.mark.parametrize("name", FILTERS)
def test_run_filters_back_up_exactly_the_matching_runs(
    filter_world: World, filter_memory: MemorySource, tmp_path: Path, name: str
) -> None:
    make, matches = FILTERS[name]
    expected = {r.sys_id for r in filter_world.project(PROJECT).runs if matches(filter_world, r)}
    assert expected, "a filter that matches nothing proves little"
    assert len(expected) < 40 or name == "trashed too"
    filter_memory.requests.clear()

    selection = Selection(objects=frozenset({"runs"}), runs=make(filter_world))
    report = anyio.run(lambda: backup("all", tmp_path, source=filter_memory, selection=selection))

    saved = {p.name for p in (tmp_path / "workspace-0" / "project-0").iterdir()}
    assert saved == expected
    assert report.exit_code == 0 and report.runs_done == len(expected)
    for sys_id in expected:
        run = filter_world.project(PROJECT).containers[sys_id]
        check_container(run, tmp_path / "workspace-0" / "project-0" / sys_id, artifacts_downloaded=False)
    # Filtered by the server: one page listed (after one of no runs that checks a --query), and
    # only the matching runs read.
    checks = 1 if selection.runs.query else 0
    assert filter_memory.requests["searchLeaderboardEntries"] == 1 + checks
    assert filter_memory.requests["getExperimentAttributes"] == len(expected)
    assert (
        json.loads((tmp_path / "backup-report.json").read_text())["selection"]["runs_query"]
        == selection.runs.nql()
    )


def test_run_filters_from_the_command_line(
    filter_world: World, filter_server: FakeNeptuneServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(filter_server.api_token)
    since = _created(filter_world, "P0-30").isoformat()
    args = ["--projects", PROJECT, "--output", str(tmp_path / "out"), "--api-token-file", str(token)]
    done = run_here(*args, "--objects", "runs", "--state", "idle", "--created-since", since, "--quiet")
    assert done.returncode == 0, done.stderr
    expected = {
        r.sys_id
        for r in filter_world.project(PROJECT).runs
        if _value(r, "sys/state") == "idle" and int(r.sys_id.split("-")[1]) >= 30 and not r.trashed
    }
    assert {p.name for p in (tmp_path / "out" / "workspace-0" / "project-0").iterdir()} == expected

    bad = run_here(*args, "--created-since", "last tuesday")
    assert bad.returncode == 2 and "--created-since takes an ISO 8601 date" in bad.stderr


def test_a_filtered_backup_does_not_call_the_runs_it_left_out_gone(
    filter_world: World, filter_memory: MemorySource, tmp_path: Path
) -> None:
    anyio.run(lambda: backup("all", tmp_path, source=filter_memory))
    selection = Selection(runs=RunFilter(runs=("P0-1",)))
    report = anyio.run(lambda: backup("all", tmp_path, source=filter_memory, selection=selection))
    assert report.exit_code == 0 and report.notices == []


# -- models, versions and the project's own fields ------------------------------------------


@pytest.mark.parametrize(
    ("objects", "kinds"),
    [
        ({"models"}, ("model", "modelVersion")),
        ({"project"}, ("project",)),
        ({"runs", "project"}, ("run", "project")),
    ],
)
def test_objects_chooses_what_is_backed_up(
    demo_world: World, memory: MemorySource, tmp_path: Path, objects: set[str], kinds: tuple[str, ...]
) -> None:
    selection = Selection(objects=frozenset(objects))
    report = anyio.run(
        lambda: backup("all", tmp_path, source=memory, selection=selection, download_artifacts=True)
    )
    assert report.exit_code == 0
    expected = sum(len(objects_of(p, kinds)) for p in demo_world.projects.values())
    assert check_backup(demo_world, tmp_path, kinds=kinds) == expected
    # Nothing else was written: every manifest is of a chosen kind.
    manifests = [json.loads(p.read_text()) for p in tmp_path.rglob(".manifest.json")]
    assert len(manifests) == expected and {d["kind"] for d in manifests} == set(kinds)
    done = run_here("verify", str(tmp_path))
    assert done.returncode == 0, done.stdout
    assert f"Verified {expected} objects" in done.stderr  # 2, 6 or 10


def test_models_keep_their_versions_under_them_and_verify_checks_each(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    project = demo_world.project(PROJECT)
    model = next(project.of_kind("model"))
    # A field of the model that would land on the folder of its versions.
    demo_world.set_field(PROJECT, model.sys_id, "_versions/note", m.File("note", "txt", b"not a version\n"))
    report = anyio.run(lambda: backup(PROJECT, tmp_path, source=memory))
    assert report.exit_code == 0
    model_dir = tmp_path / "workspace-0" / "project-0" / "_models" / model.sys_id
    assert (model_dir / "%5Fversions" / "note.txt").read_bytes() == b"not a version\n"
    versions = [c for c in project.of_kind("modelVersion")]
    assert sorted(p.name for p in (model_dir / "_versions").iterdir()) == sorted(v.sys_id for v in versions)
    for version in versions:
        assert folder_of(tmp_path, project, version).parent == model_dir / "_versions"
        check_container(version, folder_of(tmp_path, project, version), artifacts_downloaded=False)

    assert run_here("verify", str(tmp_path)).returncode == 0
    version_file = folder_of(tmp_path, project, versions[0]) / "model" / "binary.pt"
    version_file.write_bytes(b"damaged")
    done = run_here("verify", str(tmp_path))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"corrupt: {version_file.relative_to(tmp_path).as_posix()}: 7 bytes, expected 512"
    ]


def test_versions_of_a_trashed_model_are_left_out_with_it(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=1, models=2, versions_per_model=2))
    project = world.project(PROJECT)
    trashed, kept = list(project.of_kind("model"))
    trashed.trashed = True
    with MemorySource(world) as memory:
        selection = Selection(objects=frozenset({"models"}))
        report = anyio.run(lambda: backup("all", tmp_path, source=memory, selection=selection))
    assert report.exit_code == 0
    models = tmp_path / "workspace-0" / "project-0" / "_models"
    assert [p.name for p in models.iterdir()] == [kept.sys_id]
    expected = [
        c for c in project.of_kind("modelVersion") if c.fields["sys/model_id"] == m.String(kept.sys_id)
    ]
    assert sorted(p.name for p in (models / kept.sys_id / "_versions").iterdir()) == sorted(
        c.sys_id for c in expected
    )
    assert run_here("verify", str(tmp_path)).returncode == 0


def test_include_trashed_saves_trashed_models_and_versions_too(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=1, models=2, versions_per_model=2))
    project = world.project(PROJECT)
    trashed, kept = list(project.of_kind("model"))
    world.trash(PROJECT, trashed.sys_id)
    kept_versions = [
        c for c in project.of_kind("modelVersion") if c.fields["sys/model_id"] == m.String(kept.sys_id)
    ]
    world.trash(PROJECT, kept_versions[0].sys_id)  # a version in the trash, of a model that is not
    selection = Selection(objects=frozenset({"models"}), runs=RunFilter(include_trashed=True))
    with serve(world) as server:
        report = anyio.run(lambda: backup("all", tmp_path, api_token=server.api_token, selection=selection))
    assert report.exit_code == 0
    saved = [*project.of_kind("model"), *project.of_kind("modelVersion")]
    assert len(saved) == 6
    for container in saved:
        check_container(container, folder_of(tmp_path, project, container), artifacts_downloaded=False)
    assert report.projects[PROJECT].counts["model"].done == 2
    assert report.projects[PROJECT].counts["modelVersion"].done == 4
    assert run_here("verify", str(tmp_path)).returncode == 0


def test_a_project_without_models_costs_one_listing_for_them(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=2))
    with MemorySource(world) as memory:
        anyio.run(lambda: backup("all", tmp_path, source=memory))
        listings = memory.requests["searchLeaderboardEntries"]
    assert listings == 2  # runs, and models (none, so no versions)


# -- sharding ---------------------------------------------------------------------------------


def files_under(dest: Path) -> dict[str, bytes]:
    """The backup: every file but the reports and what is in ``.neptune-backup/`` (logs, locks)."""
    return {
        p.relative_to(dest).as_posix(): p.read_bytes()
        for p in dest.rglob("*")
        if p.is_file() and not p.name.startswith("backup-report") and ".neptune-backup" not in p.parts
    }


def test_shards_together_equal_one_backup_file_for_file(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    def run(dest: Path, shard: Shard | None) -> BackupReport:
        selection = Selection(shard=shard)
        return anyio.run(lambda: backup("all", dest, source=memory, selection=selection))

    run(tmp_path / "whole", None)
    whole = files_under(tmp_path / "whole")
    merged = tmp_path / "merged"
    seen: dict[str, int] = {}
    for k in range(3):
        report = run(tmp_path / f"shard-{k}", Shard(k, 3))
        assert report.exit_code == 0
        assert (tmp_path / f"shard-{k}" / f"backup-report.shard-{k}-of-3.json").is_file()
        part = files_under(tmp_path / f"shard-{k}")
        assert part, f"shard {k} of 3 got nothing: the test proves little"
        overlap = set(part) & set(seen)
        assert not overlap, f"written by shards {k} and {[seen[p] for p in overlap]}: {sorted(overlap)[:3]}"
        seen.update(dict.fromkeys(part, k))
        shutil.copytree(tmp_path / f"shard-{k}", merged, dirs_exist_ok=True)  # plain copying

    assert files_under(merged) == whole
    assert check_backup(demo_world, merged, artifacts_downloaded=False) == 16

    done = run_here("report", str(merged))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "merged from 3 reports (shards: 0/3, 1/3, 2/3)" in done.stdout
    assert "8 of 8 runs backed up (0 unchanged, 0 failed)" in done.stdout
    (merged / "backup-report.shard-1-of-3.json").unlink()
    done = run_here("report", str(merged))
    assert done.returncode == 1 and "missing shards: 1/3" in done.stdout
    (merged / "backup-report.shard-2-of-3.json").unlink()  # one shard's report alone
    done = run_here("report", str(merged))
    assert done.returncode == 1 and "missing shards: 1/3, 2/3" in done.stdout


def test_shards_sharing_a_folder_each_report_only_their_own_runs_gone(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    def run(k: int) -> BackupReport:
        selection = Selection(objects=frozenset({"runs"}), shard=Shard(k, 2))
        return anyio.run(lambda: backup(PROJECT, tmp_path, source=memory, selection=selection))

    run(0), run(1)
    gone = next(r.sys_id for r in demo_world.project(PROJECT).runs if Shard(1, 2).owns(r.sys_id))
    demo_world.remove_container(PROJECT, gone)
    assert run(0).notices == []
    assert [(n.run, n.field) for n in run(1).notices] == [(gone, None)]
    assert (tmp_path / "workspace-0" / "project-0" / gone / ".manifest.json").is_file()  # kept


# -- dry run ----------------------------------------------------------------------------------


def test_dry_run_counts_what_it_would_fetch_and_writes_nothing(
    demo_world: World, memory: MemorySource, tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    report = anyio.run(lambda: backup("all", dest, source=memory, dry_run=True))
    assert not dest.exists()
    assert report.exit_code == 0 and report.dry_run and report.bytes_written == 0
    assert report.runs_found == 8
    containers = [c for p in demo_world.projects.values() for c in objects_of(p)]
    files = [v for c in containers for v in c.fields.values() if isinstance(v, m.File)]
    totals: dict[str, list[int]] = {}
    for p in report.projects.values():
        for kind, (n, size) in p.planned.items():
            totals.setdefault(kind, [0, 0])
            totals[kind][0] += n
            totals[kind][1] += size
    assert set(totals) >= {"file", "floatSeries", "fileSet", "imageSeries", "string"}
    assert totals["file"] == [len(files), sum(len(f.data) for f in files)]
    assert totals["floatSeries"][0] == sum(
        isinstance(v, m.FloatSeries) for c in containers for v in c.fields.values()
    )
    # Requests: listings and one field listing per object, nothing downloaded.
    ops = memory.requests
    assert ops["getExperimentAttributes"] == len(containers)
    assert not {"getFloatSeriesValues", "downloadAttribute", "getImageSeriesValue"} & set(ops)

    # After a backup, a dry run finds nothing to fetch but each project's own fields.
    anyio.run(lambda: backup("all", dest, source=memory))
    before = files_under(dest)
    again = anyio.run(lambda: backup("all", dest, source=memory, dry_run=True))
    assert again.runs_unchanged == again.runs_found == 8
    assert files_under(dest) == before and len(list(dest.glob("backup-report*"))) == 1


def test_dry_run_from_the_command_line(demo_world: World, server: FakeNeptuneServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(server.api_token)
    out = tmp_path / "never"
    done = run_here("--projects", PROJECT, "--output", str(out), "--api-token-file", str(token), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert not out.exists()
    assert "Dry run (nothing written)" in done.stdout and "4 of 4 runs to back up" in done.stdout
    assert f"  {PROJECT}: 4 runs, 1 model, 2 model versions and its own fields\n" in done.stdout
    files = [
        v for c in objects_of(demo_world.project(PROJECT)) for v in c.fields.values() if isinstance(v, m.File)
    ]
    assert len(files) == 7  # 4 runs, 1 model and 2 versions have one each
    size = sum(len(f.data) for f in files)
    assert 1000 <= size < 9950  # so that it shows as "N.N kB"
    assert f"  file: 7 fields, {size / 1000:.1f} kB\n" in done.stdout


# -- field filters and incremental reruns -----------------------------------------------------


def test_field_filters_are_recorded_and_reruns_stay_correct(tmp_path: Path) -> None:
    world = generate(replace(WORKLOADS["demo"], projects_per_workspace=1, models=0))
    run_id = "P0-1"
    with MemorySource(world) as memory:

        def run(dest: Path, fields: FieldFilter) -> dict[str, int]:
            memory.requests.clear()
            selection = Selection(objects=frozenset({"runs"}), fields=fields)
            report = anyio.run(lambda: backup("all", dest, source=memory, selection=selection))
            assert report.exit_code == 0
            return dict(memory.requests)

        dest = tmp_path / "filtered"
        no_monitoring = FieldFilter(exclude=("monitoring/*",))
        run(dest, no_monitoring)
        folder = dest / "workspace-0" / "project-0" / run_id
        manifest = json.loads((folder / ".manifest.json").read_text())
        assert manifest["field_filter"] == {"include": [], "exclude": ["monitoring/*"]}
        assert not (folder / "monitoring").exists()
        assert not any(p.startswith("monitoring/") for p in manifest["fields"])
        run_fields = world.project(PROJECT).containers[run_id].fields
        kept = m.Container(
            run_id, "run", {p: v for p, v in run_fields.items() if not p.startswith("monitoring/")}
        )
        check_container(kept, folder, artifacts_downloaded=False)

        # The same filter again: nothing changed, nothing read.
        ops = run(dest, no_monitoring)
        assert "getExperimentAttributes" not in ops and "getFloatSeriesValues" not in ops

        # Without the filter: each run's listing, then only the monitoring series.
        ops = run(dest, FieldFilter())
        runs = len(world.project(PROJECT).runs)
        assert ops["getExperimentAttributes"] == runs
        assert ops["getFloatSeriesValues"] == 3 * runs and ops["getStringSeriesValues"] == 2 * runs
        assert "downloadAttribute" not in ops
        full = tmp_path / "full"
        run(full, FieldFilter())
        assert files_under(dest) == files_under(full)

        # Narrowed again: the monitoring copies are kept, marked, and still verify.
        run(dest, FieldFilter(include=("parameters", "sys")))
        manifest = json.loads((folder / ".manifest.json").read_text())
        monitoring = [p for p in manifest["fields"] if p.startswith("monitoring/")]
        assert monitoring and all(manifest["fields"][p]["excluded"] is True for p in monitoring)
        assert manifest["fields"]["parameters/p1"].get("excluded") is None
        check_container(world.project(PROJECT).containers[run_id], folder, artifacts_downloaded=False)
        assert run_here("verify", str(dest)).returncode == 0


def test_every_selection_flag_reaches_the_selection() -> None:
    from neptune_backup_async.cli.main import _parser, selection_from

    args = _parser().parse_args(
        ["backup", "--objects", "runs,project", "--runs", "P-1,P-2", "--tags", "a,b", "--state", "idle",
         "--owner", "alice", "--query", "`x`:int > 1", "--created-since", "2024-05-01",
         "--created-until", "2024-06-01T12:00:00+02:00", "--modified-since", "2024-05-15T00:00:00Z",
         "--include-trashed", "--exclude-fields", "monitoring/*,logs", "--include-fields", "metrics,sys",
         "--shard", "1/3"]
    )  # fmt: skip
    utc = dt.timezone.utc
    assert selection_from(args) == Selection(
        objects=frozenset({"runs", "project"}),
        runs=RunFilter(
            runs=("P-1", "P-2"),
            tags=("a", "b"),
            states=("idle",),
            owners=("alice",),
            query="`x`:int > 1",
            created_since=dt.datetime(2024, 5, 1, tzinfo=utc),
            created_until=dt.datetime(2024, 6, 1, 10, tzinfo=utc),
            modified_since=dt.datetime(2024, 5, 15, tzinfo=utc),
            include_trashed=True,
        ),
        fields=FieldFilter(include=("metrics", "sys"), exclude=("logs", "monitoring/*")),
        shard=Shard(1, 3),
    )


def test_a_shard_with_a_field_filter_from_the_command_line(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(server.api_token)
    out = tmp_path / "out"
    args = ["--projects", PROJECT, "--output", str(out), "--api-token-file", str(token), "--quiet"]
    done = run_here(*args, "--objects", "runs", "--shard", "1/2", "--exclude-fields", "monitoring,images")
    assert done.returncode == 0, done.stderr
    assert f"Report: {out / 'backup-report.shard-1-of-2.json'}" in done.stderr
    runs = demo_world.project(PROJECT).runs
    mine = [r for r in runs if Shard(1, 2).owns(r.sys_id)]
    assert 0 < len(mine) < len(runs)
    assert sorted(p.name for p in (out / "workspace-0" / "project-0").iterdir()) == sorted(
        r.sys_id for r in mine
    )
    for run in mine:
        kept = {p: v for p, v in run.fields.items() if not p.startswith(("monitoring/", "images/"))}
        folder = out / "workspace-0" / "project-0" / run.sys_id
        check_container(m.Container(run.sys_id, "run", kept), folder, artifacts_downloaded=False)
        assert not (folder / "monitoring").exists() and not (folder / "images").exists()
    [log] = (out / ".neptune-backup").glob("*.log")
    assert log.name.endswith("-shard-1-of-2.log")
