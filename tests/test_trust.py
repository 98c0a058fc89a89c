"""A cancel that stops, a lost server named fast, a bound that settles, errors by type,
and counts that say only what is on disk."""

from __future__ import annotations

import base64
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from cli_helpers import command as cli_command
from cli_helpers import held
from neptune_backup_async import BackupError, Progress, ProgressCallbackError, backup
from neptune_backup_async.api import connect
from neptune_backup_async.testing import (
    MINIMAL,
    WORKLOADS,
    FakeNeptuneServer,
    Faults,
    Hold,
    World,
    generate,
    serve,
)


def tree(dest: Path) -> dict[str, bytes]:
    """Every file of a backup but its report and logs."""
    return {
        p.relative_to(dest).as_posix(): p.read_bytes()
        for p in dest.rglob("*")
        if p.is_file() and not p.name.startswith("backup-report") and ".neptune-backup" not in p.parts
    }


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_cancel_during_a_retry_after_wait_stops_every_request(
    demo_world: World, tmp_path: Path
) -> None:
    with serve(demo_world, faults=Faults(retry_after="1")) as server:

        def progress(p: Progress) -> None:
            if p.objects_done >= 1:
                server.faults.rate_429 = 1.0  # from now on every request is told to wait 1 s

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: backup("all", tmp_path, api_token=server.api_token, progress=progress))
            while not server.stats.statuses[429]:
                await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # inside the 1 s wait
            tg.cancel_scope.cancel()
        sent = server.stats.total
        await anyio.sleep(1.5)  # past every Retry-After
        assert server.stats.total == sent
    assert json.loads((tmp_path / "backup-report.json").read_text())["interrupted"] is True


