"""Large response bodies spliced socket to socket (proxy/zerocopy.py): `splice_body` on real
socket pairs, and through the running proxy: bytes identical, counted as spliced, a backend
that dies mid-body cuts the client's connection without harming the next request, and a
watched (shadowed) answer still goes through Python."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge import metrics
from newstack.server import free_port
from proxy import zerocopy
from proxy.zerocopy import SpliceError, splice_body
from tests.proxy.test_forward import USERS, Env, dav, running_proxy, settings_for
from tests.proxy.test_forward import env as env  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(not zerocopy.AVAILABLE, reason="os.splice is Linux-only")


def pairs() -> tuple[socket.socket, socket.socket, socket.socket, socket.socket]:
    """(backend, proxy's upstream end, proxy's client end, client): two TCP connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    upstream = socket.create_connection(("127.0.0.1", port))
    backend, _ = listener.accept()
    client = socket.create_connection(("127.0.0.1", port))
    downstream, _ = listener.accept()
    listener.close()
    for sock in (upstream, downstream):
        sock.setblocking(False)  # as the event loop keeps them
    return backend, upstream, downstream, client


def drain(sock: socket.socket, out: list[bytes]) -> threading.Thread:
    def read() -> None:
        while chunk := sock.recv(1 << 20):
            out.append(chunk)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_splice_moves_exactly_the_length_and_nothing_after_it() -> None:
    backend, upstream, downstream, client = pairs()
    data = os.urandom(9 * 1024 * 1024 + 17)
    got: list[bytes] = []
    reader = drain(client, got)
    writer = threading.Thread(target=backend.sendall, args=(data + b"NEXT RESPONSE",))
    writer.start()
    splice_body(upstream.fileno(), downstream.fileno(), len(data), 5, threading.Event())
    downstream.close()
    reader.join(10)
    writer.join(10)
    assert b"".join(got) == data
    upstream.setblocking(True)
    assert upstream.recv(100) == b"NEXT RESPONSE", "bytes past the body stay unread"
    for sock in (backend, upstream, client):
        sock.close()


def test_a_body_that_ends_short_is_the_backends_failure() -> None:
    backend, upstream, downstream, client = pairs()
    backend.sendall(b"x" * 1000)
    backend.close()
    with pytest.raises(SpliceError, match="1000 bytes short") as failure:
        splice_body(upstream.fileno(), downstream.fileno(), 2000, 5, threading.Event())
    assert failure.value.side == "backend"
    for sock in (upstream, downstream, client):
        sock.close()


def test_a_client_that_hangs_up_is_the_clients_failure() -> None:
    backend, upstream, downstream, client = pairs()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # a reset: writes to it fail

    def send() -> None:
        with contextlib.suppress(OSError):  # the proxy's end closes under it
            backend.sendall(b"y" * (8 << 20))

    writer = threading.Thread(target=send, daemon=True)
    writer.start()
    with pytest.raises(SpliceError) as failure:
        splice_body(upstream.fileno(), downstream.fileno(), 8 << 20, 5, threading.Event())
    assert failure.value.side == "client"
    for sock in (upstream, downstream):
        sock.close()
    writer.join(10)
    backend.close()


def test_a_silent_backend_times_out_and_a_stop_ends_the_wait() -> None:
    backend, upstream, downstream, client = pairs()
    started = time.monotonic()
    with pytest.raises(SpliceError, match="stalled") as failure:
        splice_body(upstream.fileno(), downstream.fileno(), 10, 0.5, threading.Event())
    assert failure.value.side == "backend" and time.monotonic() - started < 3
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(SpliceError, match="cancelled"):
        splice_body(upstream.fileno(), downstream.fileno(), 10, 60, stop)
    for sock in (backend, upstream, downstream, client):
        sock.close()


def spliced(stack: str) -> float:
    return metrics.PROXY_SPLICED_BYTES.labels(stack)._value.get()


