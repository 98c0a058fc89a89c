"""The one module that talks to ``neptune``: a :class:`~.source.Source` over its client.

It uses the client's setup (client config, OAuth token exchange, the API specs), then sends
each operation with the client's token (:mod:`.transport`) and reads the JSON itself
(:mod:`.answers`). That sidesteps the client's pitfalls (see the notes on the client in
``docs/``): no ``Run`` objects (they are never freed), no lossy ``fetch_values`` frames, no
descending runs table that loses runs past 10,000 (:mod:`.paging`), no retries of its own
(those of :mod:`.retry` honour ``Retry-After`` exactly, also for runs-table pages, and a
cancel stops them), and a connection pool sized to the concurrency. Every use of the
client's private API (``_get_token_client``, the ``NeptuneAuth`` it builds) is here.

Each method makes one attempt of one request, in the caller's worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from requests.adapters import HTTPAdapter

from ...domain import (
    ArtifactFileInfo,
    Download,
    FieldInfo,
    FieldType,
    ImageInfo,
    ListingPage,
    ObjectRef,
    PageRequest,
    ProjectInfo,
    SeriesPage,
)
from ...errors import (
    AuthenticationError,
    BackupError,
    Retry,
    ServerUnreachableError,
    TransientError,
    UnexpectedError,
    leading_error,
    unexpected,
)
from . import answers
from .preflight import REJECTED, UNREACHABLE, preflight
from .token import Bearer, OAuthToken
from .transport import (
    DECODING_SLOTS,
    READ_TIMEOUT,
    REVOKED,
    Transport,
    check_plain_http,
    connection_error,
    status_error,
)

log = logging.getLogger("neptune_backup_async")
T = TypeVar("T")
SERIES_PAGE = 10_000


def _credentials(api_token: str) -> tuple[Any, str]:
    """The client's credentials from the token, and the server's address; no request."""
    from neptune.common.exceptions import NeptuneInvalidApiTokenException
    from neptune.internal.credentials import Credentials

    try:
        credentials = Credentials.from_token(api_token)
    except (NeptuneInvalidApiTokenException, ValueError, TypeError) as e:
        raise AuthenticationError(
            "The API token is malformed. Copy it again from Neptune (user menu > Get your API token)"
            " into NEPTUNE_API_TOKEN or the file given to --api-token-file."
        ) from e
    address: str = credentials.api_url_opt or credentials.token_origin_address
    return credentials, address


async def connect(
    api_token: str,
    limit: int | anyio.CapacityLimiter = 8,
    *,
    allow_insecure_http: bool = False,
    read_timeout: float = READ_TIMEOUT,
) -> NeptuneSource:
    """Check that the server answers and takes the token (cancellable), then start the client.

    ``limit`` is ``--concurrency``, or a limiter holding it: the client's import and each of
    its start-up round trips run in a thread under it, and its ``total_tokens`` sizes the
    connection pools. A cancel returns at once: the thread of a step under way finishes that
    one step, alone, and no step starts after it. The token goes over plain http only to
    this machine, unless ``allow_insecure_http`` (see :func:`.transport.check_plain_http`).
    """
    limiter = limit if isinstance(limit, anyio.CapacityLimiter) else anyio.CapacityLimiter(limit)

    async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=limiter, abandon_on_cancel=True)

    credentials, address = await run(_credentials, api_token)  # imports the client: off the loop
    # Before the API token goes anywhere, in the preflight's request or the client's.
    check_plain_http(address, allow_insecure_http)
    await preflight(address, api_token)
    concurrency = int(limiter.total_tokens)
    try:
        return await _start(credentials, address, run, allow_insecure_http, concurrency, read_timeout)
    except Exception as e:
        cause = leading_error(e)
        error = _startup_error(cause, address)
        raise error from (cause if isinstance(error, UnexpectedError) else None)


async def _together(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """The results of ``calls``, made at once."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return results


