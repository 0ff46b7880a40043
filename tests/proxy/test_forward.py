"""The proxy for real: the legacy server (an ownCloud 10 instance served in place) and a native new
stack on loopback, the proxy on uvicorn in this process, users routed to each side."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from bridge.config import LegacySettings, NewstackSettings, ProxySettings, Settings
from bridge.store import BridgeStore
from newstack.app import NewstackApp, ServerInfo
from newstack.server import free_port
from proxy.app import ProxyApp
from proxy.forward import request_headers, target, upstream_head
from proxy.identify import COOKIE_NAME
from proxy.server import uvicorn_config
from tests.clients.conftest import NewstackServer
from tests.clients.test_sync_clients import make_tree, rclone
from tests.newstack.backends import StackUser, make_backend
from tests.newstack.legacy.stack import empty_instance, open_backend
from tests.newstack.live import live_server

USERS = {"alice": "Alice-pa55word", "bob": "Bob-pa55word"}


@contextmanager
def running_proxy(settings: Settings) -> Iterator[tuple[str, ProxyApp]]:
    """The proxy on uvicorn in a thread on a free port; yields (base URL, app)."""
    app = ProxyApp(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the proxy did not start"
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclasses.dataclass
class Env:
    proxy: str
    legacy: str
    new: str
    store: BridgeStore
    settings: Settings
    app: ProxyApp

    def client(self, uid: str, base: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=base or self.proxy, auth=(uid, USERS[uid]), timeout=60)

    def flip(self, uid: str, state: str) -> int:
        row = self.store.set_state(uid, state)
        status = self.store.wait_for_acks(row.epoch, 10)
        assert status.complete, status
        assert len(status.acked) == 1
        return row.epoch


def settings_for(tmp_path: Path, config_php: str, legacy_url: str, new_url: str,
                 **proxy: object) -> Settings:
    options: dict[str, object] = {"legacy_url": legacy_url, "newstack_url": new_url,
                                  "refresh_ms": 50, "connect_timeout": 2, "read_timeout": 30}
    options.update(proxy)
    return Settings(legacy=LegacySettings(config_php=Path(config_php)),
                    newstack=NewstackSettings(data_dir=tmp_path / "bridge"),
                    proxy=ProxySettings(**options))  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    manifest = empty_instance(tmp_path / "oc10", USERS)
    legacy_backend = open_backend(manifest)
    new_backend = make_backend("native", tmp_path / "new",
                               [StackUser(uid, pw, uid.title()) for uid, pw in USERS.items()])
    legacy_app = NewstackApp(legacy_backend, ServerInfo(hostname="legacy"))
    new_app = NewstackApp(new_backend, ServerInfo(hostname="new"))
    try:
        with live_server(legacy_app, threads=8) as legacy, live_server(new_app, threads=8) as new:
            settings = settings_for(tmp_path, manifest.config_php, legacy, new)
            store = BridgeStore.from_settings(settings)
            with running_proxy(settings) as (url, app):
                yield Env(url, legacy, new, store, settings, app)
            store.close()
    finally:
        legacy_backend.close()


def dav(uid: str, path: str = "") -> str:
    return f"/remote.php/dav/files/{uid}/{path}"


def where(env: Env, uid: str, path: str) -> set[str]:
    """The stacks that hold the file, asked directly."""
    found = set()
    for name, base in (("legacy", env.legacy), ("new", env.new)):
        with env.client(uid, base) as c:
            if c.get(dav(uid, path)).status_code == 200:
                found.add(name)
    return found


def test_users_reach_their_stack_and_a_flip_counts_at_the_next_request(env: Env) -> None:
    env.flip("bob", "new")
    with env.client("alice") as alice, env.client("bob") as bob:
        assert alice.put(dav("alice", "a.txt"), content=b"alice on legacy").status_code == 201
        assert bob.put(dav("bob", "b.txt"), content=b"bob on new").status_code == 201
        assert where(env, "alice", "a.txt") == {"legacy"}
        assert where(env, "bob", "b.txt") == {"new"}
        assert alice.get(dav("alice", "a.txt")).content == b"alice on legacy"

        # the flip is complete once acknowledged: the very next request goes to the new stack
        env.flip("alice", "new")
        assert alice.get(dav("alice", "a.txt")).status_code == 404
        assert alice.put(dav("alice", "a.txt"), content=b"alice on new").status_code == 201
        assert where(env, "alice", "a.txt") == {"legacy", "new"}
        with env.client("alice", env.new) as direct:
            assert direct.get(dav("alice", "a.txt")).content == b"alice on new"
        # and back
        env.flip("alice", "legacy")
        assert alice.get(dav("alice", "a.txt")).content == b"alice on legacy"


def test_old_webdav_endpoint_login_by_any_case_and_move_destination(env: Env) -> None:
    env.flip("bob", "new")
    with httpx.Client(base_url=env.proxy, auth=("BOB", USERS["bob"]), timeout=30) as bob:
        assert bob.put("/remote.php/webdav/x.txt", content=b"x").status_code == 201
        moved = bob.request("MOVE", "/remote.php/webdav/x.txt",
                            headers={"Destination": f"{env.proxy}/remote.php/webdav/y.txt"})
        assert moved.status_code == 201, moved.text
        copied = bob.request("COPY", dav("bob", "y.txt"),
                             headers={"Destination": f"{env.proxy}{dav('bob', 'z.txt')}"})
        assert copied.status_code == 201, copied.text
    assert where(env, "bob", "z.txt") == {"new"}


def test_routing_cookie_is_set_signed_and_followed(env: Env) -> None:
    env.flip("bob", "new")
    with env.client("bob") as bob:
        response = bob.request("PROPFIND", dav("bob"), headers={"Depth": "0"})
        assert response.status_code == 207
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie
        # a client already holding a fresh cookie is not sent another
        again = bob.request("PROPFIND", dav("bob"), headers={"Depth": "0"})
        assert "set-cookie" not in again.headers
    # wrong password: the backend that owns bob's uid refuses it, and no cookie is set
    with httpx.Client(base_url=env.proxy, auth=("bob", "wrong"), timeout=30) as wrong:
        refused = wrong.request("PROPFIND", dav("bob"), headers={"Depth": "0"})
        assert refused.status_code == 401
        assert "set-cookie" not in refused.headers


def test_each_request_gets_one_access_log_line(env: Env,
                                              caplog: pytest.LogCaptureFixture) -> None:
    env.flip("bob", "new")
    caplog.set_level(logging.INFO, logger="ocbridge.proxy.access")
    with env.client("bob") as bob:
        assert bob.get(dav("bob", "nothing-here.txt")).status_code == 404
    assert httpx.get(env.proxy + "/s/SecretLinkToken1/download", timeout=30).status_code >= 400

    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "ocbridge.proxy.access"]

    deadline = time.monotonic() + 5  # written just after the answer left
    while len(lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    records = lines()
    assert len(records) == 2
    first, second = (json.loads(r.getMessage()) for r in records)
    assert {k: first[k] for k in ("method", "path", "status", "stack", "source", "uid",
                                  "write", "bytes_in")} == {
        "method": "GET", "path": dav("bob", "nothing-here.txt"), "status": 404,
        "stack": "new", "source": "basic", "uid": "bob", "write": False, "bytes_in": 0}
    assert first["bytes_out"] > 0 and first["ms"] >= first["upstream_ms"] >= 0
    # the link token is no secret of the log's; the line is UTF-8, not \u-escaped
    assert second["path"] == "/s/…/download" and second["uid"] is None
    assert "…" in records[1].getMessage() and "SecretLinkToken1" not in records[1].getMessage()
    assert (records[0].levelno, records[0].funcName) == (logging.INFO, "_done")


def test_frozen_writes_get_423_and_reads_continue(env: Env) -> None:
    env.flip("bob", "new")
    with env.client("bob") as bob:
        assert bob.put(dav("bob", "keep.txt"), content=b"kept").status_code == 201
        env.flip("bob", "frozen")
        refused = bob.put(dav("bob", "keep.txt"), content=b"changed")
        assert refused.status_code == 423
        assert b"FileLocked" in refused.content
        assert refused.headers["content-type"] == "application/xml; charset=utf-8"
        assert bob.request("MKCOL", dav("bob", "d")).status_code == 423
        assert bob.delete(dav("bob", "keep.txt")).status_code == 423
        # reads go on, from the stack bob is on
        assert bob.get(dav("bob", "keep.txt")).content == b"kept"
        assert bob.request("PROPFIND", dav("bob"), headers={"Depth": "1"}).status_code == 207
        env.flip("bob", "new")
        assert bob.put(dav("bob", "keep.txt"), content=b"changed").status_code == 204


def test_a_flip_waits_for_in_flight_writes(env: Env) -> None:
    release = threading.Event()
    result: dict[str, int] = {}

    def slow_body() -> Iterator[bytes]:
        yield b"first part "
        release.wait(20)
        yield b"last part"

    def upload() -> None:
        with env.client("alice") as alice:
            result["status"] = alice.put(dav("alice", "slow.txt"), content=slow_body(),
                                         headers={"Content-Length": "20"}).status_code

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 10
    while not env.app.keeper or not env.app.keeper._writes:  # the write is in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    row = env.store.set_state("alice", "frozen")
    status = env.store.wait_for_acks(row.epoch, 1.0)
    assert not status.complete
    assert status.waiting[0].draining == 1
    release.set()
    thread.join(20)
    assert result["status"] == 201  # the write that started before the freeze completes
    assert env.store.wait_for_acks(row.epoch, 10).complete


def test_large_body_streams_both_ways(env: Env, tmp_path: Path) -> None:
    env.flip("bob", "new")
    size = 200 * 2**20
    block = hashlib.sha256(b"seed").digest() * (2**20 // 32)
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with env.client("bob") as bob:
        put = bob.put(dav("bob", "big.bin"), content=body(),
                      headers={"Content-Length": str(size)})
        assert put.status_code == 201, put.text
        got = hashlib.sha256()
        with bob.stream("GET", dav("bob", "big.bin")) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_raw():
                got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    # proxy, both servers and the client share this process; a buffered 200 MB body would
    # add at least 200 MiB
    assert grown_mib < 120, f"peak RSS grew by {grown_mib:.0f} MiB"


def test_expect_100_continue_through_the_proxy(env: Env, tmp_path: Path) -> None:
    data = tmp_path / "upload.bin"
    data.write_bytes(b"z" * 3_000_000)
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", f"alice:{USERS['alice']}",
         "-H", "Expect: 100-continue", "-T", str(data),
         f"{env.proxy}{dav('alice', 'curl.bin')}"],
        capture_output=True, text=True, timeout=60)
    assert out.stdout == "201", out.stderr
    assert where(env, "alice", "curl.bin") == {"legacy"}


def test_rclone_through_the_proxy_for_a_user_on_each_side(env: Env, tmp_path: Path) -> None:
    env.flip("bob", "new")
    for uid, stack in (("alice", "legacy"), ("bob", "new")):
        src = tmp_path / f"src-{uid}"
        make_tree(src)
        live = NewstackServer(env.proxy, uid, USERS[uid], None)  # type: ignore[arg-type]
        copy = rclone(live, "copy", str(src), "ocb:")
        assert copy.returncode == 0, copy.stderr
        check = rclone(live, "check", str(src), "ocb:", "--download")
        assert check.returncode == 0, check.stderr
        assert where(env, uid, "big.bin") == {stack}


# -- backends that fail -------------------------------------------------------------------------

def test_a_stopped_backend_gives_502_quickly(tmp_path: Path) -> None:
    manifest = empty_instance(tmp_path / "oc10", USERS)
    backend = open_backend(manifest)
    try:
        with live_server(NewstackApp(backend, ServerInfo()), threads=4) as legacy:
            settings = settings_for(tmp_path, manifest.config_php, legacy,
                                    f"http://127.0.0.1:{free_port()}")
            store = BridgeStore.from_settings(settings)
            with running_proxy(settings) as (url, _app):
                with httpx.Client(base_url=url, auth=("alice", USERS["alice"]),
                                  timeout=30) as c:
                    assert c.request("PROPFIND", dav("alice")).status_code == 207
                    # the new stack is not running at all
                    store.set_state("alice", "new")
                    assert store.wait_for_acks(store.epoch(), 10).complete
                    started = time.monotonic()
                    answer = c.request("PROPFIND", dav("alice"))
                    assert answer.status_code == 502
                    assert b"ServiceUnavailable" in answer.content
                    assert time.monotonic() - started < 2
                    store.set_state("alice", "legacy")
                    assert store.wait_for_acks(store.epoch(), 10).complete
                    assert c.request("PROPFIND", dav("alice")).status_code == 207
        # the legacy server is stopped now; pooled connections to it are dead
        with running_proxy(settings) as (url, _app):
            with httpx.Client(base_url=url, auth=("alice", USERS["alice"]), timeout=30) as c:
                started = time.monotonic()
                assert c.request("PROPFIND", dav("alice")).status_code == 502
                assert time.monotonic() - started < 2
        store.close()
    finally:
        backend.close()


def test_a_silent_backend_gives_504(tmp_path: Path) -> None:
    manifest = empty_instance(tmp_path / "oc10", USERS)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    settings = settings_for(tmp_path, manifest.config_php, f"http://127.0.0.1:{port}",
                            f"http://127.0.0.1:{port}", read_timeout=1)
    try:
        with running_proxy(settings) as (url, _app):
            answer = httpx.get(url + "/status.php", timeout=30)
            assert answer.status_code == 504
            assert b"did not answer in time" in answer.content
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        silent.close()


# -- headers (no sockets) -------------------------------------------------------------------------

def test_forwarded_headers_are_the_proxys_own() -> None:
    scope = {
        "type": "http", "method": "PUT", "scheme": "https", "client": ("203.0.113.9", 5555),
        "server": ("10.0.0.1", 443), "path": "/remote.php/webdav/a b", "query_string": b"x=%20",
        "raw_path": b"/remote.php/webdav/a%20b\xc3\xa9",
        "headers": [
            (b"host", b"cloud.example.org"),
            (b"x-forwarded-for", b"1.2.3.4"), (b"X-Forwarded-Host", b"evil.example"),
            (b"forwarded", b"for=1.2.3.4"), (b"x-real-ip", b"1.2.3.4"),
            (b"connection", b"keep-alive, X-Custom-Hop"), (b"x-custom-hop", b"1"),
            (b"keep-alive", b"timeout=5"), (b"te", b"trailers"), (b"upgrade", b"h2c"),
            (b"proxy-authorization", b"Basic eDp5"), (b"expect", b"100-continue"),
            (b"authorization", b"Basic " + base64.b64encode(b"alice:pw")),
            (b"destination", b"https://cloud.example.org/remote.php/webdav/c"),
            (b"content-length", b"5"), (b"oc-checksum", b"SHA1:abc"),
        ],
    }
    headers, expect = request_headers(scope)
    assert expect
    assert headers["host"] == "cloud.example.org"
    assert headers.getall("x-forwarded-for") == ["203.0.113.9"]
    assert headers.getall("x-forwarded-host") == ["cloud.example.org"]
    assert headers["x-forwarded-proto"] == "https"
    for gone in ("forwarded", "x-real-ip", "connection", "x-custom-hop", "keep-alive", "te",
                 "upgrade", "proxy-authorization", "expect"):
        assert gone not in headers, gone
    for kept in ("authorization", "destination", "content-length", "oc-checksum"):
        assert kept in headers, kept
    assert str(target("http://backend:8300", scope)) == (
        "http://backend:8300/remote.php/webdav/a%20b%C3%A9?x=%20")


def _head_scope(method: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "method": method, "scheme": "http", "client": ("192.0.2.7", 5555),
            "server": ("10.0.0.1", 8080), "path": "/remote.php/dav/files/bob/a b",
            "raw_path": b"/remote.php/dav/files/bob/a%20b\xc3\xa9", "query_string": b"",
            "headers": list(headers)}


def _tail(host: bytes = b"h", *, added: bool = False) -> bytes:
    """The proxy's own headers; `added`: the client sent no Host, the server's is used."""
    return ((b"host: " + host + b"\r\n" if added else b"")
            + b"x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n"
            + b"x-forwarded-host: " + host + b"\r\n")


_TAIL = _tail()
_SERVER_HOST = _tail(b"10.0.0.1:8080", added=True)


@pytest.mark.parametrize(("method", "headers", "prefix", "lines", "tail", "length", "rechunk",
                          "expect"), [
    # the client's headers in their order, names lower-cased; the proxy's own at the end
    ("GET", [(b"Host", b"h"), (b"Authorization", b"Basic eDp5"), (b"X-Forwarded-For", b"1")],
     False, [b"host: h", b"authorization: Basic eDp5"], _TAIL, "", False, False),
    # no Host: the server's address stands in
    ("GET", [(b"accept", b"*/*")], False, [b"accept: */*"], _SERVER_HOST, "", False, False),
    ("PUT", [(b"host", b"h"), (b"content-length", b" 5 "), (b"expect", b"100-Continue")],
     False, [b"host: h", b"content-length:  5 "], _TAIL + b"expect: 100-continue\r\n", "5",
     False, True),
    # Expect without a body is not passed on
    ("PUT", [(b"host", b"h"), (b"content-length", b"0"), (b"expect", b"100-continue")],
     False, [b"host: h", b"content-length: 0"], _TAIL, "0", False, False),
    # a chunked upload goes on chunked, without any Content-Length
    ("PUT", [(b"host", b"h"), (b"transfer-encoding", b"chunked"), (b"content-length", b"9")],
     False, [b"host: h"], _TAIL + b"transfer-encoding: chunked\r\n", "", True, False),
    # ... unless its body was read already (a login form): then it goes as it came
    ("POST", [(b"host", b"h"), (b"content-length", b"9")], True,
     [b"host: h", b"content-length: 9"], _TAIL, "9", False, False),
    # what Connection names is hop-by-hop too, whichever comes first
    ("PUT", [(b"host", b"h"), (b"x-hop", b"1"), (b"content-length", b"3"),
             (b"expect", b"100-continue"), (b"connection", b"X-Hop, content-length, expect")],
     False, [b"host: h"], _TAIL, "", False, False),
    ("GET", [(b"connection", b"host"), (b"host", b"h")], False, [], _SERVER_HOST, "", False,
     False),
    # the first Content-Length counts
    ("PUT", [(b"host", b"h"), (b"content-length", b""), (b"content-length", b"7")], False,
     [b"host: h", b"content-length: ", b"content-length: 7"], _TAIL, "", False, False),
])
def test_the_upstream_request_head(method: str, headers: list[tuple[bytes, bytes]],
                                   prefix: bool, lines: list[bytes], tail: bytes, length: str,
                                   rechunk: bool, expect: bool) -> None:
    head = upstream_head(_head_scope(method, *headers), method, prefix=prefix)
    start = f"{method} /remote.php/dav/files/bob/a%20b%C3%A9 HTTP/1.1\r\n".encode()
    expected = start + b"".join(line + b"\r\n" for line in lines) + tail + b"\r\n"
    assert head.head == expected
    assert (head.length, head.rechunk, head.expect) == (length, rechunk, expect)


def test_the_proxy_command_serves_with_several_workers(tmp_path: Path) -> None:
    manifest = empty_instance(tmp_path / "oc10", USERS)
    backend = open_backend(manifest)
    port = free_port()
    env = {**os.environ, "OCBRIDGE_LEGACY__CONFIG_PHP": manifest.config_php,
           "OCBRIDGE_NEWSTACK__DATA_DIR": str(tmp_path / "bridge"),
           "OCBRIDGE_PROXY__REFRESH_MS": "50"}
    try:
        with live_server(NewstackApp(backend, ServerInfo()), threads=4) as legacy:
            env["OCBRIDGE_PROXY__LEGACY_URL"] = legacy
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "ocbridge"), "proxy",
                 "--listen", f"127.0.0.1:{port}", "--workers", "2"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                store = BridgeStore.open(f"sqlite:///{tmp_path / 'bridge' / 'bridge.db'}")
                deadline = time.monotonic() + 20
                while len(store.proxies()) < 2:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
                status = httpx.get(f"http://127.0.0.1:{port}/status.php", timeout=10)
                assert status.status_code == 200 and status.json()["installed"] is True
                epoch = store.set_state("alice", "frozen").epoch
                assert len(store.wait_for_acks(epoch, 10).acked) == 2
            finally:
                proc.send_signal(signal.SIGTERM)
                output, _ = proc.communicate(timeout=20)
            assert proc.returncode == 0, output
            assert store.proxies() == []  # both workers left the live set on the way out
            store.close()
    finally:
        backend.close()
