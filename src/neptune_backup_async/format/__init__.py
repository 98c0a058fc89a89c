"""The on-disk format (docs/FORMAT.md), read and written here and nowhere else."""