async def _start(
    credentials: Any,
    address: str,
    run: Callable[..., Awaitable[Any]],
    allow: bool,
    concurrency: int,
    read_timeout: float,
) -> NeptuneSource:
    """The client's API clients, and a transport with its token, as ``HostedNeptuneBackend``
    builds them, but with the round trips that do not wait on each other made at once.

    The client makes them one after another: the backend spec, the client config, the token
    exchange, a token refresh at once (its token starts "expired"), then the three API
    specs. Here the config and the exchange go together, the exchanged token is used until it
    nears its own expiry, and the three specs go together: 4 round trips after the first
    spec instead of 7, each in a thread of ``run`` (under the caller's limiter). The builders
    are the client's own, cached per token as it caches them.
    """
    from neptune.common.oauth import NeptuneAuthenticator
    from neptune.internal.backends import hosted_client as client
    from neptune.internal.backends.api_model import OptionalFeatures
    from neptune.internal.backends.utils import (
        MissingApiClient,
        build_operation_url,
        ssl_verify,
        verify_client_version,
    )
    from neptune.version import version

    verify = ssl_verify()  # type: ignore[no-untyped-call]
    options = {"credentials": credentials, "ssl_verify": verify, "proxies": None}
    token_client = await run(client._get_token_client, **options)
    config, authenticator = await _together(
        lambda: run(client.get_client_config, **options),
        lambda: run(NeptuneAuthenticator, credentials.api_token, token_client, verify, None),
    )
    verify_client_version(config, version)
    if config.api_url != address:  # the token must be exchanged where the config points
        check_plain_http(config.api_url, allow)
        endpoint = build_operation_url(config.api_url, client.BACKEND_SWAGGER_PATH)
        token_client = await run(client._get_token_client, **options, endpoint_url=endpoint)
        authenticator = await run(NeptuneAuthenticator, credentials.api_token, token_client, verify, None)
    http = client.create_http_client(ssl_verify=verify, proxies=None)  # type: ignore[arg-type]
    try:
        pool_size = max(10, concurrency + 4)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        for scheme in ("http://", "https://"):
            http.session.mount(scheme, adapter)
        auth = authenticator.auth  # the client's NeptuneAuth, whose session_factory exchanges the API token
        token = OAuthToken(
            auth.session, functools.partial(_exchange, auth), http.session, read_timeout, allow
        )
        http.authenticator = Bearer(token, allow)  # type: ignore[assignment]  # signs the spec downloads
        builders = {"backend": client.create_backend_client, "leaderboard": client.create_leaderboard_client}
        if config.has_feature(OptionalFeatures.ARTIFACTS):
            builders["artifacts"] = client.create_artifacts_client
        built = await _together(*(functools.partial(run, build, config, http) for build in builders.values()))
        clients: dict[str, Any] = dict(zip(builders, built, strict=True))
        clients.setdefault("artifacts", MissingApiClient(OptionalFeatures.ARTIFACTS))
        transport = Transport(
            http.session,
            token,
            [credentials.api_token],
            read_timeout,
            pool_size,
            decoding_slots=min(DECODING_SLOTS, concurrency),
            allow_insecure_http=allow,
        )
    except BaseException:
        http.session.close()
        raise
    return NeptuneSource(clients, transport)


def _exchange(auth: Any) -> Any:
    """A new exchange of the API token, by the client's ``NeptuneAuth``: its OAuth session.
    One attempt, its failures typed as the transport's."""
    from bravado.exception import BravadoConnectionError, BravadoTimeoutError, HTTPError
    from neptune.common.exceptions import NeptuneInvalidApiTokenException

    try:
        return auth.session_factory()
    except NeptuneInvalidApiTokenException:
        raise AuthenticationError(REVOKED) from None
    except (BravadoConnectionError, BravadoTimeoutError) as e:
        raise TransientError(f"connection failed ({type(e).__name__})", reason=Retry.CONNECTION) from None
    except HTTPError as e:
        raise status_error(e.status_code, e.response.headers, b"", "token exchange", []) from None


