"""In-process micro-benchmark of the new stack's hot paths (no HTTP server, no network).

    .venv/bin/python -m bench.hotpath [-n 2000] [--propfind-n 50] [--driver posix|memory]

Builds a NativeBackend in a temporary directory through `newstack.service.open_newstack`
(SQLite metadata, POSIX blobs by default), adds a user with a 4 KB file and a folder of 1,000
files, then calls the WSGI app directly and prints milliseconds per call (wall clock and this
process's CPU time) for: GET of the 4 KB file, PROPFIND Depth 1 of the 1,000-entry folder (the
desktop client's property set, body consumed), and `backend.authenticate` with the right
password (bcrypt is cached after the first call, as in a running server).
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.newstack import PROPFIND_BODY
from bridge.config import NewstackSettings, Settings, StorageSettings
from newstack.app import NewstackApp
from newstack.service import open_newstack

USER = "alice"
PASSWORD = "bench-password-1"
FILES = 1000
SMALL = 200
GET_BYTES = 4096


def _environ(method: str, path: str, body: bytes = b"", **headers: str) -> dict[str, Any]:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8200",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "HTTP_AUTHORIZATION": f"Basic {auth}",
        "HTTP_HOST": "127.0.0.1:8200",
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/xml"
    for name, value in headers.items():
        env["HTTP_" + name.upper()] = value
    return env


def _call(app: NewstackApp, method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    status: list[str] = []

    def start_response(line: str, _headers: list[tuple[str, str]]) -> None:
        status.append(line)

    result = app(_environ(method, path, body, **headers), start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not status or status[0][:3] not in ("200", "207"):
        raise RuntimeError(f"{method} {path}: {status}")
    return data


def _time(label: str, n: int, call: Callable[[], object]) -> None:
    for _ in range(min(n, 20)):  # warm caches and the statement cache
        call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<34} {wall / n * 1000:8.3f} ms wall  {cpu / n * 1000:8.3f} ms CPU  (n={n})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="calls for GET and authenticate")
    parser.add_argument("--propfind-n", type=int, default=50, help="PROPFIND calls")
    parser.add_argument("--driver", choices=("posix", "memory"), default="posix")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ocbridge-hotpath-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = replace(
            Settings(),
            newstack=NewstackSettings(data_dir=data_dir),
            storage=StorageSettings(driver=args.driver),
        )
        stack = open_newstack(settings)
        backend = stack.backend
        stack.store.add_user(USER, password=PASSWORD)
        backend.write(USER, "small4k.bin", io.BytesIO(os.urandom(GET_BYTES)), length=GET_BYTES)
        backend.mkdir(USER, "d1000")
        for i in range(FILES):
            backend.write(USER, f"d1000/file-{i:04d}.txt", io.BytesIO(os.urandom(SMALL)),
                          length=SMALL)
        app = NewstackApp(backend)
        files = f"/remote.php/dav/files/{USER}/"

        body = _call(app, "GET", files + "small4k.bin")
        assert len(body) == GET_BYTES, len(body)
        listing = _call(app, "PROPFIND", files + "d1000/", PROPFIND_BODY.encode(), depth="1")
        assert listing.count(b"<d:response>") == FILES + 1, listing.count(b"<d:response>")

        _time("authenticate", args.n, lambda: backend.authenticate(USER, PASSWORD))
        _time("GET 4 KB", args.n, lambda: _call(app, "GET", files + "small4k.bin"))
        _time("PROPFIND Depth 1, 1,000 entries", args.propfind_n,
              lambda: _call(app, "PROPFIND", files + "d1000/", PROPFIND_BODY.encode(),
                            depth="1"))
        stack.store.engine.dispose()


if __name__ == "__main__":
    main()
