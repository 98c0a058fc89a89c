"""The adapter over the ``neptune`` client: the only package that imports ``neptune``."""
