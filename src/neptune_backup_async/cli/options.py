"""The backup command's options, and the :class:`~.settings.BackupSettings` they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..processes.shares import usable_cores
from ..remote.http import LOST_AFTER, RetryPolicy
from ..selection import FieldFilter, RunFilter, Selection, Shard, parse_list, parse_objects, parse_time
from ..settings import CONCURRENCY, MAX_CONCURRENCY, BackupSettings

DEMO_OUTPUT = Path("neptune-backup-demo")


def add_arguments(b: argparse.ArgumentParser) -> None:
    """The backup command's options, in the order ``--help`` shows them."""
    b.add_argument("--projects", help="WORKSPACE/PROJECT[,...], or 'all' for every project the token can see")
    b.add_argument("--output", type=Path, help="the backup folder (created if missing)")
    b.add_argument(
        "--concurrency",
        type=int,
        default=CONCURRENCY,
        help="the most requests in flight at once, to Neptune and to S3 for artifacts (default:"
        f" {CONCURRENCY}; at most {MAX_CONCURRENCY}, a larger value is cut, with a warning)",
    )
    b.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="back up in N processes, this one and N-1 workers (default: the usable cores; 1 for a dry"
        " run); --concurrency stays the total of requests in flight",
    )
    b.add_argument(
        "--lost-server-after",
        type=float,
        default=LOST_AFTER,
        metavar="SECONDS",
        help="stop with exit code 2 when connections to Neptune fail and no request has succeeded for"
        f" this long (default: {LOST_AFTER:.0f}); the same command resumes",
    )
    b.add_argument(
        "--download-artifacts",
        action="store_true",
        help="also download the files that artifacts point to (local paths, and S3 with the s3 extra); without"
        " it only their listing",
    )
    b.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        help="the S3-compatible store (MinIO, Ceph, ...) that S3 artifacts are read from; default:"
        " S3_ENDPOINT_URL, else boto3's configuration (AWS_ENDPOINT_URL, the profile), else AWS S3",
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
    token_argument(b)
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument(
        "--log-file", type=Path, help="where to write the log (default: one per backup inside the output)"
    )


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
    g.add_argument(
        "--include-trashed",
        action="store_true",
        help="also back up runs, models and model versions in the trash",
    )
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


def settings_from(args: argparse.Namespace, selection: Selection) -> BackupSettings:
    """The settings the backup command's flags describe, with ``selection`` from :func:`selection_from`."""
    return BackupSettings(
        Path() if args.output is None else args.output,  # until the prompt asks for it
        concurrency=args.concurrency,
        download_artifacts=args.download_artifacts,
        full=args.full,
        selection=selection,
        dry_run=args.dry_run,
        retry=RetryPolicy(lost_after=args.lost_server_after),
        s3_endpoint_url=args.s3_endpoint_url,
        processes=usable_cores() if args.processes is None else args.processes,
        work_here=True,  # no event loop of a caller's to keep free here
        allow_insecure_http=args.allow_insecure_http,
    )


def token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-token-file", type=Path, help="read the API token from this file")
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="send the token to an http:// Neptune address that is not this machine (by default plain"
        " http is allowed only to localhost); only on a network you trust",
    )
