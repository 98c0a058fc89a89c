"""Markdown tables of a harness run (``run.py``): medians per workload and concurrency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakeserver import STARTUP_OPERATIONS

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], str]]


def num(key: str, spec: str = ".1f", scale: float = 1.0) -> Callable[[Row], str]:
    """A column that formats ``row[key]``; a dash when it is missing."""

    def cell(row: Row) -> str:
        value = row.get(key)
        return "–" if value is None else format(value * scale, spec)

    return cell


def pct(key: str) -> Callable[[Row], str]:
    return num(key, ".0%")


def _requests(row: Row) -> str:
    return f"{row.get('requests', 0):.0f} ({row.get('startup_requests', 0):.0f})"


def _status(row: Row) -> str:
    return "ok" if row.get("ok") else f"FAILED (exit {row.get('exit_code')})"


MAIN: list[Column] = [
    ("workload", lambda r: str(r["workload"])),
    ("c", lambda r: str(r["concurrency"])),
    ("n", num("n", ".0f")),
    ("wall s", num("wall_s", ".2f")),
    ("speed-up", num("speedup", ".1f")),
    ("runs/s", num("runs_per_s", ".2f")),
    ("MB/s", num("mb_per_s", ".1f")),
    ("requests (start-up)", _requests),
    ("req/run", num("req_per_run", ".1f")),
    ("max in flight", num("max_in_flight", ".0f")),
    ("peak RSS MiB", num("peak_rss_mib", ".0f")),
    ("client CPU s", num("client_cpu_s", ".1f")),
    ("server CPU s", num("server_cpu_s", ".1f")),
    ("other CPU s", num("other_cpu_s", ".1f")),
    ("efficiency", pct("efficiency")),
    ("fetch efficiency", pct("fetch_efficiency")),
    ("status", _status),
]

TIMELINE: list[Column] = [
    ("workload", lambda r: str(r["workload"])),
    ("c", lambda r: str(r["concurrency"])),
    ("start-up s", num("startup_s", ".2f")),
    ("first run written s", num("first_run_s", ".2f")),
    ("last run listed s", num("last_listed_s", ".2f")),
    ("runs-table pages answered at s", lambda r: ", ".join(f"{t:.1f}" for t in r.get("listing_s") or [])),
    ("last run written s", num("last_run_s", ".2f")),
    ("fetch phase s", num("fetch_s", ".2f")),
    ("wall s", num("wall_s", ".2f")),
]


def table(columns: list[Column], rows: list[Row]) -> str:
    lines = ["| " + " | ".join(name for name, _ in columns) + " |"]
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(columns))) + "|")
    lines += ["| " + " | ".join(fmt(row) for _, fmt in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rows_of(document: dict[str, Any]) -> list[Row]:
    """One row per cell: its medians, plus the speed-up over the same workload at c=1."""
    rows = []
    base = {
        c["workload"]: c["median"]["wall_s"]
        for c in document["cells"]
        if c["concurrency"] == 1 and c["median"]
    }
    for cell in document["cells"]:
        row = {**cell["median"], "workload": cell["workload"], "concurrency": cell["concurrency"]}
        if cell["workload"] in base and row.get("wall_s"):
            row["speedup"] = base[cell["workload"]] / row["wall_s"]
        rows.append(row)
    return rows


def operations(document: dict[str, Any]) -> str:
    """Requests per run by operation, per workload (from its first cell; the counts do not depend on c)."""
    out = []
    seen: set[str] = set()
    for cell in document["cells"]:
        workload, median = cell["workload"], cell["median"]
        if workload in seen or not median.get("runs"):
            continue
        seen.add(workload)
        runs, by_op = median["runs"], median["by_operation"]
        cells = [c for c in document["cells"] if c["workload"] == workload]
        same = all(c["median"].get("by_operation") == by_op for c in cells)
        note = "" if same else " (counts differ between concurrencies; these are from the first)"
        out.append(f"**{workload}**, {runs:.0f} run(s){note}:\n")
        out.append("| operation | requests | per run |\n|---|---:|---:|")
        fetch = sorted(
            ((op, n) for op, n in by_op.items() if op not in STARTUP_OPERATIONS), key=lambda kv: -kv[1]
        )
        out += [f"| {op} | {n} | {n / runs:.2f} |" for op, n in fetch]
        out.append(
            f"| **all but start-up** | {sum(n for _, n in fetch)} | {sum(n for _, n in fetch) / runs:.2f} |"
        )
        out += [
            f"| {op} (start-up) | {n} | – |" for op, n in sorted(by_op.items()) if op in STARTUP_OPERATIONS
        ]
        out.append("")
    return "\n".join(out) + "\n"


def _source_versions(document: dict[str, Any]) -> str:
    """A warning when src/ changed while the harness ran: which cells ran which code."""
    cells_by_src: dict[str, list[str]] = {}
    for cell in document["cells"]:
        for i, sample in enumerate(cell["samples"], 1):
            name = f"{cell['workload']}@{cell['concurrency']}#{i}"
            cells_by_src.setdefault(sample.get("src", "?"), []).append(name)
    if len(cells_by_src) <= 1:
        live = document["settings"].get("live_src")
        where = "src/ as it was at each sample" if live else "a copy of src/ taken at the start"
        return f"Every sample ran {where}: source digest {next(iter(cells_by_src), '?')}.\n"
    parts = [f"{digest}: {', '.join(names)}" for digest, names in cells_by_src.items()]
    return "**src/ changed during the run**; samples by source digest: " + "; ".join(parts) + ".\n"


def markdown(document: dict[str, Any]) -> str:
    m, s = document["machine"], document["settings"]
    overrides = ", ".join(f"{k}={v}" for k, v in s["set"]) or "none"
    head = (
        f"Run {document['created']} ({document['duration_s']:.0f} s): `{document['command']}`\n\n"
        f"Machine: {m['cpu_count']} cores, {m['memory_gib']} GiB, Python {m['python']}, neptune {m['neptune']},"
        f" {m['platform']}; commit {m['commit']}{' with uncommitted changes in src/' if m['src_modified'] else ''}.\n"
        f"Latency {s['latency'] * 1000:.0f} ms per request; medians of up to {s['repeat']} samples (column n);"
        f" workload overrides: {overrides}; skipped cells: {', '.join(s['skip']) or 'none'}.\n"
    )
    problems = document.get("workload_check", [])
    head += f"Workloads as specified: {'yes' if not problems else 'NO: ' + '; '.join(problems)}.\n"
    head += _source_versions(document)
    rows = rows_of(document)
    return (
        head
        + "\n### Results\n\n"
        + table(MAIN, rows)
        + "\n### Timeline (seconds after the backup process started)\n\n"
        + table(TIMELINE, rows)
        + "\n### Requests by operation\n\n"
        + operations(document)
    )


if __name__ == "__main__":  # python benchmarks/tables.py results.json: print its tables again
    import json
    import sys
    from pathlib import Path

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
