from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from memory_source import MemorySource
from neptune_backup_async.testing import WORKLOADS, FakeNeptuneServer, WorkloadSpec, World, generate, serve

# The neptune client imported as the command line and its workers import it: without
# rfc3987_syntax, which nothing of it uses (see cli.main._leave_out_unused_imports); a second
# less for every test session.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

# No time limit per example: on a busy machine (or beside a second suite) one can take longer
# than Hypothesis's 200 ms, and the test would fail on the machine, not on the code.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

# The commands the tests signal start as from a terminal, where Ctrl-C, SIGTERM and SIGHUP are
# heard: a suite started in the background (by `nohup`, or with `&` in a script) would pass
# them on ignored, and the command line leaves a signal it was started ignoring ignored.
for _signum in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_signum) is signal.SIG_IGN:
        signal.signal(_signum, signal.SIG_DFL)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # No OAUTHLIB_INSECURE_TRANSPORT: the backup never reads it (plain http to 127.0.0.1, where
    # the fake serves, is allowed by its own rule); only tests of the neptune client itself set it.
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def demo_world(tmp_path: Path) -> World:
    return generate(WORKLOADS["demo"], artifact_root=tmp_path / "artifact-sources")


@pytest.fixture
def slow_world(tmp_path: Path) -> World:
    """Enough work (six runs, long series, 300 kB files) that a backup is still running when a
    test stops it."""
    spec = WorkloadSpec(
        projects_per_workspace=1,
        runs_per_project=6,
        float_series=4,
        float_series_length=300,
        file_size=300_000,
    )
    return generate(spec, artifact_root=tmp_path / "artifact-sources")


@pytest.fixture
def server(demo_world: World) -> Iterator[FakeNeptuneServer]:
    with serve(demo_world) as s:
        yield s


@pytest.fixture
def memory(demo_world: World) -> MemorySource:
    """The demo world in memory, for tests where the neptune client is not what is tested."""
    return MemorySource(demo_world)
