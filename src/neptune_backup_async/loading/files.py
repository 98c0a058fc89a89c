"""Where a field's files go in a tracker, under the field's key, and laying them out there
from the backup, checked first (docs/MLFLOW.md, docs/WANDB.md).

Both loaders place files alike: a series' CSV at ``<key>.csv``, a file at ``<key>.<ext>``,
a file set's members unpacked under ``<key>/``, an image series' files and ``index.json``
under ``<key>/``, an artifact's listing at ``<key>.artifact.json`` and its files under ``<key>/``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..domain import FieldType
from ..format import layout
from ..format.manifest import FieldRecord
from .backup import BackupObject, check

ZIP_FALLBACK = "archive.zip"  # a file set whose member names cannot be unpacked safely
_SERIES = (FieldType.FLOAT_SERIES.value, FieldType.STRING_SERIES.value)


@dataclass(frozen=True)
class Upload:
    """One file: ``target`` in the tracker, from ``source`` in the object folder (or one zip member)."""

    target: str
    source: str
    unzip: bool = False  # source is a file set: its members go under target/


def roots(record: FieldRecord, key: str, ext: str) -> list[str]:
    """The paths a field takes under ``key`` (``ext``: a file's extension, made acceptable):
    files, or folders that hold its files."""
    if record.type in _SERIES:
        return [f"{key}.csv"]
    if record.type == FieldType.FILE.value:
        return [f"{key}.{ext}" if ext else key]
    if record.type in (FieldType.FILE_SET.value, FieldType.IMAGE_SERIES.value):
        return [key]
    if record.type == FieldType.ARTIFACT.value:
        return [f"{key}{layout.ARTIFACT_SUFFIX}", key]
    return []


def uploads(record: FieldRecord, key: str, ext: str) -> list[Upload]:
    files = [f for f in record.files if f != layout.SIMPLE_METADATA]
    if not files or record.status != "ok":
        return []
    if record.type in _SERIES or record.type == FieldType.FILE.value:
        return [Upload(roots(record, key, ext)[0], files[0])]
    if record.type == FieldType.FILE_SET.value:
        return [Upload(key, files[0], unzip=True)]
    # Image series and artifacts keep the files below their folder, named as in the backup.
    if record.type == FieldType.IMAGE_SERIES.value:
        index = next((f for f in files if f.endswith("/" + layout.IMAGE_INDEX)), None)
        stem = index.rsplit("/", 1)[0] if index else None
        listing = None
    else:
        listing = next((f for f in files if f.endswith(layout.ARTIFACT_SUFFIX)), None)
        stem = listing[: -len(layout.ARTIFACT_SUFFIX)] if listing else None
    out = [Upload(f"{key}{layout.ARTIFACT_SUFFIX}", listing)] if listing else []
    if stem is not None:
        out += [Upload(f"{key}/{f[len(stem) + 1 :]}", f) for f in files if f.startswith(stem + "/")]
    return out


def _safe_member(name: str, plain: Callable[[str], bool]) -> bool:
    norm = posixpath.normpath(name)
    return (
        norm == name
        and not name.startswith("/")
        and not norm.startswith("..")
        and "\\" not in name
        and all(plain(part) for part in name.split("/"))
    )


def _place(source: Path, target: Path) -> None:
    """Put a backup file at its path: a hard link (no copy) where the file system allows."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def stage(obj: BackupObject, ups: list[Upload], root: Path, plain: Callable[[str], bool]) -> list[str]:
    """Lay ``ups`` out under ``root``, each file checked against the manifest first (Differs
    otherwise); returns the paths laid out, relative to ``root``. A zip member is unpacked
    only when every member's name is a plain relative path whose segments ``plain`` accepts,
    and no two of them land on one path."""
    out: list[str] = []
    for upload in ups:
        source = check(obj, upload.source)
        if not upload.unzip:
            _place(source, root / upload.target)
            out.append(upload.target)
            continue
        with zipfile.ZipFile(source) as archive:
            members = [i for i in archive.infolist() if not i.is_dir()]
            names = [i.filename for i in members]
            if not all(_safe_member(n, plain) for n in names) or not _apart(names):
                _place(source, root / upload.target / ZIP_FALLBACK)
                out.append(f"{upload.target}/{ZIP_FALLBACK}")
                continue
            for info in members:
                target = root / upload.target / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as out_file:
                    shutil.copyfileobj(src, out_file)
                out.append(f"{upload.target}/{info.filename}")
    return out


def _apart(names: list[str]) -> bool:
    """No two members have one name, nor is one a folder of another's path (``a`` and ``a/b``):
    unpacked, one would overwrite or block the other."""
    folders = {"/".join(n.split("/")[:k]) for n in names for k in range(1, n.count("/") + 1)}
    return len(set(names)) == len(names) and not folders & set(names)
