"""The fake Neptune server, exercised through the real ``neptune`` client (no mocks)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import neptune
import pytest
import requests
from neptune import management
from neptune.attributes import GitRef as GitRefAttribute
from neptune.attributes import NotebookRef as NotebookRefAttribute
from neptune.attributes import RunState as RunStateAttribute
from neptune.common.exceptions import Unauthorized
from neptune.exceptions import (
    FetchAttributeNotFoundException,
    MetadataContainerNotFound,
    NeptuneInvalidQueryException,
    ProjectNotFound,
)

from neptune_backup_async.testing import Gather, Hold
from neptune_backup_async.testing.model import (
    Artifact,
    ArtifactFile,
    Bool,
    Checkpoint,
    Container,
    Datetime,
    File,
    FileSet,
    Float,
    FloatPoint,
    FloatSeries,
    GitRef,
    ImagePoint,
    ImageSeries,
    Int,
    NotebookRef,
    Project,
    State,
    String,
    StringPoint,
    StringSeries,
    StringSet,
    Value,
    World,
)
from neptune_backup_async.testing.nql import NqlSyntaxError, compile_query
from neptune_backup_async.testing.operations import zip_bytes
from neptune_backup_async.testing.server import HTML_PAGE, FakeNeptuneServer, Faults, route, serve

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
PROJECT = "team/vision"
BIG_PROJECT = "team/big"
BIG_RUNS = 10_050
OWNERS = ("alice", "bob", "carol")
PNG = b"\x89PNG\r\n\x1a\n" + b"fake image "


@pytest.fixture(scope="module", autouse=True)
def _client_env() -> Iterator[None]:
    # Module-scoped (the run fixture opens a client once): the fake speaks plain http, and
    # every call passes its token explicitly.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
        patch.delenv("NEPTUNE_API_TOKEN", raising=False)
        patch.delenv("NEPTUNE_PROJECT", raising=False)
        yield


def sys_fields(
    sys_id: str, created: dt.datetime, owner: str = "alice", tags: frozenset[str] = frozenset()
) -> dict[str, Value]:
    return {
        "sys/id": String(sys_id),
        "sys/name": String(f"name of {sys_id}"),
        "sys/owner": String(owner),
        "sys/creation_time": Datetime(created),
        "sys/modification_time": Datetime(created + dt.timedelta(minutes=5)),
        "sys/tags": StringSet(tags),
    }


def full_run_fields() -> dict[str, Value]:
    """One run with every field type."""
    fields = sys_fields("VIS-1", T0, tags=frozenset({"baseline", "gpu"}))
    fields.update(
        {
            "sys/state": State("idle"),
            "sys/failed": Bool(False),
            "params/lr": Float(0.000123456789),
            "params/epochs": Int(2**40 + 3),
            "params/shuffle": Bool(True),
            "params/optimizer": String('adam ✓ "quoted", with comma'),
            "params/started": Datetime(T0 + dt.timedelta(milliseconds=123)),
            "params/labels": StringSet(frozenset({"cat", "dog"})),
            "source_code/git": GitRef(
                commit_id="a" * 40,
                message="first commit",
                author_name="Alice",
                author_email="alice@example.com",
                commit_date=T0 - dt.timedelta(hours=1),
                branch="main",
                dirty=True,
                remotes=("git@example.com:team/vision.git",),
            ),
            "source_code/notebook": NotebookRef("nb-1", "explore.ipynb", "ck-1", "checkpoint 1"),
            "metrics/loss": FloatSeries(
                tuple(FloatPoint(float(i), 1 / (i + 1), 1_709_294_400_000 + i * 10) for i in range(2_500))
            ),
            "logs/stdout": StringSeries(
                tuple(StringPoint(float(i), f"line {i} ✓", 1_709_294_400_000 + i) for i in range(1_200))
            ),
            "images/preds": ImageSeries(
                (
                    ImagePoint(0.0, 1_709_294_400_000, "first", "epoch 0", PNG + b"0"),
                    ImagePoint(1.0, 1_709_294_401_000, "second", "epoch 1", PNG + b"1"),
                    ImagePoint(2.0, 1_709_294_402_000, "third", "epoch 2", b"\xff\xd8jpeg", "image/jpeg"),
                )
            ),
            "data/sample": File("sample", "bin", bytes(range(256)) * 400),
            "source_code/files": FileSet(
                (("README.md", b"# vision\n"), ("src/a.py", b"A = 1\n"), ("src/pkg/b.py", b"B = 2\n"))
            ),
            "datasets/train": Artifact(
                "f" * 64,
                (
                    ArtifactFile(
                        "part-0.bin", "1" * 40, "Local", 10, (("file_path", "file:///data/part-0.bin"),)
                    ),
                    ArtifactFile("part-1.bin", "2" * 40, "S3", 20, (("location", "s3://bucket/part-1.bin"),)),
                ),
            ),
        }
    )
    return fields


def small_world() -> World:
    world = World()
    project = Project(workspace="team", name="vision", key="VIS")
    project.container = Container(
        "VIS",
        "project",
        {"sys/id": String("VIS"), "general/brief": String("the project's own field")},
        project.uuid,
    )
    world.add_project(project)
    world.add_project(Project(workspace="other", name="empty", key="EMP"))
    world.add_container(PROJECT, Container("VIS-1", "run", full_run_fields()))
    for i in range(2, 6):
        fields = sys_fields(
            f"VIS-{i}", T0 + dt.timedelta(seconds=i), OWNERS[i % 3], frozenset({"gpu"} if i % 2 else ())
        )
        fields["sys/state"] = State("running" if i == 5 else "idle")
        fields["params/lr"] = Float(i / 10)
        world.add_container(PROJECT, Container(f"VIS-{i}", "run", fields))
    world.add_container(PROJECT, Container("VIS-6", "run", sys_fields("VIS-6", T0), trashed=True))
    model = sys_fields("VIS-MOD", T0 + dt.timedelta(hours=1))
    world.add_container(PROJECT, Container("VIS-MOD", "model", model))
    for v in (1, 2):
        version = sys_fields(f"VIS-MOD-{v}", T0 + dt.timedelta(hours=1, seconds=v))
        version.update({"sys/model_id": String("VIS-MOD"), "validation/acc": Float(0.5 + v / 10)})
        world.add_container(PROJECT, Container(f"VIS-MOD-{v}", "modelVersion", version))
    return world


def big_world() -> World:
    world = World()
    project = Project(workspace="team", name="big", key="BIG")
    for i in range(1, BIG_RUNS + 1):
        sys_id = f"BIG-{i}"
        fields = sys_fields(sys_id, T0 + dt.timedelta(seconds=i), OWNERS[i % 3], frozenset({f"t{i % 5}"}))
        fields["sys/state"] = State("running" if i % 1000 == 0 else "idle")
        project.containers[sys_id] = Container(sys_id, "run", fields, trashed=i % 2000 == 0)
    world.add_project(project)
    return world


@pytest.fixture(scope="module")
def server() -> Iterator[FakeNeptuneServer]:
    with serve(small_world()) as running:
        yield running


@pytest.fixture(scope="module")
def big_server() -> Iterator[FakeNeptuneServer]:
    with serve(big_world()) as running:
        yield running


@pytest.fixture(scope="module")
def run(server: FakeNeptuneServer) -> Iterator[neptune.Run]:
    token = server.api_token
    with neptune.init_run(with_id="VIS-1", project=PROJECT, mode="read-only", api_token=token) as opened:
        yield opened


def ids(table: Any) -> list[str]:
    return [row.get_attribute_value("sys/id") for row in table]


def raw(server: FakeNeptuneServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A plain HTTP call authorised with the API token (the client sends it the same way)."""
    headers = {"X-Neptune-Api-Token": server.api_token}
    kwargs.setdefault("timeout", 10)
    return requests.request(method, server.base_url + path, headers=headers, **kwargs)


