"""Reading a backup for a load, through its manifests (docs/FORMAT.md); blocking I/O.

Nothing is loaded before it is checked: every file read here must have the size and sha256
its manifest records, and the manifest's paths were checked not to leave the object folder.

Objects are found as ``verify`` finds them, and every field's files are the ones its
manifest names: no file name is ever turned back into a field path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..disk.files import file_sha256
from ..errors import NotABackupError
from ..format import layout
from ..format.manifest import Manifest
from ..format.reader import read_saved
from ..format.verify import container_folders
from .series import Point, parse_float_series


@dataclass
class BackupObject:
    rel: str  # the object folder, relative to the backup root
    folder: Path
    manifest: Manifest
    fingerprint: str  # of what the backup holds for it; equal fingerprints load the same
    interrupted: bool  # a later backup of it stopped half-way (its journal is merged in)
    damage: str = ""  # journal lines left out as damaged, and why

    @property
    def project(self) -> str:
        return self.manifest.project


@dataclass(frozen=True)
class Unreadable:
    rel: str
    reason: str


def require_backup(dest: Path) -> None:
    if not dest.is_dir() or not any(dest.glob("backup-report*.json")):
        raise NotABackupError(
            f"{dest} is not a backup: it has no backup-report.json. Give the backup folder."
        )


def find_objects(
    dest: Path, projects: set[str] | None, ids: set[str] | None, mapping: str
) -> tuple[list[BackupObject], list[Unreadable]]:
    """Every object folder of the backup that passes the filters, and those that cannot be loaded.
    ``mapping`` (the loader's mapping version) is part of each object's fingerprint."""
    found: list[BackupObject] = []
    bad: list[Unreadable] = []
    for folder in container_folders(dest):
        rel = folder.relative_to(dest).as_posix()
        wanted = projects is None or "/".join(rel.split("/")[:2]) in projects
        try:
            saved = read_saved(folder)
        except OSError as e:
            if wanted:
                bad.append(Unreadable(rel, f"cannot read it ({e.strerror or e}); run verify"))
            continue
        damage = "; ".join(map(str, saved.damage))
        if saved.manifest is None:
            if wanted and saved.manifest_bytes is None:
                bad.append(Unreadable(rel, "no manifest: its backup did not finish; run the backup again"))
            elif saved.manifest_bytes is not None:
                bad.append(
                    Unreadable(rel, f"damaged ({damage}): not loaded; run the backup again to heal it")
                )
            continue
        manifest = saved.merged()
        assert manifest is not None
        if projects is not None and manifest.project not in projects:
            continue
        if ids is not None and manifest.sys_id not in ids:
            continue
        digest = hashlib.sha256(f"{mapping}\n".encode() + (saved.manifest_bytes or b"") + saved.journal_bytes)
        found.append(
            BackupObject(rel, folder, manifest, digest.hexdigest(), saved.journal is not None, damage)
        )
    return found, bad


class Differs(Exception):
    """A file of the backup is not as its manifest records it: it is not loaded."""


def _differs(rel: str) -> Differs:
    return Differs(
        f"{rel} differs from the size and sha256 its manifest records, so nothing of it was loaded;"
        f" run `verify`, then back it up again"
    )


def read_checked(obj: BackupObject, rel: str) -> bytes:
    """The bytes of the object's file ``rel``, once they have the size and sha256 its manifest
    records; raises Differs otherwise (a file the manifest does not name, too)."""
    recorded = obj.manifest.files.get(rel)
    if recorded is None:
        raise _differs(rel)
    data = (obj.folder / rel).read_bytes()
    if len(data) != recorded.size or hashlib.sha256(data).hexdigest() != recorded.sha256:
        raise _differs(rel)
    return data


def check(obj: BackupObject, rel: str) -> Path:
    """The path of the object's file ``rel``, once it has the size and sha256 its manifest
    records (read in chunks: it may be large); raises Differs otherwise."""
    recorded, path = obj.manifest.files.get(rel), obj.folder / rel
    if recorded is None or path.stat().st_size != recorded.size or file_sha256(path) != recorded.sha256:
        raise _differs(rel)
    return path


def read_metadata(obj: BackupObject) -> tuple[dict[str, Any], bytes | None]:
    """The object's simple values, and the bytes of ``simple_metadata.json`` (None without one)."""
    if layout.SIMPLE_METADATA not in obj.manifest.files:
        return {}, None
    data = read_checked(obj, layout.SIMPLE_METADATA)
    meta = json.loads(data.decode("utf-8"))
    return (meta if isinstance(meta, dict) else {}), data


@dataclass
class SeriesFile:
    lines: list[str]  # the CSV's lines, header first

    def points(self) -> list[Point]:
        return parse_float_series(self.lines)

    def prefix_sha256(self, rows: int) -> str:
        """Of the header and the first ``rows`` rows: tells whether a series only grew."""
        digest = hashlib.sha256()
        for line in self.lines[: rows + 1]:
            digest.update(line.encode("utf-8") + b"\n")
        return digest.hexdigest()


def read_series(obj: BackupObject, rel: str) -> SeriesFile:
    return SeriesFile(read_checked(obj, rel).decode("utf-8").split("\n"))


def remove_stale_staging(staging: Path) -> None:
    """Remove what loads that were killed left half staged (each load stages under its pid)."""
    if not staging.is_dir():
        return
    for folder in staging.iterdir():
        try:
            os.kill(int(folder.name), 0)
            continue  # a load still running
        except (ValueError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue


def backup_failures(obj: BackupObject, failed: dict[str, str]) -> list[tuple[str | None, str]]:
    """What of the object the backup itself did not save, as (field, reason) for the load report."""
    out: list[tuple[str | None, str]] = [
        (path, f"not in the backup (the backup failed it: {why}); back it up again")
        for path, why in sorted(failed.items())
    ]
    if obj.damage:
        out.append((None, f"damaged in the backup ({obj.damage}): left out; run the backup again to heal it"))
    if obj.interrupted:
        out.append((None, "a later backup of it was interrupted; loaded what it saved, run the backup again"))
    return out
