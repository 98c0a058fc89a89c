"""Where a backup may write: folders inside DEST, and what an OSError there means.

DEST is trusted as the user gave it (resolved, so a link the user chose as DEST is followed
once); nothing below it is. Every file the backup creates, renames, appends to or deletes
is named by a :class:`Place` and a path relative to it, and before acting in a folder,
each folder from DEST down to it is ``lstat``-ed: a symbolic link among them is refused,
never followed. Files are opened with ``O_NOFOLLOW``, so a link in a file's own place is
refused too; a rename or a deletion acts on a link itself, never on what it points to. So
nothing outside DEST is ever changed through a link planted in a backup.

A place remembers the folders it has checked (or made), and so do the places made from it
with ``/``: an object's files are all written through its one place, so each folder is
checked once per object, not once per file. That memory assumes a folder found to be a
folder stays one while the place is in use (an object's backup; the whole backup for the
partial downloads' place): inside DEST, which the lock keeps to one backup (or to the
shards of one, each with objects of its own, none removing a shared folder), only the
backup writes, it never makes a link, and it removes or moves a folder (or a link) only
through :meth:`Place.rmdir` and :meth:`Place.replace`, which then forget all they checked.
A place made anew (``Place(dest, rel)``) checks again.

This guards against links that are in DEST; it is not a defence against someone who
changes DEST's folders while a backup runs in it (they could change the backup anyway,
and even without the memory, a folder could be swapped between its check and its use).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
from types import TracebackType

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
        raise _leaving(rel)
    return path


def _leaving(rel: PurePosixPath | str) -> UnsafePath:
    return UnsafePath(f"refusing to write to {str(rel)!r}: it would leave the backup folder")


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


class destination_errors:  # lower case: it reads as the function it was
    """Raise an OSError met inside, while writing ``path``, as the :class:`DestinationError`
    it means for the whole backup (see :func:`destination_error`), else as it is.

    A class, not a generator: every write of every file enters one."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, OSError):
            raise destination_error(exc, self.path) or exc from None


class Place:
    """A folder inside a backup's DEST (``rel`` from it), and the blocking operations that
    change files below it without following a link (see the module's docstring).

    These raise OSError as the system does (a caller that writes maps it with
    :func:`destination_errors`), DestinationError for a link refused, and
    :class:`UnsafePath` for a path that would leave the place.
    """

    __slots__ = ("_checked", "_names", "dest", "path", "rel")

    def __init__(
        self, dest: Path, rel: PurePosixPath | str = ".", *, checked: dict[str, str] | None = None
    ) -> None:
        """``checked``: the memory of another place of ``dest``, to share (see :meth:`__truediv__`)."""
        self.dest = dest
        self.rel = inside(rel)
        self.path = dest / self.rel
        self._names = list(self.rel.parts)
        # The folders found to be no link, by their POSIX path from DEST (see the module's
        # docstring), and their paths; shared with the places made from this one, and by
        # thread calls: a dict's get, set and clear are atomic.
        self._checked: dict[str, str] = {} if checked is None else checked

    def __repr__(self) -> str:
        return f"Place({str(self.dest)!r}, {self.rel.as_posix()!r})"

    def __truediv__(self, rel: PurePosixPath | str) -> Place:
        return Place(self.dest, self.rel / inside(rel), checked=self._checked)

    def folder(self, rel: PurePosixPath | str = ".", *, create: bool = False) -> Path:
        """The folder ``rel`` below this place, once every folder from DEST down to it is
        checked to be a folder and not a link (or was, by this place: see the module's
        docstring); with ``create``, the missing ones are made."""
        return Path(self._folder(_names(rel), create))

    def file_path(self, rel: PurePosixPath | str, *, create: bool = False) -> str:
        """The file ``rel`` below this place, its folders checked (see :meth:`folder`), as a
        string (pathlib's objects cost more than the checks the memory saves)."""
        names = _names(rel)
        if not names:
            raise UnsafePath(f"refusing to write to {str(rel)!r}: it names no file")
        return f"{self._folder(names[:-1], create)}{os.sep}{names[-1]}"

    def forget(self) -> None:
        """Forget the folders checked, by this place and those sharing its memory: one was
        removed or moved."""
        self._checked.clear()

    def _folder(self, names: list[str], create: bool) -> str:
        """:meth:`folder` of the path ``names`` below this place, as a string."""
        names = self._names + names
        full = "/".join(names)
        known = self._checked.get(full)
        if known is not None:
            return known
        path, key = os.fspath(self.dest), ""
        for part in names:
            path, key = f"{path}{os.sep}{part}", f"{key}/{part}" if key else part
            if key in self._checked:
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(path)  # a new folder, never a link: nothing more to check
                    mode = stat.S_IFDIR
                except FileExistsError:  # made meanwhile by another writer
                    mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise link_refused(Path(path))
            if stat.S_ISDIR(mode):  # a file there fails what acts in it: nothing to remember
                self._checked[key] = path
        return path

    def open(self, rel: PurePosixPath | str, flags: int, mode: int = 0o666) -> int:
        """``os.open`` of the file ``rel``, never through a link; ``O_CREAT`` makes its folders."""
        path = self.file_path(rel, create=bool(flags & os.O_CREAT))
        try:
            return os.open(path, flags | _NOFOLLOW | _BINARY, mode)
        except OSError as e:
            if e.errno == errno.ELOOP and _NOFOLLOW:
                raise link_refused(Path(path)) from None
            raise

    def read(self, rel: PurePosixPath | str) -> bytes:
        """The bytes of the file ``rel``, never read through a link."""
        with os.fdopen(self.open(rel, os.O_RDONLY), "rb") as f:
            return f.read()

    def replace(self, rel: PurePosixPath | str, to: Place, to_rel: PurePosixPath | str) -> None:
        """Rename the file ``rel`` over ``to_rel`` in ``to`` (of the same DEST), making its folders."""
        assert to.dest == self.dest, "a rename stays inside one DEST"
        source, target = self.file_path(rel), to.file_path(to_rel, create=True)
        moved_file = stat.S_ISREG(os.lstat(source).st_mode)
        try:
            os.replace(source, target)
        finally:
            if not moved_file:  # a folder or link moved: what was checked may have changed
                self.forget()
                to.forget()

    def unlink(self, rel: PurePosixPath | str, *, missing_ok: bool = False) -> None:
        try:
            os.unlink(self.file_path(rel))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self, rel: PurePosixPath | str) -> None:
        """Remove the empty folder ``rel`` (a link there is no folder: it stays)."""
        try:
            os.rmdir(self.file_path(rel))
        finally:  # the folder checked is gone (by whichever of its names, if case is folded)
            self.forget()


def _names(rel: PurePosixPath | str) -> list[str]:
    """The names of the relative path ``rel``, as :func:`inside` checks it (in a few string
    operations: every file operation pays for this)."""
    text = str(rel)
    names = text.split("/")
    if "" in names or "." in names:  # "a//b", "./a", "a/" or "": as PurePosixPath reads them
        names = [name for name in names if name and name != "."]
    if text.startswith("/") or ".." in names:
        raise _leaving(rel)
    return names
