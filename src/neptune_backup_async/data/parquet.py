"""``neptune-backup export-parquet DEST OUT``: a backup as four Parquet files (docs/DATA.md).

Series are streamed: each object's series is read from its CSV and written in row groups
of its own, so no more than one chunk of one series is ever in memory.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DestinationError, UsageError
from . import columns
from .backup import Backup, Problem, open_backup, series_schema


@dataclass
class Exported:
    objects: int
    points: dict[str, int]  # by series kind
    files: int
    problems: list[Problem]

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def _write(out: Path, name: str, tables: Any, schema: Any) -> int:
    """Write ``tables`` (each its own row group) to ``out/name`` in one piece: a partial file
    is never left under the final name. Returns the rows written."""
    pq = columns.need("pyarrow.parquet")
    part, rows = out / f".{name}.part", 0
    with pq.ParquetWriter(part, schema) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            rows += table.num_rows
    os.replace(part, out / name)
    return rows


def export_parquet(backup: Backup, out: Path) -> Exported:
    """Write ``objects.parquet``, ``float_series.parquet``, ``string_series.parquet`` and
    ``files.parquet`` of ``backup`` into the folder ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DestinationError(f"Cannot create {out} ({e.strerror or e}).") from None
    objects = backup.objects_table(kind=None)
    files = backup.files_table()
    _write(out, "objects.parquet", [objects], objects.schema)
    points = {
        kind: _write(out, f"{kind}_series.parquet", backup.series_tables(kind=kind), series_schema(kind))
        for kind in ("float", "string")
    }
    _write(out, "files.parquet", [files], files.schema)
    return Exported(objects.num_rows, points, files.num_rows, backup.problems)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", type=Path, help="the backup folder")
    parser.add_argument("output", type=Path, help="the folder to write the Parquet files into")


def run(args: argparse.Namespace) -> int:
    try:
        columns.need("pyarrow")
    except ImportError as e:
        raise UsageError(str(e)) from None
    result = export_parquet(open_backup(args.destination, warn=False), args.output)
    for problem in result.problems:
        print(problem, file=sys.stderr)
    print(
        f"Wrote {result.objects} objects, {result.points['float']} float and {result.points['string']} string"
        f" series points and {result.files} files to {args.output}"
        + (f"; {len(result.problems)} problems (above)." if result.problems else "."),
        file=sys.stderr,
    )
    return result.exit_code
