"""What is loaded of one object, kept beside it in W&B: the run file ``neptune/loaded.json``
(pure; docs/WANDB.md "Resuming and loading again").

Each load of an object writes it whole, last, and it says everything in W&B so far: the
fingerprint of the backup loaded, the history rows written (the next row's ``_step``), per
series how many points are in and a hash of those points (step, value, time), per field the sha256 of its files,
and per top-level config key a hash of its value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..format.manifest import Manifest
from .plan import FORMAT, MAPPING


@dataclass(frozen=True)
class SeriesState:
    key: str
    rows: int  # points of the series in W&B
    prefix: str  # sha256 of those points, as parsed (loader._prefix)


@dataclass
class Loaded:
    fingerprint: str = ""
    step: int = 0  # history rows written: the next row's _step
    series: dict[str, SeriesState] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> {file: sha256}
    config: dict[str, str] = field(default_factory=dict)  # top-level config key -> sha256 of its JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "mapping": MAPPING,
            "fingerprint": self.fingerprint,
            "step": self.step,
            "series": {
                p: {"key": s.key, "rows": s.rows, "prefix_sha256": s.prefix}
                for p, s in sorted(self.series.items())
            },
            "files": {p: dict(sorted(f.items())) for p, f in sorted(self.files.items())},
            "config": dict(sorted(self.config.items())),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Loaded | None:
        """What an earlier load left; None when the document is not one of ours of this mapping."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("mapping") != MAPPING:
            return None
        try:
            series = {
                p: SeriesState(str(s["key"]), int(s["rows"]), str(s["prefix_sha256"]))
                for p, s in doc["series"].items()
            }
            files = {p: {str(k): str(v) for k, v in f.items()} for p, f in doc["files"].items()}
            config = {str(k): str(v) for k, v in doc["config"].items()}
            return cls(str(doc["fingerprint"]), int(doc["step"]), series, files, config)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def config_hashes(config: dict[str, Any]) -> dict[str, str]:
    return {
        k: hashlib.sha256(json.dumps(v, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
        for k, v in config.items()
    }


def file_hashes(manifest: Manifest, path: str) -> dict[str, str]:
    """The sha256 of each file of a field, as its manifest records them."""
    record = manifest.fields[path]
    return {f: manifest.files[f].sha256 for f in record.files if f in manifest.files}
