"""Benchmark harness: back up named workloads from the fake Neptune server at several concurrencies.

    python benchmarks/run.py [--workloads W1,W2,W3,W4] [--concurrency 1,4,16,64] [--latency 0.025]
                             [--repeat 3] [--out benchmarks/results]

One fake server process per workload (``fakeserver.py``) serves it with a fixed latency per
request; each backup is the real CLI in a process of its own, into a fresh folder. The
server counts requests between a reset before the backup and a read after it, so every
request counted is the backup's. Writes ``results.json`` and ``results.md`` into
``OUT/<time>/`` (and copies to ``OUT/latest.*``); the columns are explained in README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeserver import STARTUP_OPERATIONS, ServerProcess, spec_field
from tables import markdown

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 1024 * 1024
SRC = REPO / "src" / "neptune_backup_async"

# The workloads as the benchmark issue specifies them; check_workloads() compares WORKLOADS.
SPECIFIED: dict[str, dict[str, Any]] = {
    "W1": dict(
        workspaces=1, projects_per_workspace=1, runs_per_project=30, parameters=20, float_series=5,
        float_series_length=2_000, string_series=1, string_series_length=200, monitoring=True,
        monitoring_float_length=300, monitoring_string_length=50, file_size=100_000, file_set_files=3, images=3,
    ),
    "W2": dict(workspaces=1, projects_per_workspace=1, runs_per_project=2_000, parameters=10, float_series=2),
    "W3": dict(
        workspaces=1, projects_per_workspace=1, runs_per_project=1, float_series=200, float_series_length=50_000
    ),
    "W4": dict(workspaces=1, projects_per_workspace=1, runs_per_project=20, file_size=50_000_000),
}  # fmt: skip


@dataclass
class Cell:
    """One workload at one concurrency: its samples and their medians."""

    workload: str
    concurrency: int
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> dict[str, Any]:
        return median_of(self.samples)


# -- one backup -----------------------------------------------------------------------------


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> os.struct_rusage | None:
    """Reap ``proc`` with wait4, which gives its own peak RSS and CPU time; kill it past ``timeout``."""
    result: list[os.struct_rusage] = []

    def reap() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        result.append(usage)

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    reaper.join(timeout)
    if reaper.is_alive():
        proc.kill()
        reaper.join()
        return None
    return result[0]


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_idle(limit: float, threshold: float = 0.3) -> float:
    """Wait until the machine has been busy less than ``threshold`` cores for a second, at most ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = machine_busy()
        time.sleep(1.0)
        if machine_busy() - before < threshold:
            break
    return limit - max(0.0, deadline - time.monotonic())


def _manifest_times(dest: Path) -> list[float]:
    """When each run's manifest (its last file) was written, as epoch seconds."""
    return sorted(p.stat().st_mtime for p in dest.rglob(".manifest.json"))


