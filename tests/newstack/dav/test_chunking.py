"""Chunked uploads over real HTTP: chunking NG (remote.php/dav/uploads) and v1 (OC-Chunked).

Expected answers come from REFERENCE §6.6/§6.7 and the oC10 acceptance-test assertions in
samples/chunking-ng-ASSERTED-core-acceptance-v10.16.4.json, recomputed here. Every scenario runs
on both upload stagings: the native backend's metadata store and a DirectoryUploads in
ownCloud 10's layout (the oc10 backend's), the assembled file going to the native backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import re
import socket
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bridge.config import Settings
from newstack.app import NewstackApp, ServerInfo
from newstack.dav.chunking import AREA_UPLOADS, cleanup_uploads, strnatcmp
from newstack.legacy.backend import Oc10Backend
from newstack.native import NativeBackend
from newstack.service import open_newstack
from newstack.uploads.directory import DirectoryUploads
from tests.newstack.backends import StackUser, make_backend
from tests.newstack.live import live_server

D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
PASSWORD = "correct horse battery"
MiB = 1024 * 1024
QUOTED_ETAG = re.compile(r'^"[a-f0-9:.]{1,32}"$')  # the acceptance tests' regex
BARE_ETAG = re.compile(r"^[a-f0-9:.]{1,32}$")
MTIME = "1568643784.11"  # what the web UI sent (chunking-ng observations [1])


@dataclasses.dataclass
class Stack:
    url: str
    client: httpx.Client
    backend: NativeBackend
    blobs: Path
    #: the users' homes of a DirectoryUploads staging; None for the metadata staging
    homes: Path | None = None

    def files(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/files/alice/{quote(path)}"

    def uploads(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/uploads/alice/{path}"

    def webdav(self, path: str = "") -> str:
        return f"{self.url}/remote.php/webdav/{path}"

    def mkcol(self, transfer: str) -> httpx.Response:
        response = self.client.request("MKCOL", self.uploads(transfer))
        assert response.status_code == 201, response.text
        return response

    def chunk(self, transfer: str, name: str, content: bytes) -> httpx.Response:
        return self.client.put(self.uploads(f"{transfer}/{name}"), content=content)

    def move(self, transfer: str, target: str, **headers: str) -> httpx.Response:
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        headers["Destination"] = self.files(target)
        return self.client.request("MOVE", self.uploads(f"{transfer}/.file"), headers=headers)

    def content(self, path: str) -> bytes:
        response = self.client.get(self.files(path))
        assert response.status_code == 200, response.text
        return response.content

    def blob_count(self) -> int:
        """Stored files: driver blobs, plus every file below a directory staging's homes."""
        blobs = sum(1 for p in self.blobs.rglob("*") if p.is_file() and ".tmp" not in p.parts)
        if self.homes is None:
            return blobs
        # users' uploads and, where the homes are an ownCloud data directory, their files
        return blobs + sum(1 for area in ("uploads", "files")
                           for p in self.homes.glob(f"*/{area}/**/*") if p.is_file())

    def age_upload(self, transfer: str, seconds: int) -> None:
        """Make an upload folder look untouched for `seconds` more."""
        if self.homes is not None:
            folder = self.homes / "alice" / "uploads" / transfer
            mtime = folder.stat().st_mtime - seconds
            os.utime(folder, (mtime, mtime))
            return
        store = self.backend.store
        with store.write("alice") as conn:
            node = store.node(conn, "alice", AREA_UPLOADS, transfer)
            assert node is not None
            store.update_node(conn, node.fileid, mtime=node.mtime - seconds)