class Silent:
    """A server that accepts connections and never answers; it sees when the client hangs up."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with self.listener:
            while True:
                try:
                    connection, _ = self.listener.accept()
                except OSError:
                    return
                self.connections.append(connection)

    def open_connections(self) -> int:
        """Connections the client has not closed: reading one gives what it sent, then EOF."""
        still_open = 0
        for connection in self.connections:
            connection.settimeout(0.2)
            try:
                while connection.recv(65536):
                    pass
            except TimeoutError:
                still_open += 1
        return still_open

    @property
    def token(self) -> str:
        address = f"http://127.0.0.1:{self.port}"
        return base64.b64encode(
            json.dumps({"api_address": address, "api_url": address, "api_key": "k"}).encode()
        ).decode()


def test_a_deadline_stops_the_connect_to_a_server_that_never_answers() -> None:
    server = Silent()

    async def connect_until_the_deadline() -> bool:
        # The deadline comes once the client waits on the server; the guard fails a cancel
        # that waits for the client's own timeouts (30 s to connect, 300 s to read).
        with anyio.fail_after(10), anyio.CancelScope() as deadline:
            async with anyio.create_task_group() as tg:

                async def expire_once_connected() -> None:
                    while not server.connections:
                        await anyio.sleep(0.01)
                    deadline.cancel()

                tg.start_soon(expire_once_connected)
                await connect(server.token, 4)
        return deadline.cancelled_caught

    assert anyio.run(connect_until_the_deadline)  # stopped by the deadline, not ended on its own
    assert server.connections  # it did try
    assert server.open_connections() == 0  # nothing of ours is left connecting
    server.listener.close()


@pytest.mark.slow
def test_a_server_lost_mid_backup_stops_it_with_exit_2_and_the_same_command_resumes(
    demo_world: World, tmp_path: Path
) -> None:
    clean, dest = tmp_path / "clean", tmp_path / "dest"
    with serve(demo_world) as server:
        anyio.run(lambda: backup("all", clean, api_token=server.api_token, download_artifacts=True))
    command = cli_command(
        "--projects", "all", "--output", str(dest), "--download-artifacts", "--concurrency", "2",
        "--quiet", "--lost-server-after", "2",
    )  # fmt: skip
    hold = Hold(after=60)  # well into the backup, it stands still with requests in flight
    server = FakeNeptuneServer(demo_world, faults=Faults(hold=hold))
    port = server.base_url.rsplit(":", 1)[1]
    server.start()
    env = dict(os.environ, NEPTUNE_API_TOKEN=server.api_token)
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert held(hold, process)
        server.stop()  # as if killed: connections cut, and refused from now on
        killed = time.monotonic()
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 2, stderr
    assert time.monotonic() - killed < 30  # 2 s of --lost-server-after, and the way out
    [line] = stderr.strip().splitlines()
    assert line.startswith(
        "error: Lost the Neptune server: no request has succeeded for 2 s and connections fail"
    )
    assert line.endswith(". Everything finished so far is kept; run the same command again to resume.")
    report = json.loads((dest / "backup-report.json").read_text())
    assert report["interrupted"] is True and report["exit_code"] == process.returncode == 2
    assert report["failures"] == []  # what it had not reached did not fail
    assert all(n == 0 for key, n in report["totals"].items() if key.endswith("_failed")), report["totals"]
    done = sum(n for key, n in report["totals"].items() if key.endswith("_done") and key != "fields_done")
    assert done < 9  # it really stopped mid-backup (2 projects of 4 runs, and their own fields)

    with serve(demo_world, port=int(port)) as server:  # the server is back
        env = dict(os.environ, NEPTUNE_API_TOKEN=server.api_token)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert tree(dest) == tree(clean)


@pytest.mark.slow
def test_behind_a_server_that_takes_4_requests_at_once_64_is_about_as_fast_as_4(tmp_path: Path) -> None:
    world = generate(replace(MINIMAL, runs_per_project=40, float_series=8, float_series_length=3))
    faults = Faults(latency=0.02, max_in_flight=4, retry_after="0.1")
    busy: dict[int, list[float]] = {4: [], 64: []}
    refused: list[float] = []
    with serve(world, faults=faults) as server:
        for concurrency in (4, 64, 64):
            server.stats.reset()
            dest = tmp_path / f"{concurrency}-{len(busy[concurrency])}"
            report = anyio.run(
                lambda c=concurrency, d=dest: backup("all", d, api_token=server.api_token, concurrency=c)
            )
            assert report.exit_code == 0, report.failures
            # As fast is as busy: every request takes as long at the server, so a backup takes
            # a time that goes as one over the requests it keeps in progress there.
            admitted = server.stats.admitted_with
            busy[concurrency].append(sum(n * count for n, count in admitted.items()) / admitted.total())
            if concurrency == 64:
                refused.append(server.stats.faults["over_limit"] / server.stats.total)
                assert report.retries.get("HTTP 429", 0) == server.stats.faults["over_limit"]
    assert max(busy[64]) >= busy[4][0] / 1.5, busy
    assert max(refused) < 0.10, refused


@pytest.mark.anyio
async def test_a_progress_callback_that_raises_reaches_the_caller_as_a_backup_error(
    server: FakeNeptuneServer, tmp_path: Path
) -> None:
    class DisplayBroke(Exception):
        pass

    def progress(p: Progress) -> None:
        if p.objects_done >= 1:
            raise DisplayBroke("the terminal went away")

    with pytest.raises(BackupError) as raised:
        await backup("all", tmp_path, api_token=server.api_token, concurrency=4, progress=progress)
    assert type(raised.value) is ProgressCallbackError
    assert isinstance(raised.value.__cause__, DisplayBroke)
    assert str(raised.value).startswith("The progress callback raised DisplayBroke: the terminal went away.")
    assert json.loads((tmp_path / "backup-report.json").read_text())["interrupted"] is True


def test_a_full_disk_counts_only_the_fields_that_are_on_disk(tmp_path: Path) -> None:
    """A real ENOSPC (a 1 MiB tmpfs in a private mount namespace), met by a fresh backup whose
    files of 300 KB fill it by the third run; the report fits in what the failed file leaves."""
    world = generate(replace(WORKLOADS["demo"], file_size=300_000), artifact_root=tmp_path / "artifacts")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = textwrap.dedent(
        f"""
        mount -t tmpfs -o size=1m tmpfs {disk}
        {sys.executable} -m neptune_backup_async --projects all --output {disk}/dest --quiet \\
            --concurrency 2 --processes 1 --log-file {tmp_path}/log 2>{tmp_path}/err
        echo "code=$?"
        cp -r {disk}/dest {tmp_path}/copy
        """
    )
    with serve(world) as server:
        env = dict(os.environ, NEPTUNE_API_TOKEN=server.api_token)
        result = subprocess.run(
            ["unshare", "-Urm", "bash", "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
    assert result.stdout.split() == ["code=2"], (tmp_path / "err").read_text()
    assert "is full" in (tmp_path / "err").read_text()
    copy = tmp_path / "copy"
    folders = {p.parent for name in (".manifest.json", ".journal.jsonl") for p in copy.rglob(name)}
    on_disk = sum(len(saved_fields(folder)) for folder in folders)
    report = json.loads((copy / "backup-report.json").read_text())
    assert report["interrupted"] is True
    assert 0 < report["totals"]["fields_done"] == on_disk


def saved_fields(folder: Path) -> set[str]:
    """The fields a resumed backup finds saved in a run folder: recorded ok, by the manifest or
    the journal, with every file in place at its recorded size. Once each: a cancel or a kill
    after the manifest is written may leave the journal, naming the same fields again."""
    records: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    if (folder / ".manifest.json").exists():
        manifest = json.loads((folder / ".manifest.json").read_text())
        records.update(manifest["fields"])
        sizes.update({rel: f["size"] for rel, f in manifest["files"].items()})
    if (folder / ".journal.jsonl").exists():
        for line in (folder / ".journal.jsonl").read_text().splitlines():
            entry = json.loads(line)  # whole lines only: a full disk never leaves half of one
            records[entry["field"]] = entry["record"]
            sizes.update({rel: size for rel, (size, _) in entry["files"].items()})
    return {
        path
        for path, record in records.items()
        if record["status"] == "ok"
        and all(
            (folder / rel).is_file() and (folder / rel).stat().st_size == sizes[rel]
            for rel in record["files"]
        )
    }


def test_a_journal_write_cut_short_leaves_no_half_line(tmp_path: Path) -> None:
    """The OS cuts a journal write short (a file size limit, in a process of its own, as a full
    disk would): the field is not counted, none of its line stays, and the next line is whole."""
    script = textwrap.dedent(
        f"""
        import datetime as dt, json, resource, signal
        from pathlib import Path
        import anyio
        from neptune_backup_async.format.manifest import Manifest
        from neptune_backup_async.format.report import BackupReport
        from neptune_backup_async.format.object_folder import RunFolder
        from neptune_backup_async.disk.place import Place
        from neptune_backup_async.domain import FieldInfo, FieldType

        root = Path({str(tmp_path)!r})
        journal = root / ".journal.jsonl"

        async def main():
            report = BackupReport(str(root), dt.datetime.now(dt.timezone.utc))
            manifest = Manifest("run", "w/p", "P-1", "P-1", None)
            folder = RunFolder(Place(root), manifest, None, report, lambda n: None, lambda p, r: None)
            await folder.saved(FieldInfo("a", FieldType.FILE), [], {{}})
            first = journal.read_bytes()
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(first) + 20, resource.RLIM_INFINITY))
            try:
                await folder.saved(FieldInfo("b", FieldType.FILE), [], {{}})
            except OSError as e:
                print("raised", e.errno)
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            print("kept", journal.read_bytes() == first)
            await folder.saved(FieldInfo("c", FieldType.FILE), [], {{}})
            await folder.close()
            print("counted", report.fields_done)

        anyio.run(main)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.split("\n")[:3] == [f"raised {errno.EFBIG}", "kept True", "counted 2"], result.stderr
    lines = (tmp_path / ".journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["field"] for line in lines] == ["a", "c"]
