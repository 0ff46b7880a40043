"""route and freeze as tables: (identity, routing view) → decision; which requests are writes and
what a frozen user's write gets."""

from __future__ import annotations

import pytest

from proxy.freeze import frozen_answer, is_write
from proxy.identify import ANONYMOUS, Identity
from proxy.route import Decision, RoutingView, UserRouting, route

VIEW = RoutingView(epoch=7, users={
    "alice": UserRouting("legacy", "legacy", 1),
    "bob": UserRouting("new", "new", 3),
    "carol": UserRouting("frozen", "legacy", 5),
    "dave": UserRouting("cutover", "new", 6),
    "erin": UserRouting("copying", "legacy", 7),
    "frank": UserRouting("frozen", "new", 7),
})


def who(uid: str, source: str = "basic") -> Identity:
    return Identity(uid=uid, source=source, credential=source == "basic")


@pytest.mark.parametrize(("identity", "view", "expected"), [
    (ANONYMOUS, VIEW, Decision("legacy", "default", False, None, 7)),
    (ANONYMOUS, RoutingView(epoch=9, default_stack="new"), Decision("new", "default", False,
                                                                     None, 9)),
    (who("zoe"), VIEW, Decision("legacy", "unlisted", False, "zoe", 7)),
    (who("zoe"), RoutingView(epoch=1, default_stack="new"),
     Decision("new", "unlisted", False, "zoe", 1)),
    (who("alice"), VIEW, Decision("legacy", "legacy", False, "alice", 7)),
    (who("bob"), VIEW, Decision("new", "new", False, "bob", 7)),
    (who("bob", "dav-path"), VIEW, Decision("new", "new", False, "bob", 7)),
    (who("bob", "link"), VIEW, Decision("new", "new", False, "bob", 7)),
    (who("carol"), VIEW, Decision("legacy", "frozen", True, "carol", 7)),
    (who("dave"), VIEW, Decision("new", "cutover", True, "dave", 7)),
    (who("erin"), VIEW, Decision("legacy", "copying", False, "erin", 7)),
    (who("frank"), VIEW, Decision("new", "frozen", True, "frank", 7)),
    # uids are exact: the directory already resolved case and e-mail to the stored uid
    (who("Bob"), VIEW, Decision("legacy", "unlisted", False, "Bob", 7)),
])
def test_route(identity: Identity, view: RoutingView, expected: Decision) -> None:
    assert route(identity, view) == expected


@pytest.mark.parametrize(("method", "path", "write"), [
    ("GET", "/remote.php/webdav/a", False),
    ("HEAD", "/remote.php/webdav/a", False),
    ("PROPFIND", "/remote.php/dav/files/u/", False),
    ("REPORT", "/remote.php/dav/files/u/", False),
    ("OPTIONS", "/", False),
    ("PUT", "/remote.php/webdav/a", True),
    ("DELETE", "/remote.php/webdav/a", True),
    ("MKCOL", "/remote.php/webdav/d", True),
    ("MOVE", "/remote.php/dav/uploads/u/1/.file", True),
    ("COPY", "/remote.php/webdav/a", True),
    ("PROPPATCH", "/remote.php/webdav/a", True),
    ("LOCK", "/remote.php/webdav/a", True),
    ("UNLOCK", "/remote.php/webdav/a", True),
    ("POST", "/ocs/v1.php/apps/files_sharing/api/v1/shares", True),
    ("POST", "/ocs/v2.php/apps/files_sharing/api/v1/shares", True),
    ("POST", "/remote.php/dav/comments/files/12", True),
    ("POST", "/ocs/v2.php/cloud/user", False),
    ("POST", "/index.php/login", False),
    ("GET", "/ocs/v1.php/apps/files_sharing/api/v1/shares", False),
])
def test_is_write(method: str, path: str, write: bool) -> None:
    assert is_write(method, path.encode()) is write


def test_frozen_answers() -> None:
    locked = frozen_answer(423, 30)
    assert locked.status == 423
    assert b"<s:exception>OCA\\DAV\\Connector\\Sabre\\Exception\\FileLocked</s:exception>" in (
        locked.body)
    assert locked.body.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<d:error xmlns:d')
    unavailable = frozen_answer(503, 45)
    assert unavailable.status == 503
    assert ("Retry-After", "45") in unavailable.headers
    assert b"ServiceUnavailable" in unavailable.body
    headers = dict(unavailable.header_list())
    assert headers[b"content-type"] == b"application/xml; charset=utf-8"
    assert headers[b"content-length"] == str(len(unavailable.body)).encode()
