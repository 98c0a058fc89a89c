from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from neptune_backup_async.testing import WORKLOADS, FakeNeptuneServer, World, generate, serve


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not OAUTHLIB_INSECURE_TRANSPORT: the fake speaks plain http on 127.0.0.1, which the backup
    # allows without it, and a test that set it would never see the https guard at work.
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def demo_world(tmp_path: Path) -> World:
    return generate(WORKLOADS["demo"], artifact_root=tmp_path / "artifact-sources")


@pytest.fixture
def server(demo_world: World) -> Iterator[FakeNeptuneServer]:
    with serve(demo_world) as s:
        yield s
