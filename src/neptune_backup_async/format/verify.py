"""``verify``: check a backup against its manifests, offline.

Every file a manifest lists must exist, have its size and hash to its sha256; no other
file may sit in a run folder; every run must be complete. ``deep`` also parses each file
we wrote in a format of ours (series CSVs, JSON documents, file set zips), by the role the
manifest gives it, never by its name: a user's ``train.csv`` is checked by its hash only.
A backup writes no symbolic link: each one found is reported, and none is followed; nor is
a manifest that names a path outside its folder (the reader calls it damaged).
"""

from __future__ import annotations

import csv
import enum
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..disk.files import file_sha256
from ..domain import FieldType
from ..errors import NotABackupError
from . import layout, values
from .manifest import Manifest
from .reader import read_saved


@dataclass(frozen=True)
class Problem:
    kind: str  # missing, corrupt, unexpected, incomplete, failed, unreadable
    path: str  # relative to the backup root
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass
class Verification:
    objects: int = 0  # runs, models, model versions and project folders
    files: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def _folders(path: Path) -> list[Path]:
    """The folders in ``path``; a symbolic link to one is not followed (see :func:`symlinks`)."""
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())


def symlinks(dest: Path) -> Iterator[Problem]:
    """Every symbolic link below ``dest``, none of them followed: a backup writes none."""
    for here, folders, files in os.walk(dest):
        for name in sorted([*folders, *files]):
            path = Path(here, name)
            if path.is_symlink():
                rel = path.relative_to(dest).as_posix()
                detail = (
                    f"a symbolic link (to {os.readlink(path)}), which a backup never writes; not followed"
                )
                yield Problem("unexpected", rel, detail)


def container_folders(dest: Path) -> Iterator[Path]:
    """Every object folder (docs/FORMAT.md): runs and ``_project`` beside them, models in
    ``_models``, and their versions in each model's ``_versions``. Folders starting with a dot
    are our own."""
    for depth_1 in (p for p in _folders(dest) if not p.name.startswith(".")):
        for project in _folders(depth_1):
            for folder in _folders(project):
                if folder.name != layout.MODELS_FOLDER:
                    yield folder
                    continue
                for model in _folders(folder):
                    yield model
                    versions = model / layout.VERSIONS_FOLDER
                    if versions.is_dir():
                        yield from _folders(versions)


class Role(enum.Enum):
    """How ``--deep`` reads a file: as what we wrote it, or only by its hash."""

    SERIES = "series"  # our CSV: step,value,timestamp
    JSON = "json"  # simple_metadata.json, an image series' index.json, an artifact's listing, a notebook
    ZIP = "zip"  # a file set, as the server built it
    BYTES = "bytes"  # a user's file, an image, an artifact's file: any bytes at all


def roles(manifest: Manifest) -> dict[str, Role]:
    """The role of each file the manifest lists, from the field that saved it."""
    out = {layout.SIMPLE_METADATA: Role.JSON}
    for record in manifest.fields.values():
        files = record.files
        if record.status != "ok" or not files or files == [layout.SIMPLE_METADATA]:
            continue
        if record.type in (FieldType.FLOAT_SERIES.value, FieldType.STRING_SERIES.value):
            out[files[0]] = Role.SERIES
        elif record.type == FieldType.FILE_SET.value:
            out[files[0]] = Role.ZIP
        elif record.type == FieldType.NOTEBOOK_REF.value:  # the checkpoint's .ipynb
            out[files[0]] = Role.JSON
        elif record.type == FieldType.ARTIFACT.value:
            out[files[0]] = Role.JSON
            out.update((f, Role.BYTES) for f in files[1:])
        elif record.type == FieldType.IMAGE_SERIES.value:
            out.update(
                (f, Role.JSON if PurePosixPath(f).name == layout.IMAGE_INDEX else Role.BYTES) for f in files
            )
        else:
            out.update((f, Role.BYTES) for f in files)
    return out


def _parse(path: Path, role: Role) -> str | None:
    """Why a file does not parse as what its role says; None when it does."""
    try:
        if role is Role.SERIES:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                if next(reader, None) != ["step", "value", "timestamp"]:
                    return "the header is not step,value,timestamp"
                for number, row in enumerate(reader, start=2):
                    if len(row) != 3:
                        return f"line {number} has {len(row)} columns"
                    float(row[0])
                    values.ms_from_time(row[2])
        elif role is Role.JSON:
            json.loads(path.read_text(encoding="utf-8"))
        elif role is Role.ZIP:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
                if bad is not None:
                    return f"the zip member {bad} is damaged"
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, csv.Error) as e:
        return f"does not parse: {e}"
    return None


