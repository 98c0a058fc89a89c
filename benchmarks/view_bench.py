"""Benchmark of ``neptune-backup view``: build the site of 1,000 runs of workload W1.

    python benchmarks/view_bench.py [--runs 1000] [--workers N] [--keep DIR]

The backup is made the real way: the fake Neptune server serves W1 with
``runs_per_project`` set to ``--runs``, and ``backup`` saves it (that step is timed apart
and is not part of the figure). Then the site is built three times: from scratch, again
with nothing changed (the incremental path), and after one run's manifest is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import anyio

from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, generate, serve
from neptune_backup_async.view import build_site


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument(
        "--keep", type=Path, help="back up into this folder and keep it (reused when present)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake server speaks plain http

    tmp = Path(tempfile.mkdtemp(prefix="view-bench-"))
    dest = args.keep or tmp / "backup"
    try:
        if not (dest / "backup-report.json").is_file():
            spec = dataclasses.replace(WORKLOADS["W1"], runs_per_project=args.runs)
            started = time.perf_counter()
            world = generate(spec, artifact_root=tmp / "artifact-sources")
            with serve(world) as server:
                anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=32))
            print(
                f"backup of {args.runs} W1 runs: {time.perf_counter() - started:.1f} s (not part of the figure)"
            )
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and "_site" not in p.parts)
        print(f"backup: {size / 2**20:.0f} MiB; cores: {os.cpu_count()}")
        site = tmp / "site"
        started = time.perf_counter()
        build_site(dest, site, workers=args.workers)
        cold = time.perf_counter() - started
        site_size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        print(f"site from scratch: {cold:.1f} s ({site_size / 2**20:.0f} MiB)")
        started = time.perf_counter()
        build_site(dest, site, workers=args.workers)
        print(f"rebuild, nothing changed: {time.perf_counter() - started:.1f} s")
        manifest = next(dest.glob("*/*/*/.manifest.json"))
        manifest.touch()
        started = time.perf_counter()
        build_site(dest, site, workers=args.workers)
        print(f"rebuild, one run changed: {time.perf_counter() - started:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
