"""What one backed-up object becomes in MLflow: keys, params, tags, metrics and artifacts (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..domain import SIMPLE_TYPES, FieldType
from ..format.manifest import FieldRecord, Manifest
from ..loading import files
from ..loading.files import Upload
from . import convert, naming

FORMAT = 1  # of neptune/fields.json and neptune/loaded.json
VALUES_FOLDER = f"{naming.OWN_FOLDER}/values"  # params too long for MLflow, in full
FIELDS_JSON = f"{naming.OWN_FOLDER}/fields.json"
LOADED_JSON = f"{naming.OWN_FOLDER}/loaded.json"
METADATA_JSON = f"{naming.OWN_FOLDER}/simple_metadata.json"
MODELS_SUFFIX = "/models"
PROJECT_SUFFIX = "/project-fields"

_SIMPLE = {t.value for t in SIMPLE_TYPES}
SYS = "sys/"  # Neptune's own fields: MLflow tags, which a later load may change
_DESCRIPTIVE = (FieldType.GIT_REF.value, FieldType.ARTIFACT.value)
_SERIES = (FieldType.FLOAT_SERIES.value, FieldType.STRING_SERIES.value)


def experiment_name(prefix: str, manifest: Manifest) -> str:
    """The experiment of the object's run. The project's own fields get one of their own, out
    of the comparisons of its runs; their single values are tags of the runs' experiment too."""
    kind = manifest.kind
    suffix = (
        MODELS_SUFFIX if kind in ("model", "modelVersion") else PROJECT_SUFFIX if kind == "project" else ""
    )
    return prefix + manifest.project + suffix


@dataclass
class Plan:
    keys: dict[str, str]  # field path -> MLflow key
    params: dict[str, str]  # key -> value
    long_values: dict[str, str]  # artifact path -> the full text of a param too long for MLflow
    tags: dict[str, str]
    series: dict[str, str]  # float series field path -> its CSV in the object folder
    uploads: dict[str, list[Upload]]  # field path -> its artifacts
    shape: convert.RunShape
    failed: dict[str, str] = field(default_factory=dict)  # field path -> why the backup failed it

    def values(self) -> dict[str, str]:
        """The object's single values by key, params and tags alike (our own tags left out)."""
        return {k: v for k, v in {**self.params, **self.tags}.items() if k in self.keys.values()}

    def fields_doc(self, manifest: Manifest, steps: dict[str, str]) -> dict[str, Any]:
        """``neptune/fields.json``: every field, its Neptune type, and where it is in MLflow."""
        out: dict[str, Any] = {}
        for path, record in sorted(manifest.fields.items()):
            key = self.keys[path]
            entry: dict[str, Any] = {"type": record.type, "key": key, "status": record.status}
            if key in self.params:
                entry["param"] = key
            if key in self.tags:
                entry["tag"] = key
            if path in self.series:
                entry["metric"] = key
                entry["steps"] = steps.get(path, "step")
            targets = [u.target for u in self.uploads.get(path, [])]
            targets += [t for t in self.long_values if t == f"{VALUES_FOLDER}/{key}.txt"]
            if targets:
                entry["artifacts"] = targets
            out[path] = entry
        return {
            "format": FORMAT,
            "kind": manifest.kind,
            "project": manifest.project,
            "sys_id": manifest.sys_id,
            "fields": out,
        }


def _ext(record: FieldRecord) -> str:
    ext = record.extra.get("ext")
    return naming.clean(ext).replace("/", "_") if isinstance(ext, str) and ext else ""


def artifact_roots(record: FieldRecord, key: str) -> list[str]:
    """The artifact paths a field takes under ``key``: files, or folders that hold its files."""
    return files.roots(record, key, _ext(record))


def _uploads(record: FieldRecord, key: str) -> list[Upload]:
    return files.uploads(record, key, _ext(record))


def is_descriptive(path: str, field_type: str) -> bool:
    """A tag, not a param: Neptune's own fields (it updates them as a run goes on, and MLflow's
    params cannot change), what monitoring records (the hostname), git info and artifact hashes:
    they describe the run, they are not its inputs."""
    return path.startswith((SYS, naming.MONITORING)) or field_type in _DESCRIPTIVE


def long_value_path(key: str) -> str:
    return f"{VALUES_FOLDER}/{key}.txt"


def build(manifest: Manifest, meta: dict[str, Any]) -> Plan:
    records = manifest.fields
    keys = naming.assign(records, lambda path, key: artifact_roots(records[path], key))
    params: dict[str, str] = {}
    long_values: dict[str, str] = {}
    tags: dict[str, str] = {}
    series: dict[str, str] = {}
    uploads: dict[str, list[Upload]] = {}
    failed: dict[str, str] = {}
    for path, record in records.items():
        key = keys[path]
        if record.status != "ok":
            failed[path] = record.error or "failed"
            continue
        if record.type in _SIMPLE or record.type == FieldType.ARTIFACT.value:
            if path not in meta:
                failed[path] = "missing from simple_metadata.json"
                continue
            value = convert.param_value(record.type, meta[path])
            descriptive = is_descriptive(path, record.type)
            limit = convert.MAX_TAG_VALUE if descriptive else convert.MAX_PARAM_VALUE
            if len(value) > limit:
                target = long_value_path(key)
                long_values[target] = value
                value = f"{value[:200]}… ({len(value)} characters; in full: artifact {target})"
            if not descriptive:
                params[key] = value
            if descriptive or record.type == FieldType.STRING_SET.value:
                tags[key] = value
        if record.type == FieldType.FLOAT_SERIES.value and record.files:
            series[path] = record.files[0]
        if found := _uploads(record, key):
            uploads[path] = found
    neptune_tags = meta.get("sys/tags")
    if isinstance(neptune_tags, list):
        tags.update(
            dict.fromkeys(naming.tag_keys(t for t in neptune_tags if isinstance(t, str)).values(), "true")
        )
    shape = convert.run_shape(manifest.kind, manifest.sys_id, manifest.project, manifest.model_id, meta)
    return Plan(keys, params, long_values, {**tags, **shape.tags}, series, uploads, shape, failed)
