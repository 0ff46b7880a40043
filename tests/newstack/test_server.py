"""newstack/server.py in-process: the coalescing gateway and lingering keep-alive connections
give the same bytes as cheroot's own, keep pipelined requests in order and starve nobody."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from newstack import server as ns_server

BIG = b"b" * (ns_server.COALESCE_BYTES + 1)


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/small":
        body = b"hello " + environ["QUERY_STRING"].encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/chunks":  # several chunks, one larger than what is coalesced
        chunks = [b"first", BIG, b"last"]
        start_response("200 OK", [("Content-Length", str(sum(map(len, chunks))))])
        return chunks
    if path == "/unsized":  # no Content-Length: cheroot chunks the body
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"abc", b"defgh"])
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/slow":
        time.sleep(0.3)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"slow"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


@pytest.fixture
def base() -> Iterator[tuple[str, int]]:
    port = ns_server.free_port()
    srv = ns_server.make_server(app, ns_server.ServerOptions(host="127.0.0.1", port=port,
                                                             threads=2))
    srv.prepare()
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", port
    finally:
        srv.stop()
        thread.join(10)


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    """One response from `sock` (leftover bytes stay in `buffer`): status line, headers, body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the headers"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[:]
    buffer += rest
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buffer) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed in the body"
            buffer += chunk
        body = bytes(buffer[:length])
        del buffer[:length]
        return status.encode(), headers, body
    assert headers.get("transfer-encoding") == "chunked"
    while not bytes(buffer).endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        buffer += chunk
    body = bytes(buffer)
    del buffer[:]
    return status.encode(), headers, body


def test_responses_arrive_whole_on_one_kept_alive_connection(base: tuple[str, int]) -> None:
    with socket.create_connection(base, timeout=10) as sock:
        buffer = bytearray()
        for path, status, body in [
            ("/small?1", b"HTTP/1.1 200 OK", b"hello 1"),
            ("/chunks", b"HTTP/1.1 200 OK", b"first" + BIG + b"last"),
            ("/unsized", b"HTTP/1.1 200 OK", b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"),
            ("/empty", b"HTTP/1.1 204 No Content", None),
            ("/small?2", b"HTTP/1.1 200 OK", b"hello 2"),
        ]:
            sock.sendall(request(path))
            if body is None:  # no body, no length: the headers are all there is
                while b"\r\n\r\n" not in buffer:
                    buffer += sock.recv(65536)
                got = bytes(buffer).partition(b"\r\n\r\n")
                assert got[0].startswith(status) and got[2] == b""
                buffer.clear()
                continue
            got_status, headers, got_body = read_response(sock, buffer)
            assert (got_status, got_body) == (status, body), path
            assert headers["server"] == "ocbridge" and headers["date"].endswith(" GMT")


def test_pipelined_requests_are_answered_in_order(base: tuple[str, int]) -> None:
    with socket.create_connection(base, timeout=10) as sock:
        sock.sendall(b"".join(request(f"/small?{i}") for i in range(5)))
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in range(5)]
    assert bodies == [f"hello {i}".encode() for i in range(5)]


def test_a_lingering_worker_starves_no_other_connection(base: tuple[str, int]) -> None:
    # two workers: one busy with a slow request, one kept by a client that stays quiet
    with socket.create_connection(base, timeout=10) as quiet, \
            socket.create_connection(base, timeout=10) as slow, \
            socket.create_connection(base, timeout=10) as third:
        buffer = bytearray()
        quiet.sendall(request("/small?quiet"))
        assert read_response(quiet, buffer)[2] == b"hello quiet"
        slow.sendall(request("/slow"))
        time.sleep(0.05)
        started = time.monotonic()
        third.sendall(request("/small?third"))
        assert read_response(third, bytearray())[2] == b"hello third"
        assert time.monotonic() - started < 0.25, "the third client waited for the slow one"
        assert read_response(slow, bytearray())[2] == b"slow"
