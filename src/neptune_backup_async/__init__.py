"""Complete, faithful, resumable and fast backups of Neptune.ai workspaces to local disk.

The public names are imported when first used (a module-level ``__getattr__``): importing the
package, as ``python -m neptune_backup_async`` and the ``neptune-backup`` program do first,
stays light, so that Ctrl-C in the first second reaches the program's own handler.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import backup, list_projects
    from .errors import (
        AuthenticationError,
        BackupError,
        DestinationError,
        DestinationLockedError,
        FetchError,
        HttpStatusError,
        NotABackupError,
        ProgressCallbackError,
        ProjectNotFoundError,
        ServerLostError,
        ServerUnreachableError,
        TransientError,
        UnexpectedError,
        UsageError,
    )
    from .format.report import BackupReport, Note, Progress, summarize
    from .format.reports import load_reports
    from .selection import FieldFilter, RunFilter, Selection, Shard
    from .to_mlflow import LoadReport, load_mlflow
    from .to_wandb import load_wandb

__all__ = [
    "AuthenticationError",
    "BackupError",
    "BackupReport",
    "DestinationError",
    "DestinationLockedError",
    "FetchError",
    "FieldFilter",
    "HttpStatusError",
    "LoadReport",
    "NotABackupError",
    "Note",
    "Progress",
    "ProgressCallbackError",
    "ProjectNotFoundError",
    "RunFilter",
    "Selection",
    "ServerLostError",
    "ServerUnreachableError",
    "Shard",
    "TransientError",
    "UnexpectedError",
    "UsageError",
    "backup",
    "list_projects",
    "load_mlflow",
    "load_reports",
    "load_wandb",
    "summarize",
]

#: Where each public name lives, for __getattr__.
_HOME = {
    **dict.fromkeys(("backup", "list_projects"), ".api"),
    **dict.fromkeys(("BackupReport", "Note", "Progress", "summarize"), ".format.report"),
    "load_reports": ".format.reports",
    **dict.fromkeys(("FieldFilter", "RunFilter", "Selection", "Shard"), ".selection"),
    **dict.fromkeys(("LoadReport", "load_mlflow"), ".to_mlflow"),
    "load_wandb": ".to_wandb",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME.get(name, ".errors"), __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# A library prints nothing unless its user configures logging (an embedding service, or our CLI).
logging.getLogger(__name__).addHandler(logging.NullHandler())
