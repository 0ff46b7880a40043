"""newstack/dav/locking.py: LOCK, UNLOCK, lock discovery and the If header, as ownCloud 10.

Pure pieces (If header parsing, Timeout) as tables; the rest through real HTTP against a live
new stack. Expected answers follow Sabre 4.7's Locks plugin and ownCloud's FileLocksBackend /
LockManager, and the oC10 acceptance features apiWebdavLocks*.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from newstack.app import NewstackApp, ServerInfo
from newstack.backend import FilesBackend
from newstack.dav.errors import BadRequest, DavError
from newstack.dav.locking import (
    LOCK_TIMEOUT_DEFAULT,
    LOCK_TIMEOUT_MAX,
    effective_timeout,
    parse_if_header,
    requested_timeout,
)
from newstack.dav.methods import Target
from tests.newstack.backends import BACKENDS, StackUser, make_backend
from tests.newstack.live import live_server

D = "{DAV:}"
PASSWORD = "lock pa55word"
NEW = Target(uid="alice", path="dir/a.txt", base="/remote.php/dav/files/alice/", legacy=False)
OLD = Target(uid="alice", path="dir/a.txt", base="/remote.php/webdav/", legacy=True)
TOKEN_RE = re.compile(r"<opaquelocktoken:([0-9a-f-]{36})>")


# ---------------------------------------------------------------------------------------------
# the If header and Timeout, without a server


@pytest.mark.parametrize(("header", "expected"), [
    (None, []),
    ("(<opaquelocktoken:t1>)", [("dir/a.txt", [(False, "opaquelocktoken:t1", "")])]),
    ('(<opaquelocktoken:t1> ["e1"]) (Not <DAV:no-lock> ["e1"])',
     [("dir/a.txt", [(False, "opaquelocktoken:t1", '"e1"'), (True, "DAV:no-lock", '"e1"')])]),
    ('(["e1"])', [("dir/a.txt", [(False, "", '"e1"')])]),
    ("(not <DAV:no-lock>)", [("dir/a.txt", [(True, "DAV:no-lock", "")])]),
    # tagged: an absolute URL, percent-encoded; an untagged list after it joins that resource
    ("<http://h:1/remote.php/dav/files/alice/b%20c/> (<opaquelocktoken:t2>) (<x>)",
     [("b c", [(False, "opaquelocktoken:t2", ""), (False, "x", "")])]),
    ("</remote.php/dav/files/alice/a> (<t1>) </remote.php/dav/files/alice> (<t2>)",
     [("a", [(False, "t1", "")]), ("", [(False, "t2", "")])]),
    # another tree of the same endpoint: no locks there
    ("</remote.php/dav/uploads/alice/x> (<t1>)", [(None, [(False, "t1", "")])]),
])
def test_if_header_lists(header: str | None,
                         expected: list[tuple[str | None, list[tuple[bool, str, str]]]]) -> None:
    got = [(c.path, [(e.negate, e.token, e.etag) for e in c.entries])
           for c in parse_if_header(header, NEW)]
    assert got == expected


def test_if_header_on_the_legacy_endpoint_and_outside_the_base() -> None:
    [condition] = parse_if_header("</remote.php/webdav/x/y> (<t>)", OLD)
    assert (condition.path, condition.uri) == ("x/y", "x/y")
    [untagged] = parse_if_header("(<t>)", NEW)
    assert untagged.uri == "files/alice/dir/a.txt"  # Sabre's name in the 412 message
    with pytest.raises(DavError) as raised:
        parse_if_header("</somewhere/else> (<t>)", NEW)
    assert raised.value.status == 403
    assert raised.value.message == ("Requested uri (/somewhere/else) is out of base uri "
                                    "(/remote.php/dav/)")


@pytest.mark.parametrize(("header", "asked", "stored"), [
    (None, None, LOCK_TIMEOUT_DEFAULT),
    ("Second-600", 600, 600),
    ("second-999", 999, 999),
    ("Second-0", None, LOCK_TIMEOUT_DEFAULT),  # 0 counts as not asked (Sabre)
    ("Second-3600, Infinite", 3600, 3600),  # PHP (int) stops at the comma
    ("Infinite", -1, LOCK_TIMEOUT_MAX),
    ("Infinite, Second-4100000000", -1, LOCK_TIMEOUT_MAX),
    ("Second--1", -1, LOCK_TIMEOUT_MAX),
    ("Second-99999999", 99999999, LOCK_TIMEOUT_MAX),
    ("Second-abc", None, LOCK_TIMEOUT_DEFAULT),
])
def test_timeout_header(header: str | None, asked: int | None, stored: int) -> None:
    assert requested_timeout(header) == asked
    assert effective_timeout(asked) == stored


def test_timeout_header_garbage_and_configured_limits() -> None:
    with pytest.raises(BadRequest):
        requested_timeout("forever")
    # oC10 acceptance setTimeout.feature: a default over the maximum is capped as well
    assert effective_timeout(None, default=99999, maximum=3600) == 3600
    assert effective_timeout(None, default=120, maximum=3600) == 120


# ---------------------------------------------------------------------------------------------
# over HTTP


@dataclasses.dataclass
class Server:
    url: str
    client: httpx.Client
    backend: FilesBackend

    def dav(self, path: str = "") -> str:
        return f"{self.url}/remote.php/dav/files/alice/{path}"

    def webdav(self, path: str = "") -> str:
        return f"{self.url}/remote.php/webdav/{path}"

    def put(self, path: str, data: bytes = b"data", **headers: str) -> httpx.Response:
        return self.client.put(self.dav(path), content=data, headers=headers)

    def lock(self, path: str, scope: str = "exclusive", *, depth: str | None = None,
             timeout: str | None = None, owner: str | None = "<d:href>me</d:href>",
             url: str | None = None) -> httpx.Response:
        owner_xml = "" if owner is None else f"<d:owner>{owner}</d:owner>"
        body = (f'<?xml version="1.0" encoding="utf-8"?><d:lockinfo xmlns:d="DAV:">'
                f"<d:lockscope><d:{scope}/></d:lockscope><d:locktype><d:write/></d:locktype>"
                f"{owner_xml}</d:lockinfo>")
        headers = {}
        if depth is not None:
            headers["Depth"] = depth
        if timeout is not None:
            headers["Timeout"] = timeout
        return self.client.request("LOCK", url or self.dav(path), content=body,
                                   headers=headers)

    def token(self, path: str, scope: str = "exclusive", **kwargs: str) -> str:
        response = self.lock(path, scope, **kwargs)
        assert response.status_code in (200, 201), response.text
        match = TOKEN_RE.fullmatch(response.headers["lock-token"])
        assert match, response.headers["lock-token"]
        return match.group(1)

    def activelocks(self, path: str, depth: str = "0") -> dict[str, list[ET.Element]]:
        body = b'<d:propfind xmlns:d="DAV:"><d:prop><d:lockdiscovery/></d:prop></d:propfind>'
        response = self.client.request("PROPFIND", self.dav(path), content=body,
                                       headers={"Depth": depth})
        assert response.status_code == 207, response.text
        return {r.findtext(f"{D}href") or "": r.findall(f".//{D}activelock")
                for r in ET.fromstring(response.content).findall(f"{D}response")}


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    backend = make_backend(request.param, tmp_path_factory.mktemp("locking"),
                           [StackUser("alice", PASSWORD, "Alice Adams", "alice@example.org")])
    app = NewstackApp(backend, ServerInfo(hostname="testhost"))
    with live_server(app) as url, httpx.Client(auth=("alice", PASSWORD), timeout=30) as client:
        yield Server(url, client, backend)


@pytest.fixture
def server(live: Server) -> Server:
    """The module's server with no locks and only a.txt, dir/ and dir/b.txt in alice's files
    (a server per test would cost half a second each to stop)."""
    backend = live.backend
    for lock in backend.locks("alice", "", with_children=True):
        backend.unlock("alice", lock.path, lock.token)
    for node in backend.children("alice", ""):
        backend.delete("alice", node.path)
    assert live.put("a.txt").status_code == 201
    assert live.client.request("MKCOL", live.dav("dir")).status_code == 201
    assert live.put("dir/b.txt").status_code == 201
    return live


def sabre_error(response: httpx.Response) -> tuple[str, str, str]:
    """(exception, message, the rest of the body after the message) of a Sabre error."""
    body = response.text
    exception = re.search(r"<s:exception>(.*)</s:exception>", body)
    message = re.search(r"<s:message>(.*)</s:message>|<s:message/>", body)
    assert exception and message, body
    return exception.group(1), message.group(1) or "", body[message.end():]


def test_lock_response(server: Server) -> None:
    response = server.lock("a.txt", timeout="Second-3600", depth="0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    token = TOKEN_RE.fullmatch(response.headers["lock-token"])
    assert token
    # Sabre's XML service: one-space indentation, <d:prop> declaring the three prefixes
    assert response.text == (
        '<?xml version="1.0"?>\n'
        '<d:prop xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" '
        'xmlns:oc="http://owncloud.org/ns">\n'
        " <d:lockdiscovery>\n"
        "  <d:activelock>\n"
        "   <d:lockscope>\n    <d:exclusive/>\n   </d:lockscope>\n"
        "   <d:locktype>\n    <d:write/>\n   </d:locktype>\n"
        "   <d:lockroot>\n    <d:href>/remote.php/dav/files/alice/a.txt</d:href>\n"
        "   </d:lockroot>\n"
        "   <d:depth>0</d:depth>\n"
        "   <d:timeout>Second-3600</d:timeout>\n"
        f"   <d:locktoken>\n    <d:href>opaquelocktoken:{token.group(1)}</d:href>\n"
        "   </d:locktoken>\n"
        "   <d:owner>\n    <d:href>me</d:href>\n   </d:owner>\n"
        "  </d:activelock>\n"
        " </d:lockdiscovery>\n"
        "</d:prop>\n")


def test_lock_defaults_depth_infinity_timeout_and_owner(server: Server) -> None:
    response = server.lock("dir", owner=None)
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.findtext(f".//{D}depth") == "infinity"
    assert root.findtext(f".//{D}timeout") == f"Second-{LOCK_TIMEOUT_DEFAULT}"
    # LockManager::lock: no <d:owner> -> the display name and the e-mail address
    assert root.findtext(f".//{D}owner") == "Alice Adams (alice@example.org)"
    infinite = server.lock("a.txt", "shared", timeout="Infinite")
    assert ET.fromstring(infinite.content).findtext(f".//{D}timeout") == "Second-86400"
    assert server.lock("other.txt", depth="1").status_code == 400


def test_lock_on_an_unmapped_url_creates_an_empty_file(server: Server) -> None:
    response = server.lock("new.txt")
    assert response.status_code == 201
    assert server.client.get(server.dav("new.txt")).content == b""
    assert server.lock("missing/new.txt").status_code == 404
    assert server.client.get(server.dav("missing/new.txt")).status_code == 404


def test_write_to_a_locked_file_needs_the_token(server: Server) -> None:
    token = server.token("a.txt")
    response = server.put("a.txt")
    assert response.status_code == 423
    assert sabre_error(response) == (
        "Sabre\\DAV\\Exception\\Locked", "",
        "\n  <d:lock-token-submitted>\n    <d:href>files/alice/a.txt</d:href>\n"
        "  </d:lock-token-submitted>\n</d:error>\n")
    for method, extra in [("DELETE", {}), ("MOVE", {"Destination": server.dav("z.txt")}),
                          ("PROPPATCH", {})]:
        assert server.client.request(method, server.dav("a.txt"),
                                     headers=extra).status_code == 423, method
    copy_onto = server.client.request("COPY", server.dav("dir/b.txt"),
                                      headers={"Destination": server.dav("a.txt")})
    assert copy_onto.status_code == 423
    # the token as an untagged list, or tagged with the resource's absolute URL
    assert server.put("a.txt", If=f"(<opaquelocktoken:{token}>)").status_code == 204
    assert server.put("a.txt", If=f"<{server.dav('a.txt')}> (<opaquelocktoken:{token}>)"
                      ).status_code == 204
    # reading and copying a locked file need no token, and the copy is not locked
    assert server.client.get(server.dav("a.txt")).status_code == 200
    copy = server.client.request("COPY", server.dav("a.txt"),
                                 headers={"Destination": server.dav("copy.txt")})
    assert copy.status_code == 201
    assert server.activelocks("copy.txt") == {"/remote.php/dav/files/alice/copy.txt": []}


def test_a_wrong_or_stale_token_is_refused(server: Server) -> None:
    token = server.token("a.txt")
    corrupt = server.put("a.txt", If=f"(<opaquelocktoken:{token}x>) (Not <DAV:no-lock>)")
    assert corrupt.status_code == 423
    unlocked = server.put("dir/b.txt", If="(<DAV:no-lock>)")
    assert unlocked.status_code == 412
    assert sabre_error(unlocked) == (
        "Sabre\\DAV\\Exception\\PreconditionFailed",
        "Failed to find a valid token/etag combination for files/alice/dir/b.txt",
        "\n  <s:header>If</s:header>\n</d:error>\n")
    # a token of a lock elsewhere does not count for this resource
    other = server.token("dir/b.txt")
    assert server.put("a.txt", If=f"(<opaquelocktoken:{other}>)").status_code == 423


def test_if_header_etags(server: Server) -> None:
    token = server.token("a.txt")
    etag = server.client.get(server.dav("a.txt")).headers["etag"]
    good = server.put("a.txt", If=f"(<opaquelocktoken:{token}> [{etag}])")
    assert good.status_code == 204
    etag = good.headers["etag"]
    bad = etag[:-3] + chr(ord(etag[-3]) + 1) + etag[-2:]
    assert server.put("a.txt", If=f"(<opaquelocktoken:{token}> [{bad}])").status_code == 412
    assert server.put("a.txt", If=f"(<opaquelocktoken:{token}> [{etag}]) "
                      f"(Not <DAV:no-lock> [{etag}])").status_code == 204
    # Sabre negates the (token, etag) pair as a whole, so this passes as it does on oC10
    # (litmus fail_complex_cond_put, which ownCloud's own litmus image patches out)
    etag = server.client.get(server.dav("a.txt")).headers["etag"]
    bad = etag[:-3] + chr(ord(etag[-3]) + 1) + etag[-2:]
    assert server.put("a.txt", If=f"(<opaquelocktoken:{token}> [{bad}]) "
                      f"(Not <DAV:no-lock> [{bad}])").status_code == 204
    # an etag alone on an unlocked file; folders never match (Sabre compares IFile etags)
    etag_b = server.client.get(server.dav("dir/b.txt")).headers["etag"]
    assert server.put("dir/b.txt", If=f"([{etag_b}])").status_code == 204
    assert server.put("dir/b.txt", If=f"([{etag_b}])").status_code == 412
    listing = server.client.request("PROPFIND", server.dav("dir"), headers={"Depth": "0"})
    dir_etag = ET.fromstring(listing.content).findtext(f".//{D}getetag")
    assert dir_etag
    proppatch = server.client.request("PROPPATCH", server.dav("dir"), headers={
        "If": f"([{dir_etag}])"}, content=b'<d:propertyupdate xmlns:d="DAV:"/>')
    assert proppatch.status_code == 412


def test_conflicting_locks(server: Server) -> None:
    server.token("a.txt", "shared")
    assert server.lock("a.txt", "shared").status_code == 200
    conflict = server.lock("a.txt", "exclusive")
    assert conflict.status_code == 423
    assert sabre_error(conflict) == (
        "Sabre\\DAV\\Exception\\ConflictingLock", "",
        "\n  <d:no-conflicting-lock>\n    <d:href>files/alice/a.txt</d:href>\n"
        "  </d:no-conflicting-lock>\n</d:error>\n")
    server.token("dir")  # exclusive, depth infinity
    for scope in ("shared", "exclusive"):
        response = server.lock("dir/b.txt", scope)
        assert response.status_code == 423
        assert "<d:href>files/alice/dir</d:href>" in response.text


def test_depth_zero_folder_lock_leaves_children_alone(server: Server) -> None:
    server.token("dir", depth="0")
    assert server.lock("dir/b.txt").status_code == 200
    assert server.put("dir/new.txt").status_code == 201
    assert server.client.request("PROPPATCH", server.dav("dir")).status_code == 423


def test_folder_lock_covers_everything_below(server: Server) -> None:
    token = server.token("dir")
    assert server.put("dir/new.txt").status_code == 423
    assert server.client.request("MKCOL", server.dav("dir/sub")).status_code == 423
    move_in = server.client.request("MOVE", server.dav("a.txt"),
                                    headers={"Destination": server.dav("dir/a.txt")})
    assert move_in.status_code == 423
    move_out = server.client.request("MOVE", server.dav("dir/b.txt"),
                                     headers={"Destination": server.dav("b.txt")})
    assert move_out.status_code == 423
    # tagged with the folder, as clients (neon, the oC10 acceptance tests) send it
    tagged = f"<{server.dav('dir')}> (<opaquelocktoken:{token}>)"
    assert server.put("dir/new.txt", If=tagged).status_code == 201
    renamed = server.client.request("MOVE", server.dav("dir/b.txt"), headers={
        "Destination": server.dav("dir/renamed.txt"), "If": tagged})
    assert renamed.status_code == 201
    # every node below reports the folder's lock, rooted at the folder
    found = server.activelocks("dir", depth="1")
    assert sorted(found) == ["/remote.php/dav/files/alice/dir/",
                             "/remote.php/dav/files/alice/dir/new.txt",
                             "/remote.php/dav/files/alice/dir/renamed.txt"]
    for activelocks in found.values():
        [lock] = activelocks
        assert lock.findtext(f"{D}lockroot/{D}href") == "/remote.php/dav/files/alice/dir"
        assert lock.findtext(f"{D}locktoken/{D}href") == f"opaquelocktoken:{token}"
    assert server.activelocks("")["/remote.php/dav/files/alice/"] == []


def test_delete_and_move_need_the_tokens_of_locked_children(server: Server) -> None:
    token = server.token("dir/b.txt")
    assert server.client.delete(server.dav("dir")).status_code == 423
    move = server.client.request("MOVE", server.dav("dir"),
                                 headers={"Destination": server.dav("dir2")})
    assert move.status_code == 423
    moved = server.client.request("MOVE", server.dav("dir"), headers={
        "Destination": server.dav("dir2"), "If": f"(<opaquelocktoken:{token}>)"})
    assert moved.status_code == 201
    # locks do not travel with a MOVE
    assert server.activelocks("dir2/b.txt") == {"/remote.php/dav/files/alice/dir2/b.txt": []}
    assert server.put("dir2/b.txt").status_code == 204


def test_refresh(server: Server) -> None:
    token = server.token("dir", timeout="Second-100")
    refreshed = server.client.request("LOCK", server.dav("dir"), headers={
        "If": f"(<opaquelocktoken:{token}>)", "Timeout": "Second-500"})
    assert refreshed.status_code == 200
    assert refreshed.headers["lock-token"] == f"<opaquelocktoken:{token}>"
    assert ET.fromstring(refreshed.content).findtext(f".//{D}timeout") == "Second-500"
    # through a member of the locked folder (litmus indirect_refresh)
    indirect = server.client.request("LOCK", server.dav("dir/b.txt"), headers={
        "If": f"(<opaquelocktoken:{token}>)", "Timeout": "Second-700"})
    assert indirect.status_code == 200
    root = ET.fromstring(indirect.content)
    assert root.findtext(f".//{D}lockroot/{D}href") == "/remote.php/dav/files/alice/dir"
    assert root.findtext(f".//{D}timeout") == "Second-700"
    # without a Timeout header the lock keeps the seconds it has left
    kept = server.client.request("LOCK", server.dav("dir"),
                                 headers={"If": f"(<opaquelocktoken:{token}>)"})
    left = int((ET.fromstring(kept.content).findtext(f".//{D}timeout") or "")[7:])
    assert 690 <= left <= 700
    wrong = server.client.request("LOCK", server.dav("dir"), headers={"If": "(<x>)"})
    assert wrong.status_code == 423
    no_body = server.client.request("LOCK", server.dav("a.txt"))
    assert no_body.status_code == 400
    assert sabre_error(no_body)[1] == "An xml body is required for lock requests"


def test_unlock(server: Server) -> None:
    token = server.token("dir")
    missing = server.client.request("UNLOCK", server.dav("dir"))
    assert missing.status_code == 400
    assert sabre_error(missing)[1] == "No lock token was supplied"
    bogus = server.client.request("UNLOCK", server.dav("dir"),
                                  headers={"Lock-Token": "<opaquelocktoken:foobar>"})
    assert bogus.status_code == 409
    assert sabre_error(bogus) == (
        "Sabre\\DAV\\Exception\\LockTokenMatchesRequestUri",
        "The locktoken supplied does not match any locks on this entity",
        "\n  <d:lock-token-matches-request-uri/>\n</d:error>\n")
    # the folder's token on a member: 204, but oC10 deletes by (file id, token) - it stays
    via_member = server.client.request("UNLOCK", server.dav("dir/b.txt"),
                                       headers={"Lock-Token": f"<opaquelocktoken:{token}>"})
    assert via_member.status_code == 204
    assert len(server.activelocks("dir/b.txt")["/remote.php/dav/files/alice/dir/b.txt"]) == 1
    # Windows sends the token without brackets
    done = server.client.request("UNLOCK", server.dav("dir"),
                                 headers={"Lock-Token": f"opaquelocktoken:{token}"})
    assert done.status_code == 204
    assert done.content == b""
    assert server.put("dir/b.txt").status_code == 204


def test_legacy_endpoint_names_locks_relative_to_it(server: Server) -> None:
    response = server.lock("", url=server.webdav("a.txt"))
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.findtext(f".//{D}lockroot/{D}href") == "/remote.php/webdav/a.txt"
    refused = server.client.put(server.webdav("a.txt"), content=b"x")
    assert refused.status_code == 423
    assert "<d:href>a.txt</d:href>" in refused.text
    # the same lock seen through the new endpoint
    assert "<d:href>files/alice/a.txt</d:href>" in server.put("a.txt").text
