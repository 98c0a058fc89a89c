"""Benchmark of ``load-wandb --offline``: a 30-run workspace with every field type, against
the naive loader most hand-written scripts are.

    python benchmarks/load_wandb_bench.py [--concurrency 8] [--naive-runs 30] [--keep DIR]

The workspace (the fake server's W1, 30 runs of 20 params, 5 float series of 2,000 points, a
string series, monitoring, files, file sets and images, plus artifacts, notebooks, a model
with two versions and the project's own fields) is backed up the real way first (not timed).
Then ``neptune-backup load-wandb DEST --offline DIR`` runs as a user runs it (a fresh
process, start-up included) and, after it, the naive loader in this process: one offline
run after another, ``run.config`` per atom, ``run.log({key: value, "_timestamp": t})`` once
per point of each series, ``run.save`` per file. Both write offline runs (no W&B server can
be reached); both are timed until every log is on disk (``wandb.teardown()`` for the naive
one: ``finish()`` returns before wandb-core has written the log). Prints one Markdown table:
wall time, points (float and string series, counted from the backup's manifests, the same
for both), points per second, and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from neptune_backup_async import backup
from neptune_backup_async.testing import WORKLOADS, generate, serve

#: W1 with every other field type turned on.
SPEC = replace(
    WORKLOADS["W1"], artifact_files=2, notebook_every=3, models=1, versions_per_model=2, project_fields=True
)
SERIES = ("floatSeries", "stringSeries")


def make_backup(dest: Path, tmp: Path) -> None:
    if (dest / "backup-report.json").is_file():
        return
    world = generate(SPEC, artifact_root=tmp / "sources")
    with serve(world) as server:
        anyio.run(
            lambda: backup("all", dest, api_token=server.api_token, concurrency=32, download_artifacts=True)
        )


def objects(dest: Path) -> list[Path]:
    """Every object folder of the backup (runs, models, versions, project fields)."""
    return sorted(p.parent for p in dest.rglob(".manifest.json") if ".neptune-backup" not in p.parts)


def count_points(folders: list[Path]) -> int:
    total = 0
    for folder in folders:
        for record in json.loads((folder / ".manifest.json").read_text())["fields"].values():
            if record["type"] in SERIES and record["status"] == "ok":
                total += record["rows"]
    return total


def ours(dest: Path, out: Path, concurrency: int) -> float:
    command = [sys.executable, "-m", "neptune_backup_async", "load-wandb", str(dest), "--offline", str(out)]
    started = time.perf_counter()
    done = subprocess.run([*command, "--concurrency", str(concurrency), "--quiet"], check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"load-wandb exited with {done.returncode}: see {dest / 'load-wandb-report.json'}")
    return seconds


def epoch(stamp: str) -> float:
    if stamp.lstrip("-").isdigit():  # epoch milliseconds, outside the years 1-9999
        return int(stamp) / 1000
    return dt.datetime.fromisoformat(stamp).timestamp()


def naive(dest: Path, out: Path, runs: int) -> float:
    """One run after another, one ``run.log`` per point: the usual hand-written loader."""
    import wandb

    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
    started = time.perf_counter()
    for folder in objects(dest)[:runs]:
        manifest = json.loads((folder / ".manifest.json").read_text())
        meta_file = folder / "simple_metadata.json"
        meta: dict[str, Any] = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        run = wandb.init(
            mode="offline", dir=out, project="naive", name=manifest.get("sys_id"), settings=settings
        )
        run.config.update({path: value for path, value in meta.items()})
        for path, record in manifest["fields"].items():
            if record["status"] != "ok" or path in meta:
                continue
            if record["type"] in SERIES:
                with open(folder / record["files"][0], newline="", encoding="utf-8") as rows:
                    for _, value, stamp in list(csv.reader(rows))[1:]:
                        point = float(value) if record["type"] == "floatSeries" else value
                        run.log({path: point, "_timestamp": epoch(stamp)})
            else:
                for name in record["files"]:
                    run.save(str(folder / name), base_path=str(folder), policy="now")
        run.finish()
    wandb.teardown()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--naive-runs", type=int, default=1_000, help="objects the naive loader loads (all)")
    parser.add_argument(
        "--keep", type=Path, help="keep the backup here (reused when present); runs go to a temp folder"
    )
    args = parser.parse_args()
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake server speaks plain http
    os.environ["WANDB_SILENT"] = "true"
    tmp = Path(tempfile.mkdtemp(prefix="load-wandb-bench-"))
    os.environ["WANDB_DATA_DIR"] = str(tmp / "wandb-data")  # artifact staging, out of the home folder
    os.environ["WANDB_CACHE_DIR"] = str(tmp / "wandb-cache")
    dest = (args.keep or tmp) / "backup"
    try:
        make_backup(dest, tmp)
        folders = objects(dest)
        naive_folders = folders[: args.naive_runs]
        points, naive_points = count_points(folders), count_points(naive_folders)
        ours_seconds = ours(dest, tmp / "ours", args.concurrency)
        naive_seconds = naive(dest, tmp / "naive", args.naive_runs)
        for out, expected in ((tmp / "ours", folders), (tmp / "naive", naive_folders)):
            written = len(list((out / "wandb").glob("offline-run-*")))
            assert written == len(expected), f"{out}: {written} offline runs for {len(expected)} objects"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours_rate, naive_rate = points / ours_seconds, naive_points / naive_seconds
    print("| loader | objects | points | wall time (s) | points/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| load-wandb --offline | {len(folders)} | {points:,} | {ours_seconds:.1f} | {ours_rate:,.0f} |")
    print(
        f"| naive run.log per point | {len(naive_folders)} | {naive_points:,} | {naive_seconds:.1f} | {naive_rate:,.0f} |"
    )
    print(f"\nload-wandb: {ours_rate / naive_rate:.1f}x the naive loader's points per second")


if __name__ == "__main__":
    main()
