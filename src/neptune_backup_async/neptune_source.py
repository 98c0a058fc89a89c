"""The one module that talks to ``neptune``: a :class:`~.source.Source` over its client.

It uses the client's setup (client config, OAuth token exchange and refresh, the API
specs), then sends each operation through the client's authenticated HTTP session and
reads the JSON itself. That sidesteps the pitfalls in ``NEPTUNE_NOTES.md``: no ``Run``
objects (they are never freed), no lossy ``fetch_values`` frames, no descending runs table
that loses runs past 10,000, our own retries for every call (runs-table pages included)
with ``Retry-After`` honoured exactly, and a connection pool sized to the concurrency.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import json
import logging
import operator
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from . import values
from .errors import (
    AuthenticationError,
    FetchError,
    ProjectNotFoundError,
    ServerUnreachableError,
    redact,
)
from .retry import RETRYABLE_STATUSES, RetryPolicy, Throttle, TransientError, parse_retry_after
from .source import (
    ArtifactFileInfo,
    Download,
    FieldInfo,
    FieldType,
    ImageInfo,
    ObjectRef,
    ProjectInfo,
    SeriesPage,
)

log = logging.getLogger(__name__)

MAX_TABLE_OFFSET = 10_000  # the server refuses offset + limit past this; keyset paging goes on from there
TABLE_PAGE = 1_000
_POINT = operator.itemgetter("step", "value", "timestampMillis")  # a series point as a tuple, in C
SERIES_PAGE = 10_000
# Answers decoded at once. A 10,000-point page decodes to ~4 MB of Python objects; under the
# GIL more decoders at once are no faster, and with 64 requests in flight they would hold
# 64 such pages (W3 peaked at 300+ MiB). Answers waiting for a slot hold only their bytes.
DECODING_SLOTS = 4
CHUNK = 1024 * 1024
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0
# A dropped, refused, timed-out or cut-off connection: worth another try. A body cut short
# surfaces from session.send() as ChunkedEncodingError, which is not a ConnectionError.
_CONNECTION_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_REJECTED = (
    "Neptune rejected the API token (it may be expired or revoked). Get a new one from Neptune and set"
    " NEPTUNE_API_TOKEN."
)
_UNREACHABLE = (
    "Cannot reach the Neptune server at {address}. Check the network, a proxy, or the address in the API"
    " token, then run the same command again."
)


class HttpStatusError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
            value = values.parse_iso(value)
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
        return FieldInfo(path, kind, values.parse_iso(raw) if raw else None)
    if kind is FieldType.STRING_SET:
        return FieldInfo(path, kind, tuple(sorted(props.get("values") or ())))
    if kind in (FieldType.GIT_REF, FieldType.NOTEBOOK_REF):
        return FieldInfo(path, kind, _props(props))
    if kind in (FieldType.FLOAT_SERIES, FieldType.STRING_SERIES, FieldType.IMAGE_SERIES):
        return FieldInfo(path, kind, props.get("last"), last_step=props.get("lastStep"))
    if kind is FieldType.FILE:
        return FieldInfo(path, kind, props.get("name"), ext=props.get("ext"), size=props.get("size"))
    if kind is FieldType.FILE_SET:
        return FieldInfo(path, kind, size=props.get("size"))
    return FieldInfo(path, kind, props.get("hash"))  # artifact


class NeptuneSource:
    """Reads a Neptune server through the ``neptune`` 1.x client. Thread-safe once connected."""

    series_page_limit = SERIES_PAGE

    def __init__(
        self,
        api_token: str,
        *,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        """Connect: validate the token, fetch the client config and specs, exchange the token.

        This blocks and makes the client's start-up requests once, so that workers fanned
        out later find the client warm (pitfall 4 of the notes).
        """
        self._secrets = [api_token]
        self._timeout = (CONNECT_TIMEOUT, read_timeout)
        self._retry = retry or RetryPolicy()
        self._throttle = Throttle()
        self._congestion = itertools.count()
        self._throttled = 0
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        self._decoding = threading.BoundedSemaphore(DECODING_SLOTS)
        self._backend = self._connect(api_token, concurrency)
        self._http = self._backend._http_client
        self._clients = {
            "backend": self._backend.backend_client,
            "leaderboard": self._backend.leaderboard_client,
            "artifacts": self._backend.artifacts_client,
        }

    # -- connecting -------------------------------------------------------------------------

    def _connect(self, api_token: str, concurrency: int) -> Any:
        from neptune.common.exceptions import NeptuneInvalidApiTokenException
        from neptune.internal.backends.hosted_neptune_backend import HostedNeptuneBackend
        from neptune.internal.credentials import Credentials

        try:
            credentials = Credentials.from_token(api_token)
        except (NeptuneInvalidApiTokenException, ValueError, TypeError) as e:
            raise AuthenticationError(
                "The API token is malformed. Copy it again from Neptune (user menu > Get your API token)"
                " into NEPTUNE_API_TOKEN or the file given to --api-token-file."
            ) from e
        address = credentials.api_url_opt or credentials.token_origin_address
        if address.startswith("http://") and _is_loopback(address):
            # oauthlib refuses plain http; allow it only for a server on this machine.
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        self._preflight(address, api_token)
        try:
            backend = HostedNeptuneBackend(credentials)
        except Exception as e:
            raise self._startup_error(e, address) from None
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, concurrency + 4))
        for scheme in ("http://", "https://"):
            backend._http_client.session.mount(scheme, adapter)
        return backend

    def _preflight(self, address: str, api_token: str) -> None:
        """Fail fast when the server cannot be reached or refuses the token.

        The client's own start-up retries connection errors for a minute before it gives up.
        """
        url = address.rstrip("/") + "/api/backend/v1/clients/config"

        def attempt() -> requests.Response:
            try:
                return requests.get(url, headers={"X-Neptune-Api-Token": api_token}, timeout=(5, 30))
            except (requests.ConnectionError, requests.Timeout) as e:
                raise TransientError(type(e).__name__) from None

        try:
            response = RetryPolicy(attempts=3).call(attempt)
        except TransientError:
            raise ServerUnreachableError(_UNREACHABLE.format(address=address)) from None
        if response.status_code in (401, 403):
            raise AuthenticationError(_REJECTED)

    def _startup_error(self, e: Exception, address: str) -> Exception:
        name = type(e).__name__
        text = redact(str(e), self._secrets)
        if name in ("NeptuneInvalidApiTokenException", "Unauthorized") or "401" in text:
            return AuthenticationError(_REJECTED)
        if isinstance(e, (requests.ConnectionError, requests.Timeout)) or "Connection" in name:
            return ServerUnreachableError(_UNREACHABLE.format(address=address))
        return ServerUnreachableError(f"Could not start the Neptune client ({name}): {text}")

    # -- one request ------------------------------------------------------------------------

    @functools.cache  # noqa: B019 - one source per backup; a handful of operations
    def _url(self, api: str, operation: str) -> tuple[str, str]:
        from neptune.internal.backends.utils import build_operation_url

        client = self._clients[api]
        op = getattr(client.api, operation).operation
        return op.http_method.upper(), build_operation_url(client.swagger_spec.api_url, op.path_name)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One attempt. Raises TransientError for what may pass, HttpStatusError for the rest."""
        session: requests.Session = self._http.session
        request = requests.Request(method, url, params=params, json=body, headers=headers or {})
        try:
            prepared = session.prepare_request(self._http.authenticator.apply(request))
            proxies = self._proxies_for(session, prepared)
            response = session.send(prepared, stream=True, timeout=self._timeout, proxies=proxies)
            if not stream:
                # What requests itself does without stream=True, in 1 MiB reads instead of its
                # 10 KB ones: a 10,000-point series page took 80 reads, at ~0.6 ms of CPU.
                response._content = b"".join(response.iter_content(CHUNK))
        except _CONNECTION_ERRORS as e:
            raise TransientError(f"connection failed: {type(e).__name__}") from None
        except Exception as e:  # the client's token refresh raises its own types
            if "Connection" in type(e).__name__:
                raise TransientError(f"connection failed: {type(e).__name__}") from None
            raise
        if response.status_code < 400:
            return response
        text = response.text if not stream else ""
        response.close()
        if response.status_code == 429:
            self._throttled = next(self._congestion) + 1
        if response.status_code in RETRYABLE_STATUSES:
            raise TransientError(
                f"HTTP {response.status_code}",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise HttpStatusError(response.status_code, text)

    def _proxies_for(self, session: requests.Session, prepared: requests.PreparedRequest) -> dict[str, str]:
        """The proxies requests would choose for this request's host, looked up once per host.

        Left to itself, ``Session.send`` reads every environment variable three times per
        request to find them, which was a quarter of the client's cost of a small request.
        """
        scheme, host = urllib.parse.urlsplit(prepared.url or "")[:2]
        proxies = self._proxies.get((scheme, host))
        if proxies is None:
            proxies = requests.utils.resolve_proxies(prepared, dict(session.proxies), session.trust_env)
            self._proxies[scheme, host] = proxies
        return proxies

    def _json(
        self,
        api: str,
        operation: str,
        what: str,
        *,
        required: tuple[str, ...] = (),
        convert: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One JSON call, retried; ``required`` keys must be in the answer, or it is malformed.

        ``convert`` turns the decoded answer into what the caller keeps, while it still holds
        one of the few decoding slots (see :data:`DECODING_SLOTS`).
        """
        method, url = self._url(api, operation)

        def attempt() -> Any:
            response = self._send(method, url, **kwargs)
            with self._decoding:
                try:
                    result = json.loads(response.content)  # the stdlib decoder: faster than simplejson here
                except (ValueError, requests.RequestException) as e:
                    # A body cut short or garbled in transit: worth another try.
                    raise TransientError(f"invalid JSON in the answer ({type(e).__name__})") from None
                del response  # the raw body: the decoded answer replaces it
                missing = [key for key in required if not isinstance(result, dict) or key not in result]
                if missing:
                    raise FetchError(
                        f"{what}: malformed answer from Neptune, without {', '.join(map(repr, missing))}"
                    )
                return result if convert is None else convert(result)

        return self._call(attempt, what)

    def _call(self, attempt: Callable[[], Any], what: str) -> Any:
        try:
            return self._retry.call(attempt, self._throttle)
        except TransientError as e:
            raise FetchError(f"{what}: gave up after retrying ({e})") from None
        except HttpStatusError as e:
            if e.status == 401:
                raise AuthenticationError(
                    "Neptune rejected the API token during the backup (it may have been revoked)."
                    " Get a new token and run the same command again; finished runs are kept."
                ) from None
            raise FetchError(f"{what}: {redact(str(e), self._secrets)}") from None

    def _open(self, method: str, url: str, what: str, **kwargs: Any) -> Download:
        response: requests.Response = self._call(lambda: self._send(method, url, stream=True, **kwargs), what)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_content(CHUNK)
            except (requests.RequestException, OSError) as e:
                raise TransientError(f"{what}: the download was cut off ({type(e).__name__})") from None

        length = response.headers.get("Content-Length")
        return Download(
            chunks=chunks(),
            size=int(length) if length and length.isdigit() else None,
            content_type=response.headers.get("Content-Type"),
            close=response.close,
        )

    # -- projects and runs ------------------------------------------------------------------

    def list_projects(self) -> list[str]:
        result = self._json(
            "backend",
            "listProjects",
            "listing projects",
            params={"userRelation": "viewerOrHigher", "sortBy": ["lastViewed"]},
            required=("entries",),
        )
        return sorted(f"{p['organizationName']}/{p['name']}" for p in result["entries"])

    def get_project(self, qualified_name: str) -> ProjectInfo:
        method, url = self._url("backend", "getProject")
        try:
            project = self._call(
                lambda: json.loads(
                    self._send(method, url, params={"projectIdentifier": qualified_name}).content
                ),
                f"project {qualified_name}",
            )
        except FetchError as e:
            if "HTTP 404" in str(e) or "HTTP 403" in str(e):
                raise ProjectNotFoundError(
                    f"Project {qualified_name!r} does not exist or this API token may not read it."
                    " Run `neptune-backup list-projects` to see the projects you can back up."
                ) from None
            raise
        return ProjectInfo(
            workspace=project["organizationName"],
            name=project["name"],
            id=project["id"],
            key=project["projectKey"],
        )

    def iter_objects(self, project: ProjectInfo, kind: str, query: str) -> Iterator[list[ObjectRef]]:
        """Every object of ``kind`` matching ``query`` once, by creation time ascending, a page
        per request.

        Offset paging stops at the server's 10,000 cap; from there a keyset filter on
        ``sys/creation_time >= last`` goes on. Only runs created at that very time can come
        twice, so only their ids are remembered and dropped: runs created in the same
        millisecond are neither lost nor repeated, and memory does not grow with the runs.
        """
        after: str | None = None
        boundary: set[str] = set()  # ids created at `after`, listed in the previous window
        while True:
            window_new = 0
            offset = 0
            last_time: str | None = None
            tail: set[str] = set()  # ids created at `last_time`
            while offset < MAX_TABLE_OFFSET:
                limit = min(TABLE_PAGE, MAX_TABLE_OFFSET - offset)
                entries = self._table_page(project, kind, query, after, offset, limit)
                batch: list[ObjectRef] = []
                for entry in entries:
                    try:
                        run, created = self._object_ref(entry, kind)
                    except (KeyError, TypeError, ValueError) as e:
                        raise FetchError(
                            f"listing {kind}s of {project.qualified_name}: malformed entry ({type(e).__name__}: {e})"
                        ) from None
                    if created != last_time:
                        last_time, tail = created, set()
                    tail.add(run.sys_id)
                    if created != after or run.sys_id not in boundary:
                        batch.append(run)
                window_new += len(batch)
                if batch:
                    yield batch
                if len(entries) < limit:
                    return
                offset += len(entries)
            if window_new == 0 or last_time is None:
                raise FetchError(
                    f"listing {kind}s of {project.qualified_name}: more than {MAX_TABLE_OFFSET} share"
                    " one creation time, so the runs table cannot be paged past them"
                )
            after, boundary = last_time, tail

    def _table_page(
        self, project: ProjectInfo, kind: str, query: str, after: str | None, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        if after is not None:
            keyset = f'(`sys/creation_time`:datetime >= "{after}")'
            query = f"({query} AND {keyset})" if query else keyset
        columns = ["sys/id", "sys/creation_time", "sys/modification_time"]
        if kind == "modelVersion":
            columns.append("sys/model_id")
        body = {
            "query": {"query": query},
            "sorting": {
                "dir": "ascending",
                "aggregationMode": "none",
                "sortBy": {"name": "sys/creation_time", "type": "datetime"},
            },
            "attributeFilters": [{"path": c} for c in columns],
            "pagination": {"limit": limit, "offset": offset},
        }
        result = self._json(
            "leaderboard",
            "searchLeaderboardEntries",
            f"listing {kind}s of {project.qualified_name}",
            params={"projectIdentifier": project.id, "type": [kind]},
            body=body,
            required=("entries",),
        )
        entries: list[dict[str, Any]] = result["entries"]
        return entries

    @staticmethod
    def _object_ref(entry: dict[str, Any], kind: str) -> tuple[ObjectRef, str | None]:
        attrs = {a["name"]: a for a in entry.get("attributes", [])}

        def value(name: str) -> Any:
            attr = attrs.get(name)
            return (attr.get(f"{attr['type']}Properties") or {}).get("value") if attr else None

        modified = value("sys/modification_time")
        ref = ObjectRef(
            sys_id=value("sys/id"),
            id=entry["experimentId"],
            modification_time=values.parse_iso(modified) if modified else None,
            kind=kind,
            model_id=value("sys/model_id") if kind == "modelVersion" else None,
        )
        if not isinstance(ref.sys_id, str) or (kind == "modelVersion" and not isinstance(ref.model_id, str)):
            raise ValueError("no sys/id" if not isinstance(ref.sys_id, str) else "no sys/model_id")
        return ref, value("sys/creation_time")

    def get_fields(self, project: ProjectInfo, run: ObjectRef) -> list[FieldInfo]:
        result = self._json(
            "leaderboard",
            "getExperimentAttributes",
            "getExperimentAttributes",
            params={"experimentId": run.id},
            required=("attributes",),
        )
        out = []
        for attr in result["attributes"]:
            info = field_from_dto(attr)
            if info is None:
                log.warning(
                    "%s: field %s has a type this version does not know: %s",
                    run.sys_id,
                    attr["name"],
                    attr["type"],
                )
                continue
            out.append(info)
        return out

    # -- series -----------------------------------------------------------------------------

    def series_page(self, run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage:
        operation = (
            "getFloatSeriesValues" if field.type is FieldType.FLOAT_SERIES else "getStringSeriesValues"
        )
        page: SeriesPage = self._json(
            "leaderboard",
            operation,
            operation,
            params={"experimentId": run.id, "attribute": field.path, "offset": offset, "limit": limit},
            required=("totalItemCount", "values"),
            # Tuples, built in C, take a third of the memory of the decoded point objects.
            convert=lambda r: SeriesPage(int(r["totalItemCount"]), list(map(_POINT, r["values"]))),
        )
        return page

    def image_page(
        self, run: ObjectRef, field: FieldInfo, offset: int, limit: int
    ) -> tuple[int, list[ImageInfo]]:
        result = self._json(
            "leaderboard",
            "getImageSeriesValues",
            "getImageSeriesValues",
            params={"experimentId": run.id, "attribute": field.path, "offset": offset, "limit": limit},
            required=("totalItemCount",),
        )
        images = []
        for i, item in enumerate(result.get("values") or ()):
            value = item.get("value") or {}
            images.append(
                ImageInfo(
                    index=offset + i,
                    step=item.get("step"),
                    timestamp_ms=item.get("timestampMillis"),
                    name=value.get("name"),
                    description=value.get("description"),
                )
            )
        return int(result["totalItemCount"]), images

    # -- files ------------------------------------------------------------------------------

    def open_image(self, run: ObjectRef, field: FieldInfo, index: int) -> Download:
        method, url = self._url("leaderboard", "getImageSeriesValue")
        params = {"experimentId": run.id, "attribute": field.path, "index": index}
        return self._open(method, url, "getImageSeriesValue", params=params)

    def open_file(self, run: ObjectRef, field: FieldInfo) -> Download:
        method, url = self._url("leaderboard", "downloadAttribute")
        params = {"experimentId": run.id, "attribute": field.path}
        return self._open(
            method,
            url,
            "downloadAttribute",
            params=params,
            headers={"Accept": "application/octet-stream"},
        )

    def open_file_set(self, run: ObjectRef, field: FieldInfo) -> Download:
        what = "file set download"
        prepared = self._json(
            "leaderboard",
            "prepareForDownloadFileSetAttributeZip",
            what,
            params={"experimentId": run.id, "attribute": field.path},
        )
        delay = 0.1
        while True:
            ready = self._json(
                "leaderboard", "getDownloadPrepareRequest", what, params={"id": prepared["id"]}
            )
            if ready.get("downloadUrl"):
                break
            time.sleep(delay)  # the server is still building the zip
            delay = min(delay * 2, 5.0)
        return self._open("GET", ready["downloadUrl"], what, headers={"Accept": "application/zip"})

    def list_artifact_files(self, project: ProjectInfo, artifact_hash: str) -> list[ArtifactFileInfo]:
        result = self._json(
            "artifacts",
            "listArtifactFiles",
            f"artifact {artifact_hash}",
            params={"projectIdentifier": project.id, "hash": artifact_hash},
            required=("files",),
        )
        return [
            ArtifactFileInfo(
                path=f["filePath"],
                hash=f["fileHash"],
                type=f["type"],
                size=f.get("size"),
                metadata={str(m["key"]): str(m["value"]) for m in f.get("metadata") or ()},
            )
            for f in result["files"]
        ]

    def congestion(self) -> int:
        return self._throttled

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._http.session.close()
