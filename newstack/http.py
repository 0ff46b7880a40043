"""Minimal WSGI request/response plumbing shared by the DAV and OCS handlers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs

Headers = list[tuple[str, str]]

REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content", 207: "Multi-Status",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
    413: "Payload Too Large", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    423: "Locked", 424: "Failed Dependency", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    507: "Insufficient Storage",
}


class BadRequestError(Exception):
    """The request itself is malformed (bad encoding, bad header)."""


@dataclass
class Request:
    environ: dict[str, Any]
    method: str
    #: the decoded path (UTF-8), e.g. /remote.php/webdav/Documents/a b.txt
    path: str
    query: dict[str, list[str]]
    #: set once authenticated
    uid: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        raw = environ.get("PATH_INFO", "") or "/"
        try:
            # WSGI hands the URL-decoded path over as latin-1 code points; the bytes are UTF-8
            path = raw.encode("latin-1").decode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequestError("the request path is not a WSGI byte string") from exc
        except UnicodeDecodeError:
            path = _sabre_decoded(raw)
        if "\x00" in path:
            raise BadRequestError("the request path contains a NUL byte")
        qs = environ.get("QUERY_STRING", "")
        query = parse_qs(qs, keep_blank_values=True) if qs else {}
        return cls(environ, environ.get("REQUEST_METHOD", "GET").upper(), path, query)

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            value = self.environ.get(key)
        else:
            value = self.environ.get("HTTP_" + key)
        return value if value not in (None, "") else None

    def query_value(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError as exc:
            raise BadRequestError(f"Content-Length {value!r} is not a number") from exc
        if length < 0:
            raise BadRequestError("Content-Length is negative")
        return length

    @property
    def body_stream(self) -> BinaryIO:
        stream: BinaryIO = self.environ["wsgi.input"]
        return stream

    def read_body(self, limit: int = 1 << 20) -> bytes:
        """A small request body (XML); larger than `limit` is refused."""
        length = self.content_length
        stream = self.body_stream
        if length is not None:
            if length > limit:
                raise BadRequestError(f"request body of {length} bytes is over {limit}")
            return stream.read(length) if length else b""
        if self.header("Transfer-Encoding") is None:
            return b""
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise BadRequestError(f"request body is over {limit} bytes")
        return data

    def basic_credentials(self) -> tuple[str, str] | None:
        auth = self.header("Authorization")
        if not auth or not auth[:6].lower() == "basic ":
            return None
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        return user, password

    def host_url(self) -> str:
        """scheme://host[:port] as the client addressed us (X-Forwarded-* from the proxy)."""
        scheme = (self.header("X-Forwarded-Proto") or self.environ.get("wsgi.url_scheme")
                  or "http")
        host = self.header("X-Forwarded-Host") or self.header("Host")
        if not host:
            host = f"{self.environ.get('SERVER_NAME', 'localhost')}:" \
                   f"{self.environ.get('SERVER_PORT', '80')}"
        return f"{scheme.split(',')[0].strip()}://{host.split(',')[0].strip()}"


@dataclass
class Response:
    status: int
    headers: Headers = field(default_factory=list)
    body: Iterable[bytes] = ()

    @classmethod
    def of(cls, status: int, body: bytes = b"", content_type: str | None = None,
           headers: Headers | None = None) -> Response:
        out = list(headers or [])
        if content_type:
            out.append(("Content-Type", content_type))
        out.append(("Content-Length", str(len(body))))
        return cls(status, out, [body] if body else [])

    def status_line(self) -> str:
        return f"{self.status} {REASONS.get(self.status, 'Unknown')}"


def closing_iter(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Iterate and make sure the underlying generator is closed when the client goes away."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _sabre_decoded(raw: str) -> str:
    """sabre/http decodePathSegment: a segment that is not UTF-8 is read as ISO-8859-1 (which
    `raw`, latin-1 code points, already is), so such a URL finds the name it spells."""
    segments = []
    for segment in raw.split("/"):
        try:
            segments.append(segment.encode("latin-1").decode("utf-8"))
        except UnicodeDecodeError:
            segments.append(segment)
    return "/".join(segments)
