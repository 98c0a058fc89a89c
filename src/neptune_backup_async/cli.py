"""The command line: ``neptune-backup [backup] --projects ws/a,ws/b --output DEST``.

Exit codes: 0 all backed up; 1 some fields or runs failed (named in the report);
2 bad usage, token, project or destination; 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from . import api, layout, values
from .errors import BackupError, UsageError, redact
from .report import BackupReport, Progress, load_reports, summarize
from .selection import FieldFilter, RunFilter, Selection, Shard, parse_list, parse_objects, parse_time

COMMANDS = ("backup", "list-projects", "verify", "view", "report", "load-mlflow")
DEMO_OUTPUT = Path("neptune-backup-demo")
log = logging.getLogger("neptune_backup_async")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neptune-backup",
        description="Back up Neptune.ai projects to local disk: every field of every run, resumable and fast.",
        epilog="The API token is read from NEPTUNE_API_TOKEN, or from the file given to --api-token-file.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("backup", help="back up projects (the default command)")
    b.add_argument("--projects", help="WORKSPACE/PROJECT[,...], or 'all' for every project the token can see")
    b.add_argument("--output", type=Path, help="the backup folder (created if missing)")
    b.add_argument(
        "--concurrency", type=int, default=8, help="the most Neptune requests in flight at once (default: 8)"
    )
    b.add_argument(
        "--download-artifacts",
        action="store_true",
        help="also download the files that artifacts point to (local paths and S3); without it only their listing",
    )
    b.add_argument(
        "--full",
        action="store_true",
        help="fetch everything again, even runs and fields unchanged since the last backup into --output",
    )
    b.add_argument(
        "--demo",
        action="store_true",
        help=f"back up a sample workspace from a built-in fake server (no account needed) into --output"
        f" (default: ./{DEMO_OUTPUT})",
    )
    _selection_arguments(b)
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be backed up (objects, fields by type, sizes where Neptune gives them);"
        " download and write nothing",
    )
    _common(b)
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument(
        "--log-file", type=Path, help="where to write the log (default: one per backup inside the output)"
    )
    lp = sub.add_parser("list-projects", help="print the projects the token can see")
    _common(lp)
    v = sub.add_parser(
        "verify",
        help="check a backup against its manifests, offline",
        description="Check that every file the manifests list exists, has its size and sha256, that no other"
        " file is in a run folder, and that every run is complete. Needs no network and no token."
        " Exit 0: intact; 1: problems, one per line; 2: not a backup.",
    )
    v.add_argument("destination", type=Path, help="the backup folder")
    v.add_argument("--deep", action="store_true", help="also parse every CSV, JSON and zip file")
    from . import view

    w = sub.add_parser(
        "view",
        help="write an offline HTML site to browse a backup",
        description="Write a static HTML site from a backup (default: DESTINATION/_site) and print the path of"
        " its index.html. It opens from the file system, with no server and no network; a rerun rebuilds only"
        " the runs that changed. Needs no token.",
    )
    view.add_arguments(w)
    r = sub.add_parser(
        "report",
        help="summarize a backup, merging the reports of its shards",
        description="Print a summary of the backup in DESTINATION. Shards each leave a report of their own"
        " (backup-report.shard-K-of-N.json); they are merged into one summary, and --output writes the"
        " merged report as JSON. Exit 0: every report says all was backed up; 1: failures or interruptions;"
        " 2: no report there.",
    )
    r.add_argument("destination", type=Path, help="the backup folder")
    r.add_argument("--output", type=Path, help="also write the merged report here, as JSON")
    from . import to_mlflow

    m = sub.add_parser(
        "load-mlflow",
        help="load a backup into MLflow (needs the mlflow extra)",
        description="Load every run, model, model version and project of a backup into MLflow: experiments,"
        " runs, params, metrics, tags and artifacts (docs/MLFLOW.md). A rerun resumes a stopped load and adds"
        " what a later backup added, without loading anything twice. Needs no token."
        " Exit 0: all loaded; 1: some objects or fields failed, or the backup is incomplete (named in"
        " DESTINATION/load-mlflow-report.json); 2: bad usage, not a backup, MLflow missing or unreachable.",
    )
    to_mlflow.add_arguments(m)
    return parser


def _selection_arguments(b: argparse.ArgumentParser) -> None:
    g = b.add_argument_group("what to back up (filters compose: an object must pass every one given)")
    g.add_argument(
        "--objects", help="some of runs,models,project (default: all three); models include their versions"
    )
    g.add_argument("--runs", help="only these runs, by id: RUN-1,RUN-7")
    g.add_argument("--tags", help="only runs that have every one of these tags: a,b")
    g.add_argument("--state", help="only runs in this state: idle or running (or idle,running)")
    g.add_argument("--owner", help="only runs created by one of these users: alice,bob")
    g.add_argument("--query", help="only runs matching this NQL query, as in Neptune's runs table")
    g.add_argument(
        "--created-since",
        metavar="TIME",
        help="only runs created at or after TIME (ISO 8601; UTC if no offset)",
    )
    g.add_argument("--created-until", metavar="TIME", help="only runs created before TIME")
    g.add_argument("--modified-since", metavar="TIME", help="only runs modified at or after TIME")
    g.add_argument("--include-trashed", action="store_true", help="also back up runs in the trash")
    g.add_argument(
        "--exclude-fields",
        metavar="GLOBS",
        help="leave out fields matching these globs, e.g. 'monitoring/*,source_code/files' (a namespace"
        " selects what is under it)",
    )
    g.add_argument("--include-fields", metavar="GLOBS", help="back up only the fields matching these globs")
    g.add_argument(
        "--shard",
        metavar="K/N",
        help="back up only shard K of N (0 <= K < N): the objects whose id hashes to it; N jobs with"
        " K = 0..N-1 split a workspace with no overlap (docs/scaling.md)",
    )


def selection_from(args: argparse.Namespace) -> Selection:
    """The Selection that the backup command's flags describe; UsageError for bad values."""
    times = {
        name: parse_time(getattr(args, name), "--" + name.replace("_", "-"))
        for name in ("created_since", "created_until", "modified_since")
        if getattr(args, name)
    }
    return Selection(
        objects=parse_objects(args.objects),
        runs=RunFilter(
            runs=parse_list(args.runs),
            tags=parse_list(args.tags),
            states=parse_list(args.state),
            owners=parse_list(args.owner),
            query=args.query,
            include_trashed=args.include_trashed,
            **times,
        ),
        fields=FieldFilter(include=parse_list(args.include_fields), exclude=parse_list(args.exclude_fields)),
        shard=Shard.parse(args.shard) if args.shard else None,
    )


