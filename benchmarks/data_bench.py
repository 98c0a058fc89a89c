"""A backup as data at scale: ``export-parquet``, DuckDB over it, and pandas over the CSVs.

    python benchmarks/data_bench.py [--runs 2000] [--series 10] [--points 1000] [--keep DIR]
    python benchmarks/data_bench.py --runs 200,2000     # two sizes: does export's memory stay flat?

For each size, a backup of one project with ``--runs`` runs of ``--series`` float series of
``--points`` points each (and a few parameters) is written straight into DIR in the backup
format, by the format's own writers (:class:`RunFolder`, :func:`write_whole`,
:class:`SeriesFormatter`): a real backup, which ``neptune-backup verify`` checks once, but
without the fake server, which would take hours for 20 M points. Then, each timed:

- ``neptune-backup export-parquet DEST OUT`` in a child process: its time and peak RSS
  (``os.wait4``'s ``ru_maxrss`` of that child alone);
- the size of the Parquet files against the CSVs;
- two questions, asked of the Parquet files with DuckDB and of the CSVs with pandas, one
  file at a time as a user without the export would (the manifests say which CSV is which
  series): the maximum of each series path across all runs, and the last value of
  ``metrics/s0`` of the runs with ``parameters/lr < 0.01`` (a join with objects.parquet);
  both must give the same answers;
- one run's series rewritten (a new backup of that run), and ``export-parquet`` again
  into the same OUT: the incremental rerun, with how many CSVs it read (that its files are
  those of a fresh export is tests/test_data_incremental.py's to show).

Figures for benchmarks/README.md ("export-parquet at scale").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from neptune_backup_async.disk.files import write_whole
from neptune_backup_async.disk.place import Place
from neptune_backup_async.domain import FieldInfo, FieldType
from neptune_backup_async.format import layout, values
from neptune_backup_async.format.manifest import Manifest
from neptune_backup_async.format.object_folder import RunFolder
from neptune_backup_async.format.reader import facts
from neptune_backup_async.format.report import BackupReport

WORKSPACE, PROJECT = "bench", "scale"
EPOCH_MS = 1_704_067_200_000  # 2024-01-01 UTC


async def _write_run(dest: Path, report: BackupReport, i: int, series: int, points: int, seed: int) -> None:
    """One run, as a backup writes it: each series CSV into place, journalled, then the commit."""
    sys_id = f"SCALE-{i + 1}"
    rel = layout.container_dir(WORKSPACE, PROJECT, sys_id)
    place = Place(dest) / rel
    place.folder(create=True)
    manifest = Manifest("run", f"{WORKSPACE}/{PROJECT}", sys_id, sys_id, None, field_filter={})
    folder = RunFolder(place, manifest, None, report, lambda n: None, lambda p, r: None)
    rng = random.Random(seed * 1_000_003 + i)
    simple = {
        "sys/id": (FieldType.STRING, sys_id),
        "parameters/lr": (FieldType.FLOAT, 10 ** rng.uniform(-4, -1)),
        "parameters/batch": (FieldType.INT, rng.choice((32, 64, 128))),
    }
    paths = [f"metrics/s{k}" for k in range(series)]
    where = layout.RunLayout([*paths, *simple])
    try:
        for path, (kind, value) in simple.items():
            folder.keep_simple(FieldInfo(path, kind, value), values.simple_value(kind, value))
        for k, path in enumerate(paths):
            level = rng.random()
            rows = [
                (float(s), level + k + rng.random() / (s + 1), EPOCH_MS + 1000 * s) for s in range(points)
            ]
            text = values.SERIES_HEADER + values.SeriesFormatter(FieldType.FLOAT_SERIES).rows(rows)
            info = FieldInfo(path, FieldType.FLOAT_SERIES, last_step=float(points - 1))
            written = write_whole(place, where.field_file(path, FieldType.FLOAT_SERIES), text.encode())
            await folder.saved(info, [written], facts(info, False))
        listed = {*paths, *simple}
        await folder.commit(listed, listed)
    finally:
        await folder.close()


def make_backup(dest: Path, runs: int, series: int, points: int) -> float:
    """Write the backup (if DEST holds none yet); the seconds it took."""
    if (dest / layout.REPORT).is_file():
        return 0.0
    started = time.perf_counter()
    dest.mkdir(parents=True, exist_ok=True)
    report = BackupReport(str(dest), dt.datetime.now(dt.timezone.utc))

    async def write_all() -> None:
        for i in range(runs):
            await _write_run(dest, report, i, series, points, seed=0)

    anyio.run(write_all)
    report.finished_at = dt.datetime.now(dt.timezone.utc)
    write_whole(Place(dest), PurePosixPath(layout.REPORT), values.dumps(report.to_json()).encode())
    return time.perf_counter() - started


def change_one_run(dest: Path, series: int, points: int) -> None:
    """A new backup of run 1, with new values in every series (as if it had been rerun)."""
    report = BackupReport(str(dest), dt.datetime.now(dt.timezone.utc))
    anyio.run(lambda: _write_run(dest, report, 0, series, points, seed=time.time_ns()))


def child(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``: its seconds, its own peak RSS in MB, its stderr."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{err}")
    return seconds, usage.ru_maxrss / 1024, err


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "neptune_backup_async", *args]


def timed(repeat: int, ask: Any) -> tuple[float, Any]:
    """The median seconds of ``repeat`` calls of ``ask()``, and its answer."""
    times, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = ask()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


def ask_duckdb(out: Path) -> tuple[dict[str, float], dict[str, float]]:
    import duckdb

    con = duckdb.connect()
    series = f"'{out}/float_series.parquet'"
    maxima = con.sql(f"SELECT path, max(value) FROM {series} GROUP BY path").fetchall()
    last = con.sql(
        f"""SELECT o.object_id, arg_max(s.value, s.step)
            FROM {series} s JOIN '{out}/objects.parquet' o USING (project, object_id)
            WHERE s.path = 'metrics/s0' AND o."parameters/lr" < 0.01 GROUP BY o.object_id"""
    ).fetchall()
    return dict(maxima), dict(last)


def ask_pandas(dest: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The same answers from the CSVs, one ``pandas.read_csv`` each, found by the manifests."""
    import pandas as pd

    maxima: dict[str, float] = {}
    last: dict[str, float] = {}
    for folder in sorted((dest / WORKSPACE / PROJECT).iterdir()):
        manifest = json.loads((folder / layout.MANIFEST).read_text(encoding="utf-8"))
        simple = json.loads((folder / layout.SIMPLE_METADATA).read_text(encoding="utf-8"))
        for path, record in manifest["fields"].items():
            if record["type"] != FieldType.FLOAT_SERIES.value:
                continue
            frame = pd.read_csv(folder / record["files"][0])
            maxima[path] = max(maxima.get(path, -float("inf")), float(frame["value"].max()))
            if path == "metrics/s0" and simple["parameters/lr"] < 0.01:
                last[manifest["sys_id"]] = float(frame["value"].iloc[-1])
    return maxima, last


