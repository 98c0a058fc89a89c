"""Neptune values as MLflow params, tags, run attributes and metric points (pure; docs/MLFLOW.md)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..domain import FieldType
from ..loading.series import Point

MAX_PARAM_VALUE = 6000  # MAX_PARAM_VAL_LENGTH of MLflow
MAX_TAG_VALUE = 8000  # MAX_TAG_VAL_LENGTH
MAX_METRICS = 1000  # per log_batch call: MAX_METRICS_PER_BATCH
MAX_PARAMS = 100  # MAX_PARAMS_TAGS_PER_BATCH, for params and for tags each
MAX_ENTITIES = 1000  # MAX_ENTITIES_PER_BATCH, all kinds together
MAX_BATCH_BYTES = 900_000  # below MAX_BATCH_LOG_REQUEST_SIZE (1 MB), leaving room for JSON framing
MAX_STEP = 2**63 - 1  # MLflow steps are int64

# Our tags. `neptune.id` is how a later load finds the run again; never its name.
ID = "neptune.id"
KIND = "neptune.kind"
PROJECT = "neptune.project"
MODEL = "neptune.model_id"
STATE = "neptune.state"
STATUS = "neptune.load_status"  # "loading" until everything of this backup is in, then "complete"
LOADED = "neptune.loaded"  # the fingerprint of the backup of the object that is loaded
LOADING, COMPLETE = "loading", "complete"
# The mapping of this file and plan.py: part of every fingerprint, and the tag MAPPING of every
# run. A run loaded with another mapping is loaded anew (MLflow cannot take a param or a
# metric away); 2: descriptive fields as tags, monitoring under system/, neptune.tag.*.
MAPPING, MAPPING_VERSION = "neptune.mapping", "2"
# MLflow's UI opens an experiment without this tag on its GenAI onboarding page ("Send your
# first trace"); "custom_model_development" is its ExperimentKind for model training.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)


def param_value(field_type: str, saved: Any) -> str:
    """A value from ``simple_metadata.json`` as MLflow param text: strings as they are,
    floats as their shortest round-trip form (``NaN``, ``Infinity``), the rest as JSON."""
    if isinstance(saved, str):
        return saved
    if (
        field_type == FieldType.FLOAT.value
        and isinstance(saved, (int, float))
        and not isinstance(saved, bool)
    ):
        return repr(float(saved))
    return json.dumps(saved, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def ms(text: str | None) -> int | None:
    """An ISO 8601 time of the backup as milliseconds since the epoch."""
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return (moment - EPOCH) // _MS


def cut_tag(value: str) -> str:
    """A tag value MLflow accepts; the full value is always a param (or its artifact) as well."""
    return value if len(value) <= MAX_TAG_VALUE else value[: MAX_TAG_VALUE - 1] + "…"


@dataclass(frozen=True)
class RunShape:
    """The run-level facts of one object: name, times, status and our tags."""

    name: str
    start_ms: int | None
    end_ms: int | None
    status: str  # an MLflow RunStatus name
    tags: dict[str, str]


def run_shape(
    kind: str, sys_id: str, project: str, model_id: str | None, meta: Mapping[str, Any]
) -> RunShape:
    name = meta.get("sys/name")
    tags = {ID: sys_id, KIND: kind, PROJECT: project, MAPPING: MAPPING_VERSION}
    if model_id:
        tags[MODEL] = model_id
    owner, description = meta.get("sys/owner"), meta.get("sys/description")
    if isinstance(owner, str) and owner:
        tags["mlflow.user"] = cut_tag(owner)
    if isinstance(description, str) and description:
        tags["mlflow.note.content"] = cut_tag(description)
    state = meta.get("sys/state")
    if isinstance(state, str):
        tags[STATE] = state
    if meta.get("sys/failed") is True:
        status = "FAILED"
    elif state == "running":
        status = "RUNNING"
    else:
        status = "FINISHED"
    end = ms(meta.get("sys/ping_time")) or ms(meta.get("sys/modification_time"))
    if kind == "project":  # not a run, though loaded as one: say what it holds
        name = f"project fields of {project}"
    return RunShape(
        name=name if isinstance(name, str) and name else sys_id,
        start_ms=ms(meta.get("sys/creation_time")),
        end_ms=None if status == "RUNNING" else end,
        status=status,
        tags=tags,
    )


def step_rule(points: Iterable[Point]) -> str:
    """``step`` when every step is a whole number MLflow can hold; else ``index``: the
    MLflow step of each point is its position in the series (0, 1, 2, ...)."""
    for p in points:
        if not (math.isfinite(p.step) and p.step.is_integer() and abs(p.step) <= MAX_STEP):
            return "index"
    return "step"


def mlflow_step(rule: str, point: Point, index: int) -> int:
    return index if rule == "index" else int(point.step)


def stored_value(value: float) -> float:
    """The value MLflow's SQL store keeps: infinities become the largest finite doubles."""
    if math.isinf(value):
        return math.copysign(1.7976931348623157e308, value)
    return value


def same_point(a: tuple[int, float, int], b: tuple[int, float, int]) -> bool:
    """(step, value, timestamp) equal, NaN equal to NaN."""
    return a[0] == b[0] and a[2] == b[2] and (a[1] == b[1] or (math.isnan(a[1]) and math.isnan(b[1])))


@dataclass
class Batch:
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, ms, step
    params: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0  # bytes, roughly as the REST API sends them

    @property
    def entities(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def fits(self, kind: str, size: int) -> bool:
        if self.entities >= MAX_ENTITIES or self.size + size > MAX_BATCH_BYTES:
            return False
        if kind == "metric":
            return len(self.metrics) < MAX_METRICS
        return len(self.params if kind == "param" else self.tags) < MAX_PARAMS


class Packer:
    """Packs entities, in order, into as few ``log_batch`` calls as MLflow's limits allow."""

    def __init__(self) -> None:
        self.batch = Batch()

    def add(self, kind: str, item: Any) -> Batch | None:
        """Add a ``metric``, ``param`` or ``tag``; returns the full batch to send first, if any."""
        size = len(item[0].encode("utf-8")) + (len(item[1].encode("utf-8")) if kind != "metric" else 40) + 40
        full = None
        if not self.batch.fits(kind, size):
            full, self.batch = self.batch, Batch()
        getattr(self.batch, kind + "s").append(item)
        self.batch.size += size
        return full

    def rest(self) -> Batch | None:
        """The last batch, if it holds anything."""
        out, self.batch = self.batch, Batch()
        return out if out.entities else None
