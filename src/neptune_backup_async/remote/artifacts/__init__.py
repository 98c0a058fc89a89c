"""The files an artifact points to, read from local paths or S3."""
