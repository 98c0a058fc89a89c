"""What a load into W&B did: the shared load report, in W&B's words."""

from __future__ import annotations

from typing import ClassVar

from ..loading import report

REPORT = "load-wandb-report.json"  # in DEST, beside backup-report.json


class LoadReport(report.LoadReport):
    SYSTEM: ClassVar[str] = "W&B"
    TARGET: ClassVar[str] = "target"  # "offline DIR", or the W&B server's URL
    PLACES: ClassVar[str] = "projects"  # W&B project -> entity/project
    WORDS: ClassVar[tuple[str, str, str]] = ("points", "config values", "file bytes")
