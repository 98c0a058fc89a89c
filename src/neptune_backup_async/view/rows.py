"""The data of one run for its project page: its runs-table row and its compare-view series."""

from __future__ import annotations

from typing import Any

from .charts import drawn_points
from .data import Run, cached_series, last_value, metric_files
from .escape import json_text
from .parts import SCALAR_TYPES, status_of

COMPARE_POINTS = 500  # per run and metric in the compare view


def table_row(run: Run, key: str) -> dict[str, Any]:
    """What the project page shows of the run: its facts, parameters and last metric values."""
    meta = run.meta
    params = {
        path: meta[path]
        for path in run.fields_of(*SCALAR_TYPES)
        if path.startswith("parameters/") and path in meta
    }
    metrics: dict[str, Any] = {}
    for path, rel in metric_files(run):
        last = last_value(run, rel)
        if last is not None:
            metrics[path] = last
    return {
        "id": run.sys_id,
        "kind": run.manifest.kind,
        "name": meta.get("sys/name"),
        "state": meta.get("sys/state"),
        "owner": meta.get("sys/owner"),
        "tags": meta.get("sys/tags") or [],
        "created": meta.get("sys/creation_time"),
        "status": status_of(run),
        "problems": len(run.problems),
        "key": key,
        "p": params,
        "m": metrics,
    }


def compare_data(run: Run, key: str) -> str:
    """A script that registers the float series of a run, downsampled, for the compare view."""
    series = [
        f"{json_text(path)}:{drawn_points(cached_series(run, rel), COMPARE_POINTS).data}"
        for path, rel in metric_files(run)
    ]
    body = "{" + ",".join(series) + "}"
    return f"window.NBV_SERIES=window.NBV_SERIES||{{}};window.NBV_SERIES[{json_text(key)}]={body};\n"
