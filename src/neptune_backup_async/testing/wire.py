"""Model values rendered as the JSON DTOs of Neptune's leaderboard API.

Neptune keeps datetimes to the millisecond, so they are rendered (and compared, see
``nql``) truncated to milliseconds, with a ``Z`` suffix like the real server.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from .model import (
    Artifact,
    Bool,
    Container,
    Datetime,
    File,
    FileSet,
    Float,
    FloatSeries,
    GitRef,
    ImageSeries,
    Int,
    NotebookRef,
    Project,
    State,
    String,
    StringSeries,
    StringSet,
    Value,
)

Json = dict[str, Any]
UTC = dt.timezone.utc


def epoch_ms(moment: dt.datetime) -> int:
    """Milliseconds since the epoch: the precision Neptune stores."""
    delta = moment.astimezone(UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso(moment: dt.datetime) -> str:
    ms = epoch_ms(moment)
    whole = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)
    return whole.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def channel_id(container: str, path: str) -> str:
    """The id of a container's image series as a channel: the same on every call."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{container}/{path}"))


def properties(path: str, value: Value, owner: str) -> Json:
    """The ``<type>Properties`` object of one attribute (also the single getters' answer) of
    the container whose uuid is ``owner``."""
    out: Json = {"attributeName": path, "attributeType": value.TYPE}
    if isinstance(value, Float | Int | Bool | String):
        out["value"] = value.value
    elif isinstance(value, Datetime):
        out["value"] = iso(value.value)
    elif isinstance(value, State):
        out["value"] = value.value
    elif isinstance(value, StringSet):
        out["values"] = sorted(value.values)
    elif isinstance(value, FloatSeries | StringSeries):
        if isinstance(value, FloatSeries):
            config = {"min": value.min, "max": value.max, "unit": value.unit}
            out["config"] = {k: v for k, v in config.items() if v is not None}  # a chart's range and unit
        if value.points:
            out["last"] = value.points[-1].value
            out["lastStep"] = value.points[-1].step
    elif isinstance(value, ImageSeries):
        out["channelId"] = channel_id(owner, path)
        if value.images:
            out["lastStep"] = value.images[-1].step
    elif isinstance(value, File):
        out.update(name=value.name, ext=value.ext, size=len(value.data))
    elif isinstance(value, FileSet):
        out["size"] = sum(len(data) for _, data in value.files)
    elif isinstance(value, Artifact):
        out["hash"] = value.hash
    elif isinstance(value, GitRef):
        out.update(_git_ref(value))
    elif isinstance(value, NotebookRef):
        out.update(
            notebookId=value.notebook_id,
            notebookName=value.notebook_name,
            checkpointId=value.checkpoint_id,
            checkpointName=value.checkpoint_name,
            notebookDeleted=False,
            checkpointDeleted=False,
        )
    return out


def _git_ref(value: GitRef) -> Json:
    out: Json = {
        "commit": {
            "commitId": value.commit_id,
            "message": value.message,
            "authorName": value.author_name,
            "authorEmail": value.author_email,
            "commitDate": iso(value.commit_date),
        },
        "repositoryDirty": value.dirty,
        "remotes": list(value.remotes),
    }
    if value.branch is not None:
        out["currentBranch"] = value.branch
    return out


def attribute(path: str, value: Value, owner: str) -> Json:
    return {"name": path, "type": value.TYPE, f"{value.TYPE}Properties": properties(path, value, owner)}


def attributes(fields: dict[str, Value], owner: str) -> list[Json]:
    return [attribute(path, value, owner) for path, value in sorted(fields.items())]


# The system attributes every container has, by their place in ``systemAttributes``, with
# what a container without one of them answers.
_SYSTEM: dict[str, tuple[str, Value]] = {
    "creationTime": ("sys/creation_time", Datetime(dt.datetime(2024, 1, 1, tzinfo=UTC))),
    "description": ("sys/description", String("")),
    "failed": ("sys/failed", Bool(False)),
    "modificationTime": ("sys/modification_time", Datetime(dt.datetime(2024, 1, 1, tzinfo=UTC))),
    "monitoringTime": ("sys/monitoring_time", Int(0)),
    "name": ("sys/name", String("")),
    "pingTime": ("sys/ping_time", Datetime(dt.datetime(2024, 1, 1, tzinfo=UTC))),
    "runningTime": ("sys/running_time", Float(0.0)),
    "shortId": ("sys/id", String("")),
    "size": ("sys/size", Float(0.0)),
    "state": ("sys/state", State("idle")),
    "tags": ("sys/tags", StringSet(frozenset())),
    "trashed": ("sys/trashed", Bool(False)),
}


def system_attributes(container: Container, fields: dict[str, Value]) -> Json:
    out = {}
    for name, (path, default) in _SYSTEM.items():
        value = fields.get(path, default)
        if name == "shortId":
            value = String(container.sys_id)
        elif name == "trashed":
            value = Bool(container.trashed)
        out[name] = properties(path, value, container.uuid)
    return out


def _owner(project: Project) -> Json:
    return {
        "organizationId": project.workspace_uuid,
        "organizationName": project.workspace,
        "projectId": project.uuid,
        "projectName": project.name,
    }


def experiment(project: Project, container: Container, parent_id: str) -> Json:
    return {
        "id": container.uuid,
        "shortId": container.sys_id,
        "type": container.kind,
        "parentId": parent_id,
        "trashed": container.trashed,
        **_owner(project),
    }


def experiment_attributes(project: Project, container: Container, fields: dict[str, Value]) -> Json:
    return {
        "id": container.uuid,
        "trashed": container.trashed,
        "attributes": attributes(fields, container.uuid),
        "systemAttributes": system_attributes(container, fields),
        **_owner(project),
    }


def leaderboard_entry(project: Project, container: Container, fields: dict[str, Value]) -> Json:
    return {
        "experimentId": container.uuid,
        "type": container.kind,
        "attributes": attributes(fields, container.uuid),
        **_owner(project),
    }


def project_dto(project: Project) -> Json:
    return {
        "id": project.uuid,
        "name": project.name,
        "projectKey": project.key,
        "organizationId": project.workspace_uuid,
        "organizationName": project.workspace,
        "version": 2,
    }


def project_with_role(project: Project, created: str) -> Json:
    return {
        **project_dto(project),
        "visibility": "priv",
        "timeOfCreation": created,
        "lastActivity": created,
        "userCount": 1,
        "organizationType": "team",
        "featured": False,
        "codeAccess": "default",
        "userRoleInProject": "manager",
        "avatarUrl": "",
        "avatarSource": "default",
        "archived": False,
    }


def organization(project: Project, created: str) -> Json:
    """A workspace, as ``listOrganizations`` lists it (``OrganizationWithRoleDTO``)."""
    plan = "v3_team"
    own = {
        "id": project.workspace_uuid,
        "name": project.workspace,
        "created": created,
        "paymentStatus": "paid",
        "avatarUrl": "",
        "avatarSource": "default",
        "organizationType": "team",
        "limitsEnforced": False,
        "pricingPlan": plan,
    }
    details = {
        "pricingPlanDefinition": {"plan": plan, "displayName": "Team"},
        "supportsMonitoringHoursLimits": False,
        "traits": {},
        "userflowIdentityHash": "",
    }
    return {**own, "organization": {**own, **details}, "userRole": "owner"}
