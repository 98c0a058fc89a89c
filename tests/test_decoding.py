"""The fast JSON decoder gives exactly the stdlib's values, and its errors where the stdlib fails."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from neptune_backup_async.errors import MalformedAnswerError, Retry, TransientError
from neptune_backup_async.remote.neptune import answers, decoding
from neptune_backup_async.remote.neptune.client import connect
from neptune_backup_async.remote.neptune.transport import Transport
from neptune_backup_async.testing import MINIMAL, generate, serve
from threaded import serving

pytest.importorskip("msgspec")  # a dependency; without it decoding.loads is json.loads itself


def same(a: Any, b: Any) -> bool:
    """Equal, with floats compared bit for bit (so -0.0 differs from 0.0, and NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode(body)
    except RecursionError:
        return "error", RecursionError
    except ValueError:
        return "error", ValueError


HOSTILE = [
    b'{"value": NaN, "values": [Infinity, -Infinity, 1.5]}',
    b'{"step": -0.0, "zero": 0.0, "negzero_int": -0}',
    b"[1e308, -1e308, 1.7976931348623157e308, 2.2250738585072014e-308, 4.9e-324, 1e-400]",
    b"[1e400, -1e400]",  # past the float range: inf for the stdlib, refused by msgspec
    b"[123456789012345678901234567890, -123456789012345678901234567890, 18446744073709551616]",
    b"[0.1000000000000000055511151231257827021181583404541015625, 0.30000000000000004]",
    b'{"a": 1, "a": 2, "b": {"c": 1, "c": [3]}}',
    b'["\\u00e9\\u4e2d\\ud83d\\ude00", "caf\xc3\xa9", "\\u0000", "\\"\\\\\\/\\b\\f\\n\\r\\t"]',
    b'["\\ud800", "\\udfff x", "\\ud83d"]',  # lone surrogates: msgspec refuses them
    b'"\xed\xa0\x80"',  # a surrogate as UTF-8 bytes: the stdlib reads it with surrogatepass
    b'\xef\xbb\xbf{"bom": true}',
    '{"utf16": [1, 2]}'.encode("utf-16"),
    b"[" * 200 + b"]" * 200,
    b"[" * 5000 + b"]" * 5000,  # too deep for both
    b' \n\t{"spaces": [ 1 , 2 ] }\r\n',
]
GARBLED = [
    b"",
    b"<html>oops</html>",
    b'{"totalItemCount": 3, "values": [{"step": 1',
    b"[1,]",
    b"\xff\xfe\xfd",
    b"NaNa",
]


@pytest.mark.parametrize("body", HOSTILE + GARBLED)
def test_the_fast_decoder_gives_what_the_stdlib_gives(body: bytes) -> None:
    fast, slow = outcome(decoding.loads, body), outcome(json.loads, body)
    assert fast[0] == slow[0]
    assert same(fast[1], slow[1]) if fast[0] == "ok" else fast[1] is slow[1]


def test_bare_nan_and_infinity_keep_their_values() -> None:
    answer = decoding.loads(b'{"values": [{"step": 1, "value": NaN}, {"step": 2, "value": -Infinity}]}')
    assert math.isnan(answer["values"][0]["value"])
    assert answer["values"][1]["value"] == -math.inf


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
        ),
        max_leaves=30,
    ),
    st.booleans(),
)
def test_any_answer_decodes_to_the_stdlib_values(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert same(decoding.loads(body), json.loads(body))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["r", ".17e", ".15g", ".3e", ".1f"]))
def test_floats_in_any_notation_decode_bit_for_bit(x: float, notation: str) -> None:
    body = (repr(x) if notation == "r" else format(x, notation)).encode()
    assert same(decoding.loads(body), json.loads(body))


def test_a_garbled_or_cut_answer_is_a_transient_invalid_answer() -> None:
    with serve(generate(MINIMAL)) as server:
        source = anyio.run(connect, server.api_token)
        try:
            for fault in ("garbage", "truncated_json"):
                server.faults.script("listProjects", fault)
                with pytest.raises(TransientError) as caught:
                    source.projects_page(0, 100)
                assert caught.value.reason is Retry.INVALID_ANSWER
            assert source.projects_page(0, 100).entries == ["workspace-0/project-0"]
        finally:
            source.close()


class _Canned(BaseHTTPRequestHandler):
    """Answers every GET with the server's ``body``, as JSON."""

    server: _CannedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


class _CannedServer(ThreadingHTTPServer):
    daemon_threads = True
    body = b""


class _Token:
    def bearer(self) -> str:
        return "access"

    def refresh(self, stale: str) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[_CannedServer]:
    with serving(_CannedServer(("127.0.0.1", 0), _Canned)) as server:
        yield server


@pytest.mark.parametrize(
    ("body", "convert", "error"),
    [
        (
            b'{"totalItemCount": 1, "values": [{"step": 1, "timestampMillis": 5}]}',
            answers.series_page,
            "KeyError: 'value'",
        ),
        (b'{"totalItemCount": "many", "values": []}', answers.series_page, "ValueError: invalid literal"),
        (b'{"entries": [7]}', answers.project_names, "TypeError: 'int' object is not subscriptable"),
        (
            b'{"totalItemCount": 1, "values": [7]}',
            lambda a: answers.image_page(a, 0),
            "AttributeError: 'int' object",
        ),
    ],
)
def test_json_of_the_wrong_shape_is_a_malformed_answer_not_a_builtin_error(
    canned: _CannedServer, body: bytes, convert: Any, error: str
) -> None:
    canned.body = body
    url = f"http://127.0.0.1:{canned.server_address[1]}/api"
    transport = Transport(requests.Session(), _Token(), [])
    try:
        with pytest.raises(MalformedAnswerError) as caught:
            transport.json(
                "GET",
                url,
                "a page",
                required=("totalItemCount",) if b"total" in body else (),
                convert=convert,
            )
    finally:
        transport.close()
    assert not isinstance(caught.value, TransientError)  # the same question would get the same answer
    assert str(caught.value).startswith(f"a page: malformed answer from Neptune ({error}")
