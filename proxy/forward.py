"""Sends a request to a backend and its answer back, streaming both bodies (aiohttp client, one
keep-alive pool per backend). The public Host is kept; X-Forwarded-* are set by the proxy only.

Failures before the response starts become clear answers (502 refused or broken, 504 timeout);
after it started, the client connection is cut, as the backend cut ours.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from bridge import metrics
from proxy import zerocopy
from proxy.errors import ProxyAnswer, bad_gateway, gateway_timeout
from proxy.upstream import BODY, END, HEAD, INTERIM, LOST, Connection, Head, Pool, UpstreamError

log = logging.getLogger("ocbridge.proxy")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
_HOP_BY_HOP_BYTES: Final = frozenset(h.encode("ascii") for h in HOP_BY_HOP)
#: set by the proxy alone: what a client sends is dropped
_FORWARDED: Final = frozenset({
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    "x-real-ip", "forwarded"})
_FORWARDED_BYTES: Final = frozenset(h.encode("ascii") for h in _FORWARDED)
#: headers aiohttp adds on its own unless told not to
_AUTO: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
CHUNK: Final = 256 * 1024
#: request bodies up to this size are sent with the request head, in one write
SMALL_BODY: Final = 64 * 1024
#: how long a backend may take to say 100 Continue before the body is sent anyway
CONTINUE_WAIT: Final = 1.0


class ClientGone(Exception):
    """The client went away while its request body was being read."""


@dataclass
class Exchange:
    """What forwarding one request did, for the access log."""

    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: set when the proxy answered itself: refused, timeout, …
    error: str = ""
    upstream_seconds: float = 0.0
    #: why a bearer JWT was not trusted (proxy/oidc.py), for the access log
    jwt_rejected: str = ""


class Backend:
    """One stack: base URL and its connection pool."""

    def __init__(self, name: str, base_url: str, *, connect_timeout: float,
                 read_timeout: float, pool_size: int = 256) -> None:
        self.name = name
        self.base = base_url.rstrip("/")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        #: the data path's connections (proxy/upstream.py); the aiohttp session serves shadow
        #: mirrors and replay, where a request's CPU cost matters less
        self.pool = Pool(self.base, connect_timeout=connect_timeout, read_timeout=read_timeout)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size,
                                         keepalive_timeout=30, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, connect=None,
                                        sock_connect=self._connect_timeout,
                                        sock_read=self._read_timeout)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, cookie_jar=DummyJar(),
            skip_auto_headers=_AUTO, read_bufsize=CHUNK)

    async def close(self) -> None:
        self.pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"backend {self.name} is not started")
        return self._session


class DummyJar(aiohttp.DummyCookieJar):
    """Cookies pass through untouched: the proxy keeps none."""


def request_headers(scope: Scope) -> tuple[CIMultiDict[str], bool]:
    """The headers to send upstream (and whether the client expects 100-continue)."""
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    connection_named: set[str] = set()
    for name, value in raw:
        if name.lower() == b"connection":
            connection_named.update(t.strip().lower() for t in value.decode("latin-1").split(","))
    out: CIMultiDict[str] = CIMultiDict()
    expect = False
    host = ""
    for name_b, value_b in raw:
        name_s = name_b.decode("latin-1").lower()
        value_s = value_b.decode("latin-1")
        if name_s in HOP_BY_HOP or name_s in _FORWARDED or name_s in connection_named:
            continue
        if name_s == "expect":
            expect = value_s.strip().lower() == "100-continue"
            continue
        if name_s == "host":
            host = value_s
        out.add(name_s, value_s)
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
        out["host"] = host
    client = scope.get("client")
    if client:
        out["x-forwarded-for"] = str(client[0])
    out["x-forwarded-proto"] = str(scope.get("scheme", "http"))
    out["x-forwarded-host"] = host
    return out, expect


def target(base: str, scope: Scope) -> URL:
    """The backend URL: the request's raw path and query, untouched."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    text = base + _ascii(raw_path)
    if query:
        text += "?" + _ascii(query)
    return URL(text, encoded=True)


