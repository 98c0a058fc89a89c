"""Our own swagger 2.0 specs: only the operations the fake server implements.

Names, parameters and shapes follow Neptune's published specs. bravado needs every
parameter that the client passes declared, every optional property that it reads
declared, responses as ``$ref`` models, and no ``host`` (that would redirect the client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

STRING: Json = {"type": "string"}
BOOL: Json = {"type": "boolean"}
INT: Json = {"type": "integer", "format": "int64"}
DOUBLE: Json = {"type": "number", "format": "double"}
DATETIME: Json = {"type": "string", "format": "date-time"}
UUID: Json = {"type": "string", "format": "uuid"}


@dataclass(frozen=True)
class Operation:
    api: str  # "backend", "leaderboard" or "artifacts"
    operation_id: str
    method: str
    path: str
    parameters: tuple[Json, ...]
    response: Json
    produces: str = "application/json"


def ref(name: str) -> Json:
    return {"$ref": f"#/definitions/{name}"}


def array(items: Json) -> Json:
    return {"type": "array", "items": items}


def model(required: tuple[str, ...] = (), **props: Json) -> Json:
    out: Json = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def query(name: str, schema: Json = STRING, *, required: bool = False) -> Json:
    return {"in": "query", "name": name, "required": required, **schema}


def query_array(name: str) -> Json:
    return {"in": "query", "name": name, "required": False, **array(STRING), "collectionFormat": "multi"}


def header(name: str) -> Json:
    return {"in": "header", "name": name, "required": True, **STRING}


def body(schema: str) -> Json:
    return {"in": "body", "name": "params", "required": True, "schema": ref(schema)}


HOLDER = (
    query("experimentId"),
    query("holderIdentifier"),
    query("holderType"),
    query("attribute", required=True),
)
PAGED = (*HOLDER, query("offset", INT), query("limit", INT))
CHECKPOINT_ID: Json = {"in": "path", "name": "id", "required": True, **UUID}


def _attribute_dto(**props: Json) -> Json:
    return model(("attributeName", "attributeType"), attributeName=STRING, attributeType=STRING, **props)


BACKEND_DEFINITIONS: dict[str, Json] = {
    "Error": model(("code", "message"), code=INT, message=STRING, errorType=STRING, title=STRING),
    "ClientVersionsConfigDTO": model(
        minRecommendedVersion=STRING, minCompatibleVersion=STRING, maxCompatibleVersion=STRING
    ),
    "ArtifactsConfigDTO": model(("enabled",), enabled=BOOL),
    "ClientConfig": model(
        ("apiUrl", "applicationUrl", "pyLibVersions"),
        apiUrl=STRING,
        applicationUrl=STRING,
        pyLibVersions=ref("ClientVersionsConfigDTO"),
        artifacts=ref("ArtifactsConfigDTO"),
    ),
    "NeptuneOauthToken": model(
        ("accessToken", "refreshToken", "username"), accessToken=STRING, refreshToken=STRING, username=STRING
    ),
    "ProjectDTO": model(
        ("id", "organizationId", "organizationName", "projectKey", "name", "version"),
        id=STRING,
        name=STRING,
        projectKey=STRING,
        organizationId=STRING,
        organizationName=STRING,
        version=INT,
    ),
    "ProjectWithRoleDTO": model(
        ("id", "organizationId", "organizationName", "projectKey", "name", "version"),
        id=STRING,
        name=STRING,
        projectKey=STRING,
        organizationId=STRING,
        organizationName=STRING,
        version=INT,
        visibility=STRING,
        timeOfCreation=DATETIME,
        lastActivity=DATETIME,
        userCount=INT,
        organizationType=STRING,
        featured=BOOL,
        codeAccess=STRING,
        userRoleInProject=STRING,
        avatarUrl=STRING,
        avatarSource=STRING,
        archived=BOOL,
        description=STRING,
    ),
    "ProjectListDTO": model(
        ("entries", "matchingItemCount", "totalItemCount"),
        entries=array(ref("ProjectWithRoleDTO")),
        matchingItemCount=INT,
        totalItemCount=INT,
    ),
    "OrganizationWithRoleDTO": model(
        ("id", "name", "created", "organizationType", "userRole"),
        id=STRING,
        name=STRING,
        organizationType=STRING,
        userRole=STRING,
        created=DATETIME,
        paymentStatus=STRING,
        avatarUrl=STRING,
        avatarSource=STRING,
        limitsEnforced=BOOL,
        pricingPlan=STRING,
        organization={"type": "object"},
    ),
}

BACKEND_OPERATIONS = (
    Operation(
        "backend",
        "getClientConfig",
        "get",
        "/api/backend/v1/clients/config",
        (header("X-Neptune-Api-Token"), query("alpha")),
        ref("ClientConfig"),
    ),
    Operation(
        "backend",
        "exchangeApiToken",
        "get",
        "/api/backend/v1/authorization/oauth-token",
        (header("X-Neptune-Api-Token"),),
        ref("NeptuneOauthToken"),
    ),
    Operation(
        "backend",
        "listProjects",
        "get",
        "/api/backend/v1/projects",
        (
            query("organizationIdentifier"),
            query("userRelation"),
            query("searchTerm"),
            query_array("sortBy"),
            query_array("sortDirection"),
            query("offset", INT),
            query("limit", INT),
        ),
        ref("ProjectListDTO"),
    ),
    Operation(
        "backend",
        "getProject",
        "get",
        "/api/backend/v1/projects/get",
        (query("projectIdentifier", required=True),),
        ref("ProjectDTO"),
    ),
    Operation(
        "backend",
        "listOrganizations",
        "get",
        "/api/backend/v1/myOrganizations",
        (),
        array(ref("OrganizationWithRoleDTO")),
    ),
)

LEADERBOARD_DEFINITIONS: dict[str, Json] = {
    "Error": BACKEND_DEFINITIONS["Error"],
    "Experiment": model(
        ("id", "organizationId", "organizationName", "parentId", "projectId", "projectName", "shortId"),
        id=STRING,
        shortId=STRING,
        type=STRING,
        parentId=STRING,
        trashed=BOOL,
        organizationId=STRING,
        organizationName=STRING,
        projectId=STRING,
        projectName=STRING,
    ),
    "FloatAttributeDTO": _attribute_dto(value=DOUBLE),
    "IntAttributeDTO": _attribute_dto(value=INT),
    "BoolAttributeDTO": _attribute_dto(value=BOOL),
    "StringAttributeDTO": _attribute_dto(value=STRING),
    "DatetimeAttributeDTO": _attribute_dto(value=DATETIME),
    "ExperimentStateAttributeDTO": _attribute_dto(value=STRING),
    "StringSetAttributeDTO": _attribute_dto(values=array(STRING)),
    "FloatSeriesAttributeConfigDTO": model(min=DOUBLE, max=DOUBLE, unit=STRING),
    "FloatSeriesAttributeDTO": _attribute_dto(
        config=ref("FloatSeriesAttributeConfigDTO"), last=DOUBLE, lastStep=DOUBLE
    ),
    "StringSeriesAttributeDTO": _attribute_dto(last=STRING, lastStep=DOUBLE),
    "ImageSeriesAttributeDTO": _attribute_dto(channelId=STRING, lastStep=DOUBLE),
    "FileAttributeDTO": _attribute_dto(name=STRING, ext=STRING, size=INT),
    "FileSetAttributeDTO": _attribute_dto(size=INT),
    "ArtifactAttributeDTO": _attribute_dto(hash=STRING),
    "GitCommitDTO": model(
        ("commitId",),
        commitId=STRING,
        message=STRING,
        authorName=STRING,
        authorEmail=STRING,
        commitDate=DATETIME,
    ),
    "GitInfoDTO": _attribute_dto(
        commit=ref("GitCommitDTO"), currentBranch=STRING, repositoryDirty=BOOL, remotes=array(STRING)
    ),
    "NotebookRefAttributeDTO": _attribute_dto(
        notebookId=STRING,
        notebookName=STRING,
        checkpointId=STRING,
        checkpointName=STRING,
        notebookDeleted=BOOL,
        checkpointDeleted=BOOL,
    ),
    "AttributeDTO": model(
        ("name", "type"),
        name=STRING,
        type=STRING,
        floatProperties=ref("FloatAttributeDTO"),
        intProperties=ref("IntAttributeDTO"),
        boolProperties=ref("BoolAttributeDTO"),
        stringProperties=ref("StringAttributeDTO"),
        datetimeProperties=ref("DatetimeAttributeDTO"),
        experimentStateProperties=ref("ExperimentStateAttributeDTO"),
        stringSetProperties=ref("StringSetAttributeDTO"),
        floatSeriesProperties=ref("FloatSeriesAttributeDTO"),
        stringSeriesProperties=ref("StringSeriesAttributeDTO"),
        imageSeriesProperties=ref("ImageSeriesAttributeDTO"),
        fileProperties=ref("FileAttributeDTO"),
        fileSetProperties=ref("FileSetAttributeDTO"),
        artifactProperties=ref("ArtifactAttributeDTO"),
        gitRefProperties=ref("GitInfoDTO"),
        notebookRefProperties=ref("NotebookRefAttributeDTO"),
    ),
    "SystemAttributesDTO": model(
        creationTime=ref("DatetimeAttributeDTO"),
        description=ref("StringAttributeDTO"),
        failed=ref("BoolAttributeDTO"),
        modificationTime=ref("DatetimeAttributeDTO"),
        monitoringTime=ref("IntAttributeDTO"),
        name=ref("StringAttributeDTO"),
        pingTime=ref("DatetimeAttributeDTO"),
        runningTime=ref("FloatAttributeDTO"),
        shortId=ref("StringAttributeDTO"),
        size=ref("FloatAttributeDTO"),
        state=ref("ExperimentStateAttributeDTO"),
        tags=ref("StringSetAttributeDTO"),
        trashed=ref("BoolAttributeDTO"),
    ),
    "ExperimentAttributesDTO": model(
        ("id", "attributes", "systemAttributes"),
        id=STRING,
        trashed=BOOL,
        systemAttributes=ref("SystemAttributesDTO"),
        organizationId=STRING,
        organizationName=STRING,
        projectId=STRING,
        projectName=STRING,
        attributes=array(ref("AttributeDTO")),
    ),
    "AttributesDTO": model(
        ("experimentId", "attributes"),
        experimentId=STRING,
        type=STRING,
        organizationId=STRING,
        organizationName=STRING,
        projectId=STRING,
        projectName=STRING,
        attributes=array(ref("AttributeDTO")),
    ),
    "LeaderboardEntriesSearchResultDTO": model(
        ("entries", "matchingItemCount"), entries=array(ref("AttributesDTO")), matchingItemCount=INT
    ),
    "AttributeDefinitionDTO": model(("name", "type"), name=STRING, type=STRING),
    "AttributesSearchResultDTO": model(("entries",), entries=array(ref("AttributeDefinitionDTO"))),
    "NqlQueryParamsDTO": model(("query",), query=STRING),
    "SearchLeaderboardParamsDTO": model(query=ref("NqlQueryParamsDTO")),
    "QueryLeaderboardParamsFieldDTO": model(
        ("name", "type"), name=STRING, type=STRING, aggregationMode=STRING
    ),
    "QueryLeaderboardParamsSortingParamsDTO": model(
        ("sortBy",), dir=STRING, sortBy=ref("QueryLeaderboardParamsFieldDTO"), aggregationMode=STRING
    ),
    "QueryLeaderboardParamsPaginationDTO": model(limit=INT, offset=INT),
    "QueryLeaderboardParamsAttributeFilterDTO": model(("path",), path=STRING),
    "SearchLeaderboardEntriesParamsDTO": model(
        attributeFilters=array(ref("QueryLeaderboardParamsAttributeFilterDTO")),
        pagination=ref("QueryLeaderboardParamsPaginationDTO"),
        query=ref("NqlQueryParamsDTO"),
        sorting=ref("QueryLeaderboardParamsSortingParamsDTO"),
    ),
    "FloatPointValueDTO": model(
        ("step", "timestampMillis", "value"), step=DOUBLE, timestampMillis=INT, value=DOUBLE
    ),
    "StringPointValueDTO": model(
        ("step", "timestampMillis", "value"), step=DOUBLE, timestampMillis=INT, value=STRING
    ),
    "FloatSeriesValuesDTO": model(
        ("totalItemCount", "values"), totalItemCount=INT, values=array(ref("FloatPointValueDTO"))
    ),
    "StringSeriesValuesDTO": model(
        ("totalItemCount", "values"), totalItemCount=INT, values=array(ref("StringPointValueDTO"))
    ),
    # The count only: the images' step, time, name and description come from the series read
    # as a channel (getChannelValues).
    "ImageSeriesValuesDTO": model(("totalItemCount",), totalItemCount=INT),
    "OutputImageDTO": model(name=STRING, description=STRING, imageUrl=STRING, thumbnailUrl=STRING),
    "YOutput": model(imageValue=ref("OutputImageDTO"), numericValue=DOUBLE, textValue=STRING),
    "PointValueDTO": model(("timestampMillis", "y"), timestampMillis=INT, x=DOUBLE, y=ref("YOutput")),
    "LimitedChannelValuesDTO": model(
        ("channelId", "totalItemCount", "values"),
        channelId=STRING,
        totalItemCount=INT,
        values=array(ref("PointValueDTO")),
    ),
    "DownloadPrepareRequest": model(("id",), id=STRING, downloadUrl=STRING),
    "CheckpointDTO": model(
        ("creationTime", "description", "id", "name", "notebookId", "owner", "path", "removable", "size"),
        creationTime=DATETIME,
        description=STRING,
        id=UUID,
        name=STRING,
        notebookId=UUID,
        owner=STRING,
        path=STRING,
        removable=BOOL,
        size=INT,
    ),
    "FileEntry": model(("name", "fileType", "mtime"), name=STRING, fileType=STRING, mtime=DATETIME, size=INT),
}


def _getter(operation_id: str, path: str, dto: str) -> Operation:
    return Operation(
        "leaderboard", operation_id, "get", f"/api/leaderboard/v1/attributes/{path}", HOLDER, ref(dto)
    )


LEADERBOARD_OPERATIONS = (
    Operation(
        "leaderboard",
        "getExperiment",
        "get",
        "/api/leaderboard/v1/experiments",
        (query("experimentId", required=True),),
        ref("Experiment"),
    ),
    Operation(
        "leaderboard",
        "getExperimentAttributes",
        "get",
        "/api/leaderboard/v1/attributes",
        (query("experimentId", required=True),),
        ref("ExperimentAttributesDTO"),
    ),
    _getter("getFloatAttribute", "floats", "FloatAttributeDTO"),
    _getter("getIntAttribute", "integers", "IntAttributeDTO"),
    _getter("getBoolAttribute", "booleans", "BoolAttributeDTO"),
    _getter("getStringAttribute", "strings", "StringAttributeDTO"),
    _getter("getDatetimeAttribute", "datetimes", "DatetimeAttributeDTO"),
    _getter("getStringSetAttribute", "stringSets", "StringSetAttributeDTO"),
    _getter("getFileAttribute", "files", "FileAttributeDTO"),
    _getter("getFloatSeriesAttribute", "floatSeries", "FloatSeriesAttributeDTO"),
    _getter("getStringSeriesAttribute", "stringSeries", "StringSeriesAttributeDTO"),
    _getter("getArtifactAttribute", "artifacts", "ArtifactAttributeDTO"),
    Operation(
        "leaderboard",
        "getFloatSeriesValues",
        "get",
        "/api/leaderboard/v1/attributes/series/float",
        PAGED,
        ref("FloatSeriesValuesDTO"),
    ),
    Operation(
        "leaderboard",
        "getStringSeriesValues",
        "get",
        "/api/leaderboard/v1/attributes/series/string",
        PAGED,
        ref("StringSeriesValuesDTO"),
    ),
    Operation(
        "leaderboard",
        "getImageSeriesValues",
        "get",
        "/api/leaderboard/v1/attributes/series/image",
        PAGED,
        ref("ImageSeriesValuesDTO"),
    ),
    Operation(
        "leaderboard",
        "getChannelValues",
        "get",
        "/api/leaderboard/v1/channels/{channelId}/values",
        (
            {"in": "path", "name": "channelId", "required": True, **STRING},
            query("offset", INT),
            query("limit", INT),
        ),
        ref("LimitedChannelValuesDTO"),
    ),
    Operation(
        "leaderboard",
        "getImageSeriesValue",
        "get",
        "/api/leaderboard/v1/attributes/series/image/single",
        (*HOLDER, query("index", INT, required=True)),
        {"type": "file"},
        produces="application/octet-stream",
    ),
    Operation(
        "leaderboard",
        "downloadAttribute",
        "get",
        "/api/leaderboard/v1/attributes/download",
        (*HOLDER, query("expectedContentDisposition"), query("path")),
        {"type": "file"},
        produces="application/octet-stream",
    ),
    Operation(
        "leaderboard",
        "prepareForDownloadFileSetAttributeZip",
        "post",
        "/api/leaderboard/v1/attributes/downloadFileSetZipRequest",
        HOLDER,
        ref("DownloadPrepareRequest"),
    ),
    Operation(
        "leaderboard",
        "getDownloadPrepareRequest",
        "get",
        "/api/leaderboard/v1/download/downloadRequest",
        (query("id", required=True),),
        ref("DownloadPrepareRequest"),
    ),
    Operation(
        "leaderboard",
        "getCheckpoint",
        "get",
        "/api/leaderboard/v1/notebooks/checkpoints/{id}",
        (CHECKPOINT_ID,),
        ref("CheckpointDTO"),
    ),
    Operation(
        "leaderboard",
        "getCheckpointContent",
        "get",
        "/api/leaderboard/v1/notebooks/checkpoints/{id}/content",
        (CHECKPOINT_ID, query("expectedContentDisposition")),
        {"type": "file"},
    ),
    Operation(
        "leaderboard",
        "lsFileSetAttribute",
        "get",
        "/api/leaderboard/v1/attributes/ls",
        (*HOLDER, query("path")),
        array(ref("FileEntry")),
    ),
    Operation(
        "leaderboard",
        "searchLeaderboardAttributes",
        "post",
        "/api/leaderboard/v1/leaderboard/attributes/search",
        (
            query("projectIdentifier", required=True),
            query("search"),
            query("limit", INT),
            query_array("type"),
            body("SearchLeaderboardParamsDTO"),
        ),
        ref("AttributesSearchResultDTO"),
    ),
    Operation(
        "leaderboard",
        "searchLeaderboardEntries",
        "post",
        "/api/leaderboard/v1/leaderboard/entries/search",
        (
            query("projectIdentifier", required=True),
            query_array("type"),
            body("SearchLeaderboardEntriesParamsDTO"),
        ),
        ref("LeaderboardEntriesSearchResultDTO"),
    ),
)

ARTIFACTS_DEFINITIONS: dict[str, Json] = {
    "Error": BACKEND_DEFINITIONS["Error"],
    "ArtifactFileMetadataEntryDTO": model(("key", "value"), key=STRING, value=STRING),
    "ArtifactFileDTO": model(
        ("filePath", "fileHash", "type", "metadata"),
        filePath=STRING,
        fileHash=STRING,
        type=STRING,
        size=INT,
        metadata=array(ref("ArtifactFileMetadataEntryDTO")),
    ),
    "ArtifactFilesDTO": model(("files",), files=array(ref("ArtifactFileDTO"))),
}

ARTIFACTS_OPERATIONS = (
    Operation(
        "artifacts",
        "listArtifactFiles",
        "get",
        "/api/artifacts/v1/artifact/files",
        (query("projectIdentifier", required=True), query("hash", required=True)),
        ref("ArtifactFilesDTO"),
    ),
)

OPERATIONS = BACKEND_OPERATIONS + LEADERBOARD_OPERATIONS + ARTIFACTS_OPERATIONS
SWAGGER_PATHS = {f"/api/{api}/swagger.json": api for api in ("backend", "leaderboard", "artifacts")}
_DEFINITIONS = {
    "backend": BACKEND_DEFINITIONS,
    "leaderboard": LEADERBOARD_DEFINITIONS,
    "artifacts": ARTIFACTS_DEFINITIONS,
}


def swagger(api: str) -> Json:
    """The swagger document of one API ("backend", "leaderboard" or "artifacts")."""
    paths: dict[str, Json] = {}
    for op in OPERATIONS:
        if op.api != api:
            continue
        paths.setdefault(op.path, {})[op.method] = {
            "operationId": op.operation_id,
            "tags": ["api"],  # bravado groups operations by tag; the client calls `.api.<op>`
            "consumes": ["application/json"],
            "produces": [op.produces],
            "parameters": list(op.parameters),
            "responses": {
                "200": {"description": "OK", "schema": op.response},
                "default": {"description": "Error", "schema": ref("Error")},
            },
        }
    return {
        "swagger": "2.0",
        "info": {"title": f"Fake Neptune {api} API", "version": "1.0"},
        "basePath": "/",
        "schemes": ["http", "https"],  # the one the spec was fetched over
        "paths": paths,
        "definitions": _DEFINITIONS[api],
    }
