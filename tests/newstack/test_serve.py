"""`ocbridge serve newstack` as an operator runs it: a real process, several workers, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from newstack.server import free_port

PASSWORD = "w0rkers-pa55"


def ocbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("ocbridge")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_serve_with_two_workers_and_stop_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = ocbridge("users", "add", "alice", "--password", PASSWORD, "--data", str(data))
    assert added.returncode == 0, added.stderr
    port = free_port()
    exe = Path(sys.executable).with_name("ocbridge")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(exe), "serve", "newstack", "--data", str(data), "--listen",
                               f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/status.php", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)

        def upload(i: int) -> int:
            with httpx.Client(auth=("alice", PASSWORD), timeout=30) as client:
                url = f"{base}/remote.php/dav/files/alice/file-{i:03d}.txt"
                return client.put(url, content=f"content {i}".encode() * 100).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(upload, range(40)))
        assert statuses == [201] * 40
        with httpx.Client(auth=("alice", PASSWORD), timeout=30) as client:
            listing = client.request("PROPFIND", f"{base}/remote.php/dav/files/alice/",
                                     headers={"Depth": "1"})
            assert listing.content.count(b"<d:response>") == 41
            for i in (0, 17, 39):
                got = client.get(f"{base}/remote.php/dav/files/alice/file-{i:03d}.txt")
                assert got.content == f"content {i}".encode() * 100
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
        finally:
            log.close()
    assert server.returncode == 0, (tmp_path / "server.log").read_text()
    assert "serving on http://127.0.0.1:" in (tmp_path / "server.log").read_text()


def test_serve_refuses_a_bad_listen_value(tmp_path: Path) -> None:
    result = ocbridge("serve", "newstack", "--data", str(tmp_path), "--listen", "nonsense")
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
