"""What the ``load-*`` commands share: the project check, progress bars, the tracker's own log
sent to a file, and running the load with the summary and exit code."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TextIO, TypeVar

from ..errors import ProjectNotFoundError, exit_code_of
from .report import LoadProgress, LoadReport

OBJECTS = "objects"
R = TypeVar("R", bound=LoadReport)
AGAIN = "Interrupted. Run the same command again to finish; nothing is loaded twice."


def require_projects(dest: Path, projects: Sequence[str]) -> None:
    """Before anything is made: exit 2, as the backup does for an unknown project."""
    missing = [p for p in projects if dest.is_dir() and not (dest / p).is_dir()]
    if missing:
        raise ProjectNotFoundError(
            f"The backup in {dest} has no project {', '.join(map(repr, missing))}. Name projects as"
            " WORKSPACE/PROJECT, as folders in it."
        )


@contextlib.contextmanager
def log_to(path: Path, loggers: Sequence[str]) -> Iterator[None]:
    """Send what the tracker's client logs to ``path``, made only once something is logged (in a
    backup, after the load took its lock beside it), instead of stderr."""
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = [(lg, lg.handlers, lg.propagate) for lg in map(logging.getLogger, loggers)]
    for lg, _, _ in saved:
        lg.handlers = [handler]
        lg.propagate = False
    try:
        yield
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers = handlers
            lg.propagate = propagate
        handler.close()


class Bars:
    """tqdm bars for objects and points, on stderr, only when it is a terminal."""

    SYSTEM: ClassVar[str] = "the tracker"

    def __init__(self, enabled: bool, file: TextIO | None = None) -> None:
        self.objects: Any = None
        self.points: Any = None
        if enabled:
            from tqdm import tqdm

            out = file or sys.stderr
            self.objects = tqdm(desc=OBJECTS, unit="obj", file=out, position=0, dynamic_ncols=True)
            self.points = tqdm(desc="points", unit="pt", unit_scale=True, file=out, position=1)

    def __call__(self, p: LoadProgress) -> None:
        if self.objects is None:
            return
        desc = f"{OBJECTS} (starting {self.SYSTEM}…)" if p.starting else OBJECTS
        if self.objects.total != p.objects_found or self.objects.desc != desc:
            self.objects.total = p.objects_found
            self.objects.set_description_str(desc, refresh=False)
            self.objects.refresh()
        self.objects.update(p.objects_done + p.objects_failed - self.objects.n)
        self.points.update(p.points - self.points.n)

    def close(self) -> None:
        for bar in (self.objects, self.points):
            if bar is not None:
                bar.close()


def run_load(
    load: Callable[[Callable[[LoadProgress], None]], Awaitable[R]],
    run_async: Callable[[Callable[[], Awaitable[R]]], R],
    bars: Bars,
    dest: Path,
    log: str,
    loggers: Sequence[str],
    report_name: str,
) -> R | int:
    """Run ``load(progress)`` with the bars, and the tracker's log in ``dest/log``; print its
    summary (on stdout for a dry run, else on stderr with where the report is). Returns the
    report, or the exit code when it was interrupted."""
    try:
        with log_to(dest / log, loggers):
            report = run_async(lambda: load(bars))
    except KeyboardInterrupt as e:
        bars.close()
        print(f"\n{AGAIN}", file=sys.stderr)
        return exit_code_of(e)
    finally:
        bars.close()
    if report.dry_run:
        print(report.summary())
    else:
        print(report.summary(), file=sys.stderr)
        print(f"Report: {dest / report_name}", file=sys.stderr)
    return report
