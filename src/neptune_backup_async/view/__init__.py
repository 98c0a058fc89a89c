"""``neptune-backup view DEST``: an offline HTML site to browse a backup.

The site is static: it opens from the file system, with no server and no network. It
links to the backup's own files (CSV, images, files) rather than copying them, so it is
meant to stay beside the backup (by default in ``DEST/_site``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

from ..errors import UsageError
from .lttb import lttb
from .site import build_site

__all__ = ["add_arguments", "build_site", "lttb", "run", "serve"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the ``view`` subcommand."""
    parser.add_argument("destination", type=Path, help="the backup folder")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the site (default: DESTINATION/_site); it links to the backup's files",
    )
    parser.add_argument(
        "--serve", action="store_true", help="also serve the site on 127.0.0.1 on a free port until Ctrl-C"
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(index: Path, dest: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve the folder that holds both the site and the backup on 127.0.0.1, in a thread.

    Returns the server (``shutdown()`` it) and the URL of the index page.
    """
    root = dest.resolve()
    if not index.resolve().is_relative_to(root):
        # Serving a common ancestor of both could expose unrelated folders, even all of /.
        raise UsageError(
            "--serve needs the site inside the backup folder: leave out --output, or put it inside."
        )
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="view-server", daemon=True).start()
    rel = index.resolve().relative_to(root).as_posix()
    return server, f"http://127.0.0.1:{server.server_address[1]}/{rel}"


def run(args: argparse.Namespace) -> int:
    """Build the site (and serve it with ``--serve``); print the path of its index.html."""
    index = build_site(args.destination, args.output)
    print(index.resolve())
    if not args.serve:
        return 0
    server, address = serve(index, args.destination)
    print(f"Serving at {address} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
    return 0