def settle(server: FakeNeptuneServer) -> None:
    """Wait until the server has booked every request: it books a request after sending its
    answer, so a client can hold the answer before the server's Stats show it."""
    deadline = time.monotonic() + 5
    while server.stats.unbooked and time.monotonic() < deadline:
        time.sleep(0.005)


# -- projects ----------------------------------------------------------------------------------


def test_project_list(server: FakeNeptuneServer) -> None:
    assert sorted(management.get_project_list(api_token=server.api_token)) == ["other/empty", PROJECT]


def test_unknown_project_is_not_found(server: FakeNeptuneServer) -> None:
    with pytest.raises(ProjectNotFound):
        neptune.init_project(project="team/nope", mode="read-only", api_token=server.api_token)


def test_project_fields(server: FakeNeptuneServer) -> None:
    with neptune.init_project(project=PROJECT, mode="read-only", api_token=server.api_token) as project:
        assert project["general/brief"].fetch() == "the project's own field"


# -- runs table --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.slow
def test_runs_table_past_10000_returns_every_run_once(big_server: FakeNeptuneServer) -> None:
    with neptune.init_project(
        project=BIG_PROJECT, mode="read-only", api_token=big_server.api_token
    ) as project:
        big_server.stats.reset()
        table = project.fetch_runs_table(ascending=True, columns=["sys/id"], progress_bar=False)
        got = ids(table)
    expected = [f"BIG-{i}" for i in range(1, BIG_RUNS + 1) if i % 2000]
    assert got == expected
    # limit=0 count, 100 pages to offset 10,000, then the keyset page and an empty one
    assert big_server.stats.by_operation["searchLeaderboardEntries"] == 1 + 100 + 2


