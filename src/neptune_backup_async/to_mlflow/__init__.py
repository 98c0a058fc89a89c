"""``neptune-backup load-mlflow DEST``: load a backup into MLflow (docs/MLFLOW.md).

Importing this package does not import ``mlflow``, an optional extra: only ``tracking``
does, when a load starts, so the command can say how to install it.
"""

from .command import add_arguments, run
from .load_report import LoadProgress, LoadReport
from .loader import load_mlflow

__all__ = ["LoadProgress", "LoadReport", "add_arguments", "load_mlflow", "run"]