def _run_report(args: argparse.Namespace) -> int:
    merged = load_reports(args.destination)
    print(summarize(merged))
    if args.output is not None:
        args.output.write_text(values.dumps(merged), encoding="utf-8")
    return int(merged["exit_code"])


def _run_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    result = verify(args.destination, deep=args.deep)
    for problem in result.problems:
        print(problem)
    verdict = "intact" if not result.problems else f"{len(result.problems)} problem(s)"
    print(f"Verified {result.objects} object(s) and {result.files} file(s): {verdict}.", file=sys.stderr)
    return result.exit_code


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-token-file", type=Path, help="read the API token from this file")


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UsageError(f"Cannot read the API token file {path} ({e.strerror}).") from None


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        return True


@contextlib.contextmanager
def _log_to(path: Path, secrets: list[str]) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact(secrets))
    loggers = [logging.getLogger("neptune_backup_async"), logging.getLogger("neptune")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO if lg.name == "neptune" else logging.DEBUG)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


class _Bars:
    """tqdm bars for runs and bytes, on stderr, only when it is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.runs: Any = None
        self.bytes: Any = None
        if enabled:
            from tqdm import tqdm

            self.runs = tqdm(
                desc="objects", unit="obj", total=0, file=sys.stderr, position=0, dynamic_ncols=True
            )
            self.bytes = tqdm(desc="written", unit="B", unit_scale=True, file=sys.stderr, position=1)

    def __call__(self, p: Progress) -> None:
        if self.runs is None:
            return
        if self.runs.total != p.objects_found:
            self.runs.total = p.objects_found
            self.runs.refresh()
        self.runs.update(p.objects_done + p.objects_failed - self.runs.n)
        self.bytes.update(p.bytes_written - self.bytes.n)

    def close(self) -> None:
        for bar in (self.runs, self.bytes):
            if bar is not None:
                bar.close()


def _ask(prompt: str, stream: TextIO) -> str:
    stream.write(prompt)
    stream.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError("No answer given.")
    return line.strip()


def _interactive(args: argparse.Namespace, token: str | None) -> None:
    """Ask for what is missing, as the original backup script did; only on a terminal."""
    if not sys.stdin.isatty():
        missing = " and ".join(f"--{n}" for n in ("projects", "output") if getattr(args, n) is None)
        raise UsageError(f"Missing {missing}. Example: neptune-backup --projects ws/proj --output ./backup")
    out = sys.stderr
    if args.projects is None:
        projects = anyio.run(api.list_projects, token)
        out.write("Projects you can back up:\n" + "".join(f"  {p}\n" for p in projects))
        args.projects = _ask("Projects to back up (comma-separated, or 'all'): ", out)
    if args.output is None:
        answer = _ask("Where to write the backup [./neptune-backup]: ", out)
        args.output = Path(answer or "neptune-backup")
        if not args.download_artifacts:
            args.download_artifacts = _ask("Download the files artifacts point to? [y/N]: ", out).lower() in (
                "y",
                "yes",
            )


def _run_backup(args: argparse.Namespace, token: str | None) -> int:
    selection = selection_from(args)  # bad flags fail before any prompt
    if args.projects is None or args.output is None:
        _interactive(args, token)
    output: Path = args.output
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    shard = f"-{selection.shard_label}" if selection.shard_label else ""
    log_file: Path | None = args.log_file
    if log_file is None and not args.dry_run:  # a dry run writes nothing it was not asked to
        log_file = output / ".neptune-backup" / f"backup-{stamp}{shard}.log"
    secrets = [token or os.environ.get(api.TOKEN_ENV, "")]
    bars = _Bars(enabled=not args.quiet and sys.stderr.isatty())
    report: BackupReport | None = None
    try:
        if not args.dry_run:
            api.prepare_destination(output)  # before the log file goes inside it
        with _log_to(log_file, secrets) if log_file else contextlib.nullcontext():
            log.info("backup of %s into %s, concurrency %d", args.projects, output, args.concurrency)
            report = anyio.run(
                lambda: api.backup(
                    args.projects,
                    output,
                    api_token=token,
                    concurrency=args.concurrency,
                    download_artifacts=args.download_artifacts,
                    full=args.full,
                    selection=selection,
                    dry_run=args.dry_run,
                    progress=bars,
                )
            )
    except KeyboardInterrupt:
        bars.close()
        print(
            "\nInterrupted. Everything finished so far is kept; run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    finally:
        bars.close()
    assert report is not None
    if args.dry_run:
        print(report.summary())  # what was asked for: on stdout
        return report.exit_code
    print(report.summary(), file=sys.stderr)
    name = layout.report_name(selection.shard_label)
    print(f"Report: {output / name}\nLog: {log_file}", file=sys.stderr)
    return report.exit_code


def _run_demo(args: argparse.Namespace) -> int:
    from .testing import WORKLOADS, generate, serve

    with tempfile.TemporaryDirectory(prefix="neptune-backup-demo-") as tmp:
        world = generate(WORKLOADS["demo"], artifact_root=Path(tmp))
        with serve(world) as server:
            print(
                f"Demo: a fake Neptune server at {server.base_url} with {len(world.projects)} projects.",
                file=sys.stderr,
            )
            args.projects = args.projects or "all"
            args.output = args.output or DEMO_OUTPUT
            args.download_artifacts = True
            return _run_backup(args, server.api_token)


def _leave_out_unused_imports() -> None:
    """Skip the slowest import of the client's start-up, which nothing here uses.

    ``neptune`` imports bravado, which imports jsonschema, which imports ``rfc3987_syntax`` if
    it can: that builds a parser at import time, 1.1 of the 2.5 s of importing the client.
    jsonschema uses it only to check the "iri" string formats, which no Neptune API spec has,
    and does without it when it is missing. Only the command line does this, as it owns its
    process; ``backup()`` leaves the modules of the program that embeds it alone.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    _leave_out_unused_imports()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "backup")  # backup is the default command
    parser = _parser()
    args = parser.parse_args(argv)
    token: str | None = None
    try:
        token = _read_token(getattr(args, "api_token_file", None))
        if args.command == "verify":
            return _run_verify(args)
        if args.command == "view":
            from . import view

            return view.run(args)
        if args.command == "report":
            return _run_report(args)
        if args.command == "load-mlflow":
            from . import to_mlflow

            return to_mlflow.run(args)
        if args.command == "list-projects":
            for name in anyio.run(api.list_projects, token):
                print(name)
            return 0
        if args.demo:
            return _run_demo(args)
        return _run_backup(args, token)
    except BackupError as e:
        print(f"error: {redact(str(e), [token or '', os.environ.get(api.TOKEN_ENV, '')])}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: one line for the user, the traceback for the log
        log.exception("unexpected error")
        message = redact(f"{type(e).__name__}: {e}", [token or "", os.environ.get(api.TOKEN_ENV, "")])
        print(f"error: unexpected {message}. Please report it with the log file.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
