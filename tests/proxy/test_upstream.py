"""The proxy's own HTTP/1.1 client (proxy/upstream.py) against backends that answer in the
less common ways HTTP allows: a raw socket server scripted per path, and the real new stack
for a chunked upload."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.newstack.legacy.stack import empty_instance
from tests.proxy.harness import USERS
from tests.proxy.test_forward import Env, dav, running_proxy, settings_for

Script = Callable[[socket.socket, bytes], bool]  # (connection, request head) -> keep going


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b""
        data += piece
    return data


class ScriptedBackend:
    """Accepts connections and answers each request with the script for its path."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.heads: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while not self._stop.is_set():
                head = read_head(conn)
                if not head:
                    return
                self.heads.append(head)
                path = head.split(b" ", 2)[1].decode()
                if not self.scripts[path](conn, head):
                    return

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def __enter__(self) -> ScriptedBackend:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.sock.close()


def ok(conn: socket.socket, _head: bytes) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return True


def until_close(conn: socket.socket, _head: bytes) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length, ")
    conn.sendall(b"ends with the connection")
    return False


def broken(conn: socket.socket, _head: bytes) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    return False


def head_answer(conn: socket.socket, _head: bytes) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"e\"\r\n\r\n")
    return True


def refuse_early(conn: socket.socket, _head: bytes) -> bool:
    # answers before reading the body, then hangs up: a quota or size check. Like real
    # servers it closes lingering (reads what still comes): closing with unread data would
    # send a reset that can destroy its own answer in flight
    conn.sendall(b"HTTP/1.1 507 Insufficient Storage\r\nContent-Length: 4\r\n"
                 b"Connection: close\r\n\r\nfull")
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(5)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    return False


def interim_then_answer(conn: socket.socket, _head: bytes) -> bool:
    conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    return True


SCRIPTS: dict[str, Script] = {
    "/ok": ok, "/until-close": until_close, "/broken": broken, "/head": head_answer,
    "/refuse": refuse_early, "/interim": interim_then_answer,
}


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[str, ScriptedBackend]]:
    manifest = empty_instance(tmp_path / "oc10", USERS)
    with ScriptedBackend(SCRIPTS) as backend:
        settings = settings_for(tmp_path, manifest.config_php, backend.url, backend.url,
                                read_timeout=5)
        with running_proxy(settings) as (url, _app):
            yield url, backend


def test_keep_alive_connections_are_reused(scripted: tuple[str, ScriptedBackend]) -> None:
    url, backend = scripted
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(5):
            assert client.get("/ok").text == "ok"
    assert backend.connections == 1


def test_a_body_delimited_by_the_connection_end(scripted: tuple[str, ScriptedBackend]) -> None:
    url, _ = scripted
    answer = httpx.get(url + "/until-close", timeout=10)
    assert answer.status_code == 200
    assert answer.text == "no length, ends with the connection"


def test_a_body_broken_off_cuts_the_client_connection(
        scripted: tuple[str, ScriptedBackend]) -> None:
    url, _ = scripted
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url + "/broken", timeout=10)
    assert httpx.get(url + "/ok", timeout=10).text == "ok"  # the proxy serves on


def test_head_answers_have_no_body_and_do_not_poison_the_pool(
        scripted: tuple[str, ScriptedBackend]) -> None:
    url, backend = scripted
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.head("/head")
        assert answer.status_code == 200 and answer.headers["content-length"] == "1000"
        assert answer.content == b""
        assert client.get("/ok").text == "ok"


def test_an_early_answer_stops_the_upload(scripted: tuple[str, ScriptedBackend]) -> None:
    url, _ = scripted

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 65536

    answer = httpx.put(url + "/refuse", content=body(),
                       headers={"Content-Length": str(64 * 65536)}, timeout=10)
    assert (answer.status_code, answer.text) == (507, "full")


def test_interim_answers_are_skipped_and_chunks_joined(
        scripted: tuple[str, ScriptedBackend]) -> None:
    url, _ = scripted
    answer = httpx.get(url + "/interim", timeout=10)
    assert (answer.status_code, answer.text) == (200, "abcdef")


def test_a_chunked_upload_stays_chunked(env: Env, tmp_path: Path) -> None:
    source = tmp_path / "chunked.bin"
    source.write_bytes(bytes(range(256)) * 4000)
    out = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
         "-u", f"alice:{USERS['alice']}", "-H", "Transfer-Encoding: chunked",
         "-T", str(source), f"{env.proxy}{dav('alice', 'chunked.bin')}"],
        capture_output=True, text=True, timeout=60)
    assert out.stdout == "201", out.stderr
    with env.client("alice", env.legacy) as direct:
        assert direct.get(dav("alice", "chunked.bin")).content == source.read_bytes()