def test_runs_table_filters(big_server: FakeNeptuneServer) -> None:
    with neptune.init_project(
        project=BIG_PROJECT, mode="read-only", api_token=big_server.api_token
    ) as project:

        def fetch(**kwargs: Any) -> set[str]:
            return set(ids(project.fetch_runs_table(columns=["sys/id"], progress_bar=False, **kwargs)))

        assert fetch(id=["BIG-3", "BIG-7", "BIG-2000", "BIG-99999"]) == {"BIG-3", "BIG-7"}
        assert fetch(state="active") == {f"BIG-{i}" for i in range(1000, BIG_RUNS + 1, 1000) if i % 2000}
        assert fetch(id=["BIG-1", "BIG-2", "BIG-3"], owner="bob") == {"BIG-1"}
        assert fetch(id=["BIG-1", "BIG-2", "BIG-3"], owner=["bob", "carol"]) == {"BIG-1", "BIG-2"}
        assert fetch(id=["BIG-4", "BIG-5", "BIG-9"], tag="t4") == {"BIG-4", "BIG-9"}
        assert fetch(id=["BIG-4", "BIG-5"], tag=["t4", "t0"]) == set()  # every tag must match
        assert fetch(id=["BIG-2000", "BIG-3"], trashed=True) == {"BIG-2000"}
        assert fetch(id=["BIG-2000", "BIG-3"], trashed=None) == {"BIG-2000", "BIG-3"}
        query = '(`sys/id`:string = "BIG-10" OR sys/id:string = BIG-11) AND NOT (sys/tags:stringSet CONTAINS "t0")'
        assert fetch(query=query) == {"BIG-11"}
        late = (T0 + dt.timedelta(seconds=BIG_RUNS - 2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert fetch(query=f'(sys/creation_time:datetime > "{late}")') == {"BIG-10049", "BIG-10050"}
        top = project.fetch_runs_table(sort_by="sys/id", limit=3, columns=["sys/id"], progress_bar=False)
        assert ids(top) == ["BIG-9999", "BIG-9998", "BIG-9997"]  # string order, descending


def test_runs_table_sorts_and_filters_numbers(server: FakeNeptuneServer) -> None:
    with neptune.init_project(project=PROJECT, mode="read-only", api_token=server.api_token) as project:
        table = project.fetch_runs_table(
            query="(params/lr:float >= 0.3) AND (params/lr:float < 0.5)", sort_by="params/lr", ascending=True
        )
        assert ids(table) == ["VIS-3", "VIS-4"]
        frame = project.fetch_runs_table(id="VIS-1").to_pandas()
        row = frame.iloc[0]
        assert row["params/epochs"] == 2**40 + 3
        assert row["sys/state"] == "Inactive"
        assert row["source_code/git"] == "a" * 40
        assert row["metrics/loss"] == pytest.approx(1 / 2_500)


def test_nql_syntax_error(server: FakeNeptuneServer) -> None:
    with neptune.init_project(project=PROJECT, mode="read-only", api_token=server.api_token) as project:
        table = project.fetch_runs_table(query='(sys/id:string = "VIS-1"', progress_bar=False)
        with pytest.raises(NeptuneInvalidQueryException):
            table.to_rows()  # the table is lazy: the first page is fetched here


def test_offset_past_10000_is_rejected(server: FakeNeptuneServer) -> None:
    project_uuid = server.world.project(PROJECT).uuid
    body = {"query": {"query": ""}, "pagination": {"limit": 100, "offset": 9_950}}
    answer = raw(
        server,
        "POST",
        f"/api/leaderboard/v1/leaderboard/entries/search?projectIdentifier={project_uuid}",
        json=body,
    )
    assert answer.status_code == 400
    body["pagination"] = {"limit": 50, "offset": 9_950}
    ok = raw(
        server,
        "POST",
        f"/api/leaderboard/v1/leaderboard/entries/search?projectIdentifier={project_uuid}",
        json=body,
    )
    assert ok.status_code == 200 and ok.json()["entries"] == []


# -- a run's fields ----------------------------------------------------------------------------


def test_atoms(run: neptune.Run) -> None:
    fields = full_run_fields()
    for path in ("params/lr", "params/epochs", "params/shuffle", "params/optimizer", "sys/owner"):
        value = fields[path]
        assert isinstance(value, Float | Int | Bool | String)
        assert run[path].fetch() == value.value, path
    assert run["params/started"].fetch() == T0 + dt.timedelta(milliseconds=123)
    assert run["sys/creation_time"].fetch() == T0
    assert run["params/labels"].fetch() == {"cat", "dog"}
    assert run["sys/tags"].fetch() == {"baseline", "gpu"}
    assert run["metrics/loss"].fetch_last() == 1 / 2_500
    assert run["data/sample"].fetch_extension() == "bin"


def test_structure_has_every_type(run: neptune.Run) -> None:
    structure = run.get_structure()
    assert isinstance(structure["source_code"]["git"], GitRefAttribute)
    assert isinstance(structure["source_code"]["notebook"], NotebookRefAttribute)
    assert isinstance(structure["sys"]["state"], RunStateAttribute)
    flat = {f"{ns}/{name}" for ns, children in structure.items() for name in children}
    assert {"sys/id", "params/lr", "metrics/loss", "images/preds", "data/sample", "datasets/train"} <= flat


def test_series_values(run: neptune.Run) -> None:
    fields = full_run_fields()
    for path in ("metrics/loss", "logs/stdout"):
        series = fields[path]
        assert isinstance(series, FloatSeries | StringSeries)
        frame = run[path].fetch_values(progress_bar=False)
        assert list(frame["step"]) == [p.step for p in series.points]
        assert list(frame["value"]) == [p.value for p in series.points]
        expected_times = [dt.datetime.fromtimestamp(p.timestamp_ms / 1000) for p in series.points]
        assert list(frame["timestamp"]) == expected_times


def test_file_download(run: neptune.Run, tmp_path: Path) -> None:
    run["data/sample"].download(str(tmp_path))
    sample = full_run_fields()["data/sample"]
    assert isinstance(sample, File)
    assert (tmp_path / "sample.bin").read_bytes() == sample.data


def test_file_series_download(run: neptune.Run, tmp_path: Path) -> None:
    run["images/preds"].download(str(tmp_path), progress_bar=False)
    images = full_run_fields()["images/preds"]
    assert isinstance(images, ImageSeries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.png", "1.png", "2.jpeg"]
    for name, image in zip(("0.png", "1.png", "2.jpeg"), images.images, strict=True):
        assert (tmp_path / name).read_bytes() == image.data


def test_image_series_values_give_the_count_only(server: FakeNeptuneServer) -> None:
    query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "images/preds", "offset": 1, "limit": 5}
    body = raw(server, "GET", "/api/leaderboard/v1/attributes/series/image", params=query).json()
    assert body == {"totalItemCount": 3}


def test_an_image_series_read_as_a_channel_gives_steps_times_names(server: FakeNeptuneServer) -> None:
    attributes = raw(
        server, "GET", "/api/leaderboard/v1/attributes", params={"experimentId": f"{PROJECT}/VIS-1"}
    )
    [images] = [a for a in attributes.json()["attributes"] if a["name"] == "images/preds"]
    channel = images["imageSeriesProperties"]["channelId"]
    assert route("GET", f"/api/leaderboard/v1/channels/{channel}/values") == "getChannelValues"
    body = raw(
        server, "GET", f"/api/leaderboard/v1/channels/{channel}/values", params={"offset": 1, "limit": 5}
    )
    assert (body.status_code, body.json()["channelId"], body.json()["totalItemCount"]) == (200, channel, 3)
    assert body.json()["values"] == [
        {
            "timestampMillis": 1_709_294_401_000,
            "x": 1.0,
            "y": {"imageValue": {"name": "second", "description": "epoch 1"}},
        },
        {
            "timestampMillis": 1_709_294_402_000,
            "x": 2.0,
            "y": {"imageValue": {"name": "third", "description": "epoch 2"}},
        },
    ]
    # Each container's series is a channel of its own.
    other = raw(server, "GET", "/api/leaderboard/v1/channels/00000000-0000-0000-0000-000000000000/values")
    assert other.status_code == 404


def test_file_set(run: neptune.Run, server: FakeNeptuneServer, tmp_path: Path) -> None:
    run["source_code/files"].download(str(tmp_path), progress_bar=False)
    with zipfile.ZipFile(tmp_path / "files.zip") as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    file_set = full_run_fields()["source_code/files"]
    assert isinstance(file_set, FileSet)
    assert contents == dict(file_set.files)
    assert (tmp_path / "files.zip").read_bytes() == zip_bytes(file_set)  # deterministic
    assert server.stats.by_operation["downloadFileSetZip"] >= 1

    root = run["source_code/files"].list_fileset_files()
    assert [(e.name, e.file_type, e.size) for e in root] == [
        ("README.md", "file", 9),
        ("src", "directory", 12),
    ]
    nested = run["source_code/files"].list_fileset_files("src")
    assert [(e.name, e.file_type) for e in nested] == [("a.py", "file"), ("pkg", "directory")]


def test_a_zip_built_slowly_is_polled_until_it_is_ready(fresh: FakeNeptuneServer, tmp_path: Path) -> None:
    fresh.faults.zip_polls = 2  # two answers without a downloadUrl, then the one with it
    token = fresh.api_token
    with neptune.init_run(with_id="VIS-1", project=PROJECT, mode="read-only", api_token=token) as opened:
        opened["source_code/files"].download(str(tmp_path), progress_bar=False)
    file_set = full_run_fields()["source_code/files"]
    assert isinstance(file_set, FileSet)
    assert (tmp_path / "files.zip").read_bytes() == zip_bytes(file_set)
    settle(fresh)
    by_operation = fresh.stats.by_operation
    assert (
        by_operation["prepareForDownloadFileSetAttributeZip"],
        by_operation["getDownloadPrepareRequest"],
    ) == (1, 3)


def test_notebook_checkpoints(fresh: FakeNeptuneServer) -> None:
    content = b'{"cells": [], "nbformat": 4}\n'
    checkpoint = Checkpoint("5d0c3cb6-8e7c-4d2e-9f2b-3c1a0d9e8f70", "nb-1", "first", "nb.ipynb", content, T0)
    fresh.world.checkpoints[checkpoint.id] = checkpoint
    base = "/api/leaderboard/v1/notebooks/checkpoints"
    listed = raw(fresh, "GET", f"{base}/{checkpoint.id}").json()
    assert (listed["id"], listed["notebookId"], listed["size"]) == (checkpoint.id, "nb-1", len(content))
    assert listed["creationTime"] == "2024-03-01T12:00:00.000Z"
    answer = raw(fresh, "GET", f"{base}/{checkpoint.id}/content")
    assert (answer.status_code, answer.content) == (200, content)
    assert answer.headers["Content-Disposition"] == 'attachment; filename="nb.ipynb"'
    # The small world's notebook ref names "ck-1", a checkpoint the server does not have.
    assert raw(fresh, "GET", f"{base}/ck-1").status_code == 404
    assert raw(fresh, "GET", f"{base}/ck-1/content").status_code == 404


def test_artifact(run: neptune.Run) -> None:
    assert run["datasets/train"].fetch_hash() == "f" * 64
    files = run["datasets/train"].fetch_files_list()
    assert [(f.file_path, f.file_hash, f.type, f.size) for f in files] == [
        ("part-0.bin", "1" * 40, "Local", 10),
        ("part-1.bin", "2" * 40, "S3", 20),
    ]
    assert files[0].metadata == {"file_path": "file:///data/part-0.bin"}


def test_models(server: FakeNeptuneServer) -> None:
    token = server.api_token
    with neptune.init_project(project=PROJECT, mode="read-only", api_token=token) as project:
        assert ids(project.fetch_models_table(progress_bar=False)) == ["VIS-MOD"]
    with neptune.init_model(with_id="VIS-MOD", project=PROJECT, mode="read-only", api_token=token) as model:
        versions = model.fetch_model_versions_table(ascending=True, progress_bar=False)
        assert ids(versions) == ["VIS-MOD-1", "VIS-MOD-2"]
    with neptune.init_model_version(
        with_id="VIS-MOD-2", project=PROJECT, mode="read-only", api_token=token
    ) as v:
        assert v["validation/acc"].fetch() == pytest.approx(0.7)
        assert v["sys/model_id"].fetch() == "VIS-MOD"


def test_trashed_models_are_listed_only_when_asked_for() -> None:
    world = small_world()
    world.trash(PROJECT, "VIS-MOD")
    with serve(world) as fresh:
        token = fresh.api_token
        with neptune.init_project(project=PROJECT, mode="read-only", api_token=token) as project:
            assert ids(project.fetch_models_table(progress_bar=False)) == []
            assert ids(project.fetch_models_table(trashed=True, progress_bar=False)) == ["VIS-MOD"]
            world.trash(PROJECT, "VIS-MOD", trashed=False)
            assert ids(project.fetch_models_table(progress_bar=False)) == ["VIS-MOD"]
            assert ids(project.fetch_models_table(trashed=True, progress_bar=False)) == []


# -- errors ------------------------------------------------------------------------------------


def test_unknown_run_and_attribute(server: FakeNeptuneServer) -> None:
    token = server.api_token
    with pytest.raises(MetadataContainerNotFound):
        neptune.init_run(with_id="VIS-404", project=PROJECT, mode="read-only", api_token=token)
    with neptune.init_run(with_id="VIS-2", project=PROJECT, mode="read-only", api_token=token) as opened:
        server.world.set_field(PROJECT, "VIS-2", "sys/name", None)  # gone after the structure was read
        with pytest.raises(FetchAttributeNotFoundException):
            opened["sys/name"].fetch()


def test_revoked_token_gets_401() -> None:
    with serve(small_world()) as fresh:
        old_token = fresh.api_token
        with neptune.init_run(
            with_id="VIS-1", project=PROJECT, mode="read-only", api_token=old_token
        ) as opened:
            assert opened["params/shuffle"].fetch() is True
            fresh.revoke_token()
            with pytest.raises(Unauthorized):
                opened["params/shuffle"].fetch()
            settle(fresh)
            assert fresh.stats.statuses[401] >= 1
            assert fresh.api_token != old_token


# -- faults and accounting -----------------------------------------------------------------------


def test_scripted_503_is_retried() -> None:
    with serve(small_world()) as fresh:
        fresh.faults.script("getExperimentAttributes", 503)
        with neptune.init_run(
            with_id="VIS-1", project=PROJECT, mode="read-only", api_token=fresh.api_token
        ) as r:
            assert r["params/shuffle"].fetch() is True
        assert fresh.stats.by_operation["getExperimentAttributes"] == 2
        assert fresh.stats.statuses[503] == 1


def test_scripted_429_and_cut(server: FakeNeptuneServer) -> None:
    server.faults.retry_after = "7"
    server.faults.script("getProject", 429)
    answer = raw(server, "GET", "/api/backend/v1/projects/get", params={"projectIdentifier": PROJECT})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    server.faults.retry_after = "1"

    server.faults.script("getProject", "cut")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        raw(server, "GET", "/api/backend/v1/projects/get", params={"projectIdentifier": PROJECT})
    settle(server)  # the cut reached the client before the server booked it (seen under load)
    assert server.stats.cuts >= 1


@pytest.mark.slow
def test_client_rides_out_429_and_cut(run: neptune.Run, server: FakeNeptuneServer) -> None:
    before = server.stats.snapshot()
    server.faults.script("getFloatAttribute", 429, "cut")
    assert run["params/lr"].fetch() == 0.000123456789
    after = server.stats.snapshot()
    assert (
        after["by_operation"]["getFloatAttribute"] - before["by_operation"].get("getFloatAttribute", 0) == 3
    )
    assert after["statuses"]["429"] - before["statuses"].get("429", 0) == 1
    assert after["cuts"] - before["cuts"] == 1


def test_random_faults_spare_startup() -> None:
    with serve(small_world(), faults=Faults(rate_5xx=1.0, seed=3)) as fresh:
        assert raw(fresh, "GET", "/api/backend/v1/clients/config").status_code == 200
        assert requests.get(fresh.base_url + "/api/leaderboard/swagger.json", timeout=10).status_code == 200
        assert raw(fresh, "GET", "/api/backend/v1/authorization/oauth-token").status_code == 200
        statuses = {raw(fresh, "GET", "/api/backend/v1/myOrganizations").status_code for _ in range(20)}
        assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
        assert set(fresh.stats.faults) == {str(s) for s in statuses}
        assert sum(fresh.stats.faults.values()) == 20
        fresh.faults.rate_5xx = 0.0
        assert raw(fresh, "GET", "/api/backend/v1/myOrganizations").status_code == 200


def test_latency_overlaps_requests(run: neptune.Run, server: FakeNeptuneServer) -> None:
    """Requests to the server overlap: 8 fetches from 8 threads are all in flight at once
    (held until they are, however slowly a busy machine sends them), then all answered."""
    server.faults.latency = 0.3
    server.faults.gather = gather = Gather(8, quiet=30)
    server.stats.reset()
    results: list[Any] = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(run["params/epochs"].fetch())) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.faults.latency = 0.0
        server.faults.gather = None
    assert results == [2**40 + 3] * 8
    assert gather.reached and gather.rounds == 0
    assert server.stats.max_in_flight == 8


def test_stats_snapshot_is_json(server: FakeNeptuneServer) -> None:
    raw(server, "GET", "/api/backend/v1/myOrganizations")
    server.faults.script("listOrganizations", 503)
    raw(server, "GET", "/api/backend/v1/myOrganizations")
    snapshot = server.stats.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["faults"]["503"] >= 1
    assert snapshot["by_operation"]["listOrganizations"] >= 1 and snapshot["bytes_served"] > 0
    assert raw(server, "GET", "/no/such/route").status_code == 404
    assert server.stats.by_operation["unknown"] >= 1


def test_wrong_token_is_401(server: FakeNeptuneServer) -> None:
    answer = requests.get(
        server.base_url + "/api/backend/v1/myOrganizations",
        headers={"Authorization": "Bearer forged"},
        timeout=10,
    )
    assert answer.status_code == 401


# -- malformed, slow and over-limit answers ------------------------------------------------------

PROJECT_GET = "/api/backend/v1/projects/get"
ORGANIZATIONS = "/api/backend/v1/myOrganizations"
FLOAT_SERIES = "/api/leaderboard/v1/attributes/series/float"
STRING_SERIES = "/api/leaderboard/v1/attributes/series/string"
DOWNLOAD = "/api/leaderboard/v1/attributes/download"


@pytest.fixture
def fresh() -> Iterator[FakeNeptuneServer]:
    """A server of its own, so that its Stats count one test's requests only."""
    with serve(small_world()) as running:
        yield running


def get_project(server: FakeNeptuneServer, **kwargs: Any) -> requests.Response:
    return raw(server, "GET", PROJECT_GET, params={"projectIdentifier": PROJECT}, **kwargs)


def assert_complete(answer: requests.Response) -> None:
    """A whole HTTP message: as many body bytes as its Content-Length says."""
    assert answer.headers["Content-Length"] == str(len(answer.content))


def test_script_rejects_unknown_fault() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Faults().script("getProject", "explode")  # type: ignore[arg-type]


def test_slow_answer_times_the_client_out(fresh: FakeNeptuneServer) -> None:
    fresh.faults.slow_seconds = 0.3
    fresh.faults.script("getProject", "slow", "slow")
    with pytest.raises(requests.exceptions.ReadTimeout):
        get_project(fresh, timeout=0.1)
    started = time.monotonic()
    answer = get_project(fresh)  # the second slow one, waited for
    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 200 and answer.json()["name"] == "vision"
    assert get_project(fresh).status_code == 200  # the script is used up: not slowed
    assert fresh.stats.faults == {"slow": 2}


def test_random_slow_spares_startup(fresh: FakeNeptuneServer) -> None:
    fresh.faults.slow_seconds = 0.2
    fresh.faults.rate_slow = 1.0
    started = time.monotonic()
    assert raw(fresh, "GET", "/api/backend/v1/clients/config").status_code == 200
    assert fresh.stats.faults == {}  # a start-up request is never slowed
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert fresh.stats.faults == {"slow": 1}


def test_garbage(fresh: FakeNeptuneServer) -> None:
    fresh.faults.script("getProject", "garbage")
    answer = get_project(fresh)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert_complete(answer)
    with pytest.raises(ValueError):
        answer.json()
    assert get_project(fresh).json()["name"] == "vision"
    assert fresh.stats.faults == {"garbage": 1}


def test_truncated_json(fresh: FakeNeptuneServer) -> None:
    real = get_project(fresh).content
    fresh.faults.script("getProject", "truncated_json")
    answer = get_project(fresh)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.content == real[: len(real) // 2]
    assert_complete(answer)
    with pytest.raises(ValueError):
        answer.json()
    assert fresh.stats.faults == {"truncated_json": 1}


def test_missing_keys(fresh: FakeNeptuneServer) -> None:
    fresh.faults.script("getProject", "missing_keys")
    fresh.faults.script("listOrganizations", "missing_keys")
    project = get_project(fresh)
    assert project.status_code == 200 and project.json() == {}
    organizations = raw(fresh, "GET", ORGANIZATIONS)
    assert organizations.status_code == 200 and organizations.json() == [{}]
    assert len(raw(fresh, "GET", ORGANIZATIONS).json()) == 2  # the real answer again
    assert fresh.stats.faults == {"missing_keys": 2}


def test_body_faults_spare_error_answers(fresh: FakeNeptuneServer) -> None:
    fresh.faults.script("getProject", "missing_keys")
    answer = raw(fresh, "GET", PROJECT_GET, params={"projectIdentifier": "team/nope"})
    assert answer.status_code == 404 and answer.json()["errorType"] == "PROJECT_NOT_FOUND"
    assert fresh.stats.faults == {}


@pytest.mark.parametrize(
    ("path", "attribute"), [(FLOAT_SERIES, "metrics/loss"), (STRING_SERIES, "logs/stdout")]
)
def test_short_page(fresh: FakeNeptuneServer, path: str, attribute: str) -> None:
    query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": attribute, "offset": 10, "limit": 101}
    real = raw(fresh, "GET", path, params=query).json()
    operation = "getFloatSeriesValues" if path == FLOAT_SERIES else "getStringSeriesValues"
    fresh.faults.script(operation, "short_page")
    answer = raw(fresh, "GET", path, params=query)
    assert answer.status_code == 200
    assert_complete(answer)
    short = answer.json()
    assert len(real["values"]) == 101 and short["values"] == real["values"][:50]
    assert short["totalItemCount"] == real["totalItemCount"]
    assert fresh.stats.faults == {"short_page": 1}


@pytest.mark.parametrize(("kind", "shift"), [("early_page", -2), ("late_page", 1)])
def test_a_series_page_may_come_from_another_offset(fresh: FakeNeptuneServer, kind: str, shift: int) -> None:
    real = series_page(fresh, 10 + shift, 5)
    fresh.faults.script("getFloatSeriesValues", kind)
    assert series_page(fresh, 10, 5) == real
    assert real["totalItemCount"] == 2_500
    if shift < 0:  # no page before the first: the real one, and no fault
        fresh.faults.script("getFloatSeriesValues", kind)
        assert series_page(fresh, 0, 5) == series_page(fresh, 0, 5)
    assert fresh.stats.faults == {kind: 1}


def test_short_page_elsewhere_is_the_real_answer(fresh: FakeNeptuneServer) -> None:
    fresh.faults.script("getProject", "short_page")
    fresh.faults.script("getProject", "not_zip")
    assert get_project(fresh).json()["name"] == "vision"
    assert get_project(fresh).json()["name"] == "vision"
    assert fresh.stats.faults == {}


def test_not_zip_attribute_download(fresh: FakeNeptuneServer) -> None:
    query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "data/sample"}
    real = raw(fresh, "GET", DOWNLOAD, params=query)
    fresh.faults.script("downloadAttribute", "not_zip")
    answer = raw(fresh, "GET", DOWNLOAD, params=query)
    assert answer.status_code == 200 and answer.content == b"this is not a zip"
    assert_complete(answer)
    for header in ("Content-Type", "Content-Disposition"):
        assert answer.headers[header] == real.headers[header]
    assert fresh.stats.faults == {"not_zip": 1}


IMAGE = "/api/leaderboard/v1/attributes/series/image/single"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (DOWNLOAD, {"attribute": "data/sample"}),
        (IMAGE, {"attribute": "images/preds", "index": 0}),
        (PROJECT_GET, {"projectIdentifier": PROJECT}),
    ],
)
def test_html_and_empty_json_replace_any_answer(
    fresh: FakeNeptuneServer, path: str, query: dict[str, Any]
) -> None:
    params = {"experimentId": f"{PROJECT}/VIS-1", **query}
    real = raw(fresh, "GET", path, params=params)
    operation = route("GET", path)
    fresh.faults.script(operation, "html", "empty_json", "truncated_json")
    page = raw(fresh, "GET", path, params=params)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.content == HTML_PAGE
    empty = raw(fresh, "GET", path, params=params)
    assert empty.status_code == 200 and empty.headers["Content-Type"] == "application/json"
    assert empty.content == b"{}"
    half = raw(fresh, "GET", path, params=params)
    assert half.status_code == 200 and half.headers["Content-Type"] == real.headers["Content-Type"]
    assert half.content == real.content[: len(real.content) // 2]
    for answer in (page, empty, half):
        assert_complete(answer)
    assert raw(fresh, "GET", path, params=params).content == real.content  # the script is used up
    assert fresh.stats.faults == {"html": 1, "empty_json": 1, "truncated_json": 1}


def test_a_matched_script_spares_other_requests(fresh: FakeNeptuneServer) -> None:
    image = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "images/preds"}
    fresh.faults.script("getImageSeriesValue", "empty_json", match={"index": "1"})
    assert raw(fresh, "GET", IMAGE, params={**image, "index": 0}).content.startswith(PNG)
    assert raw(fresh, "GET", IMAGE, params={**image, "index": 1}).content == b"{}"
    assert raw(fresh, "GET", IMAGE, params={**image, "index": 1}).content != b"{}"  # used up
    assert fresh.stats.faults == {"empty_json": 1}


