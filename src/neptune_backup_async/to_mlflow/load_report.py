"""What a load into MLflow did: the shared load report, in MLflow's words."""

from __future__ import annotations

from typing import ClassVar

from ..loading import report
from ..loading.report import LoadProgress

__all__ = ["REPORT", "LoadProgress", "LoadReport"]

REPORT = "load-mlflow-report.json"  # in DEST, beside backup-report.json


class LoadReport(report.LoadReport):
    SYSTEM: ClassVar[str] = "MLflow"
    TARGET: ClassVar[str] = "tracking_uri"
    PLACES: ClassVar[str] = "experiments"
    WORDS: ClassVar[tuple[str, str, str]] = ("metric points", "params", "artifact bytes")

    @property
    def experiments(self) -> dict[str, str]:
        """Experiment name -> id."""
        return self.places
