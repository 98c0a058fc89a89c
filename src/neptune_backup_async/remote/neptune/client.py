"""The one module that talks to ``neptune``: a :class:`~.source.Source` over its client.

It uses the client's setup (client config, OAuth token exchange and refresh, the API
specs), then sends each operation with the client's token (:mod:`.transport`) and reads
the JSON itself (:mod:`.answers`). That sidesteps the
client's pitfalls (see the notes on the client in ``docs/``): no ``Run`` objects (they are never freed), no
lossy ``fetch_values`` frames, no descending runs table that loses runs past 10,000
(:mod:`.paging`), no retries of its own (those of :mod:`.retry` honour ``Retry-After``
exactly, also for runs-table pages, and a cancel stops them), and a connection pool sized
to the concurrency.

Each method makes one attempt of one request, in the caller's worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
from requests.adapters import HTTPAdapter

from ...domain import (
    ArtifactFileInfo,
    Download,
    FieldInfo,
    FieldType,
    ImageInfo,
    ObjectRef,
    PageRequest,
    ProjectInfo,
    SeriesPage,
)
from ...errors import AuthenticationError, ServerUnreachableError, TransientError
from . import answers
from .preflight import REJECTED, UNREACHABLE, preflight
from .transport import READ_TIMEOUT, REVOKED, Transport, connection_error

SERIES_PAGE = 10_000
REFRESH_BEFORE = 30.0  # seconds before the access token expires, as the client's own NeptuneAuth


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    if address.startswith("http://") and _is_loopback(address):
        # oauthlib refuses plain http; allow it only for a server on this machine.
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return credentials, address


async def connect(
    api_token: str, concurrency: int = 8, *, limiter: anyio.CapacityLimiter | None = None
) -> NeptuneSource:
    """Check that the server answers and takes the token (cancellable), then start the client.

    The client's start-up (a few requests, once the server has answered) runs in a thread,
    under ``limiter`` (anyio's default if None), as does the import of the client.
    """
    _, address = await anyio.to_thread.run_sync(
        _credentials, api_token, limiter=limiter
    )  # imports the client
    await preflight(address, api_token)
    return await anyio.to_thread.run_sync(
        functools.partial(NeptuneSource, api_token, concurrency=concurrency),
        abandon_on_cancel=True,
        limiter=limiter,
    )


def _start_client(credentials: Any, concurrency: int) -> tuple[Any, dict[str, Any]]:
    """The client's authenticated HTTP client and its API clients, as ``HostedNeptuneBackend``
    builds them, but with the round trips that do not wait on each other made at once.

    The client makes them one after another: the backend spec, the client config, the token
    exchange, a token refresh at once (its token starts "expired"), then the three API
    specs. Here the config and the exchange go together, the exchanged token is used until it
    nears its own expiry, and the three specs go together: 4 round trips after the first
    spec instead of 7, with no more at once than ``concurrency`` (the one knob also bounds
    these). The builders are the client's own, cached per token as it caches them.
    """
    import jwt
    from neptune.common.oauth import NeptuneAuthenticator, _decoding_options
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
    address = credentials.api_url_opt or credentials.token_origin_address
    token_client = client._get_token_client(credentials=credentials, ssl_verify=verify, proxies=None)
    with ThreadPoolExecutor(min(3, concurrency), thread_name_prefix="neptune-start") as pool:
        asked = pool.submit(
            client.get_client_config, credentials=credentials, ssl_verify=verify, proxies=None
        )
        exchanged = pool.submit(NeptuneAuthenticator, credentials.api_token, token_client, verify, None)
        config = asked.result()
        authenticator = exchanged.result()
        verify_client_version(config, version)
        if config.api_url != address:  # the token must be exchanged where the config points
            endpoint = build_operation_url(config.api_url, client.BACKEND_SWAGGER_PATH)
            token_client = client._get_token_client(
                credentials=credentials, ssl_verify=verify, proxies=None, endpoint_url=endpoint
            )
            authenticator = NeptuneAuthenticator(credentials.api_token, token_client, verify, None)  # type: ignore[no-untyped-call]
        auth = authenticator.auth
        options: Any = _decoding_options  # the client's: no signature or claim checks
        access = jwt.decode(auth.session.token["access_token"], options=options)
        auth.token_expires_at = access.get("exp") or 0
        http = client.create_http_client(ssl_verify=verify, proxies=None)  # type: ignore[arg-type]
        http.authenticator = authenticator
        builders = {"backend": client.create_backend_client, "leaderboard": client.create_leaderboard_client}
        if config.has_feature(OptionalFeatures.ARTIFACTS):
            builders["artifacts"] = client.create_artifacts_client
        specs = {api: pool.submit(build, config, http) for api, build in builders.items()}
        clients = {api: spec.result() for api, spec in specs.items()}
    clients.setdefault("artifacts", MissingApiClient(OptionalFeatures.ARTIFACTS))
    return http, clients


class _Token:
    """The client's access token (its ``NeptuneAuth``), refreshed by one thread at a time.

    One attempt per refresh: the client's own ``refresh_token_if_needed`` retries a failed
    one for a minute. Its errors come out typed as the transport's.
    """

    def __init__(self, auth: Any) -> None:
        self._auth = auth
        self._lock = threading.Lock()

    def _current(self) -> str:
        return str(self._auth.session.token["access_token"])

    def bearer(self) -> str:
        if self._auth.token_expires_at - time.time() < REFRESH_BEFORE:
            with self._lock:
                if self._auth.token_expires_at - time.time() < REFRESH_BEFORE:
                    self._refresh()
        return self._current()

    def refresh(self, stale: str) -> None:
        with self._lock:
            if self._current() == stale:
                self._refresh()

    def _refresh(self) -> None:
        from bravado.exception import BravadoConnectionError, BravadoTimeoutError
        from neptune.common.exceptions import NeptuneInvalidApiTokenException

        try:
            self._auth._refresh_token()
        except NeptuneInvalidApiTokenException:
            raise AuthenticationError(REVOKED) from None
        except (BravadoConnectionError, BravadoTimeoutError) as e:
            raise TransientError(f"connection failed ({type(e).__name__})", reason="connection") from None


class NeptuneSource:
    """Reads a Neptune server through the ``neptune`` 1.x client. Thread-safe once connected."""

    series_page_limit = SERIES_PAGE

    def __init__(self, api_token: str, *, concurrency: int = 8, read_timeout: float = READ_TIMEOUT) -> None:
        """Start the client: fetch the client config and specs, exchange the token.

        This blocks and makes the client's start-up requests once, so that workers fanned
        out later find the client warm.
        """
        self._secrets = [api_token]
        credentials, address = _credentials(api_token)
        try:
            http, self._clients = _start_client(credentials, concurrency)
        except Exception as e:
            raise self._startup_error(e, address) from None
        pool_size = max(10, concurrency + 4)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        for scheme in ("http://", "https://"):
            http.session.mount(scheme, adapter)
        authenticator: Any = http.authenticator  # the client's NeptuneAuthenticator
        self._http = Transport(
            http.session, _Token(authenticator.auth), self._secrets, read_timeout, pool_size
        )

    # -- connecting -------------------------------------------------------------------------

    @staticmethod
    def _startup_error(e: Exception, address: str) -> Exception:
        from bravado.exception import BravadoConnectionError, BravadoTimeoutError, HTTPUnauthorized
        from neptune.common.exceptions import NeptuneConnectionLostException, NeptuneInvalidApiTokenException

        if isinstance(e, NeptuneInvalidApiTokenException | HTTPUnauthorized):
            return AuthenticationError(REJECTED)
        failed = (NeptuneConnectionLostException, BravadoConnectionError, BravadoTimeoutError)
        if isinstance(e, failed) or connection_error(e) is not None:
            return ServerUnreachableError(UNREACHABLE.format(address=address))
        return ServerUnreachableError(f"Could not start the Neptune client ({type(e).__name__}).")

    # -- one request ------------------------------------------------------------------------

    @functools.cache  # noqa: B019 - one source per backup; a handful of operations
    def _url(self, api: str, operation: str) -> tuple[str, str]:
        from neptune.internal.backends.utils import build_operation_url

        client = self._clients[api]
        op = getattr(client.api, operation).operation
        return op.http_method.upper(), build_operation_url(client.swagger_spec.api_url, op.path_name)

    def _json(self, api: str, operation: str, what: str, **kwargs: Any) -> Any:
        return self._http.json(*self._url(api, operation), what, **kwargs)

    # -- projects and runs ------------------------------------------------------------------

    def list_projects(self) -> list[str]:
        params = {"userRelation": "viewerOrHigher", "sortBy": ["lastViewed"]}
        return self._json(  # type: ignore[no-any-return]
            "backend",
            "listProjects",
            "listing projects",
            params=params,
            required=("entries",),
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
    ) -> list[tuple[ObjectRef, str | None]]:
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
            required=("entries",),
            convert=lambda answer: answers.object_refs(answer, kind, what),
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

    def image_page(
        self, run: ObjectRef, field: FieldInfo, offset: int, limit: int
    ) -> tuple[int, list[ImageInfo]]:
        return self._json(  # type: ignore[no-any-return]
            "leaderboard",
            "getImageSeriesValues",
            "getImageSeriesValues",
            params={"experimentId": run.id, "attribute": field.path, "offset": offset, "limit": limit},
            required=("totalItemCount",),
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

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._http.close()
