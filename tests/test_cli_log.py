"""What the log and the progress display tell a user: what was asked, what failed and why, retries, counts."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from cli_helpers import Terminal, cli_env, no_traceback, run_here
from neptune_backup_async.cli.display import bar_state
from neptune_backup_async.cli.logfile import LogProgress
from neptune_backup_async.format.report import BACKING_UP, CHECKING_PROJECTS, CONNECTING, Progress, listing
from neptune_backup_async.testing import FakeNeptuneServer, World


def test_the_log_of_a_backup_with_a_failing_field(
    demo_world: World, server: FakeNeptuneServer, tmp_path: Path
) -> None:
    server.faults.retry_after = "0"
    server.faults.script("getFloatSeriesValues", 404)  # the first float series asked for fails
    server.faults.script("getExperimentAttributes", 503, 503)  # retried, then answered
    server.faults.script("searchLeaderboardEntries", 429)  # waited out
    dest, log_file = tmp_path / "out", tmp_path / "logs" / "backup.log"
    result = run_here(
        "--projects", "workspace-0/project-0", "--output", str(dest), "--concurrency", "1", "--processes", "1",
        "--objects", "runs", "--log-file", str(log_file), token=server.api_token,
    )  # fmt: skip
    assert result.returncode == 1
    report = json.loads((dest / "backup-report.json").read_text())
    [failure] = report["failures"]
    assert report["retries"] == {"HTTP 429": 1, "HTTP 503": 2}
    log = log_file.read_text()
    lines = [
        re.sub(r"^\S+ \S+ (INFO|WARNING|ERROR) neptune_backup_async: ", "", line) for line in log.splitlines()
    ]
    # What was asked.
    assert lines[0].startswith("neptune-backup-async 0.1.0 (neptune ")
    assert lines[0].endswith(f": backup of workspace-0/project-0 into {dest}")
    assert (
        lines[1]
        == f"options: --concurrency 1 --processes 1 --lost-server-after 30.0 --objects runs --log-file {log_file}"
    )
    # What the listing found, what failed and why.
    assert "workspace-0/project-0: listed 4 runs" in lines
    assert f"workspace-0/project-0/P0-1/{failure['field']}: {failure['reason']}" in lines
    assert failure["reason"].startswith("getFloatSeriesValues: HTTP 404: ")
    # Retries summed up, not one line per request; and the final counts.
    assert "3 retries (HTTP 503: 2, HTTP 429 (throttled): 1)" in lines
    assert "workspace-0/project-0: 4 runs (3 saved, 0 unchanged, 1 failed)" in lines
    assert any(
        line.startswith("Done in ") and "3 of 4 runs backed up (0 unchanged, 1 failed)" in line
        for line in lines
    )
    assert re.search(r"^\d+ fields saved, 1 failed; [\d.]+ kB written\.$", "\n".join(lines), re.M)
    assert len(lines) < 15, log
    assert server.api_token not in log
    # The same on the terminal, in short.
    assert "  3 retries (HTTP 503: 2, HTTP 429 (throttled): 1)" in result.stderr
    assert f"Log: {log_file}" in result.stderr


@pytest.mark.parametrize("case", ["revoked token, --log-file", "unknown project, default log"])
def test_a_failure_before_the_backup_starts_is_in_the_log(
    server: FakeNeptuneServer, tmp_path: Path, case: str
) -> None:
    dest = tmp_path / "out"
    args = ["--projects", "workspace-0/project-0", "--output", str(dest)]
    token = server.api_token
    if case.startswith("revoked"):
        server.revoke_token()
        args += ["--log-file", str(tmp_path / "backup.log")]
        message = "Neptune rejected the API token"
    else:
        args[1] = "workspace-0/nope"
        message = "Project 'workspace-0/nope' does not exist or this API token may not read it."
    result = run_here(*args, token=token)
    assert result.returncode == 2
    [log_file] = (
        [tmp_path / "backup.log"] if "--log-file" in args else list(dest.glob(".neptune-backup/*.log"))
    )
    log = log_file.read_text()
    assert f"ERROR neptune_backup_async: {message}" in log
    assert message in result.stderr.splitlines()[-1]
    assert token not in log


def progress(**changes: object) -> Progress:
    values: dict[str, object] = dict(
        objects_found=0,
        objects_done=0,
        objects_failed=0,
        bytes_written=0,
        listing_done=False,
        stage=CONNECTING,
    )
    values.update(changes)
    return Progress(**values)  # type: ignore[arg-type]


def test_the_bar_counts_while_listing_and_shows_a_total_only_after() -> None:
    assert bar_state(progress()) == bar_state(progress(stage=CONNECTING))
    start = bar_state(progress())
    assert (start.description, start.total, start.done, start.postfix) == (
        "connecting to Neptune",
        None,
        0,
        "",
    )
    assert bar_state(progress(stage=CHECKING_PROJECTS)).description == "checking projects"
    listing_now = bar_state(progress(stage=listing("ws/p"), objects_found=45, objects_done=3, retries=1))
    assert (listing_now.description, listing_now.total, listing_now.done) == ("listing ws/p", None, 3)
    assert listing_now.postfix == "45 found, 1 retry"
    done = bar_state(
        progress(
            stage=BACKING_UP,
            listing_done=True,
            objects_found=48,
            objects_done=40,
            objects_failed=2,
            retries=7,
        )
    )
    assert (done.description, done.total, done.done, done.postfix) == (
        "backing up",
        48,
        42,
        "2 failed, 7 retries",
    )
    assert (
        bar_state(progress(stage=BACKING_UP, listing_done=True), dry_run=True).description == "listing fields"
    )


def test_the_progress_bars_on_a_terminal(server: FakeNeptuneServer, tmp_path: Path) -> None:
    server.faults.latency = 0.05  # long enough to be seen listing
    server.faults.script("getExperimentAttributes", 503, 503)
    dest = tmp_path / "out"
    term = Terminal(["--projects", "all", "--output", str(dest)], cli_env(server.api_token), tmp_path)
    try:
        screen = term.read_to_end()
    finally:
        term.close()
    assert term.proc.returncode == 0, screen
    no_traceback(screen)
    shown = [s for s in re.split(r"[\r\n]+|\x1b\[A", screen) if s.strip()]
    stages = [s.split(":")[0].strip() for s in shown if "obj" in s]
    # In order: a word for what happens from the start, each project listed by name, then the backup.
    order = ["connecting to Neptune", "checking projects", "listing workspace-0/project-0"]
    order += ["listing workspace-0/project-1", "backing up"]
    assert [s for s in dict.fromkeys(stages) if s in order] == order, stages
    # No percentage until every listing is read; then one that ends at 100 %.
    assert not [s for s in shown if s.lstrip().startswith(("connecting", "checking", "listing")) and "%" in s]
    assert any(s.lstrip().startswith("backing up: 100%") and "16/16" in s for s in shown), shown
    assert any("2 retries" in s for s in shown)


def test_a_long_backup_writes_a_progress_line_at_most_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="neptune_backup_async")
    LogProgress(every=3600)(progress(objects_found=5))
    assert caplog.messages == []
    LogProgress(every=0)(progress(stage=listing("ws/p"), objects_found=5, objects_done=2, retries=3))
    assert caplog.messages == [
        "progress: listing ws/p; 2 of 5 found so far objects done, 0 failed, 0 bytes written, 3 retries"
    ]