@pytest.fixture(params=["metadata", "directory", "oc10"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "oc10":
        # an ownCloud 10 instance served in place: uploads in <home>/uploads, files in <home>
        backend = make_backend("oc10", tmp_path, [StackUser("alice", PASSWORD, "Alice"),
                                                  StackUser("bob", "bob's password", "Bob")])
        assert isinstance(backend, Oc10Backend)
        (tmp_path / "blobs").mkdir()
        app = NewstackApp(backend, ServerInfo(hostname="testhost"))
        with (live_server(app) as url,
              httpx.Client(auth=("alice", PASSWORD), timeout=60) as client):
            yield Stack(url, client, backend, tmp_path / "blobs",  # type: ignore[arg-type]
                        backend.instance.data_dir)
        return
    settings = Settings()
    settings = dataclasses.replace(settings, newstack=dataclasses.replace(
        settings.newstack, data_dir=tmp_path / "data"))
    newstack = open_newstack(settings)
    newstack.store.add_user("alice", password=PASSWORD, display_name="Alice")
    newstack.store.add_user("bob", password="bob's password", display_name="Bob")
    homes = None
    if request.param == "directory":
        homes = tmp_path / "homes"
        for uid in ("alice", "bob"):
            (homes / uid).mkdir(parents=True)
        # what the oc10 backend does: an `uploads` staging beside the FilesBackend methods
        newstack.backend.uploads = DirectoryUploads(  # type: ignore[attr-defined]
            lambda uid: homes / uid / "uploads", users=lambda: ["alice", "bob"])
    app = NewstackApp(newstack.backend, ServerInfo(hostname="testhost"))
    with live_server(app) as url, httpx.Client(auth=("alice", PASSWORD), timeout=60) as client:
        yield Stack(url, client, newstack.backend, tmp_path / "data" / "blobs", homes)


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def fileid(stack: Stack, path: str) -> str:
    response = stack.client.request("PROPFIND", stack.files(path), headers={"Depth": "0"},
                                    content=b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://'
                                            b'owncloud.org/ns"><d:prop><oc:id/></d:prop>'
                                            b"</d:propfind>")
    assert response.status_code == 207
    return ET.fromstring(response.content).findtext(f".//{OC}id") or ""


def oc_id_pattern(stack: Stack) -> re.Pattern[str]:
    return re.compile(rf"^\d{{8,}}{re.escape(stack.backend.instance_id)}$")


# ---------------------------------------------------------------------------------------------
# chunking NG


def test_ng_upload_with_checksum_and_mtime(stack: Stack) -> None:
    parts = [payload(5 * MiB, i) for i in range(3)] + [payload(12345, 3)]
    whole = b"".join(parts)
    made = stack.mkcol("web-file-upload-42")
    assert "oc-fileid" not in made.headers  # UploadFolder is no ownCloud Node
    ids = set()
    for offset, part in zip([0, 5 * MiB, 10 * MiB, 15 * MiB], parts, strict=True):
        response = stack.chunk("web-file-upload-42", str(offset), part)
        assert response.status_code == 201, response.text
        assert "etag" not in response.headers
        assert oc_id_pattern(stack).match(response.headers["oc-fileid"])
        ids.add(response.headers["oc-fileid"])
    assert len(ids) == 4, "every chunk has its own fileid"

    sha1 = hashlib.sha1(whole).hexdigest()
    response = stack.move("web-file-upload-42", "big.bin", OC_Total_Length=str(len(whole)),
                          OC_Checksum=f"SHA1:{sha1}", X_OC_MTime=MTIME)
    assert response.status_code == 201, response.text
    assert response.headers["content-length"] == "0"
    assert QUOTED_ETAG.match(response.headers["etag"])
    assert response.headers["oc-etag"] == response.headers["etag"]
    assert response.headers["x-oc-mtime"] == "accepted"
    assert response.headers["oc-fileid"] == fileid(stack, "big.bin")

    assert hashlib.sha1(stack.content("big.bin")).hexdigest() == sha1
    node = stack.backend.stat("alice", "big.bin")
    assert node.mtime == 1568643784 and node.size == len(whole)
    assert f"SHA1:{sha1}" in node.checksum
    gone = stack.client.request("PROPFIND", stack.uploads("web-file-upload-42"))
    assert gone.status_code == 404
    assert stack.blob_count() == 1, "chunk blobs are deleted after the assembly"


def test_ng_small_chunks_as_the_acceptance_tests_send_them(stack: Stack) -> None:
    stack.mkcol("chunking-42")
    for number, content in (("3", b"CCCCC"), ("1", b"AAAAA"), ("2", b"BBBBB")):
        assert stack.chunk("chunking-42", number, content).status_code == 201
    response = stack.move("chunking-42", "TIÄFÜ &#?.txt", OC_Total_Length="15")
    assert response.status_code == 201, response.text
    assert QUOTED_ETAG.match(response.headers["etag"])
    assert "x-oc-mtime" not in response.headers
    assert stack.content("TIÄFÜ &#?.txt") == b"AAAAABBBBBCCCCC"


def test_ng_chunks_are_assembled_in_natural_order(stack: Stack) -> None:
    names = [str(n) for n in range(1, 13)]
    shuffled = names[:]
    random.Random(7).shuffle(shuffled)
    stack.mkcol("natural")
    for name in shuffled:
        assert stack.chunk("natural", name, f"<{name}>".encode()).status_code == 201
    assert stack.move("natural", "ordered.txt").status_code == 201
    # byte order would put 10, 11 and 12 before 2
    assert stack.content("ordered.txt") == b"".join(f"<{n}>".encode() for n in names)


def test_ng_overwrite_keeps_the_fileid(stack: Stack) -> None:
    created = stack.client.put(stack.files("existing.txt"), content=b"old content")
    assert created.status_code == 201
    before = fileid(stack, "existing.txt")
    stack.mkcol("over")
    for number, content in (("1", b"new "), ("2", b"content")):
        assert stack.chunk("over", number, content).status_code == 201
    response = stack.move("over", "existing.txt", If=f'<{stack.files("existing.txt")}> '
                                                     f'({created.headers["etag"]})')
    assert response.status_code == 204, response.text
    assert response.headers["oc-fileid"] == before == fileid(stack, "existing.txt")
    assert QUOTED_ETAG.match(response.headers["etag"])
    assert response.headers["etag"] != created.headers["etag"]
    assert stack.content("existing.txt") == b"new content"


def test_ng_if_header_on_the_destination_is_checked(stack: Stack) -> None:
    stack.client.put(stack.files("target.txt"), content=b"server side change")
    stack.mkcol("stale")
    stack.chunk("stale", "1", b"client content")
    response = stack.move("stale", "target.txt",
                          If='</remote.php/dav/files/alice/target.txt> (["0123abcd"])')
    assert response.status_code == 412
    assert b"<s:header>If</s:header>" in response.content
    assert (b"Failed to find a valid token/etag combination for files/alice/target.txt"
            in response.content)
    assert stack.content("target.txt") == b"server side change"
    # If-Match is about the file written too
    wrong = stack.move("stale", "target.txt", If_Match='"0123abcd"')
    assert wrong.status_code == 412
    assert b"<s:header>If-Match</s:header>" in wrong.content
    none_match = stack.move("stale", "target.txt", If_None_Match="*")
    assert none_match.status_code == 412
    assert stack.content("target.txt") == b"server side change"


def test_ng_wrong_total_length_is_refused(stack: Stack) -> None:
    stack.mkcol("chunking-42")
    for number, content in (("1", b"AAAAA"), ("2", b"BBBBB"), ("3", b"CCCCC")):
        stack.chunk("chunking-42", number, content)
    response = stack.move("chunking-42", "myChunkedFile.txt", OC_Total_Length="5")
    assert response.status_code == 400
    assert response.content == (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">\n'
        b"  <s:exception>Sabre\\DAV\\Exception\\BadRequest</s:exception>\n"
        b"  <s:message>Chunks on server do not sum up to 5 but to 15</s:message>\n"
        b"</d:error>\n")
    assert stack.client.get(stack.files("myChunkedFile.txt")).status_code == 404
    # the chunks stay: the client may retry the MOVE
    assert stack.move("chunking-42", "myChunkedFile.txt", OC_Total_Length="15"
                      ).status_code == 201
    assert stack.content("myChunkedFile.txt") == b"AAAAABBBBBCCCCC"


def test_ng_wrong_checksum_writes_nothing(stack: Stack) -> None:
    stack.mkcol("checked")
    stack.chunk("checked", "1", b"AAAAA")
    stack.chunk("checked", "2", b"BBBBB")
    blobs = stack.blob_count()
    response = stack.move("checked", "checked.txt",
                          OC_Checksum=f"SHA1:{hashlib.sha1(b'something else').hexdigest()}")
    assert response.status_code == 400
    assert (b"The computed checksum does not match the one received from the client."
            in response.content)
    assert stack.client.get(stack.files("checked.txt")).status_code == 404
    assert stack.blob_count() == blobs, "the assembled blob is discarded"


def test_ng_re_put_of_a_chunk_replaces_it(stack: Stack) -> None:
    stack.mkcol("again")
    first = stack.chunk("again", "1", b"first try")
    second = stack.chunk("again", "1", b"AAAAA")
    assert second.status_code == 204
    assert QUOTED_ETAG.match(second.headers["etag"])
    assert second.headers["oc-fileid"] == first.headers["oc-fileid"]
    stack.chunk("again", "2", b"BBBBB")
    assert stack.blob_count() == 2, "the replaced chunk's blob is gone"
    assert stack.move("again", "again.txt").status_code == 201
    assert stack.content("again.txt") == b"AAAAABBBBB"


def test_ng_propfind_lists_chunks_and_the_future_file(stack: Stack) -> None:
    stack.mkcol("listed")
    stack.chunk("listed", "10", b"BBBBB")
    stack.chunk("listed", "2", b"AAA")
    body = (b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
            b"<d:resourcetype/><d:getcontentlength/><oc:id/></d:prop></d:propfind>")
    response = stack.client.request("PROPFIND", stack.uploads("listed"), content=body,
                                    headers={"Depth": "1"})
    assert response.status_code == 207
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    tree = ET.fromstring(response.content)
    hrefs = [r.findtext(f"{D}href") for r in tree.findall(f"{D}response")]
    base = "/remote.php/dav/uploads/alice/listed/"
    assert hrefs == [base, base + "10", base + "2", base + ".file"]
    sizes = {r.findtext(f"{D}href"): r.findtext(f".//{D}getcontentlength")
             for r in tree.findall(f"{D}response")}
    assert sizes[base + "10"] == "5" and sizes[base + ".file"] == "8"
    found = {r.findtext(f"{D}href"): {p.tag: p.text for ps in r.findall(f"{D}propstat")
                                      if "200" in (ps.findtext(f"{D}status") or "")
                                      for p in ps.iter() if p.tag.startswith("{")}
             for r in tree.findall(f"{D}response")}
    assert oc_id_pattern(stack).match(found[base + "2"][f"{OC}id"] or "")
    assert f"{OC}id" not in found[base + ".file"], "FutureFile has no oc: properties"
    assert f"{OC}id" not in found[base], "nor has the upload folder"
    home = stack.client.request("PROPFIND", stack.uploads(), headers={"Depth": "1"})
    assert [r.findtext(f"{D}href") for r in ET.fromstring(home.content)] == [
        "/remote.php/dav/uploads/alice/", base]


def test_ng_abort_removes_the_upload(stack: Stack) -> None:
    stack.mkcol("aborted")
    stack.chunk("aborted", "1", payload(1000, 1))
    stack.chunk("aborted", "2", payload(1000, 2))
    assert stack.blob_count() == 2
    assert stack.client.delete(stack.uploads("aborted")).status_code == 204
    assert stack.blob_count() == 0
    assert stack.client.request("PROPFIND", stack.uploads("aborted")).status_code == 404
    late = stack.chunk("aborted", "3", b"late")
    assert late.status_code == 409
    assert b"Files cannot be created in non-existent collections" in late.content
    assert stack.client.delete(stack.uploads("aborted")).status_code == 404


def test_ng_single_chunk_delete_as_the_client_resumes(stack: Stack) -> None:
    stack.mkcol("resume")
    stack.chunk("resume", "0", b"AAAAA")
    stack.chunk("resume", "1", b"stale")
    assert stack.client.delete(stack.uploads("resume/1")).status_code == 204
    stack.chunk("resume", "1", b"BBBBB")
    assert stack.move("resume", "resumed.txt", OC_Total_Length="10").status_code == 201
    assert stack.content("resumed.txt") == b"AAAAABBBBB"


def test_ng_refusals(stack: Stack) -> None:
    stack.mkcol("once")
    assert stack.client.request("MKCOL", stack.uploads("once")).status_code == 405
    assert stack.chunk("once", ".file", b"x").status_code == 403
    assert stack.client.request("MKCOL", stack.uploads("once/sub")).status_code == 403
    assert stack.client.put(stack.uploads("once"), content=b"x").status_code == 409
    other = stack.client.request("MKCOL", f"{stack.url}/remote.php/dav/uploads/bob/x")
    assert other.status_code == 404
    assert b"Principal with name bob not found" in other.content
    chunked = stack.client.put(stack.uploads("once/1"), content=b"x", headers={"OC-Chunked": "1"})
    assert chunked.status_code == 503
    no_destination = stack.client.request("MOVE", stack.uploads("once/.file"))
    assert no_destination.status_code == 400
    elsewhere = stack.client.request(
        "MOVE", stack.uploads("once/.file"),
        headers={"Destination": f"{stack.url}/remote.php/dav/files/bob/x.txt"})
    assert elsewhere.status_code == 403
    missing_parent = stack.move("once", "no/such/folder.txt")
    assert missing_parent.status_code == 409
    blacklisted = stack.move("once", ".htaccess")
    assert blacklisted.status_code == 403
    anonymous = httpx.request("PROPFIND", stack.uploads("once"))
    assert anonymous.status_code == 401


@pytest.mark.parametrize(("path", "status", "message"), [
    ("bad%01name", 400, b"is not a valid name for an upload or a chunk"),
    ("back%5Cslash", 400, b"is not a valid name for an upload or a chunk"),
    ("x" * 251, 400, b"is not a valid name for an upload or a chunk"),
    ("%2E%2E", 400, b"The path contains '.' or '..'"),
    ("nul%00", 400, b"the request path contains a NUL byte"),
])
def test_ng_bad_names_are_refused(stack: Stack, path: str, status: int, message: bytes) -> None:
    made = stack.client.request("MKCOL", stack.uploads(path))
    assert (made.status_code, message in made.content) == (status, True), made.text
    stack.mkcol("good")
    chunk = stack.chunk("good", path, b"x")
    assert (chunk.status_code, message in chunk.content) == (status, True), chunk.text
    listing = stack.client.request("PROPFIND", stack.uploads("good"), headers={"Depth": "1"})
    hrefs = [r.findtext(f"{D}href") for r in ET.fromstring(listing.content)]
    assert hrefs == ["/remote.php/dav/uploads/alice/good/",
                     "/remote.php/dav/uploads/alice/good/.file"]
    assert stack.blob_count() == 0


def raw_put(stack: Stack, path: str, announced: int, sent: bytes) -> bytes:
    """A PUT whose body breaks off after `sent` of `announced` bytes; the status line."""
    host, port = stack.url.removeprefix("http://").split(":")
    auth = httpx.BasicAuth("alice", PASSWORD).auth_flow(httpx.Request("PUT", stack.url))
    authorization = next(auth).headers["Authorization"]
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"PUT /remote.php/dav/uploads/alice/{path} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: {authorization}\r\nContent-Length: {announced}\r\n"
                     f"\r\n".encode() + sent)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_ng_broken_chunk_leaves_nothing_behind(stack: Stack) -> None:
    stack.mkcol("broken")
    assert stack.chunk("broken", "0", b"AAAAA").status_code == 201
    stored = stack.blob_count()
    status = raw_put(stack, "broken/1", 3 * MiB, payload(MiB + 17, 5))
    assert status.startswith(b"HTTP/1.1 400"), status
    # nor may a broken re-send damage the chunk it would have replaced
    assert raw_put(stack, "broken/0", 100, b"BB").startswith(b"HTTP/1.1 400")
    assert stack.blob_count() == stored
    listing = stack.client.request("PROPFIND", stack.uploads("broken"), headers={"Depth": "1"})
    hrefs = [r.findtext(f"{D}href") for r in ET.fromstring(listing.content)]
    assert hrefs[1:] == ["/remote.php/dav/uploads/alice/broken/0",
                         "/remote.php/dav/uploads/alice/broken/.file"]
    assert stack.chunk("broken", "1", b"BBBBB").status_code == 201
    assert stack.move("broken", "repaired.txt", OC_Total_Length="10").status_code == 201
    assert stack.content("repaired.txt") == b"AAAAABBBBB"


def test_ng_assembly_streams_in_bounded_memory(stack: Stack) -> None:
    digest = hashlib.sha1()
    stack.mkcol("huge")
    for index in range(5):
        part = payload(10 * MiB, 100 + index)
        digest.update(part)
        assert stack.chunk("huge", str(index), part).status_code == 201
    tracemalloc.start()
    try:
        response = stack.move("huge", "huge.bin", OC_Total_Length=str(50 * MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert peak < 8 * MiB, f"assembling 50 MiB peaked at {peak / MiB:.1f} MiB"
    node = stack.backend.stat("alice", "huge.bin")
    assert node.size == 50 * MiB and f"SHA1:{digest.hexdigest()}" in node.checksum


def test_cleanup_removes_stale_uploads_only(stack: Stack) -> None:
    stack.mkcol("stale")
    stack.chunk("stale", "1", b"AAAAA")
    assert cleanup_uploads(stack.backend, 3600) == 0
    stack.mkcol("fresh")
    stack.age_upload("stale", 7200)
    assert cleanup_uploads(stack.backend, 3600) == 1
    assert stack.blob_count() == 0
    assert stack.client.request("PROPFIND", stack.uploads("stale")).status_code == 404
    assert stack.client.request("PROPFIND", stack.uploads("fresh")).status_code == 207


# ---------------------------------------------------------------------------------------------
# chunking v1


def v1_put(stack: Stack, name: str, transfer: int, count: int, index: int, content: bytes,
           **headers: str) -> httpx.Response:
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    return stack.client.put(stack.webdav(f"{name}-chunking-{transfer}-{count}-{index}"),
                            content=content, headers={"OC-Chunked": "1", **extra})


def test_v1_upload_in_three_chunks(stack: Stack) -> None:
    whole = b"AAAAABBBBBCCCCC"
    assert v1_put(stack, "myChunkedFile.txt", 4711, 3, 2, b"CCCCC").status_code == 201
    middle = v1_put(stack, "myChunkedFile.txt", 4711, 3, 0, b"AAAAA")
    assert middle.status_code == 201
    assert "etag" not in middle.headers and "oc-fileid" not in middle.headers
    final = v1_put(stack, "myChunkedFile.txt", 4711, 3, 1, b"BBBBB", X_OC_MTime=MTIME,
                   OC_Checksum=f"SHA1:{hashlib.sha1(whole).hexdigest()}")
    assert final.status_code == 201, final.text
    assert BARE_ETAG.match(final.headers["etag"]), "oC10 sends this ETag unquoted"
    assert final.headers["oc-etag"] == final.headers["etag"]
    assert final.headers["x-oc-mtime"] == "accepted"
    assert final.headers["oc-fileid"] == fileid(stack, "myChunkedFile.txt")
    assert stack.content("myChunkedFile.txt") == whole
    assert stack.backend.stat("alice", "myChunkedFile.txt").mtime == 1568643784
    assert stack.blob_count() == 1


def test_v1_overwrite_keeps_the_fileid(stack: Stack) -> None:
    stack.client.put(stack.files("existing.txt"), content=b"old")
    before = fileid(stack, "existing.txt")
    first = v1_put(stack, "existing.txt", 99, 2, 0, b"new ")
    assert first.status_code == 201
    assert first.headers["oc-fileid"] == before  # sendFileIdHeader resolves the chunk name
    final = v1_put(stack, "existing.txt", 99, 2, 1, b"content")
    assert final.status_code == 201
    assert final.headers["oc-fileid"] == before == fileid(stack, "existing.txt")
    assert stack.content("existing.txt") == b"new content"


def test_v1_wrong_checksum_and_bad_names(stack: Stack) -> None:
    v1_put(stack, "bad.txt", 5, 2, 0, b"AAAAA")
    refused = v1_put(stack, "bad.txt", 5, 2, 1, b"BBBBB", OC_Checksum="SHA1:" + "0" * 40)
    assert refused.status_code == 400
    assert stack.client.get(stack.files("bad.txt")).status_code == 404
    assert stack.blob_count() == 0, "oC10 drops the chunks it assembled"
    invalid = stack.client.put(stack.webdav("plain.txt-chunking-x"), content=b"x",
                               headers={"OC-Chunked": "1"})
    assert invalid.status_code == 501
    assert b"Invalid chunk name" in invalid.content


def test_v1_on_the_new_endpoint_is_503(stack: Stack) -> None:
    response = stack.client.put(stack.files("myChunkedFile.txt-chunking-42-3-0"),
                                content=b"AAAAA", headers={"OC-Chunked": "1"})
    assert response.status_code == 503
    assert b"<s:exception>Sabre\\DAV\\Exception\\ServiceUnavailable</s:exception>" in (
        response.content)
    assert (b"Specified  header (HTTP_OC_CHUNKED/OC-Chunked header) is allowed only in webdav "
            b"endpoint" in response.content)
    assert stack.blob_count() == 0


# ---------------------------------------------------------------------------------------------
# PHP's strnatcmp


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("2", "10", -1),
    ("10", "2", 1),
    ("1", "1", 0),
    ("01", "1", 0),
    ("chunk2", "chunk10", -1),
    ("a", "b", -1),
    ("B", "a", -1),  # case-sensitive, byte values
    ("", "0", -1),
    ("1.5", "1.10", -1),
    ("1.05", "1.5", -1),
    (" 2", "10", -1),
    ("10485760", "0", 1),
    ("x", "x1", -1),
])
def test_strnatcmp(a: str, b: str, expected: int) -> None:
    assert strnatcmp(a, b) == expected
    assert strnatcmp(b, a) == -expected
