"""``neptune-backup export-parquet DEST OUT``: a backup as four Parquet files (docs/DATA.md).

Series are streamed: each object's series is read from its CSV and written in row groups
of its own, so no more than one chunk of one series is ever in memory.

A rerun is incremental: ``OUT/.export-state.json`` records, for each series, the manifest's
record of its CSV (sha256 and size) and its row groups in the Parquet file it went into.
A series whose record is unchanged is copied from that file, row group by row group, and
its CSV is not read; only the others are. Every file is written to a temporary name and
renamed into place, the state last, and the state names each Parquet file by an id kept in
its metadata: a file the state does not name (an export cut short between renames) is not
trusted, and its series are read from their CSVs again. Files are written by the backup's
own atomic writer (:mod:`..disk.files`), in OUT as in DEST.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..disk.files import ThreadFile, write_whole
from ..disk.place import Place
from ..errors import DestinationError, UsageError
from . import columns
from .backup import Backup, Problem, open_backup, series_chunks, series_schema

STATE = ".export-state.json"
# Bump when a series' rows or row groups would come out otherwise: the state of an older
# export is then not used, and every CSV is read again.
STATE_FORMAT = 1
EXPORT_ID = b"neptune_backup.export_id"  # the Parquet metadata key naming one written file
_Mark = list[Any]  # project, object id, sha256 and size of a series CSV


@dataclass
class Exported:
    objects: int
    points: dict[str, int]  # by series kind
    files: int
    problems: list[Problem]
    read: int = 0  # series CSVs read
    reused: int = 0  # series copied from the previous export, their CSVs not read

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


@dataclass
class _Series:
    """One series Parquet file being written: what it reuses of the last one, what it holds."""

    kind: str
    old: Any  # the previous file (a pyarrow ParquetFile), if the state names it
    index: dict[tuple[str, str], tuple[_Mark, int, int]]  # its series: mark, first group, groups
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: list[list[Any]] = field(default_factory=list)  # object folder, path, mark, groups
    read: int = 0
    reused: int = 0

    def tables(self, backup: Backup) -> Iterator[Any]:
        for obj, path, csv_path, written in backup.series_sources(kind=self.kind):
            mark = [obj.manifest.project, obj.manifest.sys_id, written.sha256, written.size]
            before = self.index.get((obj.rel, path))
            if before is not None and before[0] == mark:
                _, first, count = before
                chunks: Iterator[Any] = (self.old.read_row_group(i) for i in range(first, first + count))
                self.reused += 1
            else:
                chunks = series_chunks(obj, path, csv_path, self.kind)
                self.read += 1
            groups = 0
            for table in chunks:
                groups += 1
                yield table
            self.held.append([obj.rel, path, mark, groups])

    def state(self) -> dict[str, Any]:
        return {"id": self.id, "series": self.held}


def _previous(out: Path, kind: str, state: dict[str, Any]) -> _Series:
    """The series file of the last export, with its index, if the state names it and its
    schema is this one; else none (every CSV is read)."""
    pq = columns.need("pyarrow.parquet")
    recorded: Any = state.get(kind)
    try:
        old = pq.ParquetFile(out / f"{kind}_series.parquet")
    except (OSError, ValueError):  # none yet, or not Parquet: every CSV is read
        return _Series(kind, None, {})
    index: dict[tuple[str, str], tuple[_Mark, int, int]] = {}
    first = 0
    try:
        for rel, path, mark, groups in recorded["series"]:
            index[rel, path] = (mark, first, groups)
            first += groups
        named = (old.schema_arrow.metadata or {}).get(EXPORT_ID) == str(recorded["id"]).encode()
    except (TypeError, KeyError, ValueError):  # no state (a first export), or not ours
        named = False
    if not named or first != old.num_row_groups or not old.schema_arrow.equals(series_schema(kind)):
        old.close()
        return _Series(kind, None, {})
    return _Series(kind, old, index)


def _read_state(out: Path) -> dict[str, Any]:
    try:
        state = json.loads((out / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else {}


class _Sink:
    """The one atomic writer as the file object pyarrow writes to."""

    closed = False

    def __init__(self, file: ThreadFile) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        self.file.write(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here; the file is made durable when it is committed."""


def _write(out: Path, name: str, tables: Iterable[Any], schema: Any) -> int:
    """Write ``tables`` (each its own row group) to ``out/name`` under a temporary name, and
    rename it into place once whole: a partial file is never left under the final name.
    Returns the rows written."""
    pq = columns.need("pyarrow.parquet")
    file, rows = ThreadFile(Place(out), PurePosixPath(name)), 0
    try:
        with pq.ParquetWriter(_Sink(file), schema) as writer:
            for table in tables:
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                rows += table.num_rows
        file.commit()
    finally:
        if file.result is None:
            file.abort()
    return rows


def export_parquet(backup: Backup, out: Path) -> Exported:
    """Write ``objects.parquet``, ``float_series.parquet``, ``string_series.parquet`` and
    ``files.parquet`` of ``backup`` into the folder ``out``; series unchanged since the last
    export into ``out`` are copied from it, their CSVs not read."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DestinationError(f"Cannot create {out} ({e.strerror or e}).") from None
    objects = backup.objects_table(kind=None)
    files = backup.files_table()
    _write(out, "objects.parquet", [objects], objects.schema)
    state = _read_state(out)
    points, done = {}, []
    for kind in ("float", "string"):
        series = _previous(out, kind, state)
        try:
            schema = series_schema(kind).with_metadata({EXPORT_ID: series.id.encode()})
            points[kind] = _write(out, f"{kind}_series.parquet", series.tables(backup), schema)
        finally:
            if series.old is not None:
                series.old.close()
        done.append(series)
    _write(out, "files.parquet", [files], files.schema)
    document = {"format": STATE_FORMAT, **{s.kind: s.state() for s in done}}
    write_whole(Place(out), PurePosixPath(STATE), json.dumps(document, ensure_ascii=False).encode())
    return Exported(
        objects.num_rows,
        points,
        files.num_rows,
        backup.problems,
        read=sum(s.read for s in done),
        reused=sum(s.reused for s in done),
    )


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
        f" ({result.read} series read from their CSVs, {result.reused} unchanged since the last export)"
        + (f"; {len(result.problems)} problems (above)." if result.problems else "."),
        file=sys.stderr,
    )
    return result.exit_code
