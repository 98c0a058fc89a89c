"""The S3 client of one backup: reading objects, and telling S3's answers apart.

An error answer becomes an exception by its code and HTTP status alone, never its text,
so nothing the server echoes (a key id, a signature) reaches a message.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ...errors import FetchError, Retry, TransientError
from ..http import RETRYABLE_STATUSES

S3_EXTRA = 'pip install "neptune-backup-async[s3]"'
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0
_CREDENTIALS = (
    "check the AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and"
    " the endpoint (--s3-endpoint-url)"
)
_REFUSED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "403"}
)


def split(url: str) -> tuple[str, str]:
    """An ``s3://bucket/key`` location's bucket and key; the client's S3 driver writes keys as they are."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


class S3Reader:
    """One S3 client per backup, made on first use; boto3 clients are thread-safe once made.

    Configured the standard way (credentials, profile and region from the environment and
    ``~/.aws``; ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``), except that an explicit
    ``endpoint_url``, or else the ``neptune`` client's own ``S3_ENDPOINT_URL``, wins. botocore's
    retries are off: a failed read is retried by the pipeline, like a Neptune download.
    """

    def __init__(self, endpoint_url: str | None = None, connections: int = 10) -> None:
        self.endpoint_url = endpoint_url or os.environ.get("S3_ENDPOINT_URL") or None
        self._connections = max(10, connections)
        self._lock = threading.Lock()
        self._client: Any = None

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError:
                    raise FetchError(f"it is on S3, which needs boto3: {S3_EXTRA}") from None
                config = Config(
                    max_pool_connections=self._connections,
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    retries={"mode": "standard", "total_max_attempts": 1},
                )
                session = boto3.session.Session()
                self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
            return self._client

    def get(self, url: str, start: int = 0, etag: str | None = None) -> dict[str, Any]:
        """``GetObject``, from byte ``start`` of the object with ``etag`` when ``start`` > 0.

        Raises :class:`Stale` when that object is no longer there to resume from.
        """
        bucket, key = split(url)
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start:
            args.update(Range=f"bytes={start}-", IfMatch=f'"{etag}"')
        client = self.client()
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            response: dict[str, Any] = client.get_object(**args)
        except ClientError as e:
            raise _s3_error(e.response, url) from None
        except NoCredentialsError:
            raise FetchError(f"no AWS credentials found to read {url}: {_CREDENTIALS}") from None
        except (BotoCoreError, OSError) as e:
            if _is_transient(e):
                raise TransientError(
                    f"cannot reach S3 for {url} ({type(e).__name__})", reason=Retry.CONNECTION
                ) from None
            raise FetchError(f"cannot read {url} from S3 ({type(e).__name__})") from None
        return response

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class Gone(FetchError):
    """The object or its bucket does not exist."""


class Stale(Exception):
    """The bytes held belong to an object that is not there any more (412) or are too many (416)."""


def _s3_error(response: dict[str, Any], url: str) -> Exception:
    """An S3 error answer as an exception: by its code and status only, never its text."""
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if status in (412, 416) or code in ("PreconditionFailed", "InvalidRange"):
        return Stale(code)
    if status in RETRYABLE_STATUSES or code in ("SlowDown", "RequestTimeout", "InternalError"):
        # SlowDown (or a 429 from an S3-compatible store) narrows the one knob and is waited
        # out like a Neptune 429; the others are retried like a 5xx.
        throttled = code == "SlowDown" or status == 429
        return TransientError(
            f"S3 answered HTTP {status} ({code}) for {url}",
            reason=Retry.THROTTLED if throttled else Retry.STATUS,
            status=status or 503,
            label="S3 SlowDown" if code == "SlowDown" else f"S3 {status if throttled else code or status}",
        )
    if code == "NoSuchBucket":
        return Gone(f"{url}: the bucket {split(url)[0]!r} does not exist (NoSuchBucket)")
    if code in ("NoSuchKey", "404") or status == 404:
        return Gone(f"{url} is gone from S3 (NoSuchKey)")
    if code in _REFUSED or status == 403:
        return FetchError(f"S3 refused to read {url} ({code or status}): {_CREDENTIALS}")
    return FetchError(f"S3 answered HTTP {status} ({code}) for {url}")


def stream_errors() -> tuple[type[Exception], ...]:
    """What reading an object's body raises when the connection fails."""
    from botocore.exceptions import BotoCoreError
    from urllib3.exceptions import HTTPError

    return (OSError, BotoCoreError, HTTPError)


def _is_transient(e: Exception) -> bool:
    from botocore import exceptions as b

    return isinstance(e, (b.ConnectionError, b.HTTPClientError, b.IncompleteReadError, OSError))
