"""What every loader of a backup into another tracker shares (``load-mlflow``, ``load-wandb``):
reading the backup through its manifests, checked before loaded; the load report; progress
bars, the log of the tracker's own client and the command's skeleton; injective names."""
