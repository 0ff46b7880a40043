"""Sends a request to a backend and its answer back, streaming both bodies (aiohttp client, one
keep-alive pool per backend). The public Host is kept; X-Forwarded-* are set by the proxy only.

Failures before the response starts become clear answers (502 refused or broken, 504 timeout);
after it started, the client connection is cut, as the backend cut ours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.errors import ProxyAnswer, bad_gateway, gateway_timeout

log = logging.getLogger("ocbridge.proxy")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
#: set by the proxy alone: what a client sends is dropped
_FORWARDED: Final = frozenset({
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    "x-real-ip", "forwarded"})
#: headers aiohttp adds on its own unless told not to
_AUTO: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
CHUNK: Final = 256 * 1024


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
    path = "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw_path)
    query: bytes = scope.get("query_string", b"")
    text = base + path
    if query:
        text += "?" + "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in query)
    return URL(text, encoded=True)


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    connection_named: set[bytes] = set()
    for name, value in raw:
        if name.lower() == b"connection":
            connection_named.update(t.strip().lower().encode("latin-1")
                                    for t in value.decode("latin-1").split(","))
    return [(n.lower(), v) for n, v in raw
            if n.lower().decode("latin-1") not in HOP_BY_HOP and n.lower() not in connection_named]


async def send_answer(send: Send, answer: ProxyAnswer, exchange: Exchange) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": answer.header_list()})
    await send({"type": "http.response.body", "body": answer.body})
    exchange.status = answer.status
    exchange.bytes_out += len(answer.body)


async def forward(backend: Backend, scope: Scope, receive: Receive, send: Send,
                  exchange: Exchange, *, prefix: bytes | None = None,
                  extra_headers: Callable[[int], list[tuple[bytes, bytes]]] | None = None,
                  ) -> None:
    """Forward one request to `backend`; `prefix` is a body already read from the client (a
    small login form) and sent first; `extra_headers(status)` adds response headers."""
    headers, expect = request_headers(scope)
    url = target(backend.base, scope)
    method: str = scope["method"]
    body_started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal body_started
        body_started = True
        if prefix is not None:
            exchange.bytes_in += len(prefix)
            yield prefix
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                exchange.bytes_in += len(chunk)
                yield chunk
            if not message.get("more_body", False):
                return

    chunked = any(n.lower() == b"transfer-encoding" for n, _ in scope["headers"])
    length = headers.get("content-length", "").strip()
    has_body = prefix is not None or chunked or length not in ("", "0")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in (1, 2):
        try:
            response = await backend.session.request(
                method, url, headers=headers, data=body() if has_body else None,
                allow_redirects=False, expect100=expect and has_body)
            break
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # a pooled keep-alive connection the backend closed meanwhile: try once more
            # on a fresh one if nothing of the body was sent yet
            if attempt == 1 and not body_started and not isinstance(
                    exc, aiohttp.ClientConnectorError):
                continue
            await _failed(backend, exc, send, exchange)
            return
        except (TimeoutError, aiohttp.ClientError) as exc:
            await _failed(backend, exc, send, exchange)
            return
        except ClientGone:
            exchange.error = "client-gone"
            exchange.status = 499
            return
    try:
        exchange.upstream_seconds = loop.time() - started
        headers_out = response_headers(response.raw_headers)
        if extra_headers is not None:
            headers_out.extend(extra_headers(response.status))
        exchange.status = response.status
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers_out})
        if method != "HEAD":
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    exchange.bytes_out += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as exc:
                exchange.error = f"body-{type(exc).__name__}"
                log.warning("%s backend broke off a response body: %s", backend.name, exc)
                raise
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        response.release()


async def _failed(backend: Backend, exc: BaseException, send: Send, exchange: Exchange) -> None:
    # the body names the failure, not the backend's address; the log has the details
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        exchange.error = "timeout"
        answer = gateway_timeout(backend.name, "no answer within the timeout")
    elif isinstance(exc, aiohttp.ClientConnectorError):
        exchange.error = "refused"
        answer = bad_gateway(backend.name, "it does not accept connections")
    else:
        exchange.error = "failed"
        answer = bad_gateway(backend.name, "the connection broke before an answer")
    log.warning("%s backend at %s: %s", backend.name, backend.base, _describe(exc))
    await send_answer(send, answer, exchange)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
