"""A finished backup, read as data: its objects, series and files as tables (docs/DATA.md).

Objects are found as ``verify`` finds them and read only through the format's reader: each
field's files are the ones its manifest names. What ``verify`` would flag is never passed
over in silence: an object without a readable manifest is skipped, one with a problem is
kept with ``ok`` false; both with a warning naming them, and listed in ``problems``.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import json
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..disk.files import WrittenFile
from ..domain import FieldType
from ..format import layout, values
from ..format.manifest import Manifest
from ..format.reader import read_saved
from ..format.verify import container_folders, locate
from . import columns
from .columns import Kind

#: The ``kind`` argument and column, by the manifest's kind of object.
KINDS = {"run": "runs", "model": "models", "modelVersion": "versions", "project": "project"}
SERIES = {"float": FieldType.FLOAT_SERIES.value, "string": FieldType.STRING_SERIES.value}
CHUNK_ROWS = 100_000  # series points per Arrow table: one Parquet row group at most
FILE_ROWS = 10_000  # files per Arrow table: gathered as Python tuples, of ~500 bytes each


class BackupDataWarning(UserWarning):
    """An object of the backup that ``verify`` would flag: skipped, or read with ``ok`` false."""


@dataclass(frozen=True)
class Problem:
    object: str  # the object folder, relative to the backup root
    why: str
    skipped: bool  # not read at all (else read with ok false)

    def __str__(self) -> str:
        return f"{'skipped' if self.skipped else 'ok=False'}: {self.object}: {self.why}"


@dataclass
class BackupObject:
    """An object of the backup. Its manifest is held only while it is read: a backup's
    manifests together grow with its series (1.4 KB each), and a table is built an object
    at a time, and each released when done (:meth:`release`)."""

    rel: str
    folder: Path
    of_kind: str  # the manifest's kind
    project: str
    sys_id: str
    held: Manifest | None = None
    problems: list[str] = field(default_factory=list)
    bad_files: set[str] = field(default_factory=set)  # not as the manifest records them: not read

    @property
    def kind(self) -> str:
        return KINDS[self.of_kind]

    @property
    def manifest(self) -> Manifest:
        """The manifest, read again when it was released (as checked when the backup was
        opened); one without fields if it no longer reads, the object then not ``ok``."""
        if self.held is None:
            with contextlib.suppress(OSError):
                self.held = read_saved(self.folder).merged()
            if self.held is None:
                why = "its manifest no longer reads (changed since the backup was opened); run verify"
                self.problems.append(why)
                warnings.warn(f"ok=False: {self.rel}: {why}", BackupDataWarning, stacklevel=3)
                self.held = Manifest(self.of_kind, self.project, self.sys_id, self.sys_id, None)
        return self.held

    def release(self) -> None:
        self.held = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def readable(self, rel: str) -> Path | None:
        """The path of a file the manifest lists and that has its recorded size."""
        return self.folder / rel if rel in self.manifest.files and rel not in self.bad_files else None

    def metadata(self) -> dict[str, Any]:
        path = self.readable(layout.SIMPLE_METADATA)
        if path is None:
            return {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            self.problems.append(f"{layout.SIMPLE_METADATA} cannot be read ({e})")
            return {}
        return doc if isinstance(doc, dict) else {}

    def series_file(self, path: str) -> Path | None:
        record = self.manifest.fields.get(path)
        if record is None or record.status != "ok" or not record.files:
            return None
        return self.readable(record.files[0])


def _one_at_a_time(objects: Iterable[BackupObject]) -> Iterator[BackupObject]:
    """Each of ``objects``, its manifest released once the caller moves on to the next."""
    for obj in objects:
        yield obj
        obj.release()


def _check(obj: BackupObject, saved_damage: Iterable[object], journal: bool) -> None:
    """What ``verify`` would flag in an object whose manifest reads (by size, not sha256)."""
    obj.problems.extend(f"damaged {d}" for d in saved_damage)
    if journal:
        obj.problems.append("a later backup of it was interrupted; run the backup again")
    obj.problems.extend(f"{p} failed: {why}" for p, why in obj.manifest.failures.items())
    if not obj.manifest.complete and not obj.manifest.failures and not journal:
        obj.problems.append("the manifest says it is not complete")
    for rel, recorded in sorted(obj.manifest.files.items()):
        try:
            st = os.lstat(obj.folder / rel)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != recorded.size:
            have = "missing" if st is None or not stat.S_ISREG(st.st_mode) else f"{st.st_size} bytes"
            obj.problems.append(f"{rel} is {have}, its manifest says {recorded.size} bytes; it is not read")
            obj.bad_files.add(rel)


def _read(root: Path, part: Path) -> tuple[list[BackupObject], list[Problem]]:
    found: list[BackupObject] = []
    problems: list[Problem] = []
    for folder in container_folders(root):
        if folder != part and part not in folder.parents and part != root:
            continue
        rel = folder.relative_to(root).as_posix()
        try:
            saved = read_saved(folder)
        except OSError as e:
            problems.append(Problem(rel, f"cannot be read ({e.strerror or e}); run verify", True))
            continue
        manifest = saved.merged()
        if saved.manifest is None or manifest is None:
            why = "; ".join(map(str, saved.damage)) or "no manifest: its backup did not finish"
            problems.append(Problem(rel, f"{why}; run the backup again", True))
            continue
        obj = BackupObject(rel, folder, manifest.kind, manifest.project, manifest.sys_id, manifest)
        _check(obj, saved.damage, saved.journal is not None)
        obj.release()
        problems.extend(Problem(rel, why, False) for why in obj.problems)
        found.append(obj)
    return found, problems


def _last_value(path: Path) -> float | None:
    """The value of a float series CSV's last row, read from the end of the file."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4096))
        lines = f.read().decode("utf-8", errors="replace").rstrip("\n").split("\n")
    row = lines[-1].split(",")
    return None if len(lines) < 2 and row[0] == "step" else columns.float_of_text(row[1])