def _check_container(dest: Path, folder: Path, deep: bool, result: Verification) -> None:
    name = folder.relative_to(dest).as_posix()
    problems = result.problems
    if (folder / layout.MIGRATION).exists():
        problems.append(
            Problem(
                "incomplete", name, "its move to the current format was interrupted; run the backup again"
            )
        )
        return
    try:
        saved = read_saved(folder)
    except OSError as e:
        problems.append(Problem("unreadable", name, f"{e.strerror or e}"))
        return
    problems.extend(Problem("corrupt", f"{name}/{d.file}", d.why) for d in saved.damage)
    manifest = saved.merged()
    if saved.manifest is None:
        if saved.manifest_bytes is None:
            problems.append(
                Problem("incomplete", name, "no manifest: its backup did not finish; run the backup again")
            )
        return
    assert manifest is not None
    result.objects += 1
    if saved.journal is not None:  # files a later, unfinished backup saved are checked too
        problems.append(
            Problem("incomplete", name, "a later backup of this run was interrupted; run the backup again")
        )
    for field_path, reason in manifest.failures.items():
        problems.append(Problem("failed", f"{name}/{field_path}", reason))
    if not manifest.complete and not manifest.failed_fields and saved.journal is None:
        problems.append(Problem("incomplete", name, "the manifest says the run is not complete"))
    role = roles(manifest)
    for rel, recorded in sorted(manifest.files.items()):
        path = folder / rel
        where = f"{name}/{rel}"
        result.files += 1
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            if st is None or not stat.S_ISLNK(st.st_mode):  # a link is reported as such
                problems.append(Problem("missing", where, f"expected {recorded.size} bytes"))
            continue
        if st.st_size != recorded.size:
            problems.append(Problem("corrupt", where, f"{st.st_size} bytes, expected {recorded.size}"))
        elif file_sha256(path) != recorded.sha256:
            problems.append(Problem("corrupt", where, "sha256 differs from the manifest"))
        elif deep and (why := _parse(path, role.get(rel, Role.BYTES))) is not None:
            problems.append(Problem("corrupt", where, why))
    ours = {layout.MANIFEST, layout.JOURNAL}
    versions = folder / layout.VERSIONS_FOLDER if manifest.kind == "model" else None
    for here, folders, files in os.walk(folder):
        # Each of a model's versions is an object of its own.
        folders[:] = sorted(f for f in folders if Path(here, f) != versions)
        for file in sorted(files):
            path = Path(here, file)
            rel = path.relative_to(folder).as_posix()
            if rel not in manifest.files and rel not in ours and not path.is_symlink():
                problems.append(Problem("unexpected", f"{name}/{rel}", "not in the manifest"))


def _has_backup(folder: Path) -> bool:
    return any(folder.glob("backup-report*.json")) or (folder / ".neptune-backup").is_dir()


def locate(path: Path) -> tuple[Path, Path]:
    """The backup ``path`` is part of, and the part: ``(root, path)`` for a backup's root, a
    workspace, project or object folder in it; a folder inside an object stands for the object.
    Raises NotABackupError when ``path`` is in no backup, or in one but not in its objects."""
    if not path.is_dir():
        raise NotABackupError(f"{path} is not a folder. Give the folder a backup was written to.")
    root = next((p for p in path.absolute().parents if _has_backup(p)), None)
    if _has_backup(path) or root is None:  # a backup's root, or one that has no report yet
        if _has_backup(path) or any((f / layout.MANIFEST).is_file() for f in container_folders(path)):
            return path, path
        raise NotABackupError(f"{path} is not a backup: it has no {layout.REPORT} and no run manifests.")
    part = root / path.absolute().relative_to(root)
    if not any(_within(f, part) for f in container_folders(root)):
        objects = [f for f in container_folders(root) if f in part.parents]
        if not objects:
            raise NotABackupError(f"{path} is not a backup root: the backup is at {root}.")
        part = objects[-1]
    return root, part


def _within(path: Path, part: Path) -> bool:
    return path == part or part in path.parents


def verify(dest: Path, *, deep: bool = False, part: Path | None = None) -> Verification:
    """Check every run folder below ``dest`` (only those in ``part`` of it, a folder from
    :func:`locate`). Raises NotABackupError when there is no backup there."""
    if not dest.is_dir() or not (
        any(dest.glob("backup-report*.json"))
        or any((folder / layout.MANIFEST).is_file() for folder in container_folders(dest))
    ):
        raise NotABackupError(f"{dest} is not a backup: it has no {layout.REPORT} and no run manifests.")
    result = Verification()
    for folder in container_folders(dest):
        if part is None or _within(folder, part):
            _check_container(dest, folder, deep, result)
    where = "" if part is None or part == dest else part.relative_to(dest).as_posix() + "/"
    result.problems.extend(p for p in symlinks(dest) if (p.path + "/").startswith(where))
    return result
