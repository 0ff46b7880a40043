"""The lean single-request PUT of S3Driver (s3_fastput.py): against the real RGW for data, errors
and threads; against a scripted loopback HTTP server only where RGW cannot be made to misbehave
(retries, dropped connections, a server that never answers)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.server
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rgw

from newstack.storage import s3_fastput
from newstack.storage.base import StorageError, StorageUnavailableError
from newstack.storage.s3 import S3Driver
from tests.newstack.storage.contract import (
    GOOD_BLOB_IDS,
    assert_info,
    new_id,
    random_bytes,
    read_all,
)
from tests.newstack.storage.test_s3 import PART_SIZE, etag, make_driver
from tests.newstack.storage.test_s3 import bucket as bucket  # noqa: F401 - fixture
from tests.newstack.storage.test_s3 import driver as driver  # noqa: F401 - fixture


def test_the_lean_path_is_on(driver: S3Driver) -> None:
    assert driver._single_put is not None


@pytest.fixture(scope="module")
def boto3_driver(rgw_endpoint: rgw.RgwEndpoint, bucket: str) -> S3Driver:
    """The same bucket with whole-object PUTs left to boto3, as before the lean path."""
    driver = make_driver(rgw_endpoint, bucket)
    driver._single_put = None
    return driver


@pytest.fixture
def boto3_put_objects(driver: S3Driver) -> Iterator[list[str]]:
    """Keys of the PutObject calls that went through boto3 (there should be none)."""
    calls: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(str(params.get("Key")))

    driver._client.meta.events.register("provide-client-params.s3.PutObject", count)
    yield calls
    driver._client.meta.events.unregister("provide-client-params.s3.PutObject", count)


# -- data, against RGW ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"x", random_bytes(10_000, seed=1), random_bytes(PART_SIZE, seed=2)],
    ids=["empty", "one-byte", "10kB", "one-whole-part"],
)
def test_round_trip(driver: S3Driver, boto3_put_objects: list[str], data: bytes) -> None:
    blob_id = new_id()
    info = driver.put(blob_id, [data] if data else [], size=len(data))
    assert_info(info, data)
    assert read_all(driver, blob_id) == data
    assert driver.stat(blob_id).size == len(data)
    assert boto3_put_objects == []


def test_the_spy_sees_boto3_puts(driver: S3Driver, boto3_put_objects: list[str]) -> None:
    driver._client.put_object(Bucket=driver.bucket, Key="seen", Body=b"x")
    assert boto3_put_objects == ["seen"]


@pytest.mark.parametrize("blob_id", [*GOOD_BLOB_IDS, "a.b-c_d", "Z9.", "x" * 199 + "."])
def test_unusual_blob_ids(driver: S3Driver, boto3_put_objects: list[str], blob_id: str) -> None:
    driver.put(blob_id, [blob_id.encode()])
    assert read_all(driver, blob_id) == blob_id.encode()
    driver.delete(blob_id)
    assert boto3_put_objects == []


def test_same_blob_info_and_object_as_boto3(driver: S3Driver, boto3_driver: S3Driver) -> None:
    data = random_bytes(123_457, seed=3)
    lean_id, boto3_id = new_id(), new_id()
    lean = driver.put(lean_id, [data[:1000], data[1000:]])
    via_boto3 = boto3_driver.put(boto3_id, [data[:1000], data[1000:]])
    assert lean == via_boto3
    assert lean.checksums is not None
    assert etag(driver, lean_id) == etag(driver, boto3_id) == lean.checksums.md5
    assert read_all(boto3_driver, lean_id) == read_all(driver, boto3_id) == data


def test_put_replaces_an_object_boto3_wrote(driver: S3Driver, boto3_driver: S3Driver) -> None:
    blob_id = new_id()
    boto3_driver.put(blob_id, [b"old"])
    driver.put(blob_id, [b"new"])
    assert read_all(boto3_driver, blob_id) == b"new"


def test_puts_from_eight_threads(driver: S3Driver) -> None:
    written: dict[str, bytes] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        try:
            for n in range(25):
                blob_id, data = new_id(), random_bytes(10_000 + n, seed=worker * 100 + n)
                driver.put(blob_id, [data])
                with lock:
                    written[blob_id] = data
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(written) == 200
    # RGW's ETag of a single PUT is the MD5 of the bytes it stored; reading all 200 back would
    # take ~10 s, as RGW delivers each small GET body ~40 ms after its headers.
    for blob_id, data in written.items():
        assert etag(driver, blob_id) == hashlib.md5(data).hexdigest()
    for blob_id in list(written)[::25]:
        assert read_all(driver, blob_id) == written[blob_id]


# -- errors, against RGW --------------------------------------------------------------------------


def test_missing_bucket(rgw_endpoint: rgw.RgwEndpoint) -> None:
    driver = make_driver(rgw_endpoint, f"ocbridge-missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageError, match=r"call ensure_bucket\(\) first") as raised:
        driver.put(new_id(), [b"x"])
    assert raised.value.errno == errno.ENOENT


@pytest.mark.parametrize("wrong", ["secret_key", "access_key"])
def test_wrong_credentials(rgw_endpoint: rgw.RgwEndpoint, bucket: str, wrong: str) -> None:
    driver = make_driver(rgw_endpoint, bucket, **{wrong: "WRONGWRONGWRONGWRONG"})
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        driver.put(new_id(), [b"x"])
    assert raised.value.errno == errno.EACCES
    assert not isinstance(raised.value, StorageUnavailableError)
    assert time.monotonic() - started < 2  # refused, not retried


def test_endpoint_down_fails_fast() -> None:
    port = rgw.free_port()  # nothing listens there
    driver = S3Driver("b", endpoint_url=f"http://127.0.0.1:{port}", access_key="k", secret_key="s")
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="refused the connection") as raised:
        driver.put("abc", [b"x"])
    assert time.monotonic() - started < 3  # four attempts with short backoff
    assert raised.value.errno == errno.EHOSTUNREACH


def test_proxied_endpoints_are_left_to_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    driver = S3Driver("b", endpoint_url="http://127.0.0.2:1", access_key="k", secret_key="s")
    assert driver._single_put is None


# -- retries and connections, against a scripted loopback server ----------------------------------


@dataclass
class Reply:
    status: int
    code: str = ""
    close: bool = False  # hang up after answering, without saying so (a stale keep-alive)
    delay: float = 0.0


@dataclass
class ScriptedS3:
    """Answers each request with the next scripted reply (200 when the script is used up)."""

    url: str
    script: deque[Reply] = field(default_factory=deque)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)  # client ports


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the client gave up: expected
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_scripted(tls: ssl.SSLContext | None = None) -> Iterator[ScriptedS3]:
    server_state: list[ScriptedS3] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            state = server_state[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append((self.command, self.path, dict(self.headers.items()), body))
            state.connections.add(self.client_address[1])
            reply = state.script.popleft() if state.script else Reply(200)
            time.sleep(reply.delay)
            payload = b""
            if reply.code:
                payload = (
                    f"<?xml version='1.0'?><Error><Code>{reply.code}</Code>"
                    f"<Message>scripted {reply.code}</Message></Error>"
                ).encode()
            self.send_response(reply.status)
            self.send_header("Content-Length", str(len(payload)))
            if reply.status == 200:
                self.send_header("ETag", '"0"')
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            if reply.close:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    server_state.append(ScriptedS3(f"{scheme}://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedS3]:
    with serve_scripted() as server:
        yield server


def scripted_driver(server: ScriptedS3, **options: Any) -> S3Driver:
    return S3Driver("bkt", endpoint_url=server.url, access_key="k", secret_key="s", **options)


@pytest.mark.parametrize(
    ("script", "attempts"),
    [
        ([Reply(503, "ServiceUnavailable")], 2),
        ([Reply(500)], 2),  # no body: the status alone says retry
        ([Reply(503, "SlowDown")], 2),
        ([Reply(502), Reply(504), Reply(500, "InternalError")], 4),
    ],
    ids=["503-once", "500-no-body", "slow-down", "three-5xx"],
)
def test_transient_errors_are_retried(
    scripted: ScriptedS3, script: list[Reply], attempts: int
) -> None:
    scripted.script.extend(script)
    driver = scripted_driver(scripted)
    info = driver.put("blob-1", [b"hello"])
    assert info.size == 5
    assert len(scripted.requests) == attempts
    assert {body for _, _, _, body in scripted.requests} == {b"hello"}


def test_persistent_5xx_is_unavailable_after_max_attempts(scripted: ScriptedS3) -> None:
    scripted.script.extend(Reply(503, "ServiceUnavailable") for _ in range(10))
    driver = scripted_driver(scripted, max_attempts=3)
    with pytest.raises(StorageUnavailableError, match="ServiceUnavailable") as raised:
        driver.put("blob-1", [b"x"])
    assert raised.value.errno == errno.EAGAIN
    assert len(scripted.requests) == 3


@pytest.mark.parametrize(
    ("reply", "expected_errno", "says"),
    [
        (Reply(403, "AccessDenied"), errno.EACCES, "AccessDenied"),
        (Reply(404, "NoSuchBucket"), errno.ENOENT, "ensure_bucket"),
        (Reply(400, "BadDigest"), errno.EIO, "BadDigest"),
    ],
    ids=["access-denied", "no-such-bucket", "bad-digest"],
)
def test_client_errors_are_not_retried(
    scripted: ScriptedS3, reply: Reply, expected_errno: int, says: str
) -> None:
    scripted.script.append(reply)
    with pytest.raises(StorageError) as raised:
        scripted_driver(scripted).put("blob-1", [b"x"])
    assert raised.value.errno == expected_errno
    assert not isinstance(raised.value, StorageUnavailableError)
    assert says in str(raised.value)
    assert len(scripted.requests) == 1


def test_request_is_what_boto3_would_send(scripted: ScriptedS3) -> None:
    """Same path (bucket, key quoting, endpoint prefix) and the same integrity headers."""
    lean = S3Driver("bkt", endpoint_url=scripted.url + "/prefix", access_key="k", secret_key="s")
    via_boto3 = S3Driver(
        "bkt", endpoint_url=scripted.url + "/prefix", access_key="k", secret_key="s"
    )
    via_boto3._single_put = None
    blob_id = "A-b_c.d"
    lean.put(blob_id, [b"payload"])
    via_boto3.put(blob_id, [b"payload"])
    (m1, path1, headers1, body1), (m2, path2, headers2, body2) = scripted.requests
    assert (m1, path1, body1) == (m2, path2, body2) == ("PUT", "/prefix/bkt/A-b_c.d", b"payload")
    assert headers1["Content-MD5"] == headers2["Content-MD5"]
    assert headers1["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert headers1["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=k/")
    signed = headers1["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"content-md5", "host", "x-amz-content-sha256", "x-amz-date"} <= set(signed)


def test_keep_alive_and_server_hang_ups(scripted: ScriptedS3) -> None:
    driver = scripted_driver(scripted)
    for n in range(3):
        driver.put(f"blob-{n}", [b"x"])
    assert len(scripted.connections) == 1  # one connection reused
    scripted.script.append(Reply(200, close=True))  # then the server drops the idle connection
    driver.put("blob-3", [b"x"])
    driver.put("blob-4", [b"x"])
    assert len(scripted.requests) == 5  # the next PUT went out once, on a new connection
    assert len(scripted.connections) == 2


def test_read_timeout_is_honoured(scripted: ScriptedS3) -> None:
    scripted.script.append(Reply(200, delay=1.5))
    driver = scripted_driver(scripted, read_timeout=0.3, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="did not answer in time"):
        driver.put("blob-1", [b"x"])
    assert time.monotonic() - started < 2


def test_each_thread_has_its_own_connection(scripted: ScriptedS3) -> None:
    driver = scripted_driver(scripted)
    barrier = threading.Barrier(4)

    def work(worker: int) -> None:
        barrier.wait()
        for n in range(5):
            driver.put(f"blob-{worker}-{n}", [b"x"])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(scripted.requests) == 20
    assert len(scripted.connections) == 4


def test_https_endpoints_speak_verified_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with serve_scripted(tls) as server:
        untrusting = scripted_driver(server, max_attempts=1)
        with pytest.raises(StorageUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.put("blob-1", [b"x"])
        # The same server once its certificate is in the bundle boto3 would trust.
        monkeypatch.setattr(s3_fastput, "get_cert_path", lambda verify: str(cert))
        scripted_driver(server).put("blob-2", [b"over tls"])
    assert [(path, body) for _, path, _, body in server.requests] == [("/bkt/blob-2", b"over tls")]
