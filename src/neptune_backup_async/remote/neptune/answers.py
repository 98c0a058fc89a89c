"""Neptune's JSON answers as this package's plain values: pure functions, no I/O.

Each takes a decoded answer, and raises KeyError, TypeError or ValueError on one that is
not of the shape the API promises; the transport turns those into a
:class:`~..errors.MalformedAnswerError` (``Transport.json``), the one place they are caught.
"""

from __future__ import annotations

import logging
import operator
from typing import Any

from ... import domain
from ...domain import (
    ArtifactFileInfo,
    FieldInfo,
    FieldType,
    ImageInfo,
    ListingPage,
    ObjectRef,
    ProjectInfo,
    SeriesPage,
)

log = logging.getLogger("neptune_backup_async")
SERIES_CONFIG = ("min", "max", "unit")  # a float series' own properties (FloatSeriesAttributeConfigDTO)
_POINT = operator.itemgetter("step", "value", "timestampMillis")  # a series point as a tuple, in C


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _props(raw: dict[str, Any]) -> dict[str, Any]:
    """A ref's properties in snake_case, datetimes normalised, the DTO's own bookkeeping dropped."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("attributeName", "attributeType"):
            continue
        if isinstance(value, dict):
            value = _props(value)
        elif isinstance(value, str) and key in ("commitDate", "checkpointCreated"):
            value = domain.parse_iso(value)
        out[_snake(key)] = value
    return out


def field_from_dto(attr: dict[str, Any]) -> FieldInfo | None:
    """One entry of ``getExperimentAttributes`` as a :class:`FieldInfo`; None for a type we don't know."""
    try:
        kind = FieldType(attr["type"])
    except ValueError:
        return None
    path = attr["name"]
    props = attr.get(f"{attr['type']}Properties") or {}
    if kind in (FieldType.FLOAT, FieldType.INT, FieldType.BOOL, FieldType.STRING, FieldType.STATE):
        return FieldInfo(path, kind, props.get("value"))
    if kind is FieldType.DATETIME:
        raw = props.get("value")
        return FieldInfo(path, kind, domain.parse_iso(raw) if raw else None)
    if kind is FieldType.STRING_SET:
        return FieldInfo(path, kind, tuple(sorted(props.get("values") or ())))
    if kind in (FieldType.GIT_REF, FieldType.NOTEBOOK_REF):
        return FieldInfo(path, kind, _props(props))
    if kind is FieldType.IMAGE_SERIES:  # no last value; its id as a channel, to read the images' metadata
        return FieldInfo(path, kind, props.get("channelId"), last_step=props.get("lastStep"))
    if kind in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES):
        config = props.get("config") if kind is FieldType.FLOAT_SERIES else None
        kept = (
            {k: config[k] for k in SERIES_CONFIG if config.get(k) is not None}
            if isinstance(config, dict)
            else {}
        )
        return FieldInfo(path, kind, props.get("last"), last_step=props.get("lastStep"), config=kept or None)
    if kind is FieldType.FILE:
        return FieldInfo(path, kind, props.get("name"), ext=props.get("ext"), size=props.get("size"))
    if kind is FieldType.FILE_SET:
        return FieldInfo(path, kind, size=props.get("size"))
    return FieldInfo(path, kind, props.get("hash"))  # artifact


def fields(answer: dict[str, Any], sys_id: str) -> list[FieldInfo]:
    """The fields of ``getExperimentAttributes``; a type this version does not know is logged and left out."""
    out = []
    for attr in answer["attributes"]:
        info = field_from_dto(attr)
        if info is None:
            log.warning(
                "%s: field %s has a type this version does not know: %s", sys_id, attr["name"], attr["type"]
            )
            continue
        out.append(info)
    return out


def project(answer: dict[str, Any]) -> ProjectInfo:
    return ProjectInfo(
        workspace=answer["organizationName"], name=answer["name"], id=answer["id"], key=answer["projectKey"]
    )


def project_names(answer: dict[str, Any]) -> ListingPage[str]:
    names = [f"{p['organizationName']}/{p['name']}" for p in answer["entries"]]
    return ListingPage(names, int(answer["matchingItemCount"]))


def object_ref(entry: dict[str, Any], kind: str) -> tuple[ObjectRef, str | None]:
    """A runs-table entry: the object, and its creation time as the server wrote it."""
    attrs = {a["name"]: a for a in entry.get("attributes", [])}

    def value(name: str) -> Any:
        attr = attrs.get(name)
        return (attr.get(f"{attr['type']}Properties") or {}).get("value") if attr else None

    modified = value("sys/modification_time")
    ref = ObjectRef(
        sys_id=value("sys/id"),
        id=entry["experimentId"],
        modification_time=domain.parse_iso(modified) if modified else None,
        kind=kind,
        model_id=value("sys/model_id") if kind == "modelVersion" else None,
    )
    if not isinstance(ref.sys_id, str) or (kind == "modelVersion" and not isinstance(ref.model_id, str)):
        raise ValueError("an entry without sys/id" if not isinstance(ref.sys_id, str) else "no sys/model_id")
    return ref, value("sys/creation_time")


def object_refs(answer: dict[str, Any], kind: str) -> ListingPage[tuple[ObjectRef, str | None]]:
    return ListingPage(
        [object_ref(entry, kind) for entry in answer["entries"]], int(answer["matchingItemCount"])
    )


def series_page(answer: dict[str, Any]) -> SeriesPage:
    # Tuples, built in C, take a third of the memory of the decoded point objects.
    return SeriesPage(int(answer["totalItemCount"]), list(map(_POINT, answer["values"])))


def image_page(answer: dict[str, Any], offset: int) -> ListingPage[ImageInfo]:
    """A page of an image series read as a channel: each image's step (``x``), time, name and
    description, as far as the answer gives them."""
    images = []
    for i, point in enumerate(answer["values"]):
        image = (point.get("y") or {}).get("imageValue") or {}
        images.append(
            ImageInfo(
                index=offset + i,
                step=point.get("x"),
                timestamp_ms=point.get("timestampMillis"),
                name=image.get("name"),
                description=image.get("description"),
            )
        )
    return ListingPage(images, int(answer["totalItemCount"]))


def artifact_files(answer: dict[str, Any]) -> list[ArtifactFileInfo]:
    return [
        ArtifactFileInfo(
            path=f["filePath"],
            hash=f["fileHash"],
            type=f["type"],
            size=f.get("size"),
            metadata={str(m["key"]): str(m["value"]) for m in f.get("metadata") or ()},
        )
        for f in answer["files"]
    ]


def size(answer: dict[str, Any]) -> int:
    """The ``size`` of an answer (a notebook checkpoint's): a count of bytes."""
    value = answer["size"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"size is {value!r}, not a count of bytes")
    return value
