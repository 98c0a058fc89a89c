"""``neptune-backup export-parquet DEST OUT``: a backup as four Parquet files (docs/DATA.md).

Series are streamed: read from their CSVs a chunk at a time, by object and path, and
written in row groups of ``CHUNK_ROWS`` rows, so only a few groups' rows are ever in memory.

A rerun is incremental: ``OUT/.export-state.json`` records, for each series, the manifest's
record of its CSV (sha256 and size) and its rows in the Parquet file it went into. A
series whose record is unchanged is copied from that file, and its CSV is not read; only
the others are. Every file is written under a temporary name by the backup's own atomic
writer (:mod:`..disk.files`) and renamed into place, the state last; the state names each
series file by an id kept in its metadata, and a file it does not name (an export cut
short between renames) is not copied from: its series are read from their CSVs again.
"""

from __future__ import annotations

import argparse
import bisect
import glob
import itertools
import json
import sys
import uuid
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..disk.files import TEMP_SUFFIX, ThreadFile
from ..disk.place import Place
from ..errors import DestinationError, UsageError
from . import columns
from .backup import (
    CHUNK_ROWS,
    Backup,
    Problem,
    files_schema,
    open_backup,
    series_chunks,
    series_schema,
)

NAMES = ("objects.parquet", "float_series.parquet", "string_series.parquet", "files.parquet")
STATE = ".export-state.json"
# Bump when a series' rows or row groups would come out otherwise: the state of an older
# export is then not used, and every CSV is read again.
STATE_FORMAT = 2
EXPORT_ID = b"neptune_backup.export_id"  # the Parquet metadata key naming one written file


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


class _Rows:
    """The rows of the previous series file by their position; its row groups are read once
    each when asked for in order (one is held at a time)."""

    def __init__(self, file: Any) -> None:
        self.file = file
        sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
        self.starts = list(itertools.accumulate(sizes, initial=0))
        self._held: tuple[int, Any] = (-1, None)

    def slice(self, start: int, count: int) -> Iterator[Any]:
        while count > 0:
            group = bisect.bisect_right(self.starts, start) - 1
            if self._held[0] != group:
                # In this thread: Arrow's threads each kept memory after the groups they read
                # (the rerun's peak RSS was 10 to 30 MB higher, and grew with the groups read).
                self._held = (
                    group,
                    self.file.read_row_group(group, use_threads=False).replace_schema_metadata(None),
                )
            table = self._held[1]
            piece = table.slice(start - self.starts[group], count)
            yield piece
            start, count = start + piece.num_rows, count - piece.num_rows


def _order(rel: str, path: str) -> tuple[tuple[str, ...], str]:
    """Where a series comes in an export: by object folder (as ``verify`` finds them, sorted
    level by level), then by path."""
    return tuple(rel.split("/")), path


def _entries(out: Path, kind: str, total: int) -> Generator[list[Any]]:
    """The last export's entries of ``kind`` in its state, in their order, up to the first
    that is not of the shape written or names rows outside its file (``total`` rows)."""
    shape = (str,) * 6 + (int,) * 3
    try:
        lines = (out / STATE).open(encoding="utf-8")
    except OSError:
        return
    with lines:
        next(lines, None)  # the head
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                return
            if not isinstance(entry, list) or len(entry) != len(shape):
                return
            if not all(
                isinstance(v, t) and not isinstance(v, bool) for v, t in zip(entry, shape, strict=True)
            ):
                return
            if entry[0] == kind:
                if entry[7] < 0 or entry[7] + entry[8] > total:
                    return
                yield entry


@dataclass
class _Series:
    """One series Parquet file being written: what it copies of the last one, and its entries
    in the new state (kind, object folder, path, project, object id, the CSV's sha256 and
    size, its first row and rows), written as it goes."""

    kind: str
    state: ThreadFile
    old: _Rows | None = None  # the last export's file, if its state names it
    before: Generator[list[Any]] | None = None  # its entries, in order
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    read: int = 0
    reused: int = 0

    def tables(self, backup: Backup) -> Iterator[Any]:
        at = 0
        before = self.before or iter(())
        ahead = next(before, None)
        for obj, path, csv_path, written in backup.series_sources(kind=self.kind):
            entry: list[Any] = [self.kind, obj.rel, path, obj.project, obj.sys_id]
            entry += [written.sha256, written.size]
            while ahead is not None and _order(ahead[1], ahead[2]) < _order(obj.rel, path):
                ahead = next(before, None)
            if self.old is not None and ahead is not None and ahead[:7] == entry:
                chunks = self.old.slice(ahead[7], ahead[8])
                self.reused += 1
            else:
                chunks = series_chunks(obj, path, csv_path, self.kind)
                self.read += 1
            first = at
            for table in chunks:
                at += table.num_rows
                yield table
            self.state.write(json.dumps([*entry, first, at - first], ensure_ascii=False).encode() + b"\n")

    def close(self) -> None:
        if self.before is not None:
            self.before.close()
        if self.old is not None:
            self.old.file.close()