def _startup_error(e: BaseException, address: str) -> BackupError:
    """What the client's start-up failing with ``e`` means: the token refused, the server not
    reached (only when a connection failed), an error status; anything else is a bug, and
    its traceback goes into the log."""
    from bravado.exception import BravadoConnectionError, BravadoTimeoutError, HTTPError, HTTPUnauthorized
    from neptune.common.exceptions import (
        ClientHttpError,
        NeptuneConnectionLostException,
        NeptuneInvalidApiTokenException,
        Unauthorized,
    )
    from neptune.exceptions import CannotResolveHostname

    if isinstance(e, BackupError):
        return e  # already ours, as the plain-http guard's
    if isinstance(e, NeptuneInvalidApiTokenException | HTTPUnauthorized | Unauthorized):
        return AuthenticationError(REJECTED)
    failed = (
        NeptuneConnectionLostException,
        BravadoConnectionError,
        BravadoTimeoutError,
        CannotResolveHostname,
    )
    if isinstance(e, failed) or connection_error(e) is not None:
        return ServerUnreachableError(UNREACHABLE.format(address=address))
    status = (
        e.status_code if isinstance(e, HTTPError) else e.status if isinstance(e, ClientHttpError) else None
    )
    if isinstance(status, int):
        return ServerUnreachableError(
            f"The Neptune server at {address} answered HTTP {status} while the client started."
            " Run the same command again later; if it goes on, check the server."
        )
    log.error("the neptune client failed to start", exc_info=e)
    return UnexpectedError(unexpected(e, "while the neptune client started"))


