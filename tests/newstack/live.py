"""A real HTTP server (cheroot) in a thread on a free loopback port, for integration tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from newstack.server import ServerOptions, free_port, make_server


@contextmanager
def live_server(app: Any, threads: int = 4) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yields the base URL; always stops the server."""
    options = ServerOptions(host="127.0.0.1", port=free_port(), threads=threads,
                            shutdown_timeout=2)
    server = make_server(app, options)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.bind_addr[1]}"
    finally:
        server.stop()
        thread.join(timeout=5)