def _points(path: Path, strings: bool) -> Iterator[tuple[list[float], list[Any], list[int]]]:
    """The CSV's points, ``CHUNK_ROWS`` at a time: steps, values, epoch milliseconds."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        steps: list[float] = []
        vals: list[Any] = []
        times: list[int] = []
        for row in reader:
            steps.append(columns.float_of_text(row[0]))
            vals.append(row[1] if strings else columns.float_of_text(row[1]))
            times.append(values.ms_from_time(row[2]))
            if len(steps) == CHUNK_ROWS:
                yield steps, vals, times
                steps, vals, times = [], [], []
        if steps:
            yield steps, vals, times


class Backup:
    """A backup opened by :func:`open_backup`. Every method reads the disk anew."""

    def __init__(
        self, root: Path, objects: list[BackupObject], problems: list[Problem], backend: str
    ) -> None:
        self.root = root
        self.backend = backend
        self._objects = objects
        #: Every object skipped, or read with ``ok`` false, and why (also warned of when opened).
        self.problems = problems

    def _select(
        self, kind: str | None, projects: Iterable[str] | None, ids: Iterable[str] | None = None
    ) -> list[BackupObject]:
        if kind is not None and kind not in KINDS.values():
            raise ValueError(
                f"kind must be one of {', '.join(KINDS.values())}, or None for all; not {kind!r}"
            )
        wanted, chosen = (set(projects) if projects is not None else None), (set(ids) if ids else None)
        return [
            o
            for o in self._objects
            if (kind is None or o.kind == kind)
            and (wanted is None or o.project in wanted)
            and (chosen is None or o.sys_id in chosen)
        ]

    def objects_table(self, kind: str | None = "runs", projects: Iterable[str] | None = None) -> Any:
        """:meth:`objects` as an Arrow table."""
        pa = columns.need("pyarrow")
        chosen = self._select(kind, projects)
        raw: dict[str, list[Any]] = {}
        kinds: dict[str, set[Kind]] = {}
        for i, obj in enumerate(_one_at_a_time(chosen)):
            meta = obj.metadata()
            for path, record in obj.manifest.fields.items():
                if record.status != "ok":
                    continue
                if record.type in columns.KIND_OF and path in meta:
                    value, kinds_here = meta[path], columns.KIND_OF[record.type]
                elif record.type == SERIES["float"] and (csv_path := obj.series_file(path)) is not None:
                    value, kinds_here = _json_float(_last_value(csv_path)), Kind.FLOAT
                else:
                    continue
                raw.setdefault(path, [None] * len(chosen))[i] = value
                kinds.setdefault(path, set()).add(kinds_here)
        head = {
            "project": pa.array([o.project for o in chosen], pa.string()),
            "object_id": pa.array([o.sys_id for o in chosen], pa.string()),
            "kind": pa.array([o.kind for o in chosen], pa.string()),
            "ok": pa.array([o.ok for o in chosen], pa.bool_()),
        }
        body = {
            p: columns.column(columns.column_kind(kinds[p]), raw[p]) for p in sorted(raw) if p not in head
        }
        return pa.table({**head, **body})

    def objects(self, kind: str | None = "runs", projects: Iterable[str] | None = None) -> Any:
        """One row per object of ``kind`` (``runs``, ``models``, ``versions``, ``project``; None:
        all), in ``projects`` (``workspace/project`` names; None: all): ``project``,
        ``object_id`` (its ``sys/id``), ``kind``, ``ok``, then one column per simple field,
        named by its Neptune path, and each float series' last value."""
        return columns.to_frame(self.objects_table(kind, projects), self.backend)

    def series_sources(
        self, pattern: str = "*", objects: Iterable[str] | None = None, kind: str = "float"
    ) -> Iterator[tuple[BackupObject, str, Path, WrittenFile]]:
        """Each series of ``kind`` whose path matches ``pattern`` and whose CSV is readable, by
        object and path: the object, the path, the CSV, and the manifest's record of the CSV."""
        if kind not in SERIES:
            raise ValueError(f"kind must be 'float' or 'string', not {kind!r}")
        for obj in _one_at_a_time(self._select(None, None, objects)):
            for path in sorted(obj.manifest.fields):
                record = obj.manifest.fields[path]
                if record.type != SERIES[kind] or not fnmatch.fnmatchcase(path, pattern):
                    continue
                csv_path = obj.series_file(path)
                if csv_path is not None:
                    yield obj, path, csv_path, obj.manifest.files[record.files[0]]

    def series_tables(
        self, pattern: str = "*", objects: Iterable[str] | None = None, kind: str = "float"
    ) -> Iterator[Any]:
        """:meth:`series` as Arrow tables, one object and path at a time, ``CHUNK_ROWS`` at most each."""
        for obj, path, csv_path, _ in self.series_sources(pattern, objects, kind):
            yield from series_chunks(obj, path, csv_path, kind)

    def series(self, pattern: str = "*", objects: Iterable[str] | None = None, kind: str = "float") -> Any:
        """Every point of the series whose path matches the glob ``pattern``, of the objects
        whose ``sys/id`` is in ``objects`` (None: all): a long frame of ``project``,
        ``object_id``, ``path``, ``step``, ``value``, ``timestamp`` (UTC, milliseconds)."""
        pa = columns.need("pyarrow")
        tables = list(self.series_tables(pattern, objects, kind))
        return columns.to_frame(
            pa.concat_tables(tables) if tables else series_schema(kind).empty_table(), self.backend
        )

    def files_tables(self, projects: Iterable[str] | None = None) -> Iterator[Any]:
        """:meth:`files` as Arrow tables of ``FILE_ROWS`` rows at most (at least one)."""
        rows: list[tuple[str, str, str, str, str, int, str]] = []
        yielded = False
        for obj in _one_at_a_time(self._select(None, projects)):
            for path, record in sorted(obj.manifest.fields.items()):
                for rel in record.files:
                    written = obj.manifest.files.get(rel)
                    if rel != layout.SIMPLE_METADATA and written is not None:
                        where = f"{obj.rel}/{rel}"
                        rows.append(
                            (obj.project, obj.sys_id, path, record.type, where, written.size, written.sha256)
                        )
                        if len(rows) == FILE_ROWS:
                            yield _files_table(rows)
                            rows, yielded = [], True
        if rows or not yielded:
            yield _files_table(rows)

    def files_table(self, projects: Iterable[str] | None = None) -> Any:
        """:meth:`files` as an Arrow table."""
        return columns.need("pyarrow").concat_tables(list(self.files_tables(projects)))

    def files(self, projects: Iterable[str] | None = None) -> Any:
        """Every file the manifests list, by field: ``project``, ``object_id``, ``path`` (the
        field), ``type``, ``file`` (relative to the backup root), ``size``, ``sha256``."""
        return columns.to_frame(self.files_table(projects), self.backend)


