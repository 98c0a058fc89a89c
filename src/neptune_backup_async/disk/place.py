"""Where a backup may write: folders inside DEST, and what an OSError there means.

DEST is trusted as the user gave it (resolved, so a link the user chose as DEST is followed
once); nothing below it is. Every file the backup creates, renames, appends to or deletes
is named by a :class:`Place` and a path relative to it, and before acting in a folder,
each folder from DEST down to it is ``lstat``-ed: a symbolic link among them is refused,
never followed. Files are opened with ``O_NOFOLLOW``, so a link in a file's own place is
refused too; a rename or a deletion acts on a link itself, never on what it points to. So
nothing outside DEST is ever changed through a link planted in a backup.

This guards against links that are in DEST; it is not a defence against someone who
changes DEST's folders while a backup runs in it (they could change the backup anyway).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..errors import DestinationError

# Errors that mean the destination as a whole is unusable, not just one file.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX; elsewhere only the folders are checked
_BINARY = getattr(os, "O_BINARY", 0)


class UnsafePath(Exception):
    """A path to write that is absolute or climbs with ``..``: a bug of its caller, refused."""


def inside(rel: PurePosixPath | str) -> PurePosixPath:
    """``rel`` as a relative path that stays where it starts; raises :class:`UnsafePath` if not."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafePath(f"refusing to write to {str(rel)!r}: it would leave the backup folder")
    return path


def link_refused(path: Path) -> DestinationError:
    return DestinationError(
        f"{path} is a symbolic link, and a backup never writes through one (it could lead outside"
        " the backup folder). Remove the link (put what it points to in its place if you want it"
        " kept) and run the same command again."
    )


def destination_error(e: OSError, path: Path) -> DestinationError | None:
    """What ``e``, met while writing ``path``, means for the whole backup; None: only that file failed."""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return DestinationError(
            f"The disk holding {path} is full. Free some space and run the same command again."
        )
    if e.errno in _FATAL_ERRNOS:
        return DestinationError(
            f"Cannot write to {path} ({e.strerror}). Check its permissions, or choose another --output."
        )
    return None


@contextlib.contextmanager
def destination_errors(path: Path) -> Iterator[None]:
    """Raise an OSError met inside, while writing ``path``, as the :class:`DestinationError`
    it means for the whole backup (see :func:`destination_error`), else as it is."""
    try:
        yield
    except OSError as e:
        raise destination_error(e, path) or e from None


class Place:
    """A folder inside a backup's DEST (``rel`` from it), and the blocking operations that
    change files below it without following a link (see the module's docstring).

    These raise OSError as the system does (a caller that writes maps it with
    :func:`destination_errors`), DestinationError for a link refused, and
    :class:`UnsafePath` for a path that would leave the place.
    """

    __slots__ = ("dest", "path", "rel")

    def __init__(self, dest: Path, rel: PurePosixPath | str = ".") -> None:
        self.dest = dest
        self.rel = inside(rel)
        self.path = dest / self.rel

    def __repr__(self) -> str:
        return f"Place({str(self.dest)!r}, {self.rel.as_posix()!r})"

    def __truediv__(self, rel: PurePosixPath | str) -> Place:
        return Place(self.dest, self.rel / inside(rel))

    def folder(self, rel: PurePosixPath | str = ".", *, create: bool = False) -> Path:
        """The folder ``rel`` below this place, once every folder from DEST down to it is
        checked to be a folder and not a link; with ``create``, the missing ones are made."""
        path = self.dest
        for part in (self.rel / inside(rel)).parts:
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # made meanwhile by another writer
                    os.mkdir(path)
                mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise link_refused(path)
        return path

    def file_path(self, rel: PurePosixPath | str, *, create: bool = False) -> Path:
        """The file ``rel`` below this place, its folders checked (see :meth:`folder`)."""
        rel = inside(rel)
        if not rel.name:
            raise UnsafePath(f"refusing to write to {str(rel)!r}: it names no file")
        return self.folder(rel.parent, create=create) / rel.name

    def open(self, rel: PurePosixPath | str, flags: int, mode: int = 0o666) -> int:
        """``os.open`` of the file ``rel``, never through a link; ``O_CREAT`` makes its folders."""
        path = self.file_path(rel, create=bool(flags & os.O_CREAT))
        try:
            return os.open(path, flags | _NOFOLLOW | _BINARY, mode)
        except OSError as e:
            if e.errno == errno.ELOOP and _NOFOLLOW:
                raise link_refused(path) from None
            raise

    def read(self, rel: PurePosixPath | str) -> bytes:
        """The bytes of the file ``rel``, never read through a link."""
        with os.fdopen(self.open(rel, os.O_RDONLY), "rb") as f:
            return f.read()

    def replace(self, rel: PurePosixPath | str, to: Place, to_rel: PurePosixPath | str) -> None:
        """Rename the file ``rel`` over ``to_rel`` in ``to`` (of the same DEST), making its folders."""
        assert to.dest == self.dest, "a rename stays inside one DEST"
        source = self.file_path(rel)
        os.replace(source, to.file_path(to_rel, create=True))

    def unlink(self, rel: PurePosixPath | str, *, missing_ok: bool = False) -> None:
        try:
            os.unlink(self.file_path(rel))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self, rel: PurePosixPath | str) -> None:
        """Remove the empty folder ``rel`` (a link there is no folder: it stays)."""
        os.rmdir(self.file_path(rel))