class NeptuneSource:
    """Reads a Neptune server through the ``neptune`` 1.x client. Thread-safe; made by :func:`connect`."""

    series_page_limit = SERIES_PAGE

    def __init__(self, clients: dict[str, Any], transport: Transport) -> None:
        self._clients = clients
        self._http = transport

    # -- one request ------------------------------------------------------------------------

    def _url(self, api: str, operation: str, **path: str) -> tuple[str, str]:
        """The method and URL of an operation, with its ``path`` parameters filled in."""
        method, url = self._operation(api, operation)
        for name, value in path.items():
            url = url.replace(f"{{{name}}}", urllib.parse.quote(value, safe=""))
        return method, url

    @functools.cache  # noqa: B019 - one source per backup; a handful of operations
    def _operation(self, api: str, operation: str) -> tuple[str, str]:
        from neptune.internal.backends.utils import build_operation_url

        client = self._clients[api]
        op = getattr(client.api, operation).operation
        return op.http_method.upper(), build_operation_url(client.swagger_spec.api_url, op.path_name)

    def _json(self, api: str, operation: str, what: str, **kwargs: Any) -> Any:
        return self._http.json(*self._url(api, operation), what, **kwargs)

    # -- projects and runs ------------------------------------------------------------------

    def projects_page(self, offset: int, limit: int) -> ListingPage[str]:
        params = {
            "userRelation": "viewerOrHigher",
            "sortBy": ["lastViewed"],
            "offset": offset,
            "limit": limit,
        }
        return self._json(  # type: ignore[no-any-return]
            "backend",
            "listProjects",
            "listing projects",
            params=params,
            required=("entries", "matchingItemCount"),
            convert=answers.project_names,
        )

    def get_project(self, qualified_name: str) -> ProjectInfo:
        return self._json(  # type: ignore[no-any-return]
            "backend",
            "getProject",
            f"project {qualified_name}",
            params={"projectIdentifier": qualified_name},
            required=("organizationName", "name", "id", "projectKey"),
            convert=answers.project,
        )

    def objects_page(
        self, project: ProjectInfo, kind: str, query: str, page: PageRequest
    ) -> ListingPage[tuple[ObjectRef, str | None]]:
        if page.after is not None:
            keyset = f'(`sys/creation_time`:datetime >= "{page.after}")'
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
            "pagination": {"limit": page.limit, "offset": page.offset},
        }
        what = f"listing {kind}s of {project.qualified_name}"
        return self._json(  # type: ignore[no-any-return]
            "leaderboard",
            "searchLeaderboardEntries",
            what,
            params={"projectIdentifier": project.id, "type": [kind]},
            body=body,
            required=("entries", "matchingItemCount"),
            convert=lambda answer: answers.object_refs(answer, kind),
        )

    def get_fields(self, project: ProjectInfo, run: ObjectRef) -> list[FieldInfo]:
        return self._json(  # type: ignore[no-any-return]
            "leaderboard",
            "getExperimentAttributes",
            "getExperimentAttributes",
            params={"experimentId": run.id},
            required=("attributes",),
            convert=lambda answer: answers.fields(answer, run.sys_id),
        )

    # -- series -----------------------------------------------------------------------------

    def series_page(self, run: ObjectRef, field: FieldInfo, offset: int, limit: int) -> SeriesPage:
        operation = (
            "getFloatSeriesValues" if field.type is FieldType.FLOAT_SERIES else "getStringSeriesValues"
        )
        return self._json(  # type: ignore[no-any-return]
            "leaderboard",
            operation,
            operation,
            params={"experimentId": run.id, "attribute": field.path, "offset": offset, "limit": limit},
            required=("totalItemCount", "values"),
            convert=answers.series_page,
        )

    def image_count(self, run: ObjectRef, field: FieldInfo) -> int:
        return self._json(  # type: ignore[no-any-return]
            "leaderboard",
            "getImageSeriesValues",
            "getImageSeriesValues",
            params={"experimentId": run.id, "attribute": field.path, "offset": 0, "limit": 1},
            required=("totalItemCount",),
            convert=lambda answer: int(answer["totalItemCount"]),
        )

    def image_page(self, field: FieldInfo, offset: int, limit: int) -> ListingPage[ImageInfo]:
        return self._http.json(  # type: ignore[no-any-return]
            *self._url("leaderboard", "getChannelValues", channelId=str(field.value)),
            "getChannelValues",
            params={"offset": offset, "limit": limit},
            required=("totalItemCount", "values"),
            convert=lambda answer: answers.image_page(answer, offset),
        )

    # -- files ------------------------------------------------------------------------------

    def open_image(self, run: ObjectRef, field: FieldInfo, index: int) -> Download:
        method, url = self._url("leaderboard", "getImageSeriesValue")
        params = {"experimentId": run.id, "attribute": field.path, "index": index}
        return self._http.open(method, url, "getImageSeriesValue", params=params)

    def open_file(self, run: ObjectRef, field: FieldInfo) -> Download:
        method, url = self._url("leaderboard", "downloadAttribute")
        params = {"experimentId": run.id, "attribute": field.path}
        headers = {"Accept": "application/octet-stream"}
        return self._http.open(method, url, "downloadAttribute", params=params, headers=headers)

    def prepare_file_set(self, run: ObjectRef, field: FieldInfo) -> str:
        prepared = self._json(
            "leaderboard",
            "prepareForDownloadFileSetAttributeZip",
            "file set download",
            params={"experimentId": run.id, "attribute": field.path},
            required=("id",),
        )
        return str(prepared["id"])

    def file_set_url(self, request_id: str) -> str | None:
        ready = self._json(
            "leaderboard", "getDownloadPrepareRequest", "file set download", params={"id": request_id}
        )
        url = ready.get("downloadUrl") if isinstance(ready, dict) else None
        return str(url) if url else None

    def open_file_set(self, url: str) -> Download:
        return self._http.open("GET", url, "file set download", headers={"Accept": "application/zip"})

    def list_artifact_files(self, project: ProjectInfo, artifact_hash: str) -> list[ArtifactFileInfo]:
        return self._json(  # type: ignore[no-any-return]
            "artifacts",
            "listArtifactFiles",
            f"artifact {artifact_hash}",
            params={"projectIdentifier": project.id, "hash": artifact_hash},
            required=("files",),
            convert=answers.artifact_files,
        )

    def checkpoint_size(self, checkpoint_id: str) -> int:
        url = self._url("leaderboard", "getCheckpoint", id=checkpoint_id)
        return self._http.json(*url, "getCheckpoint", required=("size",), convert=answers.size)  # type: ignore[no-any-return]

    def open_checkpoint(self, checkpoint_id: str) -> Download:
        url = self._url("leaderboard", "getCheckpointContent", id=checkpoint_id)
        return self._http.open(
            *url, "getCheckpointContent", params={"expectedContentDisposition": "attachment"}
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._http.close()
