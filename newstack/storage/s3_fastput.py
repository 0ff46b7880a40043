"""PutObject in one signed request for S3Driver.put (s3.py): botocore's SigV4 signer and one
keep-alive http.client connection per thread, without the boto3 client pipeline, which costs about
1 ms of CPU per small object. Failures leave as `S3ErrorResponse` or `S3ConnectionError`.
"""

from __future__ import annotations

import http.client
import os
import random
import select
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError
from botocore.httpsession import get_cert_path
from botocore.utils import percent_encode

# Retried as botocore's standard mode retries them (botocore/retries/standard.py): transient
# errors and 5xx after a short backoff, throttling after a long one, connection errors always.
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_THROTTLING_STATUS = 429
_TRANSIENT_BACKOFF_SCALE = 0.05
_THROTTLING_BACKOFF_SCALE = 1.0
_MAX_BACKOFF = 20.0
# S3 needs no body hash when Content-MD5 is sent; hashing 16 MiB parts would cost more CPU than the
# rest of the request. The signer takes this setting from the request context, as in botocore.
_UNSIGNED_PAYLOAD = Config(s3={"payload_signing_enabled": False})
_USER_AGENT = "ocbridge-s3-put"


_fork_generation = 0


def _forked() -> None:
    global _fork_generation
    _fork_generation += 1


# A forked child inherits the parent's thread-local connections; sharing a socket would interleave
# two processes' requests, so a child opens its own.
os.register_at_fork(after_in_child=_forked)


class S3ErrorResponse(Exception):
    """S3 answered with an error, after any retries; `code` is S3's error code (or the status)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def uses_proxy(endpoint_url: str) -> bool:
    """Whether the environment routes this endpoint through a proxy (boto3 then does the PUT)."""
    split = urlsplit(endpoint_url)
    return (split.scheme in urllib.request.getproxies()
            and not urllib.request.proxy_bypass(split.hostname or ""))


class S3ConnectionError(Exception):
    """The endpoint could not be reached, or the connection failed or timed out, after retries."""


class SinglePutClient:
    """Uploads whole objects with one PutObject each; thread-safe, one connection per thread.

    `endpoint_url` is the boto3 client's; objects are addressed path-style, keys quoted as
    botocore quotes them. `max_attempts` counts every try, as botocore's `max_attempts` does.
    """

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        region: str,
        credentials: Credentials | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
    ) -> None:
        split = urlsplit(endpoint_url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"S3 endpoint must be an http or https URL, not {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self._origin = f"{split.scheme}://{split.netloc}"
        self._host = split.hostname
        self._port = split.port
        self._bucket_path = f"{split.path.rstrip('/')}/{percent_encode(bucket)}/"
        self._tls: ssl.SSLContext | None = None
        if split.scheme == "https":
            # botocore's CA bundle, as boto3 verifies with it and not only the system's store.
            self._tls = ssl.create_default_context(cafile=get_cert_path(True))
        self._credentials = credentials
        self._region = region
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max(1, max_attempts)
        self._local = threading.local()

    def put(self, key: str, body: bytes, content_md5: str) -> None:
        path = self._bucket_path + percent_encode(key, safe="/~")
        attempt = 1
        while True:
            try:
                status, reply, will_close = self._send(path, body, content_md5)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                if attempt >= self._max_attempts:
                    raise S3ConnectionError(self._describe(exc)) from exc
                scale = _TRANSIENT_BACKOFF_SCALE
            else:
                if will_close:
                    self._drop_connection()
                if 200 <= status < 300:
                    return
                code, message = _error_of(status, reply)
                throttled = code in _THROTTLING_CODES or status == _THROTTLING_STATUS
                retryable = throttled or code in _TRANSIENT_CODES or status in _TRANSIENT_STATUSES
                if attempt >= self._max_attempts or not retryable:
                    raise S3ErrorResponse(code, message, status)
                scale = _THROTTLING_BACKOFF_SCALE if throttled else _TRANSIENT_BACKOFF_SCALE
            time.sleep(random.random() * min(scale * 2 ** (attempt - 1), _MAX_BACKOFF))
            attempt += 1

    def _send(self, path: str, body: bytes, content_md5: str) -> tuple[int, bytes, bool]:
        headers = self._signed_headers(path, body, content_md5)
        connection = self._connection()
        connection.request("PUT", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), response.will_close

    def _signed_headers(self, path: str, body: bytes, content_md5: str) -> dict[str, str]:
        if self._credentials is None:
            raise NoCredentialsError()
        request = AWSRequest(
            method="PUT",
            url=self._origin + path,
            headers={"Content-MD5": content_md5, "Content-Length": str(len(body))},
            data=body,
        )
        request.context["client_config"] = _UNSIGNED_PAYLOAD
        # A new signer per request: it reads (and refreshes) the credentials when it signs.
        S3SigV4Auth(self._credentials, "s3", self._region).add_auth(request)
        headers = dict(request.headers.items())
        headers["User-Agent"] = _USER_AGENT
        return headers

    # -- one connection per thread ----------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        slot: _ConnectionSlot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _ConnectionSlot()
        if slot.connection is not None and (
            slot.generation != _fork_generation or _dropped(slot.connection)
        ):
            slot.close()  # inherited from a parent process, or hung up by the server while idle
        connection = slot.connection
        if connection is None:
            if self._tls is None:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._connect_timeout
                )
            else:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._connect_timeout, context=self._tls
                )
            slot.hold(connection, _fork_generation)
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(self._read_timeout)
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _drop_connection(self) -> None:
        slot: _ConnectionSlot | None = getattr(self._local, "slot", None)
        if slot is not None:
            slot.close()

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ConnectionRefusedError):
            return f"{self.endpoint_url} refused the connection; is the S3 server running there?"
        if isinstance(exc, TimeoutError):
            return f"{self.endpoint_url} did not answer in time ({exc})"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve the host of {self.endpoint_url} ({exc})"
        return f"{self.endpoint_url}: {type(exc).__name__}: {exc}"


class _ConnectionSlot:
    """A thread's connection, closed when the thread or the client is gone: a socket left to the
    garbage collector would raise ResourceWarning."""

    def __init__(self) -> None:
        # The finalizer must not hold the slot itself, so the connection lives in a shared list.
        self._held: list[http.client.HTTPConnection] = []
        self.generation = _fork_generation
        weakref.finalize(self, _close_all, self._held)

    @property
    def connection(self) -> http.client.HTTPConnection | None:
        return self._held[0] if self._held else None

    def hold(self, connection: http.client.HTTPConnection, generation: int) -> None:
        self.close()
        self._held.append(connection)
        self.generation = generation

    def close(self) -> None:
        _close_all(self._held)


def _close_all(held: list[http.client.HTTPConnection]) -> None:
    while held:
        held.pop().close()


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (readable with nothing to say)."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()  # not select(): descriptors past 1024 are common in a busy migration
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _error_of(status: int, body: bytes) -> tuple[str, str]:
    """S3's error code and message from an error body; the status stands in for a missing code."""
    code = message = ""
    if body:
        try:
            root = defusedxml.ElementTree.fromstring(body)
        except (defusedxml.ElementTree.ParseError, defusedxml.DefusedXmlException):
            root = None
        if root is not None:
            code = (root.findtext("Code") or "").strip()
            message = (root.findtext("Message") or "").strip()
    code = code or str(status)
    return code, message or code
