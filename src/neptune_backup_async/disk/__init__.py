"""Writing to the backup folder: temp-then-rename, fsync, and what an OSError means there."""
