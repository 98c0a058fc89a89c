"""The transport's token and routes, through the real neptune client against the fake server."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from expect import check_backup
from neptune_backup_async import BackupError, backup
from neptune_backup_async.errors import Retry, TransientError, UsageError
from neptune_backup_async.remote.neptune.client import connect
from neptune_backup_async.remote.neptune.token import REFRESH_BEFORE
from neptune_backup_async.remote.neptune.transport import Transport, check_plain_http
from neptune_backup_async.testing import MINIMAL, World, generate, serve
from threaded import serving

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "transfer-encoding"}


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy for plain http, as a corporate one would be: absolute-form requests in."""

    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        target = urllib.parse.urlsplit(self.path)
        with self.server.lock:
            self.server.seen[target.path] += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    with serving(_Proxy()) as server:
        yield server


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_token_that_expires_mid_backup_is_refreshed_and_the_backup_completes(
    demo_world: World, tmp_path: Path
) -> None:
    with serve(demo_world) as server:
        # Every access token is issued within REFRESH_BEFORE of its exp (whole seconds): the
        # client must refresh it before each use. Each one it sends still has more than
        # REFRESH_BEFORE - 1 s to live, so one held up in flight on a busy machine is not
        # refused; a client that refreshed only at exp, or on a 401, would refresh once (its
        # first request) or see 401s.
        server.auth.token_lifetime = REFRESH_BEFORE
        await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
        stats = server.stats.snapshot()
    assert stats["statuses"].get("401", 0) == 0
    assert stats["by_operation"]["oauthRefresh"] > 1
    assert check_backup(demo_world, tmp_path, artifacts_downloaded=False) > 0


def test_a_401_for_an_access_token_the_client_thought_alive_gets_one_refresh_and_succeeds() -> None:
    with serve(generate(MINIMAL)) as server:
        source = anyio.run(connect, server.api_token)
        try:
            assert source.projects_page(0, 100).entries == ["workspace-0/project-0"]
            token = source._http._token  # type: ignore[attr-defined]  # an OAuthToken
            server.auth.token_lifetime = 1
            token._refresh()  # the backup now holds a token the server lets expire within 1 s,
            token._expires_at = time.time() + 3600  # while its clock says it has an hour left
            server.auth.token_lifetime = 3600
            time.sleep(1.1)
            refreshes = server.stats.snapshot()["by_operation"]["oauthRefresh"]
            assert source.projects_page(0, 100).entries == ["workspace-0/project-0"]
            stats = server.stats.snapshot()
        finally:
            source.close()
    assert stats["statuses"]["401"] == 1
    assert stats["by_operation"]["oauthRefresh"] == refreshes + 1


