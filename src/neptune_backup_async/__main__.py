"""``python -m neptune_backup_async``, and the ``neptune-backup`` program.

Ctrl-C is handled from the first line: the command line's imports take a second, and an
interrupt during them ends as any other does (exit 130, one line), never in a traceback.
"""

import sys


def run() -> None:
    try:
        from .cli.main import run as run_cli

        run_cli()
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