def files_schema() -> Any:
    pa = columns.need("pyarrow")
    names = ("project", "object_id", "path", "type", "file", "size", "sha256")
    return pa.schema(list(zip(names, (pa.string(),) * 5 + (pa.int64(), pa.string()), strict=True)))


def _files_table(rows: list[tuple[str, str, str, str, str, int, str]]) -> Any:
    pa = columns.need("pyarrow")
    schema = files_schema()
    return pa.table([pa.array([r[i] for r in rows], f.type) for i, f in enumerate(schema)], schema=schema)


def _json_float(value: float | None) -> float | str | None:
    return None if value is None else values.json_float(value)


def series_chunks(obj: BackupObject, path: str, csv_path: Path, kind: str) -> Iterator[Any]:
    """The points of one series CSV as Arrow tables of ``CHUNK_ROWS`` at most."""
    pa = columns.need("pyarrow")
    schema = series_schema(kind)
    for steps, vals, times in _points(csv_path, kind == "string"):
        n = len(steps)
        yield pa.table(
            [
                pa.array([obj.project] * n, pa.string()),
                pa.array([obj.sys_id] * n, pa.string()),
                pa.array([path] * n, pa.string()),
                pa.array(steps, pa.float64()),
                pa.array(vals, schema.field("value").type),
                pa.array(times, pa.int64()).cast(schema.field("timestamp").type),
            ],
            schema=schema,
        )


def series_schema(kind: str) -> Any:
    pa = columns.need("pyarrow")
    return pa.schema(
        [
            ("project", pa.string()),
            ("object_id", pa.string()),
            ("path", pa.string()),
            ("step", pa.float64()),
            ("value", pa.float64() if kind == "float" else pa.string()),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
        ]
    )


def open_backup(dest: str | os.PathLike[str], *, backend: str = "pandas", warn: bool = True) -> Backup:
    """Open the backup in ``dest`` (its root, or a project or object folder in it), offline.

    Frames come as ``backend``: ``"pandas"`` or ``"polars"``. Objects that ``verify`` would
    flag are each warned of (:class:`BackupDataWarning`) unless ``warn`` is false, and listed
    in :attr:`Backup.problems`. Raises NotABackupError when ``dest`` holds no backup."""
    if backend not in ("pandas", "polars"):
        raise ValueError(f"backend must be 'pandas' or 'polars', not {backend!r}")
    root, part = locate(Path(dest))
    objects, problems = _read(root, part)
    if warn:
        for problem in problems:
            warnings.warn(str(problem), BackupDataWarning, stacklevel=2)
    return Backup(root, objects, problems, backend)
