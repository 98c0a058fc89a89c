"""The library embedded in someone else's program: it prints nothing of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


# 2: the workers' log records come through it
@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_an_embedded_backup_with_a_failing_field_prints_nothing(processes: int, tmp_path: Path) -> None:
    # In a process of its own: pytest's log capture would hide what Python's last-resort
    # handler prints when a library logs without a handler of its own.
    script = textwrap.dedent(
        f"""
        import anyio
        from neptune_backup_async import backup
        from neptune_backup_async.testing import MINIMAL, generate, serve

        async def main() -> None:
            with serve(generate(MINIMAL)) as server:
                server.faults.script("getFloatSeriesValues", 404)
                report = await backup("all", {str(tmp_path / "out")!r}, api_token=server.api_token, processes={processes})
            print("exit", report.exit_code, "failures", len(report.failures))

        anyio.run(main)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OAUTHLIB_INSECURE_TRANSPORT": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.split() == ["exit", "1", "failures", "1"], result.stderr
    assert result.stderr == ""
