"""A finished backup read as data: pandas or polars frames, and Parquet (docs/DATA.md).

Importing this package imports none of pyarrow, pandas or polars (the ``data`` extra): they
are imported when a table is built, and a missing one is named with the way to install it.
"""

from .backup import Backup, BackupDataWarning, Problem, open_backup
from .parquet import Exported, add_arguments, export_parquet, run

__all__ = [
    "Backup",
    "BackupDataWarning",
    "Exported",
    "Problem",
    "add_arguments",
    "export_parquet",
    "open_backup",
    "run",
]
