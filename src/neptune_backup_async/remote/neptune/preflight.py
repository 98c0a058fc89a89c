"""Before the client starts: is the server there, and does it take the token?

The ``neptune`` client's own start-up retries connection errors for a minute, in a thread
that nothing can interrupt. This asks first, over anyio sockets, so that a deadline or a
cancel stops it at once, even against a server that accepts connections and never answers:
one GET of the client config, reading only the status line. It goes through the proxy
``requests`` would use (``HTTPS_PROXY``, ``NO_PROXY``...), and trusts the certificates it
would (``REQUESTS_CA_BUNDLE``, or ``NEPTUNE_ALLOW_SELF_SIGNED_CERTIFICATE`` to trust any).
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.parse

import anyio
import requests
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from ...errors import AuthenticationError, ServerUnreachableError
from ..http import RetryPolicy

CONFIG_PATH = "/api/backend/v1/clients/config"
REJECTED = (
    "Neptune rejected the API token (it may be expired or revoked). Get a new one from Neptune and set"
    " NEPTUNE_API_TOKEN."
)
UNREACHABLE = (
    "Cannot reach the Neptune server at {address}. Check the network, a proxy, or the address in the API"
    " token, then run the same command again."
)
_FAILURES = (
    OSError,
    TimeoutError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.IncompleteRead,
    ValueError,
)


async def preflight(
    address: str,
    api_token: str,
    *,
    attempts: int = 3,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> None:
    """Raise ServerUnreachableError if the server does not answer, AuthenticationError if it refuses the token."""
    url = address.rstrip("/") + CONFIG_PATH
    policy = RetryPolicy(attempts=attempts)
    for attempt in range(attempts):
        try:
            status = await _status(url, {"X-Neptune-Api-Token": api_token}, connect_timeout, read_timeout)
        except _FAILURES:
            if attempt == attempts - 1:
                raise ServerUnreachableError(UNREACHABLE.format(address=address)) from None
            await anyio.sleep(policy.delay(attempt, None))
            continue
        if status in (401, 403):
            raise AuthenticationError(REJECTED)
        return


async def _status(url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> int:
    """The status of one GET of ``url``."""
    parts = urllib.parse.urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    proxy = requests.utils.get_environ_proxies(url).get(parts.scheme)
    headers = {"Host": parts.netloc, "Connection": "close", **headers}
    with anyio.fail_after(connect_timeout):
        if proxy is None:
            stream: ByteStream = await anyio.connect_tcp(host, port)
        else:
            stream = await _through_proxy(proxy, host, port, tls)
            if not tls:  # a plain request goes to the proxy in absolute form
                target = url
        if tls:
            # Not standard_compatible: closing then skips waiting for the server's close_notify,
            # which fails on the rest of the answer still coming, unread ("application data
            # after close notify"), and made every preflight over https fail.
            stream = await TLSStream.wrap(
                stream, hostname=host, ssl_context=_tls_context(), standard_compatible=False
            )
    async with stream:
        head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        await stream.send((head + "\r\n").encode("latin-1"))
        with anyio.fail_after(read_timeout):
            return await _read_status(BufferedByteReceiveStream(stream))


async def _through_proxy(proxy: str, host: str, port: int, tls: bool) -> ByteStream:
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    stream = await anyio.connect_tcp(parts.hostname or "", parts.port or 80)
    if not tls:
        return stream
    auth = ""
    if parts.username:
        user = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        auth = f"Proxy-Authorization: Basic {base64.b64encode(user.encode()).decode()}\r\n"
    await stream.send(
        f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode("latin-1")
    )
    buffered = BufferedByteReceiveStream(stream)
    if await _read_status(buffered) != 200:
        raise OSError("the proxy refused the connection")
    while await buffered.receive_until(b"\r\n", 65536):  # the proxy's headers, to the empty line
        pass
    return stream


async def _read_status(stream: BufferedByteReceiveStream) -> int:
    line = await stream.receive_until(b"\r\n", 65536)
    return int(line.split()[1])


def _tls_context() -> ssl.SSLContext:
    if os.environ.get("NEPTUNE_ALLOW_SELF_SIGNED_CERTIFICATE"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    return ssl.create_default_context(cafile=bundle)