def size_of(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def bench(root: Path, runs: int, series: int, points: int, repeat: int) -> dict[str, Any]:
    dest, out = root / f"backup-{runs}", root / f"out-{runs}"
    made = make_backup(dest, runs, series, points)
    row: dict[str, Any] = {"runs": runs, "points": runs * series * points, "generate_s": round(made, 1)}
    if made:
        row["verify_s"], _, _ = child(cli("verify", str(dest)))
    shutil.rmtree(out, ignore_errors=True)
    row["export_s"], row["export_rss_mb"], _ = child(cli("export-parquet", str(dest), str(out)))
    csvs = [p for p in (dest / WORKSPACE / PROJECT).rglob("*.csv")]
    row["csv_mb"] = size_of(csvs) / 1e6
    row["parquet_mb"] = size_of(list(out.glob("*.parquet"))) / 1e6
    row["duckdb_s"], by_duckdb = timed(repeat, lambda: ask_duckdb(out))
    row["pandas_s"], by_pandas = timed(1, lambda: ask_pandas(dest))
    assert by_duckdb == by_pandas, "DuckDB over Parquet and pandas over the CSVs disagree"
    row["answers"] = [len(a) for a in by_duckdb]
    change_one_run(dest, series, points)
    row["rerun_s"], row["rerun_rss_mb"], said = child(cli("export-parquet", str(dest), str(out)))
    row["rerun_said"] = said.strip().splitlines()[-1]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="2000", help="runs, or sizes as 200,2000")
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="DuckDB queries: median of this many")
    parser.add_argument("--keep", type=Path, help="keep backups and outputs here (reused when there)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="data-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for runs in (int(r) for r in args.runs.split(",")):
            row = bench(root, runs, args.series, args.points, args.repeat)
            print(json.dumps(row), flush=True)
            print(
                f"{runs} runs, {row['points'] / 1e6:g} M points: export {row['export_s']:.1f} s,"
                f" {row['export_rss_mb']:.0f} MB peak RSS; Parquet {row['parquet_mb']:.0f} MB against"
                f" {row['csv_mb']:.0f} MB of CSV ({row['parquet_mb'] / row['csv_mb']:.2f});"
                f" DuckDB {row['duckdb_s']:.2f} s, pandas {row['pandas_s']:.1f} s"
                f" ({row['pandas_s'] / row['duckdb_s']:.0f}x); rerun after one run changed"
                f" {row['rerun_s']:.1f} s ({row['rerun_said']})",
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
