"""What the ``load-*`` commands share: the project check, progress bars, the tracker's own log
sent to a file, and running the load with the summary and exit code."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

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


@dataclass(frozen=True)
class Tracker:
    """What a ``load-*`` command says of its tracker."""

    system: str  # its name, as the bars say it: "MLflow"
    log: str  # in DEST: what its client logs, which would break the bars
    loggers: Sequence[str]  # the loggers its client gives handlers of their own
    report: str  # in DEST: the load's report


def add_arguments(parser: argparse.ArgumentParser, concurrency: str, dry_run: str) -> None:
    """The options every load takes, after the tracker's own."""
    parser.add_argument("--projects", help="only these projects: WORKSPACE/PROJECT[,...] (default: all)")
    parser.add_argument(
        "--runs", help="only these runs (or models, versions, project keys), by sys/id: RUN-1,RUN-7"
    )
    parser.add_argument("--concurrency", type=int, default=8, help=f"{concurrency} (default: 8)")
    parser.add_argument("--dry-run", action="store_true", help=dry_run)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


class Bars:
    """tqdm bars for objects and points, on stderr, only when it is a terminal."""

    def __init__(self, enabled: bool, system: str = "the tracker", file: TextIO | None = None) -> None:
        self.system = system
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
        desc = f"{OBJECTS} (starting {self.system}…)" if p.starting else OBJECTS
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
    tracker: Tracker,
    args: argparse.Namespace,
) -> R | int:
    """Run ``load(progress)`` with the bars, and the tracker's log in DEST; print its summary
    (on stdout for a dry run, else on stderr with where the report is). Returns the report, or
    the exit code when it was interrupted."""
    dest: Path = args.destination
    bars = Bars(not args.quiet and not args.dry_run and sys.stderr.isatty(), tracker.system)
    try:
        with log_to(dest / tracker.log, tracker.loggers):
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
        print(f"Report: {dest / tracker.report}", file=sys.stderr)
    return report