def test_a_lasting_fault_stays_until_cleared(fresh: FakeNeptuneServer) -> None:
    query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "data/sample"}
    fresh.faults.always("downloadAttribute", "html", match={"attribute": "data/sample"})
    fresh.faults.script("downloadAttribute", 404)  # given after: the lasting fault comes first
    for _ in range(3):
        assert raw(fresh, "GET", DOWNLOAD, params=query).content == HTML_PAGE
    fresh.faults.clear()
    real = raw(fresh, "GET", DOWNLOAD, params=query)
    assert real.status_code == 200 and real.content != HTML_PAGE
    assert fresh.stats.faults == {"html": 3}


def test_a_file_set_zip_is_matched_by_what_it_was_prepared_for(fresh: FakeNeptuneServer) -> None:
    def download_zip() -> requests.Response:
        query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "source_code/files"}
        prepared = raw(
            fresh, "POST", "/api/leaderboard/v1/attributes/downloadFileSetZipRequest", params=query
        )
        ready = raw(fresh, "GET", "/api/leaderboard/v1/download/downloadRequest", params=prepared.json())
        return raw(fresh, "GET", str(ready.json()["downloadUrl"])[len(fresh.base_url) :])

    run = fresh.world.project(PROJECT).containers["VIS-1"]
    fresh.faults.always("downloadFileSetZip", "html", match={"experimentId": run.uuid, "attribute": "other"})
    assert zipfile.is_zipfile(io.BytesIO(download_zip().content))
    fresh.faults.always(
        "downloadFileSetZip", "html", match={"experimentId": run.uuid, "attribute": "source_code/files"}
    )
    assert download_zip().content == download_zip().content == HTML_PAGE
    assert fresh.stats.faults == {"html": 2}


