"""What is loaded of one object, kept in MLflow itself (pure; docs/MLFLOW.md "Resuming").

A run carries the tag ``neptune.load_status``: ``loading`` from before the first write of
a load until its last, then ``complete``, set together with ``neptune.loaded`` (the
backup's fingerprint) after ``neptune/loaded.json`` is uploaded. That file records, per
float series, how many points are in and a hash of those rows, and per field the sha256
of the files uploaded. So:

- ``complete`` and the same fingerprint: nothing to do;
- ``complete`` and another fingerprint: ``loaded.json`` is exact (nothing is written after
  it without first setting ``loading``), so only new points and changed files go in;
- ``loading``: a load stopped somewhere, perhaps between a ``log_batch`` and anything
  after it. The points in MLflow are then read back (``get_metric_history``) and compared
  with the backup's first rows; loading goes on from there. A batch is in whole or not
  at all in MLflow's SQL stores, and the points of one series are always sent in order,
  one batch after another, so what is in is always a prefix of each series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..format.manifest import Manifest
from .plan import FORMAT


@dataclass(frozen=True)
class SeriesState:
    key: str
    rows: int  # points of the series that are in MLflow
    prefix: str  # sha256 of the CSV's header and those rows
    steps: str  # the step rule (convert.step_rule)


@dataclass
class Loaded:
    fingerprint: str = ""
    series: dict[str, SeriesState] = field(default_factory=dict)
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> {file: sha256}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "series": {
                p: {"key": s.key, "rows": s.rows, "prefix_sha256": s.prefix, "steps": s.steps}
                for p, s in sorted(self.series.items())
            },
            "artifacts": {p: dict(sorted(f.items())) for p, f in sorted(self.artifacts.items())},
        }

    @classmethod
    def from_json(cls, doc: Any) -> Loaded:
        """What a complete load left; an empty state when the document is not one of ours."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return cls()
        try:
            series = {
                p: SeriesState(s["key"], int(s["rows"]), s["prefix_sha256"], s["steps"])
                for p, s in doc["series"].items()
            }
            artifacts = {p: dict(f) for p, f in doc["artifacts"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            return cls()
        return cls(str(doc.get("fingerprint", "")), series, artifacts)


def file_hashes(manifest: Manifest, path: str) -> dict[str, str]:
    """The sha256 of each file of a field, as its manifest records them."""
    record = manifest.fields[path]
    return {f: manifest.files[f].sha256 for f in record.files if f in manifest.files}
