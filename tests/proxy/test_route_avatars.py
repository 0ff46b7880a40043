"""Avatar reads as a routing table (route.py): the new stack only when both the requester and
the avatar's owner are routed there; else ownCloud 10. Then once through a real proxy."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bridge.oc10.formats import avatar_path
from newstack.legacy.instance import open_instance
from proxy.freeze import is_write
from proxy.identify import ANONYMOUS, Identity
from proxy.route import Decision, RoutingView, UserRouting, route
from tests.proxy.harness import USERS, Backends, backends, proxy_process

VIEW = RoutingView(epoch=7, users={
    "lena": UserRouting("legacy", "legacy", 1),
    "nina": UserRouting("new", "new", 3),
    "nick": UserRouting("new", "new", 4),
    "fred": UserRouting("frozen", "new", 5),      # frozen after the flip: still on new
    "flo": UserRouting("frozen", "legacy", 5),    # frozen before it
    "cora": UserRouting("copying", "legacy", 6),
    "cuto": UserRouting("cutover", "new", 7),
})


def reading(uid: str | None, owner: str | None, source: str = "basic") -> Identity:
    if uid is None:
        return Identity(uid=None, source="anonymous", avatar_owner=owner)
    return Identity(uid=uid, source=source, credential=source == "basic", avatar_owner=owner)


@pytest.mark.parametrize(("identity", "view", "expected"), [
    # both on new: the new stack
    (reading("nina", "nick"), VIEW, Decision("new", "new", False, "nina", 7)),
    (reading("nina", "nina"), VIEW, Decision("new", "new", False, "nina", 7)),
    (reading("nina", "nick", "cookie"), VIEW, Decision("new", "new", False, "nina", 7)),
    (reading("nina", "fred"), VIEW, Decision("new", "new", False, "nina", 7)),
    (reading("nina", "cuto"), VIEW, Decision("new", "new", False, "nina", 7)),
    (reading("fred", "nina"), VIEW, Decision("new", "frozen", True, "fred", 7)),
    # the owner is not on new: legacy, which holds the current avatar
    (reading("nina", "lena"), VIEW, Decision("legacy", "avatar", False, "nina", 7)),
    (reading("nina", "flo"), VIEW, Decision("legacy", "avatar", False, "nina", 7)),
    (reading("nina", "cora"), VIEW, Decision("legacy", "avatar", False, "nina", 7)),
    (reading("nina", "zed"), VIEW, Decision("legacy", "avatar", False, "nina", 7)),
    # uids are exact: another spelling is unlisted, so legacy (which resolves it) answers
    (reading("nina", "Nick"), VIEW, Decision("legacy", "avatar", False, "nina", 7)),
    (reading("fred", "lena"), VIEW, Decision("legacy", "avatar", True, "fred", 7)),
    # the requester is not on new: legacy as ever, whoever the owner
    (reading("lena", "nina"), VIEW, Decision("legacy", "legacy", False, "lena", 7)),
    (reading("flo", "nina"), VIEW, Decision("legacy", "frozen", True, "flo", 7)),
    (reading("zed", "nina"), VIEW, Decision("legacy", "unlisted", False, "zed", 7)),
    (reading(None, "nina"), VIEW, Decision("legacy", "default", False, None, 7)),
    # with new as the default stack, unlisted users count as on new
    (reading(None, "zed"), RoutingView(epoch=2, default_stack="new"),
     Decision("new", "default", False, None, 2)),
    (reading("zed", "lena"), RoutingView(epoch=2, users=VIEW.users, default_stack="new"),
     Decision("legacy", "avatar", False, "zed", 2)),
    # not an avatar read: the requester decides, as before
    (reading("nina", None), VIEW, Decision("new", "new", False, "nina", 7)),
    (ANONYMOUS, VIEW, Decision("legacy", "default", False, None, 7)),
])
def test_avatar_route(identity: Identity, view: RoutingView, expected: Decision) -> None:
    assert route(identity, view) == expected


@pytest.mark.parametrize("path", ["/index.php/avatar/nina/64", "/avatar/nina/64",
                                  "/remote.php/dav/avatars/nina/64.png"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "PROPFIND"])
def test_avatar_reads_are_never_frozen(path: str, method: str) -> None:
    assert not is_write(method, path.encode())


# -- through `ocbridge proxy` ------------------------------------------------------------------

@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Backends]:
    with backends(tmp_path) as running:
        yield running


def test_avatar_requests_through_the_proxy(tmp_path: Path, stacks: Backends) -> None:
    # alice has an avatar on ownCloud 10 only: legacy answers the image, the new stack the
    # JSON of a user without one, so each answer says which stack gave it
    instance = open_instance(Path(stacks.config_php))
    try:
        folder = instance.data_dir / avatar_path("alice")
    finally:
        instance.close()
    folder.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(out, "PNG")
    (folder / "avatar.png").write_bytes(out.getvalue())

    def stack_answering(proxy_url: str, requester: str, url: str) -> str:
        with httpx.Client(base_url=proxy_url, auth=(requester, USERS[requester]),
                          timeout=30) as client:
            response = client.get(url)
        if response.headers["content-type"].startswith("image/"):
            return "legacy"
        assert response.status_code in (200, 404), response.text
        return "new"

    urls = ("/index.php/avatar/alice/32", "/avatar/alice/32",
            "/remote.php/dav/avatars/alice/32.png")
    with proxy_process(tmp_path, stacks, workers=1) as proxy:
        expected = {
            ("legacy", "legacy"): "legacy",
            ("new", "legacy"): "legacy",   # bob on new, alice's avatar on legacy
            ("legacy", "new"): "legacy",   # bob on legacy: legacy as ever
            ("new", "new"): "new",
        }
        for (bob, alice), stack in expected.items():
            proxy.flip("bob", bob)
            proxy.flip("alice", alice)
            for url in urls:
                assert stack_answering(proxy.url, "bob", url) == stack, (bob, alice, url)
