"""End to end: a server (or proxy) that gzip-encodes downloads for a client that accepts it.
Files, images and file-set zips are saved decoded, byte for byte, with no retry; an encoded
body cut short or garbled is never saved."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.testing import MINIMAL, Faults, generate, serve

pytestmark = pytest.mark.anyio

WORLD = replace(MINIMAL, runs_per_project=2, file_size=50_000, file_set_files=3, images=3)


async def test_gzip_encoded_downloads_are_saved_decoded_without_a_retry(tmp_path: Path) -> None:
    world = generate(WORLD)
    with serve(world, faults=Faults(gzip=True)) as server:
        report = await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
        served = server.stats.by_operation
    assert (report.exit_code, report.failures, report.retries) == (0, [], {})
    assert check_backup(world, tmp_path) == 3  # and the project's own fields
    # Each download once: a file, a file set's zip and three images per run.
    assert (served["downloadAttribute"], served["downloadFileSetZip"], served["getImageSeriesValue"]) == (
        2,
        2,
        6,
    )


@pytest.mark.parametrize("fault", ["cut", "truncated_json"])
async def test_an_encoded_download_cut_short_is_tried_again_not_saved(tmp_path: Path, fault: str) -> None:
    world = generate(WORLD)
    with serve(world, faults=Faults(gzip=True)) as server:
        server.faults.script("downloadAttribute", fault)
        server.faults.script("getImageSeriesValue", fault)
        server.faults.script("downloadFileSetZip", fault)
        report = await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
        served = server.stats.by_operation
    assert (report.exit_code, report.failures) == (0, [])
    assert sum(report.retries.values()) == 3
    assert (served["downloadAttribute"], served["downloadFileSetZip"], served["getImageSeriesValue"]) == (
        3,
        3,
        7,
    )
    assert check_backup(world, tmp_path) == 3  # and the project's own fields
