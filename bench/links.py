"""Public-link folder download (/s/<token>/download as a streamed zip and tar), in process.

    scripts/dev bench links [--files 4] [--mib 64]

Builds a NativeBackend (SQLite, POSIX blobs) in a temporary directory, writes `--files` random
files of `--mib` MiB each into a shared folder, makes a public link through the OCS API, then
downloads the folder as zip and as tar through the WSGI app, consuming the body chunk by chunk.
Reports MiB/s and the process's RSS before and at its peak during the download (flat memory =
the peak stays near the start whatever the archive size), and checks the archive's size and the
zip's entries. Writes bench/results/links.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import tempfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.common import machine_info, proc_sample, write_json
from bridge.config import NewstackSettings, Settings
from newstack.app import NewstackApp
from newstack.service import open_newstack

USER = "alice"
PASSWORD = "bench-password-1"
RESULTS = Path(__file__).resolve().parent / "results" / "links.json"


def _environ(method: str, path: str, *, query: str = "", body: bytes = b"",
             **headers: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8200", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "HTTP_HOST": "127.0.0.1:8200",
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def _download(app: NewstackApp, url: str, agent: str) -> dict[str, Any]:
    status: list[str] = []
    result = app(_environ("GET", url, USER_AGENT=agent),
                 lambda line, headers: status.append(line))
    start_kb = proc_sample(os.getpid(), tree=False).rss_kb
    peak_kb, size, chunks = start_kb, 0, 0
    started = time.perf_counter()
    tail = b""
    try:
        for chunk in result:
            size += len(chunk)
            chunks += 1
            tail = (tail + chunk)[-(1 << 20):]
            if chunks % 16 == 0:
                peak_kb = max(peak_kb, proc_sample(os.getpid(), tree=False).rss_kb)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    seconds = time.perf_counter() - started
    peak_kb = max(peak_kb, proc_sample(os.getpid(), tree=False).rss_kb)
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"GET {url}: {status}")
    return {"bytes": size, "chunks": chunks, "seconds": round(seconds, 3),
            "mib_s": round(size / (1 << 20) / seconds, 1),
            "rss_start_mib": round(start_kb / 1024, 1), "rss_peak_mib": round(peak_kb / 1024, 1),
            "rss_growth_mib": round((peak_kb - start_kb) / 1024, 1),
            "_tail": tail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=64, help="size of each file")
    args = parser.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory(prefix="ocbridge-links-") as tmp:
        settings = replace(Settings(), newstack=NewstackSettings(data_dir=Path(tmp) / "data"))
        stack = open_newstack(settings)
        stack.store.add_user(USER, password=PASSWORD)
        backend = stack.backend
        backend.mkdir(USER, "big")
        for i in range(args.files):
            block = os.urandom(1 << 20)
            body = io.BytesIO(block * args.mib)
            backend.write(USER, f"big/file-{i}.bin", body, length=size)
        app = NewstackApp(backend)
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        form = urlencode({"path": "/big", "shareType": "3"}).encode()
        out: list[bytes] = []
        response = app(_environ("POST", "/ocs/v1.php/apps/files_sharing/api/v1/shares",
                                query="format=json", body=form, AUTHORIZATION=f"Basic {auth}"),
                       lambda line, headers: None)
        out.extend(response)
        token = json.loads(b"".join(out))["ocs"]["data"]["token"]
        url = f"/index.php/s/{token}/download"
        zipped = _download(app, url, "Mozilla/5.0 (X11; Linux x86_64)")
        tarred = _download(app, url, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)")
        # the central directory sits in the last bytes: read it back to check the entries
        with zipfile.ZipFile(_TailFile(zipped["bytes"], zipped["_tail"])) as archive:
            entries = [(i.filename, i.file_size) for i in archive.infolist()]
        expected = [("big/", 0)] + [(f"big/file-{i}.bin", size) for i in range(args.files)]
        if entries != expected:
            raise RuntimeError(f"zip entries {entries} != {expected}")
        content = args.files * size
        if not content < zipped["bytes"] < content + (1 << 20):
            raise RuntimeError(f"zip of {zipped['bytes']} bytes for {content} of content")
        for result in (zipped, tarred):
            result.pop("_tail")
        report = {"machine": machine_info(), "files": args.files, "file_mib": args.mib,
                  "content_mib": args.files * args.mib, "zip": zipped, "tar": tarred}
        write_json(RESULTS, report)
        for name in ("zip", "tar"):
            r = report[name]
            print(f"{name}: {r['bytes'] / (1 << 20):.0f} MiB at {r['mib_s']} MiB/s, RSS "
                  f"{r['rss_start_mib']} -> peak {r['rss_peak_mib']} MiB "
                  f"(+{r['rss_growth_mib']})", flush=True)
        print(f"wrote {RESULTS}")


class _TailFile(io.RawIOBase):
    """A seekable file of `total` bytes whose end is `tail` (zeros before it): zipfile lists a
    streamed archive's entries from its central directory without keeping the archive."""

    def __init__(self, total: int, tail: bytes) -> None:
        self.total, self.tail, self.pos = total, tail, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.total + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.total - self.pos))
        start = self.total - len(self.tail)
        data = bytearray(n)
        for i in range(max(self.pos, start), self.pos + n):
            data[i - self.pos] = self.tail[i - start]
        buffer[:n] = data
        self.pos += n
        return n


if __name__ == "__main__":
    main()
