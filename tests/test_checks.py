"""The verdicts on downloaded bodies (checks.py), from plain values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neptune_backup_async.remote.checks import (
    EDGE,
    Expected,
    Kind,
    Sample,
    check_body,
    check_type,
    check_zip,
    media_type,
)
from neptune_backup_async.testing.generator import tiny_png

FILE = Expected(Kind.FILE, size=10, ext="bin")
ZIP = Expected(Kind.ZIP, size=30)
IMAGE = Expected(Kind.IMAGE)
PNG = tiny_png((1, 2, 3))
JPEG = b"\xff\xd8\xff\xe0" + bytes(200) + b"\xff\xd9"


def sample(data: bytes) -> Sample:
    body = Sample()
    body.feed(data)
    return body


@given(st.lists(st.binary(max_size=3 * EDGE), max_size=8))
def test_a_sample_keeps_the_size_and_both_ends_whatever_the_chunks(chunks: list[bytes]) -> None:
    body = Sample()
    for chunk in chunks:
        body.feed(chunk)
    data = b"".join(chunks)
    assert (body.size, body.head, body.tail) == (len(data), data[:EDGE], data[-EDGE:])


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type("Text/HTML; charset=utf-8") == "text/html"
    assert media_type("") is None and media_type(None) is None


@pytest.mark.parametrize("expected", [Expected(Kind.FILE, ext="bin"), ZIP, IMAGE])
@pytest.mark.parametrize(
    ("content_type", "what"),
    [
        ("text/html; charset=utf-8", "an HTML page (text/html)"),
        ("application/json", "JSON (application/json)"),
        ("application/problem+json", "JSON (application/problem+json)"),
    ],
)
def test_an_error_page_type_is_never_a_download(expected: Expected, content_type: str, what: str) -> None:
    assert check_type(expected, content_type) == f"the answer is {what}, not {expected.kind.value}"


def test_an_error_page_type_is_a_file_whose_extension_says_so() -> None:
    assert check_type(Expected(Kind.FILE, ext="json"), "application/json") is None
    assert check_type(Expected(Kind.FILE, ext="html"), "text/html") is None
    assert check_type(Expected(Kind.FILE, ext="bin"), "application/json") == (
        "the answer is JSON (application/json), not the file's bytes"
    )
    assert check_type(Expected(Kind.FILE), "text/html") is not None  # no extension


def test_a_file_of_the_listed_size_is_not_judged_by_its_type() -> None:
    # The size is the stronger fact: a server may label a real file oddly.
    assert check_type(FILE, "application/json", 10) is None
    assert check_type(FILE, "application/json", None) is None  # judged by its size once it is in
    assert (
        check_type(FILE, "text/html", 146) == "the answer is an HTML page (text/html), not the file's bytes"
    )


def test_the_types_a_download_may_have() -> None:
    for expected, content_type in [
        (FILE, "application/octet-stream"),
        (FILE, None),
        (ZIP, "application/zip"),
        (ZIP, "binary/octet-stream"),
        (IMAGE, "image/png"),
        (IMAGE, "image/webp"),
        (IMAGE, None),
    ]:
        assert check_type(expected, content_type) is None, (expected, content_type)
    assert check_type(IMAGE, "text/plain") == "the answer is text (text/plain), not an image"
    assert check_type(FILE, "text/plain") is None  # a file may be any text


def test_a_notebook_is_json_of_the_size_neptune_lists() -> None:
    notebook = Expected(Kind.NOTEBOOK, size=20)
    assert check_type(notebook, "application/json", 20) is None  # what the API declares it as
    assert check_type(notebook, "application/octet-stream", None) is None
    assert check_type(notebook, "text/html", 20) == (
        "the answer is an HTML page (text/html), not the notebook's JSON"
    )
    assert check_body(notebook, sample(b"x" * 20), "application/json", 20) is None
    assert check_body(notebook, sample(b"{}"), "application/json", 2) == "got 2 bytes where Neptune lists 20"


def test_a_body_shorter_or_longer_than_its_content_length_is_wrong() -> None:
    assert check_body(FILE, sample(b"x" * 5), None, 10) == "got 5 of 10 bytes"
    assert check_body(FILE, sample(b"x" * 11), None, 10) == "got 11 of 10 bytes"
    assert check_body(FILE, sample(b"x" * 10), None, 10) is None


def test_a_file_must_have_the_size_neptune_lists() -> None:
    # Half the bytes with a Content-Length to match: only the listing tells.
    assert check_body(FILE, sample(b"x" * 5), None, 5) == "got 5 bytes where Neptune lists 10"
    assert check_body(FILE, sample(b"{}"), "application/octet-stream", None) == (
        "got 2 bytes where Neptune lists 10"
    )
    assert check_body(Expected(Kind.FILE), sample(b"{}"), None, None) is None  # no size listed
    # A zip's size is judged by what it holds (check_zip), not by its own length.
    assert check_body(ZIP, sample(b"x" * 5), "application/zip", 5) is None


def test_an_image_must_be_whole_when_its_type_has_fixed_ends() -> None:
    assert check_body(IMAGE, sample(PNG), "image/png", len(PNG)) is None
    assert check_body(IMAGE, sample(JPEG), "image/jpeg", None) is None
    assert check_body(IMAGE, sample(b"GIF89a" + bytes(40)), "image/gif", None) is None
    half = PNG[: len(PNG) // 2]
    assert check_body(IMAGE, sample(half), "image/png", len(half)) == (
        "the answer is not a whole image/png: it stops before the image's end"
    )
    assert check_body(IMAGE, sample(JPEG[:100]), "image/jpeg", 100) is not None
    assert check_body(IMAGE, sample(b"{}"), "image/png", 2) == "the answer does not start as image/png does"
    assert check_body(IMAGE, sample(b"<svg/>"), "image/svg+xml", None) is None  # no fixed ends known
    # The client uploads an image over its limit empty: that is the whole image, not a cut one.
    assert check_body(IMAGE, sample(b""), "image/png", 0) is None
    assert check_body(IMAGE, sample(b""), "image/png", 10) == "got 0 of 10 bytes"


def test_a_file_sets_zip_must_hold_what_neptune_lists() -> None:
    assert check_zip(ZIP, None) == "the file set download is not a zip archive"
    assert check_zip(ZIP, [10, 20]) is None
    assert check_zip(ZIP, [10, 0, 20]) is None  # a folder entry holds nothing
    assert check_zip(ZIP, [10]) == "the zip holds 10 bytes of files where Neptune lists 30"
    assert check_zip(Expected(Kind.ZIP), [1]) is None  # no size listed
    assert check_zip(Expected(Kind.ZIP), None) is not None
