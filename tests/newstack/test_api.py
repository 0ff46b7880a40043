"""The new stack over real HTTP: status.php, OCS, and the WebDAV methods a sync client uses.

Expected values come from REFERENCE.md's formats, recomputed here (regexes, md5 of nothing of
ours), never from the server's own formatting helpers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from newstack.app import NewstackApp, ServerInfo
from newstack.native import NativeBackend
from tests.newstack.backends import BACKENDS, StackUser, make_backend
from tests.newstack.live import live_server

D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
PASSWORD = "correct horse battery"


@dataclasses.dataclass
class Server:
    url: str
    client: httpx.Client
    instance_id: str
    backend: Any

    def dav(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/files/alice/{path}"

    def webdav(self, path: str = "") -> str:
        return f"{self.url}/remote.php/webdav/{path}"


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    backend = make_backend(request.param, tmp_path, [
        StackUser("alice", PASSWORD, "Alice Adams", "alice@example.org"),
        StackUser("bob", "bob's password", "Bob"),
    ])
    app = NewstackApp(backend, ServerInfo(hostname="testhost"))
    with live_server(app) as url, httpx.Client(auth=("alice", PASSWORD), timeout=30) as client:
        yield Server(url, client, backend.instance_id, backend)


def propfind(server: Server, url: str, props: list[str] | None = None,
             depth: str = "1") -> dict[str, dict[str, ET.Element]]:
    if props is None:
        body = b""
    else:
        names = "".join(f"<{p}/>" for p in props)
        body = (f'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" '
                f'xmlns:oc="http://owncloud.org/ns"><d:prop>{names}</d:prop>'
                f"</d:propfind>").encode()
    response = server.client.request("PROPFIND", url, content=body, headers={"Depth": depth})
    assert response.status_code == 207, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    tree = ET.fromstring(response.content)
    out: dict[str, dict[str, ET.Element]] = {}
    for resp in tree.findall(f"{D}response"):
        href = resp.findtext(f"{D}href") or ""
        found = {}
        for propstat in resp.findall(f"{D}propstat"):
            if "200" in (propstat.findtext(f"{D}status") or ""):
                prop_element = propstat.find(f"{D}prop")
                for prop in prop_element if prop_element is not None else []:
                    found[prop.tag] = prop
        out[href] = found
    return out


# ---------------------------------------------------------------------------------------------
# status.php and OCS


def test_status_php(server: Server) -> None:
    response = httpx.get(f"{server.url}/status.php")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content == (
        b'{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"10.16.4.0",'
        b'"versionstring":"10.16.4","edition":"Community","productname":"ownCloud",'
        b'"product":"ownCloud"}')


def test_capabilities_as_the_desktop_client_asks(server: Server) -> None:
    response = server.client.get(f"{server.url}/ocs/v1.php/cloud/capabilities",
                                 params={"format": "json"})
    assert response.status_code == 200
    data = response.json()["ocs"]
    assert data["meta"]["statuscode"] == 100
    caps = data["data"]["capabilities"]
    assert caps["dav"]["chunking"] == "1.0"
    assert caps["checksums"]["supportedTypes"] == ["SHA1"]
    assert caps["core"]["webdav-root"] == "remote.php/webdav"
    assert caps["files"]["versioning"] is True
    assert "tus_support" not in caps["files"] and "spaces" not in caps
    assert data["data"]["version"]["string"] == "10.16.4"
    assert b"remote.php\\/webdav" in response.content, "PHP json_encode escapes slashes"


def test_cloud_user_json_and_xml(server: Server) -> None:
    v2 = server.client.get(f"{server.url}/ocs/v2.php/cloud/user", params={"format": "json"})
    assert v2.status_code == 200
    assert v2.json()["ocs"]["data"] == {"id": "alice", "display-name": "Alice Adams",
                                        "email": "alice@example.org", "language": "en"}
    xml = server.client.get(f"{server.url}/ocs/v1.php/cloud/user")
    assert xml.status_code == 200
    root = ET.fromstring(xml.content)
    assert root.findtext("meta/statuscode") == "100"
    assert root.findtext("data/display-name") == "Alice Adams"


def test_ocs_unauthorised(server: Server) -> None:
    v1 = httpx.get(f"{server.url}/ocs/v1.php/cloud/user?format=json", auth=("alice", "wrong"))
    assert v1.status_code == 401
    assert v1.json()["ocs"]["meta"]["statuscode"] == 997
    v2 = httpx.get(f"{server.url}/ocs/v2.php/cloud/capabilities?format=json")
    assert v2.status_code == 401


# ---------------------------------------------------------------------------------------------
# authentication


def test_dav_without_and_with_bad_credentials(server: Server) -> None:
    anonymous = httpx.request("PROPFIND", server.dav())
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="ownCloud", charset="UTF-8"'
    assert b"Sabre\\DAV\\Exception\\NotAuthenticated" in anonymous.content
    wrong = httpx.request("PROPFIND", server.dav(), auth=("alice", "nope"))
    assert wrong.status_code == 401
    other = server.client.request("PROPFIND", f"{server.url}/remote.php/dav/files/bob/")
    assert other.status_code == 404, "one user never sees another's files"


def test_login_by_email_and_case_insensitive_uid(server: Server) -> None:
    for login in ("ALICE", "alice@example.org"):
        response = httpx.request("PROPFIND", server.dav(), auth=(login, PASSWORD),
                                 headers={"Depth": "0"})
        assert response.status_code == 207, login


# ---------------------------------------------------------------------------------------------
# files


OC_ID = re.compile(r"(\d{8,})(oc[a-z0-9]{10})$")


def test_put_get_and_headers(server: Server) -> None:
    body = b"hello world\n" * 100
    put = server.client.put(server.dav("hello.txt"), content=body,
                            headers={"X-OC-MTime": "1568643784.11"})
    assert put.status_code == 201
    assert put.headers["x-oc-mtime"] == "accepted"
    etag = put.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert put.headers["oc-etag"] == etag
    match = OC_ID.fullmatch(put.headers["oc-fileid"])
    assert match and match.group(2) == server.instance_id
    if isinstance(server.backend, NativeBackend):
        assert int(match.group(1)) >= 10**12, "new stack ids come from the configured base"
    else:  # an ownCloud 10 database hands out its own auto-increment ids
        assert int(match.group(1)) < 10**12

    get = server.client.get(server.webdav("hello.txt"))
    assert get.status_code == 200
    assert get.content == body
    assert get.headers["etag"] == etag
    assert get.headers["last-modified"] == "Mon, 16 Sep 2019 14:23:04 GMT"
    assert get.headers["oc-checksum"] == "SHA1:" + hashlib.sha1(body).hexdigest()
    assert get.headers["content-disposition"] == (
        "attachment; filename*=UTF-8''hello.txt; filename=\"hello.txt\"")

    again = server.client.put(server.dav("hello.txt"), content=b"changed")
    assert again.status_code == 204
    assert again.headers["etag"] != etag
    assert again.headers["oc-fileid"] == put.headers["oc-fileid"], "overwrite keeps the id"


def test_ranges_head_and_conditional_get(server: Server) -> None:
    data = bytes(range(256)) * 40
    server.client.put(server.dav("r.bin"), content=data)
    part = server.client.get(server.dav("r.bin"), headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = server.client.get(server.dav("r.bin"), headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]
    beyond = server.client.get(server.dav("r.bin"), headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    head = server.client.head(server.dav("r.bin"))
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    same = server.client.get(server.dav("r.bin"), headers={"If-None-Match": head.headers["etag"]})
    assert same.status_code == 304


def test_checksum_mismatch_leaves_nothing(server: Server) -> None:
    bad = server.client.put(server.dav("c.txt"), content=b"abc",
                            headers={"OC-Checksum": "SHA1:" + "0" * 40})
    assert bad.status_code == 400
    assert b"The computed checksum does not match" in bad.content
    assert server.client.get(server.dav("c.txt")).status_code == 404
    good = server.client.put(server.dav("c.txt"), content=b"abc", headers={
        "OC-Checksum": "SHA1:" + hashlib.sha1(b"abc").hexdigest()})
    assert good.status_code == 201


def test_if_match_on_put(server: Server) -> None:
    first = server.client.put(server.dav("m.txt"), content=b"1")
    stale = server.client.put(server.dav("m.txt"), content=b"2", headers={"If-Match": '"x"'})
    assert stale.status_code == 412
    fresh = server.client.put(server.dav("m.txt"), content=b"3",
                              headers={"If-Match": first.headers["etag"]})
    assert fresh.status_code == 204
    assert server.client.get(server.dav("m.txt")).content == b"3"


def test_mkcol_rules(server: Server) -> None:
    made = server.client.request("MKCOL", server.dav("A"))
    assert made.status_code == 201 and OC_ID.fullmatch(made.headers["oc-fileid"])
    assert server.client.request("MKCOL", server.dav("A")).status_code == 405
    assert server.client.request("MKCOL", server.dav("missing/B")).status_code == 409


def test_propfind_properties_as_oc10_formats_them(server: Server) -> None:
    server.client.request("MKCOL", server.dav("Docs"))
    server.client.put(server.dav("Docs/a b ä+.txt"), content=b"12345",
                      headers={"X-OC-MTime": "1709634930"})
    props = ["d:getetag", "oc:id", "oc:fileid", "oc:permissions", "oc:size",
             "d:getlastmodified", "d:getcontentlength", "oc:checksums",
             "oc:data-fingerprint", "oc:owner-display-name", "d:resourcetype"]
    listing = propfind(server, server.dav("Docs/"), props)
    assert list(listing) == ["/remote.php/dav/files/alice/Docs/",
                             "/remote.php/dav/files/alice/Docs/a%20b%20%c3%a4%2b.txt"]
    folder, file = listing.values()
    assert folder[f"{OC}permissions"].text == "RDNVCK"
    assert file[f"{OC}permissions"].text == "RDNVW"
    assert file[f"{D}getcontentlength"].text == "5"
    assert folder[f"{OC}size"].text == "5"
    assert file[f"{D}getlastmodified"].text == "Tue, 05 Mar 2024 10:35:30 GMT"
    fileid = int(file[f"{OC}fileid"].text or "")
    assert file[f"{OC}id"].text == f"{fileid:08d}{server.instance_id}"
    assert re.fullmatch(r'"[0-9a-f]{32}"', file[f"{D}getetag"].text or "")
    assert re.fullmatch(r'"[0-9a-f]{13}"', folder[f"{D}getetag"].text or "")
    checksum = file[f"{OC}checksums"].find(f"{OC}checksum")
    assert checksum is not None and checksum.text == (
        f"SHA1:{hashlib.sha1(b'12345').hexdigest()} MD5:{hashlib.md5(b'12345').hexdigest()} "
        "ADLER32:" + format(__import__("zlib").adler32(b"12345"), "08x"))
    assert file[f"{OC}owner-display-name"].text == "Alice Adams"
    assert f"{OC}data-fingerprint" in folder, "served in the 200 propstat even when empty"
    legacy = propfind(server, server.webdav("Docs/"), props)
    assert [p[f"{OC}id"].text for p in legacy.values()] == [
        p[f"{OC}id"].text for p in listing.values()], "both endpoints serve the same ids"


def test_depth_handling(server: Server) -> None:
    server.client.put(server.dav("x.txt"), content=b"x")
    assert len(propfind(server, server.dav(), depth="0")) == 1
    assert len(propfind(server, server.dav(), depth="1")) == 2
    infinity = server.client.request("PROPFIND", server.dav(), headers={"Depth": "infinity"})
    assert infinity.status_code == 412
    assert b"PreconditionFailed" in infinity.content


def test_etag_propagation(server: Server) -> None:
    for folder in ("a", "a/b", "a/b/c", "a/sibling", "other"):
        server.client.request("MKCOL", server.dav(folder))
    server.client.put(server.dav("a/sibling/s.txt"), content=b"s")

    def etags() -> dict[str, str]:
        out = {}
        for folder in ("", "a/", "a/b/", "a/b/c/", "a/sibling/", "other/"):
            found = propfind(server, server.dav(folder), ["d:getetag"], depth="0")
            out[folder] = next(iter(found.values()))[f"{D}getetag"].text or ""
        return out

    before = etags()
    server.client.put(server.dav("a/b/c/deep.txt"), content=b"deep")
    after = etags()
    for changed in ("", "a/", "a/b/", "a/b/c/"):
        assert after[changed] != before[changed], changed
    assert len({after[k] for k in ("", "a/", "a/b/", "a/b/c/")}) == 1, "one uniqid per write"
    for kept in ("a/sibling/", "other/"):
        assert after[kept] == before[kept], kept


def test_move_copy_delete(server: Server) -> None:
    put = server.client.put(server.dav("one.txt"), content=b"one")
    fileid = put.headers["oc-fileid"]
    moved = server.client.request("MOVE", server.dav("one.txt"),
                                  headers={"Destination": server.dav("two.txt")})
    assert moved.status_code == 201
    assert moved.headers["oc-fileid"] == fileid, "a move keeps the fileid"
    across = server.client.request("COPY", server.dav("two.txt"),
                                   headers={"Destination": server.webdav("three.txt")})
    assert across.status_code == 403, "Sabre refuses destinations outside the base URI"
    copied = server.client.request("COPY", server.dav("two.txt"),
                                   headers={"Destination": server.dav("three.txt")})
    assert copied.status_code == 201, copied.text
    assert copied.headers["oc-fileid"] != fileid
    refused = server.client.request("COPY", server.dav("two.txt"), headers={
        "Destination": server.dav("three.txt"), "Overwrite": "F"})
    assert refused.status_code == 412
    overwritten = server.client.request("MOVE", server.dav("two.txt"),
                                        headers={"Destination": server.dav("three.txt")})
    assert overwritten.status_code == 204
    assert server.client.get(server.dav("three.txt")).content == b"one"
    no_destination = server.client.request("MOVE", server.dav("three.txt"))
    assert no_destination.status_code == 400
    elsewhere = server.client.request("MOVE", server.dav("three.txt"), headers={
        "Destination": f"{server.url}/remote.php/dav/files/bob/stolen.txt"})
    assert elsewhere.status_code in (403, 502)
    assert server.client.delete(server.dav("three.txt")).status_code == 204
    assert server.client.get(server.dav("three.txt")).status_code == 404
    assert server.client.delete(server.dav("three.txt")).status_code == 404


def test_proppatch_favorite_dead_and_protected(server: Server) -> None:
    server.client.put(server.dav("f.txt"), content=b"f")
    body = (b'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" '
            b'xmlns:oc="http://owncloud.org/ns" xmlns:x="urn:example">'
            b"<d:set><d:prop><oc:favorite>1</oc:favorite><x:colour>blue &amp; red</x:colour>"
            b"</d:prop>"
            b"</d:set></d:propertyupdate>")
    ok = server.client.request("PROPPATCH", server.dav("f.txt"), content=body)
    assert ok.status_code == 207 and b"HTTP/1.1 200 OK" in ok.content
    found = propfind(server, server.dav("f.txt"), ["oc:favorite"], depth="0")
    raw = server.client.request("PROPFIND", server.dav("f.txt"), headers={"Depth": "0"},
                                content=b'<d:propfind xmlns:d="DAV:" xmlns:x="urn:example" '
                                        b'xmlns:oc="http://owncloud.org/ns"><d:prop>'
                                        b"<oc:favorite/><x:colour/></d:prop></d:propfind>")
    # text stays text: escaped again on the way out, so the multistatus parses
    assert b">blue &amp; red<" in raw.content
    assert ET.fromstring(raw.content).find(".//{urn:example}colour").text == "blue & red"
    assert next(iter(found.values()))[f"{OC}favorite"].text == "1"
    protected = (b'<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" '
                 b'xmlns:oc="http://owncloud.org/ns"><d:set><d:prop><oc:fileid>1</oc:fileid>'
                 b"<oc:favorite>0</oc:favorite></d:prop></d:set></d:propertyupdate>")
    refused = server.client.request("PROPPATCH", server.dav("f.txt"), content=protected)
    assert refused.status_code == 207
    assert b"403 Forbidden" in refused.content and b"424 Failed Dependency" in refused.content
    after = propfind(server, server.dav("f.txt"), ["oc:favorite"], depth="0")
    assert next(iter(after.values()))[f"{OC}favorite"].text == "1", "all or nothing"


def test_hostile_and_malformed_requests(server: Server) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<d:propfind xmlns:d="DAV:"><d:prop>&lol2;</d:prop></d:propfind>')
    assert server.client.request("PROPFIND", server.dav(), content=bomb).status_code == 400
    broken = server.client.request("PROPFIND", server.dav(), content=b"<d:propfind")
    assert broken.status_code == 400
    traversal = server.client.get(f"{server.url}/remote.php/webdav/../../etc/passwd")
    assert traversal.status_code in (400, 404)
    encoded = server.client.get(f"{server.url}/remote.php/webdav/%2e%2e/x")
    assert encoded.status_code in (400, 404)
    # not UTF-8: read as ISO-8859-1 like sabre/http does, so %ff names 'ÿ.txt'
    assert server.client.put(server.dav("ÿ.txt"), content=b"y").status_code == 201
    latin1 = server.client.get(f"{server.url}/remote.php/webdav/%ff.txt")
    assert latin1.status_code == 200 and latin1.content == b"y"
    assert server.client.get(f"{server.url}/remote.php/webdav/%fe.txt").status_code == 404
    bad_mtime = server.client.put(server.dav("t.txt"), content=b"t",
                                  headers={"X-OC-MTime": "yesterday"})
    assert bad_mtime.status_code == 400


def test_metrics_endpoint(server: Server) -> None:
    def counter(text: str, direction: str) -> float:
        match = re.search(rf'ocbridge_newstack_storage_bytes_total{{direction="{direction}"}} '
                          r"([0-9.e+]+)", text)
        return float(match.group(1)) if match else 0.0

    before = httpx.get(f"{server.url}/metrics").text
    server.client.put(server.dav("m.bin"), content=b"x" * 5000)
    server.client.get(server.dav("m.bin"))
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert b"ocbridge_newstack_requests_total" in metrics.content
    assert counter(metrics.text, "in") - counter(before, "in") == 5000
    assert counter(metrics.text, "out") - counter(before, "out") == 5000
    assert b"alice" not in metrics.content, "no user ids in metrics"
