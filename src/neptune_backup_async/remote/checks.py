"""Whether a downloaded body can be what Neptune's listing says the field holds.

A proxy or a broken gateway can answer ``200`` with an error page, with ``{}``, or with
half the bytes and a ``Content-Length`` to match, so a ``200`` alone proves nothing. Every
download is judged here before it is saved, from plain values: the listing's facts
(:class:`Expected`), the answer's headers and the edges of its body (:class:`Sample`). A
verdict is the reason the body cannot be the field, or None. Neptune gives no checksum of
files, so a body of the right kind and size that is still wrong cannot be told apart.
"""

from __future__ import annotations

import enum
import mimetypes
from dataclasses import dataclass


class Kind(enum.Enum):
    """What a download must be, named as a reason says it."""

    FILE = "the file's bytes"
    ZIP = "a zip of the file set"
    IMAGE = "an image"
    NOTEBOOK = "the notebook's JSON"


@dataclass(frozen=True)
class Expected:
    """What the listing says of a download: for a file its size and extension, for a file
    set the total size of its files, for a notebook checkpoint its size; nothing for an
    image (the listing gives only their count)."""

    kind: Kind
    size: int | None = None
    ext: str | None = None


#: How many bytes of each end of a body are kept to judge it.
EDGE = 64


class Sample:
    """The size and first and last bytes of a body, kept as its chunks pass."""

    def __init__(self) -> None:
        self.size = 0
        self.head = b""
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < EDGE:
            self.head += chunk[: EDGE - len(self.head)]
        self.tail = (self.tail + chunk[-EDGE:])[-EDGE:]
        self.size += len(chunk)


# What servers and gateways answer errors with. None of them is ever a file set's zip or an
# image, and a file only when its own extension says it is one of these.
_ERROR_TYPES = {
    "text/html": "an HTML page",
    "application/xhtml+xml": "an HTML page",
    "application/json": "JSON",
    "application/problem+json": "JSON",
}

# Image formats whose start and end are fixed: (signature, end marker that must be in the
# last bytes, or b"" when the format has none worth checking).
_IMAGE_EDGES = {
    "image/png": (b"\x89PNG\r\n\x1a\n", b"IEND"),
    "image/jpeg": (b"\xff\xd8\xff", b"\xff\xd9"),
    "image/gif": (b"GIF8", b""),
}


def media_type(content_type: str | None) -> str | None:
    """``text/html; charset=utf-8`` → ``text/html``; None when there is none."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media or None


def _own_type(expected: Expected) -> str | None:
    """The media type a file's own extension stands for (``json`` → ``application/json``);
    a notebook's is JSON, as the API declares it."""
    if expected.kind is Kind.NOTEBOOK:
        return "application/json"
    if expected.kind is not Kind.FILE or not expected.ext:
        return None
    return mimetypes.guess_type(f"file.{expected.ext}", strict=False)[0]


def check_type(expected: Expected, content_type: str | None, content_length: int | None = None) -> str | None:
    """Why an answer with these headers cannot be the download; None if it can.

    A file whose ``Content-Length`` is not known to differ from the size Neptune lists is
    not judged by its type here: the size is the stronger fact, and :func:`check_body`
    judges it once the body is in.
    """
    media = media_type(content_type)
    if media is None:
        return None
    if media in _ERROR_TYPES and media != _own_type(expected):
        sized = expected.kind is Kind.FILE and expected.size is not None
        if not sized or content_length not in (None, expected.size):
            return f"the answer is {_ERROR_TYPES[media]} ({media}), not {expected.kind.value}"
    if expected.kind is Kind.IMAGE and media.startswith("text/"):
        return f"the answer is text ({media}), not an image"
    return None


def check_body(
    expected: Expected, body: Sample, content_type: str | None, content_length: int | None
) -> str | None:
    """Why a whole body cannot be the download; None if it can.

    ``content_length`` is what the answer's header promised. For a zip this judges only
    the size against ``Content-Length``; :func:`check_zip` judges what it holds. An image
    of no bytes at all is whole: the ``neptune`` client uploads an image over its size
    limit empty, and the server keeps it so (the saver says so in a notice).
    """
    if content_length is not None and body.size != content_length:
        return f"got {body.size} of {content_length} bytes"
    if expected.kind is not Kind.ZIP and expected.size is not None and body.size != expected.size:
        return f"got {body.size} bytes where Neptune lists {expected.size}"
    media = media_type(content_type)
    if expected.kind is Kind.IMAGE and media in _IMAGE_EDGES and body.size:
        signature, end = _IMAGE_EDGES[media]
        if not body.head.startswith(signature):
            return f"the answer does not start as {media} does"
        if end not in body.tail:
            return f"the answer is not a whole {media}: it stops before the image's end"
    return None


def check_zip(expected: Expected, member_sizes: list[int] | None) -> str | None:
    """Why a file set's zip is wrong, from the sizes of the files it holds (None: it is no
    zip); None if it is right."""
    if member_sizes is None:
        return "the file set download is not a zip archive"
    total = sum(member_sizes)
    if expected.size is not None and total != expected.size:
        return f"the zip holds {total} bytes of files where Neptune lists {expected.size}"
    return None
