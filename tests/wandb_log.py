"""A reader of W&B's offline transaction log, ``run-<id>.wandb``, for the tests of ``load-wandb``.

Recent wandb ships no Python reader of that log (its writer and reader are in ``wandb-core``,
in Go). The layout, as ``wandb-core`` 0.31 writes it:

- a 7-byte header: ``:W&B``, the magic ``0xBEE1`` (little-endian u16), version ``0``;
- then LevelDB log blocks of 32 KiB (the header counts as the first block's first bytes);
  each chunk has a 7-byte header, ``<IHB``: the CRC-32 (IEEE, not masked) of the chunk type
  byte followed by the payload, the payload's length, and the type: FULL 1, FIRST 2,
  MIDDLE 3, LAST 4. A chunk never crosses a block; fewer than 7 bytes left at a block's end
  are zeros. A record is one FULL chunk or FIRST, MIDDLE..., LAST;
- each record is a serialized protobuf ``Record`` of ``wandb.proto.wandb_internal_pb2``.

Any damage (bad header, checksum, padding, chunk order, or a record cut short) raises
``CorruptLog``: a test must never pass on a log it half read.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from wandb.proto import wandb_internal_pb2 as pb

HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
BLOCK = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

#: The ``_wandb`` key wandb adds to config and summary for its own bookkeeping.
INTERNAL = "_wandb"


class CorruptLog(ValueError):
    """The file is not a whole, intact W&B transaction log."""


def _chunks(data: bytes, path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(offset, type, payload) of every chunk after the file header."""
    pos = len(HEADER)
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER.size:
            if data[pos : pos + left].strip(b"\0"):
                raise CorruptLog(f"{path}: non-zero padding at offset {pos}")
            pos += left
            continue
        if pos + CHUNK_HEADER.size > len(data):
            raise CorruptLog(f"{path}: a chunk header is cut short at offset {pos}")
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        start = pos + CHUNK_HEADER.size
        if length > left - CHUNK_HEADER.size or start + length > len(data):
            raise CorruptLog(f"{path}: the chunk at offset {pos} overflows its block or the file")
        payload = data[start : start + length]
        if zlib.crc32(bytes([kind]) + payload) != crc:
            raise CorruptLog(f"{path}: checksum mismatch in the chunk at offset {pos}")
        yield pos, kind, payload
        pos = start + length


def records(path: Path) -> Iterator[pb.Record]:
    """Every ``Record`` of one ``run-<id>.wandb``, in the order written."""
    data = path.read_bytes()
    if data[: len(HEADER)] != HEADER:
        raise CorruptLog(f"{path}: not a W&B transaction log (header {data[:7]!r})")
    pending: bytearray | None = None
    for pos, kind, payload in _chunks(data, path):
        if kind == FULL and pending is None:
            whole = payload
        elif kind == FIRST and pending is None:
            pending = bytearray(payload)
            continue
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += payload
            if kind == MIDDLE:
                continue
            whole, pending = bytes(pending), None
        else:
            raise CorruptLog(f"{path}: chunk of type {kind} out of order at offset {pos}")
        record = pb.Record()
        record.ParseFromString(whole)
        yield record
    if pending is not None:
        raise CorruptLog(f"{path}: the last record is cut short")


@dataclass
class LoggedArtifact:
    name: str
    type: str
    aliases: list[str]
    digest: str  # the artifact's own digest (hex), as wandb computed it
    metadata: dict[str, Any]
    entries: dict[str, tuple[str, int]]  # path in the artifact -> (digest: base64 md5, size)
    local_paths: dict[str, str]  # path in the artifact -> the staged copy wandb sync uploads


