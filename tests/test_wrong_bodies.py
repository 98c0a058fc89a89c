"""A 200 answer with the wrong body (an HTML page, ``{}``, half the bytes) is never saved as the field.

End to end: the real neptune client, the fake server answering downloads of files, file
sets' zips and images with wrong bodies, transiently and for good.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from cli_helpers import CLI, run_here
from expect import check_backup, check_fields
from fast_retry import FAST_RETRY, fast_command_line
from neptune_backup_async import backup
from neptune_backup_async.engine import downloads
from neptune_backup_async.testing import MINIMAL, World, generate, serve
from neptune_backup_async.testing.server import HTML_PAGE

DOWNLOADS = ("downloadAttribute", "downloadFileSetZip", "getImageSeriesValue")


def small_world() -> World:
    return generate(
        replace(
            MINIMAL,
            runs_per_project=2,
            float_series=1,
            float_series_length=5,
            file_size=4096,
            file_set_files=3,
            images=3,
        )
    )


@pytest.mark.parametrize("small_body", [downloads.SMALL_BODY, 0], ids=["read whole", "streamed"])
def test_wrong_bodies_that_pass_are_retried_and_the_backup_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_body: int
) -> None:
    """Each download small enough is read whole when it opens; larger ones stream (forced here)."""
    monkeypatch.setattr(downloads, "SMALL_BODY", small_body)
    world = small_world()
    with serve(world) as server:
        # The first three answers of each kind of download are wrong, each in another way.
        server.faults.script("downloadAttribute", "html", "empty_json", "truncated_json")
        server.faults.script("downloadFileSetZip", "truncated_json", "html", "empty_json")
        server.faults.script("getImageSeriesValue", "empty_json", "truncated_json", "html")
        report = anyio.run(
            lambda: backup("all", tmp_path, api_token=server.api_token, concurrency=4, **FAST_RETRY)
        )
    assert (report.exit_code, report.failures) == (0, [])
    check_backup(world, tmp_path)
    assert server.stats.faults == {"html": 3, "empty_json": 3, "truncated_json": 3}
    verified = subprocess.run([*CLI, "verify", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout


def test_wrong_bodies_that_persist_fail_their_fields_each_named_and_verify_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line in this process, retrying with the same 8 tries without the waits."""
    fast_command_line(monkeypatch)
    world = small_world()
    project = world.project("workspace-0/project-0")
    one, two = project.containers["P0-1"], project.containers["P0-2"]
    dest = tmp_path / "backup"
    wrong = {
        ("P0-1", "data/sample"),
        ("P0-1", "source_code/files"),
        ("P0-2", "data/sample"),
        ("P0-2", "images/predictions"),
    }
    with serve(world) as server:
        server.faults.always("downloadAttribute", "html", match={"experimentId": one.uuid})
        server.faults.always("downloadFileSetZip", "truncated_json", match={"experimentId": one.uuid})
        server.faults.always("downloadAttribute", "truncated_json", match={"experimentId": two.uuid})
        for index in ("0", "2"):  # two of its three images are {}
            server.faults.always(
                "getImageSeriesValue", "empty_json", match={"experimentId": two.uuid, "index": index}
            )
        backup = ("--projects", "all", "--output", str(dest), "--concurrency", "4", "--quiet")
        first = run_here(*backup, token=server.api_token)
        server.faults.clear()
        assert first.returncode == 1, first.stderr

        report = json.loads((dest / "backup-report.json").read_text())
        assert report["exit_code"] == 1
        failures = {(f["run"], f["field"]): f["reason"] for f in report["failures"]}
        assert set(failures) == wrong
        images = failures["P0-2", "images/predictions"]
        assert images.startswith("images 0, 2 of 3 were not saved: ")
        assert (
            "images/predictions[0]: gave up after 8 tries (the answer is JSON (application/json), not an image)"
            in images
        )
        assert (
            "images/predictions[2]: gave up after 8 tries (the answer is JSON (application/json), not an image)"
            in images
        )
        assert "[1]" not in images
        assert failures["P0-1", "data/sample"] == (
            "data/sample: gave up after 8 tries (the answer is an HTML page (text/html), not the file's bytes)"
        )
        assert (
            failures["P0-2", "data/sample"]
            == "data/sample: gave up after 8 tries (got 2048 bytes where Neptune lists 4096)"
        )
        assert failures["P0-1", "source_code/files"] == (
            "source_code/files: gave up after 8 tries (the file set download is not a zip archive)"
        )
        (log,) = (dest / ".neptune-backup").glob("backup-*.log")
        errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
        for run, field in wrong:
            assert any(f"/{run}/{field}: " in line for line in errors), (run, field)

        # Nothing of a wrong body is recorded ok, or lies under a final name.
        for container in (one, two):
            folder = dest / "workspace-0" / "project-0" / container.sys_id
            manifest = json.loads((folder / ".manifest.json").read_text())
            assert manifest["complete"] is False
            failed = {path for path, field in manifest["fields"].items() if field["status"] != "ok"}
            assert failed == {field for run, field in wrong if run == container.sys_id}
            assert all(manifest["fields"][path]["files"] == [] for path in failed)
            assert not any(rel.startswith(tuple(failed)) for rel in manifest["files"])
            check_fields(
                replace(container, fields={k: v for k, v in container.fields.items() if k not in failed}),
                folder,
                artifacts_downloaded=False,
            )
        for path in dest.rglob("*"):
            if path.is_file() and path.name != "index.json":
                assert path.read_bytes() not in (HTML_PAGE, b"{}"), path
        assert not (dest / "workspace-0/project-0/P0-1/data/sample.bin").exists()
        assert not (dest / "workspace-0/project-0/P0-1/source_code/files.zip").exists()
        assert not (dest / "workspace-0/project-0/P0-2/data/sample.bin").exists()
        assert not list((dest / "workspace-0/project-0/P0-2/images/predictions").glob("*.json"))

        verified = run_here("verify", str(dest), token=server.api_token)
        assert verified.returncode == 1
        named = {line.split(": ")[1] for line in verified.stdout.splitlines() if line.startswith("failed: ")}
        assert named == {f"workspace-0/project-0/{run}/{field}" for run, field in wrong}

        # Once the server answers right, the same command fetches what failed, exactly.
        again = run_here(*backup, token=server.api_token)
        assert again.returncode == 0, again.stderr
    check_backup(world, dest, artifacts_downloaded=False)
    assert run_here("verify", str(dest), token="").returncode == 0
