"""Runs a WSGI app on cheroot: threads in each process, several processes on one port.

Worker processes bind the same address with SO_REUSEPORT, so the kernel spreads connections
across them and no process needs to pass sockets around. The parent restarts nothing: it
forwards SIGTERM/SIGINT to the workers and waits, so a supervisor (systemd) owns restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from cheroot import wsgi

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


def make_server(app: Any, options: ServerOptions) -> wsgi.Server:
    server = wsgi.Server((options.host, options.port), app, numthreads=options.threads,
                         server_name="ocbridge", timeout=60,
                         shutdown_timeout=int(options.shutdown_timeout),
                         reuse_port=options.workers > 1, request_queue_size=128)
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

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass


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
