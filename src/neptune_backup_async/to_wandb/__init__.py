"""``neptune-backup load-wandb DEST``: load a backup into Weights & Biases (docs/WANDB.md).

Importing this package does not import ``wandb``, an optional extra: only ``client`` does,
when a load starts, so the command can say how to install it.
"""

from .command import add_arguments, run
from .load_report import LoadReport
from .loader import load_wandb

__all__ = ["LoadReport", "add_arguments", "load_wandb", "run"]