@pytest.mark.anyio
async def test_a_proxy_in_the_environment_carries_every_request(
    proxy: _Proxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    address = f"http://127.0.0.1:{proxy.server_address[1]}"
    monkeypatch.setenv("HTTP_PROXY", address)
    monkeypatch.setenv("http_proxy", address)
    world = generate(MINIMAL)
    with serve(world) as server:
        await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
        stats = server.stats.snapshot()
    assert check_backup(world, tmp_path) > 0
    assert (
        proxy.seen["/api/leaderboard/v1/attributes/series/float"]
        == stats["by_operation"]["getFloatSeriesValues"]
    )
    assert sum(proxy.seen.values()) == stats["total"]


def _self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for 127.0.0.1, and the certificate's file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake neptune")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


class _Token:
    def bearer(self) -> str:
        return "no-token"

    def refresh(self, stale: str) -> None:
        raise AssertionError("no 401 expected")


@pytest.mark.parametrize("trust", ["bundle", "self-signed allowed"])
@pytest.mark.anyio
async def test_over_https_the_backup_trusts_what_the_client_trusts(
    trust: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    context, cert_file = _self_signed(tmp_path)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NEPTUNE_ALLOW_SELF_SIGNED_CERTIFICATE"):
        monkeypatch.delenv(name, raising=False)
    if trust == "bundle":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    else:
        monkeypatch.setenv("NEPTUNE_ALLOW_SELF_SIGNED_CERTIFICATE", "1")
    world = generate(MINIMAL)
    with serve(world, tls=context) as server:
        assert server.base_url.startswith("https://")
        await backup("all", tmp_path / "out", api_token=server.api_token, concurrency=4)
    assert check_backup(world, tmp_path / "out") > 0


def test_the_pool_refuses_a_certificate_requests_would_refuse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    context, cert_file = _self_signed(tmp_path)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with serve(generate(MINIMAL), tls=context) as server:
        url = f"{server.base_url}/api/backend/v1/clients/config"
        headers = {"X-Neptune-Api-Token": server.api_token}
        refusing = Transport(requests.Session(), _Token(), [])
        with pytest.raises(TransientError) as caught:
            refusing.json("GET", url, "client config", headers=headers)
        assert caught.value.reason is Retry.CONNECTION
        trusting = requests.Session()
        trusting.verify = str(cert_file)
        answer = Transport(trusting, _Token(), []).json("GET", url, "client config", headers=headers)
        assert answer["apiUrl"] == server.base_url


@pytest.mark.parametrize(
    ("url", "this_machine"),
    [
        ("https://app.neptune.ai/api", True),  # https goes anywhere
        ("http://127.0.0.1:8080/api", True),
        ("http://127.42.0.9/api", True),
        ("http://localhost:1/api", True),
        ("http://LOCALHOST./api", True),
        ("http://[::1]:8080/api", True),
        ("http://app.neptune.ai/api", False),
        ("http://10.0.0.5/api", False),
        ("http://0.0.0.0/api", False),
        ("http://[::2]/api", False),
        ("http://localhost.example.com/api", False),
        ("http://127.0.0.1.nip.io/api", False),
    ],
)
def test_a_token_goes_over_plain_http_only_to_this_machine_unless_allowed(
    url: str, this_machine: bool
) -> None:
    if this_machine:
        check_plain_http(url)
    else:
        with pytest.raises(UsageError, match=r"is plain http.*--allow-insecure-http"):
            check_plain_http(url)
    check_plain_http(url, allow_insecure_http=True)  # the explicit opt-in


class _CountingToken(_Token):
    def __init__(self) -> None:
        self.asked = 0

    def bearer(self) -> str:
        self.asked += 1
        return super().bearer()


def test_the_transport_never_signs_a_request_to_another_host_over_plain_http() -> None:
    # A download URL Neptune hands out, say: refused before the token is even asked for.
    token = _CountingToken()
    transport = Transport(requests.Session(), token, [])
    with pytest.raises(UsageError, match=r"^http://files\.example\.invalid is plain http"):
        transport.open("GET", "http://files.example.invalid/zip", "file set download")
    assert token.asked == 0
    opted_in = Transport(requests.Session(), token, [], allow_insecure_http=True)
    with pytest.raises(TransientError):  # sent, and the name does not resolve
        opted_in.open("GET", "http://files.example.invalid/zip", "file set download")
    assert token.asked == 1


def _token_for(address: str, key: str) -> str:
    return base64.b64encode(
        json.dumps({"api_address": address, "api_url": address, "api_key": key}).encode()
    ).decode()


@pytest.mark.anyio
async def test_a_token_for_a_plain_http_server_elsewhere_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    token = _token_for("http://neptune.example.invalid", "k" * 32)
    with pytest.raises(UsageError, match=r"^http://neptune\.example\.invalid is plain http"):
        await backup("all", tmp_path, api_token=token)
    # With the opt-in it is sent: here, to a name that does not resolve.
    with pytest.raises(
        BackupError, match=r"^Cannot reach the Neptune server at http://neptune\.example\.invalid"
    ):
        await backup("all", tmp_path, api_token=token, allow_insecure_http=True)


@pytest.mark.anyio
async def test_a_backup_over_plain_http_to_this_machine_changes_no_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    before = dict(os.environ)
    world = generate(MINIMAL)
    with serve(world) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        await backup("all", tmp_path, api_token=server.api_token, concurrency=2, processes=1)
    assert check_backup(world, tmp_path) > 0
    assert dict(os.environ) == before
