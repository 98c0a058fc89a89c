"""The fake server speaks Neptune's API as Neptune's own swagger files define it.

Every answer the fake gives, to a real backup and to every other operation it serves, is
checked against the response definition of that operation in Neptune's swagger files,
read from ``../shared/neptune-api/`` beside the repository (they are not part of it). A
property the definition does not declare is an error too: the fake must not invent what the
real server never sends, or the backup would come to rely on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, FakeNeptuneServer, generate, serve
from neptune_backup_async.testing.messages import Request, Response
from neptune_backup_async.testing.model import ImageSeries
from neptune_backup_async.testing.spec import OPERATIONS
from optional import unavailable
from swagger import Document

SPECS = Path(__file__).resolve().parents[2] / "shared" / "neptune-api"
APIS = ("backend", "leaderboard", "artifacts")

if not all((SPECS / f"{api}.json").is_file() for api in APIS):
    unavailable(f"Neptune's swagger files are not in {SPECS} ({', '.join(f'{a}.json' for a in APIS)})")

DOCUMENTS = {api: Document(json.loads((SPECS / f"{api}.json").read_text(encoding="utf-8"))) for api in APIS}
# What is not Neptune's API: the OAuth server, the specs themselves, a file set's download URL.
OUTSIDE = frozenset({"oauthRefresh", "swagger", "downloadFileSetZip"})

# Every operation a backup sends, the neptune client's start-up included.
BACKUP_OPERATIONS = frozenset(
    {
        "getClientConfig",
        "exchangeApiToken",
        "listProjects",
        "getProject",
        "searchLeaderboardEntries",
        "getExperimentAttributes",
        "getFloatSeriesValues",
        "getStringSeriesValues",
        "getImageSeriesValues",
        "getImageSeriesValue",
        "getChannelValues",
        "downloadAttribute",
        "prepareForDownloadFileSetAttributeZip",
        "getDownloadPrepareRequest",
        "listArtifactFiles",
        "getCheckpoint",
        "getCheckpointContent",
    }
)

Answered = list[tuple[str, Request, Response]]


def document_of(operation: str) -> Document:
    [document] = [d for d in DOCUMENTS.values() if operation in d.operations]
    return document


def violations(answered: Answered) -> list[str]:
    """How the 2xx answers break their operations' definitions, one line each."""
    found = []
    for operation, request, response in answered:
        if operation in OUTSIDE or not 200 <= response.status < 300:
            continue
        schema = document_of(operation).response_schema(operation, str(response.status))
        assert schema is not None, f"{operation} answers {response.status}, which Neptune's API does not give"
        body = response.body if schema.get("type") == "file" else json.loads(response.body)
        where = f"{operation} {request.path}?{request.query}"
        found += [f"{where}: {e}" for e in document_of(operation).errors(body, schema)]
    return found


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[FakeNeptuneServer, Answered]]:
    """A fake server of the demo workload whose every answer is kept."""
    answered: Answered = []
    with serve(generate(WORKLOADS["demo"], artifact_root=tmp_path / "artifact-sources")) as server:
        real = server.answer

        def keep(operation: str, request: Request) -> Response:
            response = real(operation, request)
            answered.append((operation, request, response))
            return response

        monkeypatch.setattr(server, "answer", keep)
        yield server, answered


def test_every_operation_the_fake_serves_is_in_neptunes_api() -> None:
    missing = sorted(
        op.operation_id
        for op in OPERATIONS
        if not any(op.operation_id in d.operations for d in DOCUMENTS.values())
    )
    assert missing == []


@pytest.mark.anyio
async def test_every_answer_to_a_backup_is_as_neptunes_api_defines_it(
    recorded: tuple[FakeNeptuneServer, Answered], tmp_path: Path
) -> None:
    server, answered = recorded
    report = await backup("all", tmp_path / "backup", api_token=server.api_token, download_artifacts=True)
    assert report.exit_code == 0
    assert {operation for operation, _, _ in answered} >= BACKUP_OPERATIONS
    problems = violations(answered)
    assert problems == [], "\n".join(problems)


def test_every_other_answer_is_as_neptunes_api_defines_it(
    recorded: tuple[FakeNeptuneServer, Answered],
) -> None:
    server, answered = recorded
    project = server.world.project("workspace-0/project-0")
    run = project.runs[0]
    holder = {"experimentId": run.uuid}
    getters = {
        "floats": "float",
        "integers": "int",
        "booleans": "bool",
        "strings": "string",
        "datetimes": "datetime",
        "stringSets": "stringSet",
        "files": "file",
        "floatSeries": "floatSeries",
        "stringSeries": "stringSeries",
        "artifacts": "artifact",
    }
    calls: list[tuple[str, str, dict[str, object], object]] = [
        ("GET", "/api/backend/v1/myOrganizations", {}, None),
        ("GET", "/api/leaderboard/v1/experiments", holder, None),
        ("GET", "/api/leaderboard/v1/experiments", {"experimentId": project.uuid}, None),
        (
            "POST",
            "/api/leaderboard/v1/leaderboard/attributes/search",
            {"projectIdentifier": project.uuid},
            {},
        ),
    ]
    for route, kind in getters.items():
        path = next(p for p, v in run.fields.items() if kind == v.TYPE)
        calls.append(("GET", f"/api/leaderboard/v1/attributes/{route}", {**holder, "attribute": path}, None))
    file_set = next(p for p, v in run.fields.items() if v.TYPE == "fileSet")
    for inside in ("", "."):
        calls.append(
            (
                "GET",
                "/api/leaderboard/v1/attributes/ls",
                {**holder, "attribute": file_set, "path": inside},
                None,
            )
        )
    images = next(p for p, v in run.fields.items() if isinstance(v, ImageSeries))
    calls.append(
        ("GET", "/api/leaderboard/v1/attributes/series/image", {**holder, "attribute": images}, None)
    )
    headers = {"X-Neptune-Api-Token": server.api_token}
    for method, path, params, body in calls:
        answer = requests.request(
            method, server.base_url + path, params=params, json=body, headers=headers, timeout=10
        )
        assert answer.status_code == 200, (path, answer.text)
    assert {operation for operation, _, _ in answered} >= {
        "listOrganizations",
        "getExperiment",
        "searchLeaderboardAttributes",
        "lsFileSetAttribute",
        "getImageSeriesValues",
        *(f"get{kind[0].upper()}{kind[1:]}Attribute" for kind in getters.values()),
    }
    problems = violations(answered)
    assert problems == [], "\n".join(problems)
