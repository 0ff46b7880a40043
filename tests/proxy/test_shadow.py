"""Shadow mode: the comparison as tables (no sockets), then for real: a user routed to the legacy
server with shadow on, a difference planted on the new stack recorded in the differences and
metrics while the client's answers stay those of the legacy server; and a mirror target that
hangs holds up neither the client nor the proxy (the queue drops and counts instead)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bridge import metrics
from proxy.app import ProxyApp
from proxy.shadow import Answer, BodyTap, Difference, compare, parse_multistatus
from tests.proxy.test_capture_replay import TwoStacks, two_stacks
from tests.proxy.test_forward import running_proxy, settings_for

# -------------------------------------------------------------------------------------------------
# the comparison, pure

NS = 'xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"'


def multistatus(*responses: str) -> bytes:
    return f'<?xml version="1.0"?><d:multistatus {NS}>{"".join(responses)}</d:multistatus>'.encode()


def response(href: str, etag: str = '"e1"', perms: str = "RDNVW", missing: str = "") -> str:
    gone = (f"<d:propstat><d:prop><{missing}/></d:prop>"
            "<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>") if missing else ""
    return (f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>"
            f"<d:getetag>{etag}</d:getetag><oc:permissions>{perms}</oc:permissions>"
            "<d:resourcetype><d:collection/></d:resourcetype>"
            f"</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>{gone}</d:response>")


def ms(body: bytes, encoding: str = "") -> Answer:
    return Answer(207, (), "hash-" + str(len(body)), len(body), body, encoding)


def test_parse_multistatus_decodes_hrefs_and_keeps_each_propstat() -> None:
    tree = parse_multistatus(multistatus(response("/f/a%20b/", missing="oc:size")))
    assert tree == {"/f/a b/": {
        "{DAV:}getetag": (200, '"e1"'), "{http://owncloud.org/ns}permissions": (200, "RDNVW"),
        "{DAV:}resourcetype": (200, "<d:collection/>"),
        "{http://owncloud.org/ns}size": (404, "")}}
    with pytest.raises(ValueError):
        parse_multistatus(b"<not xml")
    with pytest.raises(ValueError):  # entity expansion refused (defusedxml)
        parse_multistatus(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')


CASES: list[tuple[str, str, Answer, Answer, list[Difference]]] = [
    ("same GET", "GET", Answer(200, (("etag", '"x"'),), "h", 3),
     Answer(200, (("etag", '"x"'),), "h", 3), []),
    ("status wins over all else", "GET", Answer(200, (), "h", 3), Answer(404, (), "g", 9),
     [Difference("status", "/p", "status", "200", "404")]),
    ("body hash", "GET", Answer(200, (), "h", 3), Answer(200, (), "g", 3),
     [Difference("body", "/p", "sha256", "h (3 bytes)", "g (3 bytes)")]),
    ("headers of a 2xx GET", "GET", Answer(200, (("etag", '"a"'), ("oc-fileid", "1")), "h", 3),
     Answer(200, (("etag", '"b"'),), "h", 3),
     [Difference("header", "/p", "etag", '"a"', '"b"'),
      Difference("header", "/p", "oc-fileid", "1", None)]),
    ("an error answer's headers are not compared", "GET", Answer(404, (("etag", "1"),), "h"),
     Answer(404, (), "h"), []),
    ("HEAD: headers only", "HEAD", Answer(200, (("content-length", "5"),), "h"),
     Answer(200, (("content-length", "5"),), "g"), []),
    ("one property", "PROPFIND", ms(multistatus(response("/f/"), response("/f/a"))),
     ms(multistatus(response("/f/"), response("/f/a", perms="RDNV"))),
     [Difference("prop", "/f/a", "oc:permissions", "RDNVW", "RDNV")]),
    ("order and formatting do not matter", "PROPFIND",
     ms(multistatus(response("/f/a"), response("/f/"))),
     ms(multistatus(response("/f/"), response("/f/a")).replace(b"><", b">\n  <")), []),
    ("an href on one side", "PROPFIND", ms(multistatus(response("/f/"), response("/f/a"))),
     ms(multistatus(response("/f/"))), [Difference("href", "/f/a", "present", "yes", None)]),
    ("a property found on one side only", "PROPFIND",
     ms(multistatus(response("/f/", missing="oc:size"))),
     ms(multistatus(response("/f/"))), [Difference("prop", "/f/", "oc:size", "[404]", None)]),
    ("gzip-coded multistatus", "PROPFIND",
     ms(gzip.compress(multistatus(response("/f/"))), "gzip"),
     ms(multistatus(response("/f/", etag='"e2"'))),
     [Difference("prop", "/f/", "d:getetag", '"e1"', '"e2"')]),
    ("too large to keep: hash only", "PROPFIND", Answer(207, (), "h", 10**9, None),
     ms(multistatus(response("/f/"))),
     [Difference("body", "/p", "sha256", f"h ({10**9} bytes)", "hash-" + str(len(
         multistatus(response("/f/")))) + f" ({len(multistatus(response('/f/')))} bytes)")]),
]


@pytest.mark.parametrize(("method", "legacy", "new", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compare(method: str, legacy: Answer, new: Answer, expected: list[Difference]) -> None:
    assert compare(method, "/p", legacy, new) == expected


def test_body_tap_hashes_everything_and_keeps_a_multistatus_up_to_its_limit() -> None:
    tap = BodyTap("PROPFIND", limit=10)
    tap.start(207, [(b"Content-Type", b"application/xml"), (b"ETag", b'"x"')])
    tap.feed(b"12345")
    assert tap.answer().multistatus == b"12345"
    tap.feed(b"678901", more=False)
    answer = tap.answer()
    assert tap.complete and answer.multistatus is None and answer.size == 11
    assert answer.headers == (("content-type", "application/xml"), ("etag", '"x"'))
    get = BodyTap("GET", limit=10)
    get.start(200, [])
    get.feed(b"abc", more=False)
    assert get.answer().multistatus is None
    assert get.answer().sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -------------------------------------------------------------------------------------------------
# for real


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[TwoStacks]:
    with two_stacks(tmp_path) as env:
        yield env


def settled(app: ProxyApp, mirrors: int, timeout: float = 20) -> None:
    """Wait until `mirrors` mirrored reads have been compared (or failed)."""
    shadow = app.shadow
    assert shadow is not None
    deadline = time.monotonic() + timeout
    while True:
        c = shadow.counts
        if c.same + c.different + c.error >= mirrors:
            return
        assert time.monotonic() < deadline, c
        time.sleep(0.02)


def differences_metric(kind: str, field: str) -> float:
    value = metrics.REGISTRY.get_sample_value("ocbridge_proxy_shadow_differences_total",
                                              {"kind": kind, "field": field})
    return value or 0.0


def test_a_planted_difference_is_recorded_and_the_client_sees_legacy(stacks: TwoStacks,
                                                                    tmp_path: Path) -> None:
    env = stacks
    settings = settings_for(tmp_path, env.manifest.config_php, env.legacy, env.new,
                            shadow_users=(env.uid,))
    path, _, _ = env.files()[0]
    folder = path.rpartition("/")[0]
    dav = f"/remote.php/dav/files/{env.uid}/"
    depth1 = {"Depth": "1"}
    with (running_proxy(settings) as (url, app),
          httpx.Client(base_url=url, auth=(env.uid, env.password), timeout=30) as client,
          httpx.Client(base_url=env.legacy, auth=(env.uid, env.password), timeout=30) as direct):
        assert app.shadow is not None
        # before: the stacks differ only by the shares the new stack does not have yet
        assert client.request("PROPFIND", dav + folder, headers=depth1).status_code == 207
        assert client.get(dav + path).status_code == 200
        settled(app, 2)
        assert {d.field for _, _, d in app.shadow.recent} <= {"oc:share-types"}
        before = len(app.shadow.recent)
        etags_before = differences_metric("prop", "d:getetag")

        env.plant_etag(path)
        listing = client.request("PROPFIND", dav + folder, headers=depth1)
        download = client.get(dav + path)
        not_shadowed = httpx.get(url + "/status.php")  # anonymous: never mirrored
        settled(app, 4)
        planted = [(uid, method, stack, d) for uid, method, stack, d
                   in list(app.shadow.recent)[before:] if d.field != "oc:share-types"]
        assert {(uid, method, stack, d.kind, d.field, d.href.removeprefix(dav))
                for uid, method, stack, d in planted} == {
            (env.uid, "PROPFIND", "legacy", "prop", "d:getetag", path),
            (env.uid, "GET", "legacy", "header", "etag", path),
            (env.uid, "GET", "legacy", "header", "oc-etag", path)}
        assert all(d.new == '"planted0etag"' for *_, d in planted if d.field == "d:getetag")
        assert differences_metric("prop", "d:getetag") == etags_before + 1
        assert app.shadow.counts.dropped == 0 and not_shadowed.status_code == 200

        # the client got the legacy server's answers, untouched
        assert download.content == direct.get(dav + path).content
        assert download.headers["etag"] == direct.get(dav + path).headers["etag"] != \
            '"planted0etag"'
        assert listing.content == direct.request("PROPFIND", dav + folder,
                                                 headers=depth1).content


class Hanging(BaseHTTPRequestHandler):
    """A mirror target that holds every request until released, then answers 500."""

    arrived: threading.Semaphore
    release: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.arrived.release()
        self.release.wait(30)
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def hanging() -> Iterator[tuple[str, type[Hanging]]]:
    handler = type("Handler", (Hanging,), {"arrived": threading.Semaphore(0),
                                           "release": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def test_a_hanging_mirror_holds_up_nothing_and_a_full_queue_drops(
        stacks: TwoStacks, hanging: tuple[str, type[Hanging]], tmp_path: Path) -> None:
    env = stacks
    slow_url, handler = hanging
    settings = settings_for(tmp_path, env.manifest.config_php, env.legacy, slow_url,
                            shadow_users=("*",), shadow_workers=1, shadow_queue=1)
    path, _, _ = env.files()[0]
    dav = f"/remote.php/dav/files/{env.uid}/{path}"
    with (running_proxy(settings) as (url, app),
          httpx.Client(base_url=url, auth=(env.uid, env.password), timeout=30) as client):
        shadow = app.shadow
        assert shadow is not None
        expected = httpx.get(env.legacy + dav, auth=(env.uid, env.password)).content
        first = client.get(dav)
        assert first.status_code == 200 and first.content == expected
        # the mirror reaches the other stack only after the answer, and hangs there …
        assert handler.arrived.acquire(timeout=10)
        # … while the client's next reads are answered in full: one waits in the queue (of 1),
        # the others are dropped and counted, none is held up
        for _ in range(3):
            again = client.get(dav)
            assert again.status_code == 200 and again.content == expected
        # a mirror is queued (or dropped) just after its answer left: the client can be
        # quicker to look than the proxy thread is to count
        deadline = time.monotonic() + 5
        while shadow.counts.dropped < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shadow.counts.dropped == 2
        assert shadow.counts.same + shadow.counts.different == 0
        handler.release.set()
        settled(app, 2)
        assert shadow.counts.different == 2
        assert [(d.kind, d.legacy, d.new) for *_, d in shadow.recent] == [
            ("status", "200", "500")] * 2


def test_shadow_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    from bridge.config import load_settings
    from bridge.errors import ConfigError

    config = tmp_path / "ocbridge.toml"
    config.write_text('[proxy]\nshadow_users = ["alice", "bob"]\nshadow_queue = 10\n')
    assert load_settings(config, {}).proxy.shadow_users == ("alice", "bob")
    assert load_settings(config, {"OCBRIDGE_PROXY__SHADOW_USERS": "*"}).proxy.shadow_users == (
        "*",)
    config.write_text('[proxy]\nshadow_users = "alice"\nshadow_workers = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    text = str(caught.value)
    assert "proxy.shadow_users: expected a list of strings" in text
    assert "proxy.shadow_workers: must be at least 1" in text
