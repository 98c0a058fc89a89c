"""The ``load-wandb`` subcommand: arguments, progress bars, the summary and the exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from ..disk import lock
from ..errors import UsageError
from ..loading import command
from ..selection import parse_list
from . import client, loader
from .load_report import REPORT, LoadReport

TRACKER = command.Tracker("W&B", f"{lock.FOLDER}/load-wandb.log", client.LOGGERS, REPORT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("destination", type=Path, help="the backup folder")
    parser.add_argument(
        "--offline",
        type=Path,
        metavar="DIR",
        help="write offline runs into DIR/wandb/, for `wandb sync DIR/wandb/offline-run-*` (default: load online,"
        " into the W&B server of `wandb login` or WANDB_API_KEY and WANDB_BASE_URL)",
    )
    parser.add_argument("--entity", help="the W&B entity (user or team; default: your default entity)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--project", help="put every Neptune project into this W&B project")
    where.add_argument(
        "--project-map",
        help="W&B projects by Neptune project: WORKSPACE/PROJECT=NAME[,...] (default: WORKSPACE-PROJECT)",
    )
    command.add_arguments(
        parser,
        concurrency="the most runs written at once",
        dry_run="count what would be loaded; write nothing",
    )


def parse_map(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in parse_list(text):
        neptune, sep, name = item.partition("=")
        if not sep or not neptune.strip() or not name.strip():
            raise UsageError(f"--project-map takes WORKSPACE/PROJECT=NAME items, not {item!r}.")
        out[neptune.strip()] = name.strip()
    return out


def run(
    args: argparse.Namespace,
    run_async: Callable[[Callable[[], Awaitable[LoadReport]]], LoadReport] = anyio.run,
) -> int:
    """The command; ``run_async`` runs the load in an event loop (the command line's stops it
    cleanly on Ctrl-C, SIGTERM and SIGHUP)."""
    client.require_wandb()  # before anything else: say how to install it
    dest: Path = args.destination
    projects = parse_list(args.projects)
    project_map = parse_map(args.project_map)
    command.require_projects(dest, [*projects, *project_map])
    done = command.run_load(
        lambda progress: loader.load_wandb(
            dest,
            offline=args.offline,
            entity=args.entity,
            project=args.project,
            project_map=project_map or None,
            projects=projects or None,
            runs=parse_list(args.runs) or None,
            concurrency=args.concurrency,
            dry_run=args.dry_run,
            progress=progress,
        ),
        run_async,
        TRACKER,
        args,
    )
    if isinstance(done, int):
        return done
    if args.offline is not None and not done.dry_run:
        print(f"Upload it: wandb sync {args.offline / 'wandb'}/offline-run-*", file=sys.stderr)
    return done.exit_code