def _ascii(raw: bytes) -> str:
    """`raw` with bytes over 0x7F percent-encoded (yarl must not re-encode anything)."""
    if raw.isascii():
        return raw.decode("ascii")
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


def request_target(scope: Scope) -> str:
    """The request's raw path and query, as the backend must see them."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    return _ascii(raw_path) + ("?" + _ascii(query) if query else "")


@dataclass(frozen=True, slots=True)
class UpstreamHead:
    """The request head for the backend and what it says about the body."""

    head: bytes
    #: the first Content-Length, stripped ("" when none, or dropped for rechunking)
    length: str
    #: the client's body arrives chunked and goes on chunked, without Content-Length
    rechunk: bool
    #: the client sent `Expect: 100-continue`
    expect: bool


def upstream_head(scope: Scope, method: str, *, prefix: bool) -> UpstreamHead:
    """What request_headers and request_head make, in one pass over the raw headers (this
    runs for every request). `prefix`: the body was read already and is sent as it is."""
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    kept: list[tuple[bytes, bytes]] = []
    connection_named: set[bytes] | None = None
    expect = chunked_in = False
    host = b""
    length = ""
    for name, value in raw:
        name = name.lower()
        if name in _HOP_BY_HOP_BYTES or name in _FORWARDED_BYTES:
            if name == b"connection":
                tokens = {t.strip().lower().encode("latin-1")
                          for t in value.decode("latin-1").split(",")}
                connection_named = tokens | (connection_named or set())
            elif name == b"transfer-encoding":
                chunked_in = True
            continue
        if name == b"expect":
            expect = value.decode("latin-1").strip().lower() == "100-continue"
            continue
        if name == b"host":
            host = value
        elif name == b"content-length" and not length:
            length = value.decode("latin-1").strip() or " "
        kept.append((name, value))
    if connection_named:
        kept = [(n, v) for n, v in kept if n not in connection_named]
        if b"host" in connection_named:
            host = b""
        if b"content-length" in connection_named:
            length = ""
        if b"expect" in connection_named:
            expect = False
    rechunk = not prefix and chunked_in
    if rechunk:
        kept = [(n, v) for n, v in kept if n != b"content-length"]
        length = ""
    length = length.strip()
    parts = [f"{method} {request_target(scope)} HTTP/1.1\r\n".encode("latin-1")]
    for name, value in kept:
        parts += (name, b": ", value, b"\r\n")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}".encode("latin-1")
        parts += (b"host: ", host, b"\r\n")
    client = scope.get("client")
    if client:
        parts += (b"x-forwarded-for: ", str(client[0]).encode("latin-1"), b"\r\n")
    parts += (b"x-forwarded-proto: ", str(scope.get("scheme", "http")).encode("latin-1"),
              b"\r\nx-forwarded-host: ", host, b"\r\n")
    has_body = prefix or rechunk or length not in ("", "0")
    expect = expect and has_body
    if rechunk:
        parts.append(b"transfer-encoding: chunked\r\n")
    if expect:
        parts.append(b"expect: 100-continue\r\n")
    parts.append(b"\r\n")
    return UpstreamHead(b"".join(parts), length, rechunk, expect)


def response_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    connection_named: set[bytes] = set()
    for name, value in raw:
        name = name.lower()
        if name in _HOP_BY_HOP_BYTES:
            if name == b"connection":
                connection_named.update(t.strip().lower() for t in value.split(b","))
            continue
        out.append((name, value))
    if connection_named:
        return [(n, v) for n, v in out if n not in connection_named]
    return out


async def send_answer(send: Send, answer: ProxyAnswer, exchange: Exchange) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": answer.header_list()})
    await send({"type": "http.response.body", "body": answer.body})
    exchange.status = answer.status
    exchange.bytes_out += len(answer.body)


async def forward(backend: Backend, scope: Scope, receive: Receive, send: Send,
                  exchange: Exchange, *, prefix: bytes | None = None,
                  extra_headers: Callable[[int], list[tuple[bytes, bytes]]] | None = None,
                  zero_copy: bool = True) -> None:
    """Forward one request to `backend`; `prefix` is a body already read from the client (a
    small login form) and sent instead; `extra_headers(status)` adds response headers;
    `zero_copy`: a large response body may bypass `send` (not when it is being watched)."""
    method: str = scope["method"]
    upstream = upstream_head(scope, method, prefix=prefix is not None)
    head, length, rechunk, expect = (upstream.head, upstream.length, upstream.rechunk,
                                     upstream.expect)
    has_body = prefix is not None or rechunk or length not in ("", "0")
    pool = backend.pool
    loop = asyncio.get_running_loop()
    started = loop.time()
    body_taken = False  # bytes of the body were taken from the client: no second attempt
    pending = b""  # the start of a body taken from the client, not yet sent
    conn: Connection | None = None
    reusable = False
    try:
        if (prefix is None and has_body and not expect and not rechunk and length.isdigit()
                and int(length) <= SMALL_BODY):
            # a small body (PROPFIND, PROPPATCH, LOCK, a small PUT) mostly comes in one
            # message: it goes with the head in one write, and stays for a second attempt
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            if message.get("more_body", False):
                pending = message.get("body", b"")
            else:
                prefix = message.get("body", b"")
        for attempt in (1, 2):
            conn, reused = await pool.acquire()
            if prefix is not None and not expect:
                conn.write(head + prefix)
                exchange.bytes_in = len(prefix)
            else:
                conn.write(head)
                if has_body and (not expect or await _continued(conn)):
                    body_taken = True
                    await _send_body(conn, receive, prefix, rechunk, exchange, pool.read_timeout,
                                     pending)
                elif has_body:  # refused before the body: the rest would garble the next use
                    conn.spent = True
            kind, value = await conn.next_event(pool.read_timeout)
            while kind == INTERIM:
                kind, value = await conn.next_event(pool.read_timeout)
            if kind == HEAD:
                break
            conn.close()
            # a pooled connection the backend closed meanwhile: once more on a fresh one
            if attempt == 1 and reused and not body_taken:
                continue
            raise UpstreamError("failed", f"the connection broke before an answer: {value}")
    except UpstreamError as exc:
        if conn is not None:
            conn.close()
        await _failed(backend, exc, send, exchange)
        return
    except ClientGone:
        if conn is not None:
            conn.close()
        exchange.error = "client-gone"
        exchange.status = 499
        return
    assert isinstance(value, Head) and conn is not None
    try:
        exchange.upstream_seconds = loop.time() - started
        headers_out = response_headers(value.headers)
        if extra_headers is not None:
            headers_out.extend(extra_headers(value.status))
        exchange.status = value.status
        await send({"type": "http.response.start", "status": value.status,
                    "headers": headers_out})
        if method == "HEAD":
            # no body follows whatever Content-Length says, and the parser cannot be told so
            conn.spent = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        client = scope.get("extensions", {}).get(zerocopy.EXTENSION) if zero_copy else None
        length_out = _spliceable_length(value) if client is not None else 0
        if length_out:
            assert isinstance(client, zerocopy.ClientSocket)
            await _splice_body(backend, conn, client, length_out, send, exchange)
            return  # the connection's parser saw none of the body: not reusable
        await _relay_body(backend, conn, send, exchange)
        reusable = value.keep_alive
    finally:
        pool.release(conn, reusable)


async def _continued(conn: Connection) -> bool:
    """After `Expect: 100-continue`: True once the backend says 100 (or has said nothing for
    CONTINUE_WAIT seconds: it may not know Expect, so the body goes, as curl does), False if
    it answered at once."""
    while True:
        if conn.has_head():
            return False
        try:
            kind, value = await conn.next_event(CONTINUE_WAIT)
        except UpstreamError:
            return True
        if kind == INTERIM and value == 100:
            return True
        if kind == LOST:
            raise UpstreamError("failed", f"the connection broke before an answer: {value}")


async def _send_body(conn: Connection, receive: Receive, prefix: bytes | None, chunked: bool,
                     exchange: Exchange, timeout: float, pending: bytes = b"") -> None:
    if prefix is not None:
        exchange.bytes_in = len(prefix)
        conn.write(prefix)
        return
    if pending:
        exchange.bytes_in += len(pending)
        conn.write(pending)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if conn.closed or conn.has_head():
            # the backend answered (401, 413, 507 …) or hung up before taking it all
            conn.spent = True
            return
        if chunk:
            exchange.bytes_in += len(chunk)
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        if not more:
            if chunked:
                conn.write(b"0\r\n\r\n")
            return
        await conn.drain(timeout)


async def _relay_body(backend: Backend, conn: Connection, send: Send,
                      exchange: Exchange) -> None:
    finished = False
    while True:
        try:
            kind, value = await conn.next_event(backend.pool.read_timeout)
        except UpstreamError as exc:
            exchange.error = f"body-{exc.kind}"
            log.warning("%s backend went silent in a response body: %s", backend.name, exc)
            raise
        if kind == BODY:
            assert isinstance(value, bytes)
            exchange.bytes_out += len(value)
            # the last piece goes out with the end of the body: one write, not two (a chunked
            # answer's terminator), and one round through uvicorn less
            finished = conn.next_is_end()
            await send({"type": "http.response.body", "body": value, "more_body": not finished})
        elif kind == END:
            break
        else:
            exchange.error = "body-failed"
            log.warning("%s backend broke off a response body: %s", backend.name, value)
            raise UpstreamError("failed", "the backend broke off the response body")
    if not finished:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _spliceable_length(head: Head) -> int:
    """The Content-Length of an answer whose body is worth splicing (0 if none is)."""
    length = 0
    for name, value in head.headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            return 0
        if lowered == b"content-length" and value.isdigit():
            length = int(value)
    return length if length >= zerocopy.MIN_LENGTH else 0


async def _splice_body(backend: Backend, conn: Connection, client: zerocopy.ClientSocket,
                       length: int, send: Send, exchange: Exchange) -> None:
    """A large body from the backend's socket to the client's by splice(2) on a thread
    (proxy/zerocopy.py); what had arrived with the head goes through `send` first. The
    connection is closed afterwards: its parser never saw the body."""
    conn.spent = True
    early, complete = conn.stop_reading()
    if early:
        exchange.bytes_out += len(early)
        await send({"type": "http.response.body", "body": early, "more_body": not complete})
    if complete:
        return
    left = length - len(early)
    timeout = backend.pool.read_timeout
    # the thread writes to duplicates: if the event loop closes a connection meanwhile (the
    # client left), its descriptor number may be reused at once by another client's
    # connection, while a duplicate still names the old socket (and fails with EPIPE)
    source = target = -1
    try:
        await client.flushed(timeout)
        if client.gone:
            raise zerocopy.SpliceError("client", "the client went away")
        source, target = os.dup(conn.fileno()), os.dup(client.fileno())
        await zerocopy.splice_on_thread(source, target, left, timeout)
    except zerocopy.SpliceError as exc:
        if exc.side == "client":
            exchange.error = "client-gone"
            client.abandon()
            return
        exchange.error = "body-failed"
        log.warning("%s backend broke off a response body: %s", backend.name, exc)
        raise UpstreamError("failed", str(exc)) from None
    finally:
        for fd in (source, target):
            if fd >= 0:
                os.close(fd)
    client.sent(left)
    exchange.bytes_out += left
    metrics.PROXY_SPLICED_BYTES.labels(backend.name).inc(left)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _failed(backend: Backend, exc: UpstreamError, send: Send, exchange: Exchange) -> None:
    # the body names the failure, not the backend's address; the log has the details
    if exc.kind == "timeout":
        answer = gateway_timeout(backend.name, "no answer within the timeout")
    elif exc.kind == "refused":
        answer = bad_gateway(backend.name, "it does not accept connections")
    else:
        answer = bad_gateway(backend.name, "the connection broke before an answer")
    exchange.error = exc.kind
    log.warning("%s backend at %s: %s", backend.name, backend.base, _describe(exc))
    await send_answer(send, answer, exchange)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