@dataclass
class LoggedRun:
    """What one offline run holds, decoded. ``config`` and ``summary`` leave out wandb's own
    ``_wandb`` key; nested keys (``{"a": {"b": 1}}`` logged) come back as nested dicts."""

    id: str
    name: str
    project: str
    entity: str
    notes: str
    group: str
    tags: list[str]
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    files: list[str]
    artifacts: list[LoggedArtifact]
    output: list[str]
    dir: Path = field(default_factory=Path)
    start_time: float = 0.0  # the run record's start time, seconds since the epoch
    resumed: bool = False
    finished: bool = False  # the log ends with wandb's exit record (the run was finished)


def _path(item: Any) -> list[str]:
    """The key path of a config, summary or history item (``key`` or ``nested_key``)."""
    return [item.key] if item.key else list(item.nested_key)


def _put(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = target[key] = {}
        target = inner
    target[path[-1]] = value


def _drop(target: dict[str, Any], path: Sequence[str]) -> None:
    for key in path[:-1]:
        target = target.get(key, {})
    if isinstance(target, dict):
        target.pop(path[-1], None)


def _apply(target: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        path = _path(item)
        if path[0] != INTERNAL:
            _put(target, path, json.loads(item.value_json))
    for item in removes:
        _drop(target, _path(item))


def _artifact(record: pb.ArtifactRecord) -> LoggedArtifact:
    contents = record.manifest.contents
    return LoggedArtifact(
        name=record.name,
        type=record.type,
        aliases=list(record.aliases),
        digest=record.digest,
        metadata=json.loads(record.metadata) if record.metadata else {},
        entries={c.path: (c.digest, c.size) for c in contents},
        local_paths={c.path: c.local_path for c in contents},
    )


def read_log(path: Path) -> LoggedRun:
    """Decode one ``run-<id>.wandb``."""
    run = LoggedRun("", "", "", "", "", "", [], {}, {}, [], {}, [], [], [], dir=path.parent)
    console: list[str] = []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.id, run.name, run.project, run.entity = r.run_id, r.display_name, r.project, r.entity
            run.notes, run.group, run.tags = r.notes, r.run_group, list(r.tags)
            run.start_time = r.start_time.seconds + r.start_time.nanos / 1e9
            run.resumed = r.resumed
            _apply(run.config, r.config.update, r.config.remove)
        elif kind == "config":
            _apply(run.config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply(run.summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply(row, record.history.item, ())
            run.history.append(row)
        elif kind == "metric":
            m = record.metric
            options = MessageToDict(m, preserving_proto_field_name=True)
            options.pop("name", None)
            options.pop("glob_name", None)
            run.metrics[m.name or m.glob_name] = options
        elif kind == "files":
            for item in record.files.files:
                if item.type != pb.FilesItem.WANDB and item.path not in run.files:
                    run.files.append(item.path)
        elif kind == "artifact":
            run.artifacts.append(_artifact(record.artifact))
        elif kind == "output_raw":
            console.append(record.output_raw.line)
        elif kind == "output":
            console.append(record.output.line)
        elif kind == "exit":
            run.finished = True
    run.output = "".join(console).splitlines()
    return run


def read_run(run_dir: Path) -> LoggedRun:
    """The run in one offline-run directory (``offline-run-<time>-<id>``)."""
    logs = sorted(run_dir.glob("run-*.wandb"))
    if len(logs) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one run-*.wandb, found {[p.name for p in logs]}")
    return read_log(logs[0])


def read_all(root: Path) -> dict[str, list[LoggedRun]]:
    """The offline runs ``wandb sync`` would upload from ``root`` (an ``--offline DIR`` or its
    ``wandb/``): the logs in its ``offline-run-*`` folders, so nothing kept elsewhere in DIR.
    Run id -> its offline runs, oldest first: by start time, the order ``wandb sync`` uploads
    them in, then by folder name."""
    if (root / "wandb").is_dir():
        root = root / "wandb"
    found: dict[str, list[LoggedRun]] = {}
    for log in sorted(root.glob("offline-*/run-*.wandb")):
        run = read_log(log)
        found.setdefault(run.id, []).append(run)
    for runs in found.values():
        runs.sort(key=lambda r: (r.start_time, r.dir.name))
    return found