def test_not_zip_file_set(fresh: FakeNeptuneServer) -> None:
    query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "source_code/files"}
    prepared = raw(fresh, "POST", "/api/leaderboard/v1/attributes/downloadFileSetZipRequest", params=query)
    ready = raw(fresh, "GET", "/api/leaderboard/v1/download/downloadRequest", params=prepared.json())
    url = ready.json()["downloadUrl"]
    fresh.faults.script("downloadFileSetZip", "not_zip")
    answer = raw(fresh, "GET", url[len(fresh.base_url) :])
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/zip"
    assert_complete(answer)
    assert not zipfile.is_zipfile(io.BytesIO(answer.content))
    again = raw(fresh, "GET", url[len(fresh.base_url) :])
    assert zipfile.is_zipfile(io.BytesIO(again.content))
    assert fresh.stats.faults == {"not_zip": 1}


def in_threads(count: int, call: Callable[[], requests.Response]) -> tuple[list[threading.Thread], list[int]]:
    """``count`` threads that each make ``call`` once, started; and the statuses they get, as they come."""
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(call().status_code)) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, statuses


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10  # a guard against a hang, not a measure
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.005)


def test_over_limit_gets_429(fresh: FakeNeptuneServer) -> None:
    fresh.faults.max_in_flight = 2
    fresh.faults.hold = Hold()  # every request is held, the admitted ones holding their places
    fresh.faults.retry_after = "3"
    answers: list[requests.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(raw(fresh, "GET", ORGANIZATIONS))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    until(lambda: fresh.stats.in_flight == 5)
    fresh.faults.hold.release()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 429, 429, 429]
    assert all(a.headers["Retry-After"] == "3" for a in answers if a.status_code == 429)
    settle(fresh)
    assert fresh.stats.faults == {"over_limit": 3}
    assert fresh.stats.statuses[429] == 3 and fresh.stats.max_in_flight == 5

    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200  # the places were given back
    fresh.faults.max_in_flight = 0
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 429
    assert raw(fresh, "GET", "/api/backend/v1/clients/config").status_code == 200  # start-up is spared
    fresh.faults.max_in_flight = None
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200
    assert fresh.stats.faults == {"over_limit": 4}