def backup_once(
    server: ServerProcess, concurrency: int, args: argparse.Namespace, scratch: Path, log: Path
) -> dict[str, Any]:
    """Run the CLI once into a fresh folder; return its measurements."""
    dest = Path(tempfile.mkdtemp(prefix="backup-", dir=scratch))
    src_digest = source_digest(args.source_root / SRC.name if args.source_root else SRC)
    env = child_env(args.source_root)
    env |= {"NEPTUNE_API_TOKEN": server.api_token, "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    command = [sys.executable, "-m", "neptune_backup_async", "--projects", "all"]
    command += ["--output", str(dest), "--concurrency", str(concurrency), "--quiet"]
    if args.processes is not None:
        command += ["--processes", str(args.processes)]
    server.reset()
    busy = machine_busy()
    try:
        with log.open("wb") as out:
            start = time.time()
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            usage = _wait(proc, args.timeout)
            wall = time.time() - start
        busy = machine_busy() - busy
        stats = server.stats()
        report_file = dest / "backup-report.json"
        report = json.loads(report_file.read_text()) if report_file.is_file() else {}
        written = _manifest_times(dest)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    sample = {"exit_code": proc.returncode if usage else "timeout", "wall_s": wall, "src": src_digest}
    sample |= _client_usage(usage)
    sample |= _server_counts(stats, start, report)
    sample |= _derived(sample, args.latency, concurrency)
    sample["other_cpu_s"] = max(0.0, busy - sample.get("client_cpu_s", 0) - sample["server_cpu_s"])
    sample["first_run_s"] = written[0] - start if written else None
    sample["last_run_s"] = written[-1] - start if written else None
    return sample


def source_digest(package: Path = SRC) -> str:
    """A short hash of the package's source, to tell which code each sample ran."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_source(scratch: Path) -> Path:
    """Copy src/ as it is now, so every sample runs the same code while others edit src/; returns the copy."""
    root = scratch / "src"
    shutil.copytree(SRC, root / SRC.name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def child_env(source_root: Path | None) -> dict[str, str]:
    """The environment of the server and backup processes: the snapshot first on the path, if any."""
    env = dict(os.environ)
    if source_root is not None:  # PYTHONPATH comes before the editable install's .pth entry
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source_root), env.get("PYTHONPATH")) if p)
    return env


def check_workloads(names: list[str]) -> list[str]:
    """Where generator.WORKLOADS differs from the specified workloads (an empty list: nowhere)."""
    from neptune_backup_async.testing import WORKLOADS

    problems = []
    for name in names:
        for key, want in SPECIFIED.get(name, {}).items():
            have = getattr(WORKLOADS[name], key)
            if have != want:
                problems.append(f"{name}.{key} is {have!r}, specified {want!r}")
        if name == "W2" and WORKLOADS[name].float_series_length > 100:
            problems.append(f"W2.float_series_length is {WORKLOADS[name].float_series_length}, not short")
    return problems


def _client_usage(usage: os.struct_rusage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    return {"peak_rss_mib": usage.ru_maxrss * 1024 / MIB, "client_cpu_s": usage.ru_utime + usage.ru_stime}


def _server_counts(stats: dict[str, Any], start: float, report: dict[str, Any]) -> dict[str, Any]:
    """Requests from the server's accounting, split into start-up and fetching, and their timeline."""
    by_op: dict[str, int] = stats["by_operation"]
    startup = sum(n for op, n in by_op.items() if op in STARTUP_OPERATIONS)
    fetch_starts = [t for op, t in stats["first_begin"].items() if op not in STARTUP_OPERATIONS]
    fetch_start = min(fetch_starts) if fetch_starts else None
    totals = report.get("totals", {})
    return {
        "runs": totals.get("runs_done", 0),
        "runs_failed": totals.get("runs_failed", 0),
        "fields": totals.get("fields_done", 0),
        "bytes_written": totals.get("bytes_written", 0),
        "requests": stats["total"],
        "startup_requests": startup,
        "fetch_requests": stats["total"] - startup,
        "max_in_flight": stats["max_in_flight"],
        "bytes_served": stats["bytes_served"],
        "server_cpu_s": stats["cpu_s"],
        "by_operation": by_op,
        "startup_s": fetch_start - start if fetch_start else None,
        "fetch_s": stats["last_end"] - fetch_start if fetch_start else None,
        "listing_s": [round(t - start, 2) for t, _ in stats["listing"]],
        "last_listed_s": max((t - start for t, runs in stats["listing"] if runs), default=None),
    }


def _derived(s: dict[str, Any], latency: float, concurrency: int) -> dict[str, Any]:
    """Rates and efficiency; efficiency = ideal / actual with ideal = requests × latency / concurrency."""
    wall, fetch_s, runs = s["wall_s"], s.get("fetch_s"), s.get("runs", 0)
    ideal = s.get("requests", 0) * latency / concurrency
    fetch_ideal = s.get("fetch_requests", 0) * latency / concurrency
    return {
        "runs_per_s": runs / wall,
        "mb_per_s": s.get("bytes_written", 0) / 1e6 / wall,
        "req_per_run": s["fetch_requests"] / runs if runs else None,
        "efficiency": ideal / wall if latency else None,
        "fetch_efficiency": fetch_ideal / fetch_s if latency and fetch_s else None,
    }


def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number across samples; other values from the sample of median wall time."""
    if not samples:
        return {}
    middle = sorted(samples, key=lambda s: s["wall_s"])[(len(samples) - 1) // 2]
    out: dict[str, Any] = {}
    for key, value in middle.items():
        numbers = [s.get(key) for s in samples]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            out[key] = statistics.median(numbers)
        else:
            out[key] = value
    out["n"] = len(samples)
    out["ok"] = all(s.get("exit_code") == 0 for s in samples)
    return out


# -- the whole run --------------------------------------------------------------------------


def _csv(kind: type, text: str) -> list[Any]:
    return [kind(part.strip()) for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", type=lambda t: _csv(str, t), default=["W1", "W2", "W3", "W4"])
    p.add_argument("--concurrency", type=lambda t: _csv(int, t), default=[1, 4, 16, 64])
    p.add_argument("--latency", type=float, default=0.025, help="seconds the server adds to every request")
    p.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="the backup's --processes (default: not given, so the CLI's own default; a source before"
        " --processes existed takes none)",
    )
    p.add_argument("--repeat", type=int, default=3, help="samples per cell; medians are quoted (default 3)")
    p.add_argument(
        "--cell-budget",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="a cell takes fewer than --repeat samples when they would add up past this, judged by its"
        " first sample; every cell gets one (0: no limit; default 120)",
    )
    p.add_argument(
        "--skip",
        type=lambda t: _csv(str, t),
        default=[],
        metavar="W@C,...",
        help="cells not to run, e.g. W3@1,W4@1",
    )
    p.add_argument(
        "--set",
        type=spec_field,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a WorkloadSpec field of every workload run, e.g. --set file_size=10000000",
    )
    p.add_argument(
        "--out", type=Path, default=HERE / "results", help="where results go (default benchmarks/results)"
    )
    p.add_argument("--scratch", type=Path, help="where backups are written and deleted (default: a temp dir)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="before each backup, wait up to this long for a second in which other processes use under"
        " 0.3 cores (0: don't wait; default 10)",
    )
    p.add_argument(
        "--live-src",
        action="store_true",
        help="run src/ as it is at each sample, not a copy taken at the start (each sample notes its digest)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds before one backup is killed")
    return p


def run_workload(workload: str, args: argparse.Namespace, scratch: Path, logs: Path) -> list[Cell]:
    """Start the workload's server once, then sample every cell, rounds interleaved across concurrencies."""
    cells = [Cell(workload, c) for c in args.concurrency if f"{workload}@{c}" not in args.skip]
    started = time.time()
    with ServerProcess(workload, args.latency, dict(args.set), env=child_env(args.source_root)) as server:
        _say(f"{workload}: server ready in {time.time() - started:.1f}s at {server.base_url}")
        for round_ in range(1, args.repeat + 1):
            for cell in cells:
                if round_ > 1 and args.cell_budget and round_ * cell.samples[0]["wall_s"] > args.cell_budget:
                    continue  # a long cell takes fewer samples (see --cell-budget)
                log = logs / f"{workload}-c{cell.concurrency}-r{round_}.log"
                waited = wait_idle(args.wait_idle) if args.wait_idle else 0.0
                sample = backup_once(server, cell.concurrency, args, scratch, log)
                cell.samples.append(sample | {"waited_idle_s": waited})
                _say(_progress_line(cell, round_, sample))
    return cells


def _progress_line(cell: Cell, round_: int, s: dict[str, Any]) -> str:
    eff = s.get("efficiency")
    return (
        f"  {cell.workload} c={cell.concurrency} #{round_}: exit {s['exit_code']}, {s['wall_s']:.2f}s,"
        f" {s.get('requests', 0)} requests, RSS {s.get('peak_rss_mib', 0):.0f} MiB,"
        f" other processes {s['other_cpu_s']:.1f} CPU s"
        + (f", efficiency {eff:.0%}" if eff is not None else "")
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": round(pages / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "neptune": importlib.metadata.version("neptune"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "src_modified": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "src")),
    }


def _git(*args: str) -> str:
    """Read-only git queries; --no-optional-locks keeps even `status` from touching the index."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True, timeout=30
        )
    except OSError:
        return ""
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out / stamp
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    scratch_root = args.scratch or Path(tempfile.gettempdir())
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="neptune-bench-", dir=scratch_root))
    started = time.time()
    document: dict[str, Any] = {"machine": machine(), "workload_check": check_workloads(args.workloads)}
    args.source_root = None if args.live_src else snapshot_source(scratch)
    cells: list[Cell] = []
    try:
        for workload in args.workloads:
            cells += run_workload(workload, args, scratch, out_dir / "logs")
            text = write_results(document, args, cells, out_dir, started)  # after each workload
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    _say(f"wrote {out_dir}/results.json and results.md in {time.time() - started:.0f}s")
    return 0 if all(c.median.get("ok") for c in cells) else 1


def write_results(
    document: dict[str, Any], args: argparse.Namespace, cells: list[Cell], out_dir: Path, started: float
) -> str:
    """Write results.json and results.md (also as OUT/latest.*); return the markdown."""
    settings = {k: v for k, v in vars(args).items() if k != "source_root"}
    document = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "duration_s": round(time.time() - started, 1),
        **document,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()},
        "cells": [
            {"workload": c.workload, "concurrency": c.concurrency, "median": c.median, "samples": c.samples}
            for c in cells
        ],
    }
    (out_dir / "results.json").write_text(json.dumps(document, indent=2) + "\n")  # first: it has it all
    text = markdown(document)
    (out_dir / "results.md").write_text(text)
    shutil.copy(out_dir / "results.json", args.out / "latest.json")
    shutil.copy(out_dir / "results.md", args.out / "latest.md")
    return text


if __name__ == "__main__":
    sys.exit(main())
