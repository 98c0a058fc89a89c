"""The transport's token and routes, through the real neptune client against the fake server."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from expect import check_backup
from neptune_backup_async import backup
from neptune_backup_async.neptune_source import NeptuneSource
from neptune_backup_async.testing import MINIMAL, Faults, World, generate, serve

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
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.mark.anyio
async def test_a_token_that_expires_mid_backup_is_refreshed_and_the_backup_completes(
    demo_world: World, tmp_path: Path
) -> None:
    with serve(demo_world, faults=Faults(latency=0.01)) as server:
        server.auth.token_lifetime = 2  # every access token dies within 2 s, many times per backup
        started = time.monotonic()
        await backup("all", tmp_path, api_token=server.api_token, concurrency=4)
        took = time.monotonic() - started
        stats = server.stats.snapshot()
    assert took > 2, "the backup must outlive its first access token"
    assert stats["statuses"].get("401", 0) == 0
    assert stats["by_operation"]["oauthRefresh"] > 1
    assert check_backup(demo_world, tmp_path, artifacts_downloaded=False) > 0


def test_a_401_for_an_access_token_the_client_thought_alive_gets_one_refresh_and_succeeds() -> None:
    with serve(generate(MINIMAL)) as server:
        source = NeptuneSource(server.api_token)
        try:
            assert source.list_projects() == ["workspace-0/project-0"]
            auth = source._http._token._auth  # type: ignore[attr-defined]  # the client's NeptuneAuth
            server.auth.token_lifetime = 1
            auth._refresh_token()  # the client now holds a token the server lets expire within 1 s,
            auth.token_expires_at = time.time() + 3600  # while its clock says it has an hour left
            server.auth.token_lifetime = 3600
            time.sleep(1.1)
            refreshes = server.stats.snapshot()["by_operation"]["oauthRefresh"]
            assert source.list_projects() == ["workspace-0/project-0"]
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