def test_client_within_limit_gets_no_429(fresh: FakeNeptuneServer) -> None:
    fresh.faults.max_in_flight = 3
    statuses: list[int] = []

    def worker() -> None:
        with requests.Session() as session:
            session.headers["X-Neptune-Api-Token"] = fresh.api_token
            for _ in range(20):
                statuses.append(session.get(fresh.base_url + ORGANIZATIONS, timeout=10).status_code)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 60
    assert fresh.stats.faults == {}


# -- held requests -----------------------------------------------------------------------------


def test_a_hold_lets_some_requests_through_and_holds_the_rest_until_released(
    fresh: FakeNeptuneServer,
) -> None:
    hold = fresh.faults.hold = Hold(after=2)
    assert raw(fresh, "GET", "/api/backend/v1/clients/config").status_code == 200  # start-up is spared
    assert [raw(fresh, "GET", ORGANIZATIONS).status_code for _ in range(2)] == [200, 200]
    assert not hold.reached.is_set()
    threads, statuses = in_threads(3, lambda: raw(fresh, "GET", ORGANIZATIONS))
    assert hold.reached.wait(10)
    until(lambda: fresh.stats.in_flight == 3)
    assert statuses == []  # every later one is held
    hold.release()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200  # and none is held any more


def test_stopping_the_server_lets_held_requests_go() -> None:
    ended: list[str] = []

    def request(server: FakeNeptuneServer) -> None:
        try:
            raw(server, "GET", ORGANIZATIONS)
        except requests.ConnectionError:  # cut, as a stopped server cuts what it held
            ended.append("cut")

    with serve(small_world(), faults=Faults(hold=Hold())) as server:
        threads = [threading.Thread(target=request, args=(server,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        until(lambda: server.stats.in_flight == 2)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert ended == ["cut", "cut"]


def test_a_gather_holds_requests_until_enough_are_in_flight_then_holds_no_more(
    fresh: FakeNeptuneServer,
) -> None:
    gather = fresh.faults.gather = Gather(3, quiet=60)  # a guard against a hang: never reached here
    threads, statuses = in_threads(2, lambda: raw(fresh, "GET", ORGANIZATIONS))
    until(lambda: fresh.stats.in_flight == 2)
    assert statuses == [] and not gather.reached
    threads += in_threads(1, lambda: raw(fresh, "GET", ORGANIZATIONS))[0]
    for thread in threads:
        thread.join()
    assert gather.reached and gather.rounds == 0
    assert fresh.stats.max_in_flight == 3
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200  # alone, and not held


def test_a_gather_lets_requests_go_once_no_more_come_and_then_gathers_again(fresh: FakeNeptuneServer) -> None:
    gather = fresh.faults.gather = Gather(3, operations={"listOrganizations"}, quiet=0.2)
    assert get_project(fresh).status_code == 200  # another operation: never held
    assert gather.rounds == 0
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200  # held alone until nothing else came
    assert gather.rounds == 1 and not gather.reached
    assert raw(fresh, "GET", ORGANIZATIONS).status_code == 200  # and the next is held again
    assert gather.rounds == 2 and not gather.reached


# -- NQL ---------------------------------------------------------------------------------------


def _container(**fields: Value) -> Container:
    return Container("X-1", "run", {name.replace("__", "/"): value for name, value in fields.items()})


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("", True),
        ('(`sys/id`:string = "X-1")', True),
        ("(sys/id:string != X-1)", False),
        ("(params/lr:float > 0.1) AND (params/n:integer <= 3)", True),
        ("(params/lr:float > 0.5) OR NOT (params/n:int = 4)", True),
        ('(sys/tags:stringSet CONTAINS "a") AND (sys/tags:stringSet NOT CONTAINS "z")', True),
        ('(sys/state:experimentState = "running")', False),
        ("(sys/state:experimentState = inactive)", True),
        ("(params/flag:bool = true)", True),
        ('(sys/creation_time:datetime >= "2024-03-01T12:00:00Z")', True),
        ('(sys/creation_time:datetime > "2024-03-01T12:00:00.000Z")', False),
        ("(sys/trashed:bool = false)", True),
        ("(params/missing:float > 0)", False),
        ("(params/lr:string = 0.25)", False),  # a float is not a string
        ('(sys/name:string CONTAINS "long")', True),
    ],
)
def test_nql(query: str, matches: bool) -> None:
    container = _container(
        sys__id=String("X-1"),
        sys__name=String("a long name"),
        sys__tags=StringSet(frozenset({"a", "b"})),
        sys__state=State("idle"),
        sys__creation_time=Datetime(T0),
        params__lr=Float(0.25),
        params__n=Int(3),
        params__flag=Bool(True),
    )
    assert compile_query(query)(container) is matches


@pytest.mark.parametrize(
    "query", ["(a:float > 1", "(a:float > x)", "(a:nosuchtype = 1)", "a:float >", "(a:bool = 1) XOR"]
)
def test_nql_syntax_errors(query: str) -> None:
    with pytest.raises(NqlSyntaxError):
        compile_query(query)


def test_zip_is_deterministic() -> None:
    files = FileSet((("b.txt", b"b"), ("a/c.txt", b"c" * 1000)))
    assert zip_bytes(files) == zip_bytes(FileSet(tuple(reversed(files.files))))
    with zipfile.ZipFile(io.BytesIO(zip_bytes(files))) as archive:
        assert archive.namelist() == ["a/c.txt", "b.txt"]


# -- what a real server may do: no faults, every answer right by the API ------------------------

ENTRIES = "/api/leaderboard/v1/leaderboard/entries/search"
PROJECTS = "/api/backend/v1/projects"


def test_runs_table_pages_no_longer_than_the_server_allows_keep_their_count(fresh: FakeNeptuneServer) -> None:
    params = {"projectIdentifier": fresh.world.project(PROJECT).uuid, "type": "run"}
    body = {"query": {"query": ""}, "pagination": {"limit": 100, "offset": 1}}
    whole = raw(fresh, "POST", ENTRIES, params=params, json=body).json()
    fresh.faults.table_page = 2
    capped = raw(fresh, "POST", ENTRIES, params=params, json=body).json()
    assert len(whole["entries"]) == whole["matchingItemCount"] - 1 > 2
    assert capped == {**whole, "entries": whole["entries"][:2]}


def test_projects_pages_no_longer_than_the_server_allows_keep_their_count(fresh: FakeNeptuneServer) -> None:
    params = {"offset": 0, "limit": 10}
    whole = raw(fresh, "GET", PROJECTS, params=params).json()
    fresh.faults.projects_page = 1
    capped = raw(fresh, "GET", PROJECTS, params=params).json()
    assert len(whole["entries"]) == whole["matchingItemCount"] == 2
    assert capped == {**whole, "entries": whole["entries"][:1]}
    assert len(management.get_project_list(api_token=fresh.api_token)) == 1  # the client reads one page


def undecoded(server: FakeNeptuneServer, path: str, accept: str, **params: Any) -> requests.Response:
    """A download as sent, its body not decoded: ``.raw_body`` holds the bytes on the wire."""
    headers = {"X-Neptune-Api-Token": server.api_token, "Accept-Encoding": accept}
    answer = requests.get(server.base_url + path, headers=headers, params=params, stream=True, timeout=10)
    answer.raw_body = answer.raw.read(decode_content=False)  # type: ignore[attr-defined]
    return answer


def test_downloads_are_gzip_encoded_for_a_client_that_accepts_it(fresh: FakeNeptuneServer) -> None:
    fresh.faults.gzip = True
    vis1 = f"{PROJECT}/VIS-1"
    prepared = raw(
        fresh,
        "POST",
        "/api/leaderboard/v1/attributes/downloadFileSetZipRequest",
        params={"experimentId": vis1, "attribute": "source_code/files"},
    )
    ready = raw(fresh, "GET", "/api/leaderboard/v1/download/downloadRequest", params=prepared.json())
    fields = full_run_fields()
    images, sample, files = fields["images/preds"], fields["data/sample"], fields["source_code/files"]
    assert isinstance(images, ImageSeries) and isinstance(sample, File) and isinstance(files, FileSet)
    cases = [
        ((DOWNLOAD, {"experimentId": vis1, "attribute": "data/sample"}), sample.data),
        ((IMAGE, {"experimentId": vis1, "attribute": "images/preds", "index": 2}), images.images[2].data),
        ((str(ready.json()["downloadUrl"])[len(fresh.base_url) :], {}), zip_bytes(files)),
    ]
    for (path, params), data in cases:
        encoded = undecoded(fresh, path, "gzip, deflate", **params)
        assert encoded.headers["Content-Encoding"] == "gzip"
        assert int(encoded.headers["Content-Length"]) == len(encoded.raw_body)  # type: ignore[attr-defined]
        assert gzip.decompress(encoded.raw_body) == data  # type: ignore[attr-defined]
        plain = undecoded(fresh, path, "identity", **params)
        assert "Content-Encoding" not in plain.headers and plain.raw_body == data  # type: ignore[attr-defined]
    # JSON answers are left alone.
    assert "Content-Encoding" not in undecoded(fresh, PROJECT_GET, "gzip", projectIdentifier=PROJECT).headers


def series_page(server: FakeNeptuneServer, offset: int, limit: int) -> dict[str, Any]:
    query = {
        "experimentId": f"{PROJECT}/VIS-1",
        "attribute": "metrics/loss",
        "offset": offset,
        "limit": limit,
    }
    answer: dict[str, Any] = raw(server, "GET", FLOAT_SERIES, params=query).json()
    return answer


def test_a_series_page_after_the_first_may_repeat_the_last_point_of_the_page_before(
    fresh: FakeNeptuneServer,
) -> None:
    first, second = series_page(fresh, 0, 5), series_page(fresh, 5, 5)
    fresh.faults.repeat_series_point = True
    assert series_page(fresh, 0, 5) == first
    repeated = series_page(fresh, 5, 5)
    assert repeated["totalItemCount"] == second["totalItemCount"] == 2_500
    assert repeated["values"] == [first["values"][-1], *second["values"][:4]]


def test_a_series_may_be_rewritten_once_its_first_page_is_read(fresh: FakeNeptuneServer) -> None:
    def last_step() -> float:
        answer = raw(
            fresh, "GET", "/api/leaderboard/v1/attributes", params={"experimentId": f"{PROJECT}/VIS-1"}
        )
        [loss] = [a for a in answer.json()["attributes"] if a["name"] == "metrics/loss"]
        return float(loss["floatSeriesProperties"]["lastStep"])

    fresh.faults.rewrite_series = True
    step = last_step()
    before = series_page(fresh, 0, 3)
    after = series_page(fresh, 0, 3)
    assert (before["totalItemCount"], after["totalItemCount"], last_step()) == (2_500, 2_501, step + 1)
    assert [v["step"] for v in after["values"]] == [v["step"] for v in before["values"]]
    assert [v["value"] for v in after["values"]] == [v["value"] + 1000 for v in before["values"]]
    assert series_page(fresh, 0, 3) == after  # once only


def test_series_pages_larger_than_the_server_serves_may_be_refused(fresh: FakeNeptuneServer) -> None:
    fresh.faults.series_page_max = 100
    fresh.faults.series_page_refusal = 413
    assert len(series_page(fresh, 0, 100)["values"]) == 100
    query = {"experimentId": f"{PROJECT}/VIS-1", "attribute": "metrics/loss", "offset": 0, "limit": 101}
    refused = raw(fresh, "GET", FLOAT_SERIES, params=query)
    assert refused.status_code == 413 and "at most 100" in refused.json()["message"]