def test_a_large_get_is_spliced_and_arrives_whole(env: Env) -> None:
    size = 24 * 2**20 + 3
    data = os.urandom(size)
    for uid, stack in (("alice", "legacy"), ("bob", "new")):
        if stack == "new":
            env.flip(uid, "new")
        with env.client(uid) as client:
            assert client.put(dav(uid, "big.bin"), content=data).status_code == 201
            before = spliced(stack)
            got = client.get(dav(uid, "big.bin"))
            assert got.status_code == 200 and got.headers["content-length"] == str(size)
            assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
            # the head and what arrived with it went through uvicorn, the rest was spliced
            assert size - 2 * 2**20 < spliced(stack) - before <= size
            # keep-alive on the client side goes on: the next request on the connection works
            small = client.get(dav(uid, "big.bin"), headers={"Range": "bytes=0-9"})
            assert small.status_code == 206 and small.content == data[:10]


def test_a_small_get_is_not_spliced(env: Env) -> None:
    with env.client("alice") as client:
        assert client.put(dav("alice", "small.bin"), content=b"z" * 1000).status_code == 201
        before = spliced("legacy")
        assert client.get(dav("alice", "small.bin")).content == b"z" * 1000
        assert spliced("legacy") == before


@pytest.fixture
def dying_backend() -> Iterator[str]:
    """A backend that announces 64 MiB and sends 10 MiB before hanging up."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\n"
                             + b"a" * (10 << 20))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_backend_dying_mid_body_cuts_the_client_and_the_proxy_serves_on(
        env: Env, tmp_path: Path, dying_backend: str) -> None:
    env.flip("bob", "new")  # before this test's own proxy starts: one proxy acknowledges
    settings = settings_for(tmp_path, str(env.settings.legacy.config_php), dying_backend,
                            env.new, read_timeout=5)
    with running_proxy(settings) as (url, _app):
        with httpx.Client(base_url=url, auth=("alice", USERS["alice"]), timeout=30) as client:
            received = 0
            with pytest.raises(httpx.HTTPError):
                with client.stream("GET", dav("alice", "x.bin")) as response:
                    assert response.status_code == 200
                    for chunk in response.iter_raw():
                        received += len(chunk)
            assert received < 64 << 20
        # the other stack through the same proxy still answers
        with httpx.Client(base_url=url, auth=("bob", USERS["bob"]), timeout=30) as client:
            assert client.request("PROPFIND", dav("bob"), headers={"Depth": "0"}
                                  ).status_code == 207


def splice_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ocbridge-splice"]


def test_a_client_leaving_mid_body_ends_quietly(env: Env, caplog: pytest.LogCaptureFixture
                                                ) -> None:
    size = 64 * 2**20
    with env.client("alice") as client:
        assert client.put(dav("alice", "leave.bin"), content=b"L" * size).status_code == 201
    host, port = env.proxy.removeprefix("http://").split(":")
    credentials = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    before = spliced("legacy")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(f"GET {dav('alice', 'leave.bin')} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Basic {credentials}\r\n\r\n".encode())
        got = 0
        while got < 4 * 2**20:
            got += len(raw.recv(1 << 20))
        # the client reads no more: the splice (this process runs the proxy) waits on it
        assert splice_threads(), "the body is being spliced"
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and splice_threads():
        time.sleep(0.05)
    assert not splice_threads(), "the splice ended when the client left"
    assert spliced("legacy") == before, "an unfinished splice is not counted"
    assert not [r for r in caplog.records if "without completing" in r.getMessage()]
    with env.client("alice") as client:  # the proxy serves on
        assert client.request("PROPFIND", dav("alice"), headers={"Depth": "1"}
                              ).status_code == 207


def test_head_requests_and_empty_bodies_through_the_proxy(env: Env) -> None:
    with env.client("alice") as client:
        assert client.put(dav("alice", "empty.txt"), content=b"").status_code == 201
        assert client.put(dav("alice", "four.txt"), content=b"four").status_code == 201
        head = client.head(dav("alice", "four.txt"))
        assert head.status_code == 200 and head.headers["content-length"] == "4"
        assert client.get(dav("alice", "empty.txt")).content == b""
        assert client.get(dav("alice", "four.txt")).content == b"four"
        assert client.get(dav("alice", "missing.txt")).status_code == 404
