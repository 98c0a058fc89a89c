"""Benchmark of ``load-mlflow``: workloads W1 and W2 into SQLite and into a local ``mlflow server``.

    python benchmarks/load_mlflow_bench.py [--workloads W1,W2] [--concurrency 8]
                                           [--naive-runs W1=3,W2=100] [--keep DIR]

Each workload is backed up the real way from the fake Neptune server (not timed). Then it
is loaded by ``load_mlflow`` into a SQLite database and into an ``mlflow server`` on
127.0.0.1 (SQLite behind it, artifacts proxied by the server), each into a fresh database
whose tables are made beforehand (making them costs MLflow ~8 s once, and is not part of
the figures). The baseline is the naive loader most scripts are: one run after another,
``log_param`` per param and ``log_metric`` per point, ``log_artifact`` per file; it runs
on the first ``--naive-runs`` runs of each workload, as it would take hours on all of them.
Prints one Markdown table: wall time, metric points, and points per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from mlflow.tracking import MlflowClient

from neptune_backup_async import backup, load_mlflow
from neptune_backup_async.testing import WORKLOADS, generate, serve


def make_backup(name: str, dest: Path, tmp: Path) -> None:
    if (dest / "backup-report.json").is_file():
        return
    world = generate(WORKLOADS[name], artifact_root=tmp / f"{name}-sources")
    with serve(world) as server:
        anyio.run(lambda: backup("all", dest, api_token=server.api_token, concurrency=32))


def fresh_db(template: Path, where: Path) -> str:
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, where)
    return f"sqlite:///{where}"


@contextmanager
def mlflow_server(db_uri: str, artifacts: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db_uri, "--host", "127.0.0.1",
         "--port", str(port), "--artifacts-destination", str(artifacts), "--workers", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def ours(dest: Path, uri: str, concurrency: int) -> dict[str, Any]:
    started = time.perf_counter()
    report = anyio.run(lambda: load_mlflow(dest, uri, concurrency=concurrency))
    seconds = time.perf_counter() - started
    assert report.exit_code == 0, report.failures
    return {"seconds": seconds, "points": report.points, "objects": report.objects_loaded}


def naive(dest: Path, uri: str, runs: int, artifacts: Path) -> dict[str, Any]:
    """One run at a time, one call per param, point and file: the usual hand-written loader."""
    client = MlflowClient(tracking_uri=uri)
    # A server keeps artifacts where it was told; straight into SQLite they would go to ./mlruns.
    location = None if uri.startswith("http") else artifacts.as_uri()
    exp = client.create_experiment("naive", artifact_location=location)
    folders = sorted(p.parent for p in dest.glob("*/*/*/.manifest.json") if p.parent.name != "_project")[
        :runs
    ]
    points = 0
    started = time.perf_counter()
    for folder in folders:
        manifest = json.loads((folder / ".manifest.json").read_text())
        meta = json.loads((folder / "simple_metadata.json").read_text())
        run_id = client.create_run(exp, run_name=manifest["sys_id"]).info.run_id
        for path, record in manifest["fields"].items():
            if path in meta:
                client.log_param(run_id, path.replace(":", "_"), str(meta[path])[:6000])
            elif record["type"] == "floatSeries":
                lines = (folder / record["files"][0]).read_text().splitlines()[1:]
                for line in lines:
                    step, value, stamp = line.split(",")
                    ms = int(time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) * 1000)
                    client.log_metric(run_id, path, float(value), ms, int(float(step)))
                points += len(lines)
            else:
                for f in record["files"]:
                    client.log_artifact(run_id, str(folder / f), str(Path(path).parent))
        client.set_terminated(run_id)
    return {"seconds": time.perf_counter() - started, "points": points, "objects": len(folders)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--naive-runs", default="W1=3,W2=100", help="runs of each workload the baseline loads"
    )
    parser.add_argument("--keep", type=Path, help="keep the backups here (reused when present)")
    args = parser.parse_args()
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake server speaks plain http
    naive_runs = {k: int(v) for k, v in (item.split("=") for item in args.naive_runs.split(","))}
    tmp = Path(tempfile.mkdtemp(prefix="load-mlflow-bench-"))
    keep = args.keep or tmp
    template = tmp / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments(max_results=1)
    rows = []
    try:
        for name in args.workloads.split(","):
            dest = keep / name
            make_backup(name, dest, tmp)
            shutil.rmtree(dest / ".mlflow", ignore_errors=True)
            runs = naive_runs.get(name, 3)
            cells = [
                (
                    "load-mlflow",
                    "SQLite",
                    ours(dest, fresh_db(template, tmp / name / "ours.db"), args.concurrency),
                ),
                (
                    "naive log_metric",
                    "SQLite",
                    naive(
                        dest,
                        fresh_db(template, tmp / name / "naive.db"),
                        runs,
                        tmp / name / "naive-artifacts",
                    ),
                ),
            ]
            for who, loader in (("load-mlflow", "ours"), ("naive log_metric", "naive")):
                shutil.rmtree(dest / ".mlflow", ignore_errors=True)
                db = fresh_db(template, tmp / name / f"server-{loader}.db")
                with mlflow_server(db, tmp / name / f"artifacts-{loader}") as url:
                    if loader == "ours":
                        cell = ours(dest, url, args.concurrency)
                    else:
                        cell = naive(dest, url, runs, tmp / name / "naive-artifacts")
                cells.append((who, "mlflow server", cell))
            for who, target, cell in cells:
                rate = cell["points"] / cell["seconds"]
                rows.append(
                    f"| {name} | {target} | {who} | {cell['objects']} | {cell['points']:,} |"
                    f" {cell['seconds']:.1f} | {rate:,.0f} |"
                )
                print(rows[-1], flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n| workload | into | loader | objects | metric points | wall time (s) | points/s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
