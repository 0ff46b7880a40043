"""The proxy's HTTP/1.1 client for its data path: keep-alive connections per backend on asyncio
protocols with httptools' response parser, bodies streamed both ways with back-pressure.

aiohttp's client cost about 0.25 ms of CPU per proxied request on the bench machine, most of
what the proxy spent (docs/benchmarks.md, bench/proxy); this does only what forwarding needs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

#: response body bytes queued from a backend before its socket stops being read
READ_HIGH_WATER: Final = 1024 * 1024
READ_LOW_WATER: Final = 256 * 1024
#: idle keep-alive connections kept per backend and proxy process
MAX_IDLE: Final = 128


class UpstreamError(Exception):
    """A backend failed; `kind` is refused (no connection), timeout or failed (broke off)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Head:
    """A backend's final response head."""

    __slots__ = ("headers", "keep_alive", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.keep_alive = keep_alive


#: what a connection reports, in order: INTERIM (a 1xx), Head, BODY bytes, END, LOST
Event = tuple[int, object]
INTERIM: Final = 0
HEAD: Final = 1
BODY: Final = 2
END: Final = 3
LOST: Final = 4


class Connection(asyncio.Protocol):
    """One keep-alive connection to a backend; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        #: the exchange in progress may not be followed by another on this connection
        self.spent = False
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._interim = False
        self._final_head = False
        self._events: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._queued = 0
        self._reading_paused = False
        self._drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and asyncio's TCP transports both set TCP_NODELAY themselves
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # a 101 answer: ownCloud 10 speaks no WebSockets, the proxy passes none through
            self._fail("the backend switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"unreadable response: {exc}")
        if self._queued > READ_HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._push((LOST, exc))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._final_head = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._interim = True
            self._push((INTERIM, status))
            return
        keep_alive = self._parser.should_keep_alive()
        self._final_head = True
        self._push((HEAD, Head(status, self._headers, keep_alive)))

    def on_body(self, body: bytes) -> None:
        self._queued += len(body)
        self._push((BODY, bytes(body)))

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._push((END, None))

    # -- the exchange -----------------------------------------------------------------------------

    def _push(self, event: Event) -> None:
        self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, message: str) -> None:
        self.spent = True
        self._push((LOST, UpstreamError("failed", message)))
        if self.transport is not None:
            self.transport.close()

    def has_head(self) -> bool:
        """A final response head has arrived (the backend answered before taking the body)."""
        return any(kind == HEAD for kind, _ in self._events)

    def next_is_end(self) -> bool:
        return bool(self._events) and self._events[0][0] == END

    async def next_event(self, timeout: float) -> Event:
        """The next event; UpstreamError(timeout) after `timeout` seconds of silence."""
        if not self._events:
            waiter = self._loop.create_future()
            self._waiter = waiter
            timer = self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        event = self._events.popleft()
        if event[0] == BODY:
            body = event[1]
            assert isinstance(body, bytes)
            events = self._events
            if events and events[0][0] == BODY:
                # a chunked answer parses into one piece per chunk (a multistatus often has
                # one per <d:response>): what has arrived goes on as one, one write for all
                pieces = [body]
                size = len(body)
                while events and events[0][0] == BODY and size < READ_LOW_WATER:
                    piece = events.popleft()[1]
                    assert isinstance(piece, bytes)
                    pieces.append(piece)
                    size += len(piece)
                body = b"".join(pieces)
                event = (BODY, body)
            self._queued -= len(body)
            if self._reading_paused and self._queued < READ_LOW_WATER and self.transport:
                self._reading_paused = False
                self.transport.resume_reading()
        elif event[0] == LOST and self._final_head and not _length_known(self._headers):
            # a body delimited by the end of the connection: its end, not a failure
            return (END, None)
        return event

    def stop_reading(self) -> tuple[bytes, bool]:
        """For a body read from the socket by someone else (proxy/zerocopy.py): the event loop
        stops reading it; returns the body bytes that had arrived and whether the whole body
        is among them. The connection cannot be reused afterwards."""
        self.spent = True
        if self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        pieces: list[bytes] = []
        complete = False
        while self._events:
            kind, value = self._events.popleft()
            if kind == BODY:
                assert isinstance(value, bytes)
                pieces.append(value)
            elif kind == END:
                complete = True
        self._queued = 0
        return b"".join(pieces), complete

    def fileno(self) -> int:
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None or self.closed:
            raise UpstreamError("failed", "the connection is closed")
        return int(sock.fileno())

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamError("failed", "the connection is closed")
        self.transport.write(data)

    async def drain(self, timeout: float) -> None:
        drained = self._drained
        if drained is None or drained.done() or self.closed:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(drained)
        except TimeoutError:
            raise UpstreamError("timeout", "the backend stopped reading the request") from None

    def idle(self) -> bool:
        """Open, its exchange finished cleanly, nothing unread: fit for the next one."""
        return not self.closed and not self.spent and not self._events

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _length_known(headers: list[tuple[bytes, bytes]]) -> bool:
    """The final head gave the body's length, or chunks it (else the body ends with the
    connection); looked at only when the connection ends, not for every answer."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            return True
    return False


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamError("timeout", "no answer within the timeout"))


class Pool:
    """Keep-alive connections to one backend (`http://host:port`), for one event loop."""

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the proxy forwards to http:// backends only, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[Connection] = []

    async def acquire(self) -> tuple[Connection, bool]:
        """(a connection, whether it was used before)."""
        while self._idle:
            conn = self._idle.pop()
            if conn.idle():  # not closed meanwhile, and nothing arrived unasked
                return conn, True
            conn.close()
        return await self.connect(), False

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(Connection, self.host, self.port)
        except TimeoutError:
            raise UpstreamError("timeout", "no connection within the timeout") from None
        except OSError as exc:
            raise UpstreamError("refused", f"{type(exc).__name__}: {exc}") from None
        return conn

    def release(self, conn: Connection, reusable: bool) -> None:
        if reusable and conn.idle() and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
