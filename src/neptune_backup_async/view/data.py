"""Reading one run folder of a backup: its manifest, values, series, images and files."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..format import layout
from ..format.manifest import Manifest
from ..format.reader import read_saved

MONITORING = "monitoring/"


def natural_key(text: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sorts ``P0-2`` before ``P0-10``: runs of digits compare as numbers, the rest as text
    (the text itself breaks ties such as ``1`` and ``01``)."""
    parts = re.split(r"([0-9]+)", text)  # odd indexes hold the digits
    return tuple((0, int(p)) if i % 2 else (1, p) for i, p in enumerate(parts) if p), text


@dataclass
class FloatSeries:
    steps: list[float]
    values: list[float]
    times: list[str]  # as written in the CSV (ISO 8601); parsed only for the points drawn

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None


@dataclass
class Run:
    """One container folder (a run, or a model or model version) with everything the pages show."""

    rel: str  # "<ws>/<proj>/<RUN-ID>" as on disk, relative to the backup root
    folder: Path
    manifest: Manifest
    meta: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what verify says, one line each
    cache: dict[str, Any] = field(default_factory=dict)  # what the pages read once and share

    @property
    def sys_id(self) -> str:
        return self.manifest.sys_id

    def value(self, path: str) -> Any:
        return self.meta.get(path)

    def fields_of(self, *types: str) -> list[str]:
        return sorted(p for p, r in self.manifest.fields.items() if r.type in types and r.status == "ok")

    def field_file(self, path: str, suffix: str = "") -> str | None:
        """The file of a field that ends with ``suffix`` (the manifest names it; no guessing)."""
        record = self.manifest.fields.get(path)
        if record is None:
            return None
        for name in record.files:
            if name.endswith(suffix) and name != layout.SIMPLE_METADATA:
                return name
        return None

    def file_size(self, rel: str) -> int | None:
        written = self.manifest.files.get(rel)
        return written.size if written else None


def load_run(dest: Path, folder: Path, problems: list[str]) -> Run:
    """Raises ValueError when the folder has no manifest, or a damaged one (verify says which)."""
    manifest = read_saved(folder).manifest
    if manifest is None:
        raise ValueError(f"{folder} has no manifest that can be read")
    run = Run(folder.relative_to(dest).as_posix(), folder, manifest, problems=problems)
    try:
        meta = json.loads((folder / layout.SIMPLE_METADATA).read_text(encoding="utf-8"))
        run.meta = meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        run.meta = {}
    return run


def read_float_series(path: Path) -> FloatSeries:
    """``step,value,timestamp`` rows; unreadable rows are skipped (verify reports the damage)."""
    steps: list[float] = []
    values: list[float] = []
    times: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return FloatSeries(steps, values, times)
    lines = text.split("\n")
    for line in lines[1:]:
        parts = line.split(",")
        if len(parts) < 2:
            continue
        try:
            step, value = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        steps.append(step)
        values.append(value)
        times.append(parts[2] if len(parts) > 2 else "")
    return FloatSeries(steps, values, times)


def read_string_series(path: Path, limit: int) -> tuple[list[tuple[str, str]], int]:
    """The last ``limit`` (step, text) rows and the number of rows."""
    rows: list[tuple[str, str]] = []
    total = 0
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return rows, 0
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    for row in reader:
        if len(row) < 2:
            continue
        total += 1
        rows.append((row[0], row[1]))
        if len(rows) > 2 * limit:
            del rows[: len(rows) - limit]
    return rows[-limit:], total


def read_image_index(path: Path) -> list[dict[str, Any]]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def read_artifact(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def metric_files(run: Run) -> Iterator[tuple[str, str]]:
    """(field path, CSV file) of every float series that is a metric, not monitoring."""
    for path in run.fields_of("floatSeries"):
        if not path.startswith(MONITORING) and (rel := run.field_file(path, ".csv")) is not None:
            yield path, rel


def last_value(run: Run, rel: str) -> float | None:
    """The value of the last row of a float series CSV, read from the end of the file."""
    path = run.folder / rel
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.strip("\n").split("\n")):
        parts = line.split(",")
        if len(parts) >= 2 and parts[0] != "step":
            try:
                return float(parts[1])
            except ValueError:
                return None
    return None


def cached_series(run: Run, rel: str) -> FloatSeries:
    """A float series of the run, read once for its chart and its compare data."""
    cache = run.cache.setdefault("series", {})
    if rel not in cache:
        cache[rel] = read_float_series(run.folder / rel)
    series: FloatSeries = cache[rel]
    return series
