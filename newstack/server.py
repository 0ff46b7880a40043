"""Runs a WSGI app on cheroot: threads in each process, several processes on one port.

Worker processes bind the same address with SO_REUSEPORT, so the kernel spreads connections
across them and no process needs to pass sockets around. The parent restarts nothing: it
forwards SIGTERM/SIGINT to the workers and waits, so a supervisor (systemd) owns restarts.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from cheroot import server as cheroot_server
from cheroot import wsgi

from bridge.processes import supervise

log = logging.getLogger("ocbridge.server")

AppFactory = Callable[[], Any]


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    workers: int = 1
    #: threads per process; wsgidav-style rendering holds the GIL, so few threads scale best
    threads: int = 4
    #: seconds a worker waits for in-flight requests on shutdown
    shutdown_timeout: float = 10.0


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: a first body chunk up to this size goes out in the same write as the response headers
COALESCE_BYTES = 64 * 1024


class _Pending:
    """Stands in for a connection's socket writer while a response's head is assembled."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


class CoalescingGateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, except that the response headers and the first body chunk
    leave in one write: a small response (a 4 KB GET, an error body, a PROPFIND's first chunk)
    costs one send() rather than two, and the client reads it in one go. The bytes on the wire
    are the same; cheroot still decides every header (Date, Connection, chunking)."""

    def write(self, chunk: bytes) -> None:
        req = self.req
        if req.sent_headers or len(chunk) > COALESCE_BYTES:
            super().write(chunk)
            return
        conn = req.conn
        wfile = conn.wfile
        pending = _Pending()
        conn.wfile = pending  # what send_headers() and req.write() write lands here
        try:
            super().write(chunk)
        finally:
            conn.wfile = wfile
            if pending.parts:
                wfile.write(b"".join(pending.parts))


#: after a response, a worker waits this long for the client's next request on the same
#: connection before handing the connection back to cheroot's selector thread
LINGER_MS = 2
#: requests one worker serves in a row on one connection before it lets others go first
LINGER_REQUESTS = 32


class LingeringConnection(cheroot_server.HTTPConnection):
    """A keep-alive connection whose worker thread serves the client's next request itself
    when it arrives within LINGER_MS, as long as another worker is idle.

    cheroot otherwise returns every kept-alive connection to its selector thread after each
    response, which then wakes a worker again for the next request: an epoll registration,
    a queue hand-off and two thread wake-ups per request, about a quarter of cheroot's own CPU
    per small request (docs/benchmarks.md). Connections that go quiet, and every connection
    while no other worker is idle, are handed back as before."""

    def communicate(self) -> bool:
        keep_open = bool(super().communicate())  # type: ignore[no-untyped-call]
        served = 1
        while keep_open and served < LINGER_REQUESTS and self._next_request_is_here():
            keep_open = bool(super().communicate())  # type: ignore[no-untyped-call]
            served += 1
        return keep_open

    def _next_request_is_here(self) -> bool:
        if self.rfile.has_data():  # pipelined
            return True
        workers = self.server.requests
        # linger only while another worker is idle: it takes whatever connection becomes
        # ready meanwhile, so no client waits for this one
        if workers.qsize > 0 or workers.idle == 0:
            return False
        try:
            poller = select.poll()  # not select(): no FD_SETSIZE limit
            poller.register(self.socket.fileno(), select.POLLIN)
            return bool(poller.poll(LINGER_MS))
        except (OSError, ValueError):  # closed meanwhile
            return False


def make_server(app: Any, options: ServerOptions) -> wsgi.Server:
    server = wsgi.Server((options.host, options.port), app, numthreads=options.threads,
                         server_name="ocbridge", timeout=60,
                         shutdown_timeout=int(options.shutdown_timeout),
                         reuse_port=options.workers > 1, request_queue_size=128)
    server.gateway = CoalescingGateway
    server.ConnectionClass = LingeringConnection
    return server


def serve(factory: AppFactory, options: ServerOptions,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT. `factory` builds the app in each worker (after the fork)."""
    if options.workers <= 1:
        _serve_one(factory, options, ready)
        return
    children: list[int] = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:
            try:
                _serve_one(factory, options, None)
            finally:
                os._exit(0)
        children.append(pid)
    if ready is not None:
        ready(f"http://{_url_host(options.host)}:{options.port}")
    supervise(children)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _serve_one(factory: AppFactory, options: ServerOptions,
               ready: Callable[[str], None] | None) -> None:
    server = make_server(factory(), options)
    server.prepare()
    stop = threading.Event()

    def shutdown(_signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if ready is not None:
        ready(f"http://{_url_host(options.host)}:{server.bind_addr[1]}")
    try:
        server.serve()
    finally:
        sys.stdout.flush()