def _previous(out: Path, kind: str, head: dict[str, Any], state: ThreadFile) -> _Series:
    """The series file of the last export and its entries, if its state names the file and
    its schema is this one; else none (every CSV is read)."""
    pq = columns.need("pyarrow.parquet")
    try:
        old = pq.ParquetFile(out / f"{kind}_series.parquet")
    except (OSError, ValueError):  # none yet, or not Parquet
        return _Series(kind, state)
    named = (old.schema_arrow.metadata or {}).get(EXPORT_ID) == str(head.get(kind)).encode()
    if not named or not old.schema_arrow.equals(series_schema(kind)):
        old.close()
        return _Series(kind, state)
    return _Series(kind, state, _Rows(old), _entries(out, kind, old.metadata.num_rows))


def _grouped(tables: Iterable[Any]) -> Iterator[Any]:
    """``tables`` as tables of ``CHUNK_ROWS`` rows (the last one fewer): row groups of their
    own. Fewer, larger groups keep the writer's memory flat (it holds every group's metadata
    until the footer) and the footer small for the engines that read it."""
    pa = columns.need("pyarrow")
    pending: list[Any] = []
    held = 0
    for table in tables:
        pending.append(table)
        held += table.num_rows
        while held >= CHUNK_ROWS:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, CHUNK_ROWS)
            pending = [whole.slice(CHUNK_ROWS)]
            held -= CHUNK_ROWS
    if held:
        yield pa.concat_tables(pending)


def _read_head(out: Path) -> dict[str, Any]:
    """The first line of the last export's state: its format and the id of each series file."""
    try:
        with (out / STATE).open(encoding="utf-8") as f:
            head = json.loads(f.readline())
    except (OSError, ValueError):
        return {}
    return head if isinstance(head, dict) and head.get("format") == STATE_FORMAT else {}


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


def _leftovers(out: Path) -> Iterator[Path]:
    """The temporary files an export killed outright (SIGKILL, a power cut) left in ``out``.
    Two exports into one OUT at once are not supported: one would remove the other's."""
    for name in (*NAMES, STATE):
        yield from out.glob(f".{glob.escape(name)}.*{TEMP_SUFFIX}")


def _write_one(out: Path, name: str, table: Any) -> int:
    """Write ``table`` as ``out/name`` (see :func:`_write`), not keeping it."""
    return _write(out, name, [table], table.schema)


def export_parquet(backup: Backup, out: Path) -> Exported:
    """Write ``objects.parquet``, ``float_series.parquet``, ``string_series.parquet`` and
    ``files.parquet`` of ``backup`` into the folder ``out``; series unchanged since the last
    export into ``out`` are copied from it, their CSVs not read."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DestinationError(f"Cannot create {out} ({e.strerror or e}).") from None
    for leftover in _leftovers(out):
        leftover.unlink(missing_ok=True)
    objects = _write_one(out, "objects.parquet", backup.objects_table(kind=None))
    files = _write(out, "files.parquet", backup.files_tables(), files_schema())
    head = _read_head(out)
    state = ThreadFile(Place(out), PurePosixPath(STATE))
    done: list[_Series] = []
    points = {}
    try:
        for kind in ("float", "string"):
            done.append(series := _previous(out, kind, head, state))
        state.write(json.dumps({"format": STATE_FORMAT, **{s.kind: s.id for s in done}}).encode() + b"\n")
        for series in done:
            schema = series_schema(series.kind).with_metadata({EXPORT_ID: series.id.encode()})
            points[series.kind] = _write(
                out, f"{series.kind}_series.parquet", _grouped(series.tables(backup)), schema
            )
        state.commit()
    finally:
        for series in done:
            series.close()
        if state.result is None:
            state.abort()
    return Exported(
        objects,
        points,
        files,
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
