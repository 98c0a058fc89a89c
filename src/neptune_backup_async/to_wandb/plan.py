"""What one backed-up object becomes in W&B: the run's attributes, config, series and files (pure;
docs/WANDB.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..domain import SIMPLE_TYPES, FieldType
from ..format.manifest import FieldRecord, Manifest
from ..loading import files
from ..loading.files import Upload
from . import naming

FORMAT = 1  # of neptune/fields.json and neptune/loaded.json
MAPPING = "1"  # of this module and naming.py: part of every fingerprint
OWN = "neptune"  # the run files of ours, beside W&B's own (config.yaml, media/, ...)
FIELDS_JSON = f"{OWN}/fields.json"
LOADED_JSON = f"{OWN}/loaded.json"
METADATA_JSON = f"{OWN}/simple_metadata.json"
FILES = f"{OWN}/files"  # every field's files, under its key
JOB_TYPES = {"run": "run", "model": "model", "modelVersion": "model-version", "project": "project"}

_CONFIG = {t.value for t in SIMPLE_TYPES} | {FieldType.ARTIFACT.value}  # an artifact's hash too
_SERIES = {FieldType.FLOAT_SERIES.value: "float", FieldType.STRING_SERIES.value: "string"}
INDEX = "/index.json"  # of an image series, in the object folder


@dataclass(frozen=True)
class Series:
    path: str
    key: str
    csv: str  # in the object folder; of an image series, its index.json
    kind: str  # "float", "string" or "image"


@dataclass(frozen=True)
class Run:
    """The W&B run of one object, as it is opened."""

    id: str
    name: str
    notes: str
    tags: list[str]
    group: str | None
    job_type: str
    failed: bool  # Neptune's sys/failed: the run ends as W&B's "failed" (exit code 1)


@dataclass
class Plan:
    run: Run
    keys: dict[str, str]  # field path -> W&B key
    config: dict[str, Any]  # nested by the keys' segments
    series: list[Series]
    uploads: dict[str, list[Upload]]  # field path -> its files, targets relative to the run's files
    failed: dict[str, str] = field(default_factory=dict)  # field path -> why the backup failed it

    def fields_doc(self, manifest: Manifest) -> dict[str, Any]:
        """``neptune/fields.json``: every field, its Neptune type, and where it is in W&B."""
        out: dict[str, Any] = {}
        series = {s.path: s for s in self.series}
        for path, record in sorted(manifest.fields.items()):
            key = self.keys[path]
            entry: dict[str, Any] = {"type": record.type, "key": key, "status": record.status}
            if record.type in _CONFIG and path not in self.failed:
                entry["config"] = key.split("/")
            if path in series:
                entry["history"] = key
                entry["step_metric"] = naming.step_metric(key)
            if path in self.uploads:
                entry["files"] = [u.target for u in self.uploads[path]]
            out[path] = entry
        return {
            "format": FORMAT,
            "kind": manifest.kind,
            "project": manifest.project,
            "sys_id": manifest.sys_id,
            "model_id": manifest.model_id,
            "fields": out,
        }


def _ext(record: FieldRecord) -> str:
    ext = record.extra.get("ext")
    return naming.encode(ext).replace("/", "%2F") if isinstance(ext, str) and ext else ""


def _uploads(record: FieldRecord, key: str) -> list[Upload]:
    out = files.uploads(record, f"{FILES}/{key}", _ext(record))
    if record.type == FieldType.NOTEBOOK_REF.value and record.status == "ok":
        out += [Upload(f"{FILES}/{key}.ipynb", f) for f in record.files if f.endswith(".ipynb")]
    return out


def _roots(record: FieldRecord, key: str) -> list[str]:
    if record.type == FieldType.NOTEBOOK_REF.value:
        return [f"{key}.ipynb"]
    return files.roots(record, key, _ext(record))


def _nest(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split("/")
    where = config
    for segment in parents:
        inner = where.setdefault(segment, {})
        if not isinstance(inner, dict):
            raise ValueError(f"config key {key} is below the value of another field")
        where = inner
    if leaf in where:
        raise ValueError(f"config key {key} is also a namespace of other fields")
    where[leaf] = value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def build(manifest: Manifest, meta: dict[str, Any]) -> Plan:
    records = manifest.fields
    keys = naming.assign(records, lambda path, key: _roots(records[path], key))
    config: dict[str, Any] = {}
    series: list[Series] = []
    uploads: dict[str, list[Upload]] = {}
    failed: dict[str, str] = {}
    for path, record in sorted(records.items()):
        key = keys[path]
        if record.status != "ok":
            failed[path] = record.error or "failed"
            continue
        if record.type in _CONFIG:
            if path not in meta:
                failed[path] = "missing from simple_metadata.json"
                continue
            _nest(config, key, meta[path])  # as the backup holds it: NaN as "NaN", datetimes ISO 8601
        if record.type in _SERIES and record.files:
            series.append(Series(path, key, record.files[0], _SERIES[record.type]))
        index = [f for f in record.files if f.endswith(INDEX)]
        if record.type == FieldType.IMAGE_SERIES.value and index:
            series.append(Series(path, key, index[0], "image"))
        if found := _uploads(record, key):
            uploads[path] = found
    neptune_tags = meta.get("sys/tags")
    group_tags = meta.get("sys/group_tags")
    groups = sorted(t for t in group_tags if isinstance(t, str)) if isinstance(group_tags, list) else []
    name = _text(meta.get("sys/name")) or manifest.sys_id
    if manifest.kind == "project":  # not a run, though loaded as one: say what it holds
        name = f"project fields of {manifest.project}"
    run = Run(
        id=naming.run_id(manifest.project, manifest.sys_id),
        name=name,
        notes=_text(meta.get("sys/description")),
        tags=naming.tags(t for t in neptune_tags if isinstance(t, str))
        if isinstance(neptune_tags, list)
        else [],
        group=",".join(groups) or None,
        job_type=JOB_TYPES.get(manifest.kind, manifest.kind),
        failed=meta.get("sys/failed") is True,
    )
    return Plan(
        run=run,
        keys=keys,
        config=config,
        series=series,
        uploads=uploads,
        failed=failed,
    )
