"""Recipients' view (newstack/sharing/view.py) on both backends: mounts, permissions, writes into
the owner's tree, etag propagation to every member, private links; plus its pure rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest

from bridge.oc10.formats import dav_permissions
from newstack.backend import AlreadyExistsError, ForbiddenError, Node, NotFoundError
from newstack.sharing.model import (
    STATE_ACCEPTED,
    STATE_PENDING,
    STATE_REJECTED,
    TYPE_GROUP,
    TYPE_LINK,
    TYPE_REMOTE,
    TYPE_USER,
    NewShare,
    Received,
    Share,
)
from newstack.sharing.view import (
    SharingBackend,
    combined_etag,
    contested_targets,
    find_mount,
    inner_permissions,
    mounted,
    root_permissions,
)
from tests.newstack.backends import BACKENDS
from tests.newstack.sharing_stack import (
    SharingServer,
    sharing_server,
    uncached_view,
)

TODAY = dt.date(2026, 11, 25)

# ---------------------------------------------------------------------------------------------
# pure rules


@pytest.mark.parametrize(("share_perms", "is_dir", "stat_letters", "listed_letters"), [
    # REFERENCE §6.4: the mount point as PROPFIND Depth 0 and as a child in its parent's listing
    (1, True, "SD", "SDNV"),
    (17, True, "SRD", "SRDNV"),
    (31, True, "SRDNVCK", "SRDNVCK"),
    (1, False, "SD", "SDNVW"),
    (19, False, "SRDNVW", "SRDNVW"),
])
def test_mount_point_permission_letters(share_perms: int, is_dir: bool, stat_letters: str,
                                        listed_letters: str) -> None:
    owner_bits = 31 if is_dir else 27
    for listed, expected in ((False, stat_letters), (True, listed_letters)):
        bits = root_permissions(owner_bits, share_perms, listed=listed)
        assert dav_permissions(bits, is_dir=is_dir, shared=True) == expected


@pytest.mark.parametrize(("share_perms", "is_dir", "letters"), [
    (1, True, "S"), (17, True, "SR"), (31, True, "SRDNVCK"), (31, False, "SRDNVW"),
    (5, True, "SCK"), (3, False, "SNVW"), (15, False, "SDNVW"),
])
def test_items_inside_a_share(share_perms: int, is_dir: bool, letters: str) -> None:
    bits = inner_permissions(31 if is_dir else 27, share_perms)
    assert dav_permissions(bits, is_dir=is_dir, shared=True) == letters


def test_combined_etag_as_fileinfo_computes_it() -> None:
    # REFERENCE §6.3's example: own etag, one share at /Shared with root etag and perms 31
    expected = hashlib.md5(b"5a9f11b8b440c::/Shared//5a9f0c2e1f3a231").hexdigest()
    assert combined_etag("5a9f11b8b440c", [("/Shared/", "5a9f0c2e1f3a2", 31)]) == expected
    assert combined_etag("own", []) == "own"
    two = combined_etag("own", [("/a/", "e1", 31), ("/b/", "e2", 1)])
    assert two == hashlib.md5(b"own::/a//e131::/b//e21").hexdigest()


def _received(share_id: int, target: str, state: int = STATE_ACCEPTED,
              expiration: dt.date | None = None, share_type: int = TYPE_USER) -> Received:
    share = Share(id=share_id, share_type=share_type, share_with="bob", uid_owner="alice",
                  uid_initiator="alice", item_type="folder", file_source=share_id,
                  file_target=target, permissions=31, stime=1, expiration=expiration)
    return Received(share, "bob", target, state)


def test_mounted_keeps_accepted_unexpired_first_of_each_target() -> None:
    items = [
        _received(5, "/Later"),
        _received(1, "/A"),
        _received(2, "/Pending", STATE_PENDING),
        _received(3, "/Declined", STATE_REJECTED),
        _received(4, "/Old", expiration=TODAY - dt.timedelta(days=1)),
        _received(6, "/A"),  # same target as share 1: the older share wins
        _received(7, "/Today", expiration=TODAY),
        _received(8, "/Sub/Deep"),
    ]
    assert [(m.received.share.id, m.target) for m in mounted(items, TODAY)] == [
        (1, "A"), (5, "Later"), (7, "Today"), (8, "Sub/Deep")]
    mounts = mounted(items, TODAY)
    assert find_mount(mounts, "A") == (mounts[0], "")
    assert find_mount(mounts, "A/x/y.txt") == (mounts[0], "x/y.txt")
    assert find_mount(mounts, "AB") is None
    assert find_mount(mounts, "Sub") is None
    assert find_mount(mounts, "Sub/Deep/z") == (mounts[3], "z")


def test_shares_of_one_node_make_one_mount_with_their_permissions_together() -> None:
    def received(share_id: int, kind: int, permissions: int, target: str,
                 state: int = STATE_ACCEPTED) -> Received:
        share = Share(id=share_id, share_type=kind, share_with="x", uid_owner="alice",
                      uid_initiator="alice", item_type="folder", file_source=77,
                      file_target=target, permissions=permissions, stime=1)
        return Received(share, "bob", target, state)

    items = [received(3, TYPE_USER, 31, "/Shares/x"), received(2, TYPE_GROUP, 1, "/Shares/x"),
             received(4, TYPE_GROUP, 4, "/Shares/x (2)"),
             received(5, TYPE_GROUP, 8, "/Shares/x", STATE_PENDING)]
    (mount,) = mounted(items, TODAY)
    assert (mount.received.share.id, mount.target, mount.permissions) == (2, "Shares/x", 31)
    (alone,) = mounted(items[1:2], TODAY)
    assert alone.permissions == 1 and alone.merged_permissions is None
    (two,) = mounted(items[1:3], TODAY)
    assert two.permissions == 5  # read + create, the pending share's delete left out
    # one node's shares on one target do not contest it; another node's share does
    assert contested_targets(items, TODAY) == set()
    other = Received(dataclasses.replace(items[0].share, id=9, file_source=78), "bob",
                     "/Shares/x", STATE_ACCEPTED)
    assert contested_targets([*items, other], TODAY) == {"Shares/x"}


# ---------------------------------------------------------------------------------------------
# both backends


@pytest.fixture(params=BACKENDS)
def view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharingBackend]:
    with uncached_view(request.param, tmp_path) as view:
        yield view


def _share(view: SharingBackend, kind: int, path: str, share_with: str | None,
           permissions: int, target: str | None = None, **more: object) -> Share:
    node = view.stat("alice", path)
    return view.shares.create(NewShare(
        share_type=kind, share_with=share_with, uid_owner="alice", uid_initiator="alice",
        item_type="folder" if node.is_dir else "file", file_source=node.fileid,
        file_target=target or "/" + node.name, permissions=permissions,
        **more))  # type: ignore[arg-type]


def _put(view: SharingBackend, uid: str, path: str, data: bytes) -> Node:
    return view.write(uid, path, io.BytesIO(data), length=len(data)).node


def _content(view: SharingBackend, uid: str, path: str) -> bytes:
    return b"".join(view.read(uid, view.stat(uid, path)))


def test_group_share_write_propagates_to_owner_and_every_member(view: SharingBackend) -> None:
    share = _share(view, TYPE_GROUP, "Docs", "staff", 15)
    view.move("bob", "Docs", "Team Docs", overwrite=False)  # bob renames his mount point
    assert view.shares.received("bob", ["staff"])[0].target == "/Team Docs"
    before = {uid: view.stat(uid, "").etag for uid in ("alice", "bob", "carol")}
    mounts_before = {"bob": view.stat("bob", "Team Docs").etag,
                     "carol": view.stat("carol", "Docs").etag}
    owner_docs = view.stat("alice", "Docs").etag

    written = _put(view, "bob", "Team Docs/sub/new.txt", b"from bob")
    assert written.path == "Team Docs/sub/new.txt" and written.owner == "alice"
    assert written.shared and written.permissions == 27 & 15

    assert _content(view, "alice", "Docs/sub/new.txt") == b"from bob"
    assert _content(view, "carol", "Docs/sub/new.txt") == b"from bob"
    assert view.stat("alice", "Docs").etag != owner_docs
    for uid in ("alice", "bob", "carol"):
        assert view.stat(uid, "").etag != before[uid], uid
    assert view.stat("bob", "Team Docs").etag != mounts_before["bob"]
    assert view.stat("carol", "Docs").etag != mounts_before["carol"]
    # the listing of the root shows the mount point last, with the same etag as its stat
    listed = view.children("bob", "")
    assert listed[-1].path == "Team Docs" and listed[-1].etag == view.stat("bob",
                                                                         "Team Docs").etag
    assert dav_permissions(listed[-1].permissions, is_dir=True, shared=True) == "SDNVCK"
    assert view.stat("bob", "").size == view.inner.stat("bob", "").size + \
        view.stat("alice", "Docs").size
    # carol leaves the share: only her view changes
    view.delete("carol", "Docs")
    with pytest.raises(NotFoundError):
        view.stat("carol", "Docs")
    assert view.shares.received("carol", ["staff"])[0].state == STATE_REJECTED
    assert view.stat("bob", "Team Docs/sub/new.txt").fileid == written.fileid
    assert share.id == view.shares.received("bob", ["staff"])[0].share.id


def test_permissions_refuse_what_the_share_does_not_grant(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 1)  # read only
    _share(view, TYPE_USER, "photo.jpg", "carol", 17)  # a file, no update
    for attempt in (lambda: _put(view, "bob", "Docs/x.txt", b"x"),
                    lambda: _put(view, "bob", "Docs/a.txt", b"x"),
                    lambda: view.mkdir("bob", "Docs/new"),
                    lambda: view.delete("bob", "Docs/a.txt"),
                    lambda: view.move("bob", "Docs/a.txt", "Docs/b.txt", overwrite=False),
                    lambda: view.move("bob", "Docs/a.txt", "mine.txt", overwrite=False),
                    lambda: _put(view, "carol", "photo.jpg", b"x"),
                    lambda: view.set_mtime("bob", "Docs/a.txt", 5)):
        with pytest.raises(ForbiddenError):
            attempt()
    # reading and copying out are allowed
    assert _content(view, "bob", "Docs/a.txt") == b"alpha\n"
    copied = view.copy("bob", "Docs/sub", "Mine", overwrite=False).node
    assert copied.owner == "bob" and not copied.shared
    assert _content(view, "bob", "Mine/b.txt") == b"beta " * 1000
    assert _content(view, "alice", "Docs/a.txt") == b"alpha\n"
    assert dav_permissions(view.stat("bob", "Docs/a.txt").permissions, is_dir=False,
                           shared=True) == "S"
    assert dav_permissions(view.stat("carol", "photo.jpg").permissions, is_dir=False,
                           shared=True) == "SRD"


FOLDER_SHARE_PERMISSIONS = (1, 3, 5, 9, 15, 17, 31)


def _attempts(view: SharingBackend, folder: str) -> dict[str, bool]:
    """Which recipient operations inside `folder` (a mount of bob's) go through."""
    actions = {
        "create": lambda: _put(view, "bob", f"{folder}/new.txt", b"n"),
        "mkdir": lambda: view.mkdir("bob", f"{folder}/newdir"),
        "update": lambda: _put(view, "bob", f"{folder}/f.txt", b"changed"),
        "rename": lambda: view.move("bob", f"{folder}/f.txt", f"{folder}/g.txt",
                                    overwrite=False),
        "delete": lambda: view.delete("bob", f"{folder}/d.txt"),
    }
    done = {}
    for name, action in actions.items():
        try:
            action()
            done[name] = True
        except ForbiddenError:
            done[name] = False
    return done


def test_every_folder_share_permission_set(view: SharingBackend) -> None:
    for perms in FOLDER_SHARE_PERMISSIONS:
        view.mkdir("alice", f"P{perms}")
        _put(view, "alice", f"P{perms}/f.txt", b"f")
        _put(view, "alice", f"P{perms}/d.txt", b"d")
        _share(view, TYPE_USER, f"P{perms}", "bob", perms)
    for perms in FOLDER_SHARE_PERMISSIONS:
        got = _attempts(view, f"P{perms}")
        assert got == {"create": bool(perms & 4), "mkdir": bool(perms & 4),
                       "update": bool(perms & 2), "rename": bool(perms & 2),
                       "delete": bool(perms & 8)}, perms
        listed = next(n for n in view.children("bob", "") if n.path == f"P{perms}")
        assert listed.permissions == (31 & (perms | 8)) | 8 | 2, perms
        inside = {n.name: n.permissions for n in view.children("bob", f"P{perms}")}
        assert all(bits == bits & perms for bits in inside.values()), perms
        owner_side = {n.name for n in view.children("alice", f"P{perms}")}
        assert ("new.txt" in owner_side) == bool(perms & 4)
        assert ("d.txt" in owner_side) == (not perms & 8)


def test_writes_inside_a_share_use_the_owners_versions_and_trash(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 31, target="/Shared Docs")
    first = view.stat("alice", "Docs/a.txt")
    _put(view, "bob", "Shared Docs/a.txt", b"new text")
    assert view.stat("alice", "Docs/a.txt").fileid == first.fileid
    versions = view.versions("bob", first.fileid)
    assert versions and versions == view.versions("alice", first.fileid)
    assert b"".join(view.read_version("bob", first.fileid, versions[0].version_id)) == \
        b"alpha\n"
    view.move("bob", "Shared Docs/a.txt", "Shared Docs/sub/a2.txt", overwrite=False)
    assert view.stat("alice", "Docs/sub/a2.txt").fileid == first.fileid
    view.delete("bob", "Shared Docs/sub/a2.txt")
    assert [t.original_name for t in view.trash("alice")] == ["a2.txt"]
    # Trashbin::move2trash: the deleting recipient gets a copy, where they saw it
    assert [(t.original_location, t.original_name) for t in view.trash("bob")] == [
        ("Shared Docs/sub", "a2.txt")]
    # moving own files into the share and out of it crosses owners
    _put(view, "bob", "mine.txt", b"bob's own")
    moved = view.move("bob", "mine.txt", "Shared Docs/mine.txt", overwrite=False).node
    assert moved.owner == "alice" and _content(view, "alice", "Docs/mine.txt") == b"bob's own"
    with pytest.raises(NotFoundError):
        view.stat("bob", "mine.txt")
    with pytest.raises(AlreadyExistsError):
        view.mkdir("bob", "Shared Docs")


def test_mounts_move_with_the_folder_that_holds_them(view: SharingBackend) -> None:
    view.mkdir("bob", "Inbox")
    _share(view, TYPE_USER, "Docs", "bob", 31, target="/Inbox/Docs")
    assert view.stat("bob", "Inbox/Docs/a.txt").owner == "alice"
    view.move("bob", "Inbox", "Archive", overwrite=False)
    assert view.shares.received("bob", [])[0].target == "/Archive/Docs"
    assert view.stat("bob", "Archive/Docs/a.txt").owner == "alice"
    assert [n.path for n in view.children("bob", "Archive")] == ["Archive/Docs"]
    # a folder holding a mount shows the combined etag; a share change changes it
    before = view.stat("bob", "Archive").etag
    assert before != view.inner.stat("bob", "Archive").etag
    _put(view, "alice", "Docs/a.txt", b"changed by alice")
    assert view.stat("bob", "Archive").etag != before


def test_private_links_and_pending_shares(view: SharingBackend) -> None:
    inner_file = view.stat("alice", "Docs/sub/b.txt")
    share = _share(view, TYPE_USER, "Docs", "bob", 31, accepted=STATE_PENDING)
    with pytest.raises(NotFoundError):
        view.by_id("bob", inner_file.fileid)
    assert [n.name for n in view.children("bob", "")] == []
    view.shares.set_received(share.id, "bob", state=STATE_ACCEPTED)
    found = view.by_id("bob", inner_file.fileid)
    assert (found.path, found.owner, found.shared) == ("Docs/sub/b.txt", "alice", True)
    assert view.by_id("bob", view.stat("alice", "Docs").fileid).path == "Docs"
    with pytest.raises(NotFoundError):
        view.by_id("carol", inner_file.fileid)
    with pytest.raises(NotFoundError):
        view.by_id("bob", view.stat("alice", "photo.jpg").fileid)


def test_share_types_are_the_same_on_both_backends(view: SharingBackend) -> None:
    docs = view.stat("alice", "Docs")
    photo = view.stat("alice", "photo.jpg")
    _share(view, TYPE_LINK, "Docs", None, 1)
    _share(view, TYPE_USER, "Docs", "bob", 31)
    _share(view, TYPE_LINK, "photo.jpg", None, 1, expiration=dt.date(2000, 1, 1))
    _share(view, TYPE_REMOTE, "photo.jpg", "m@https://r.invalid", 19, target="/x",
           token="Remotetoken1234")
    _share(view, TYPE_GROUP, "photo.jpg", "staff", 17)
    got = view.extras("alice", [docs, photo])
    assert got[docs.fileid].share_types == (3, 0)
    assert got[photo.fileid].share_types == (1, 6)  # the expired link left out
    assert view.extras("bob", [view.stat("bob", "Docs")])[docs.fileid].share_types == ()


# ---------------------------------------------------------------------------------------------
# over HTTP: what a sync client of a recipient sees


PROPS = ("<?xml version='1.0'?><d:propfind xmlns:d='DAV:' xmlns:oc='http://owncloud.org/ns'>"
         "<d:prop><d:getetag/><oc:permissions/><oc:owner-id/><oc:fileid/>"
         "<x:share-permissions xmlns:x='http://open-collaboration-services.org/ns'/></d:prop>"
         "</d:propfind>")


def _propfind(server: SharingServer, uid: str, path: str) -> dict[str, dict[str, str]]:
    reply = server.clients[uid].request(
        "PROPFIND", f"{server.url}/remote.php/dav/files/{uid}/{path}",
        headers={"Depth": "1"}, content=PROPS)
    assert reply.status_code == 207, reply.text
    found: dict[str, dict[str, str]] = {}
    for response in ElementTree.fromstring(reply.content).iter("{DAV:}response"):
        href = unquote(response.findtext("{DAV:}href") or "")
        found[href.split(f"/files/{uid}/", 1)[1].rstrip("/")] = {
            prop.tag.rpartition("}")[2]: prop.text or ""
            for prop in response.iter("{DAV:}prop") for prop in prop}
    return found


@pytest.mark.parametrize("kind", BACKENDS)
def test_recipient_over_webdav(kind: str, tmp_path: Path) -> None:
    with sharing_server(kind, tmp_path) as server:
        _share(server.backend, TYPE_USER, "Docs", "bob", 17)  # type: ignore[arg-type]
        _share(server.backend, TYPE_GROUP, "photo.jpg", "staff", 19)  # type: ignore[arg-type]
        root = _propfind(server, "bob", "")
        assert root["Docs"]["permissions"] == "SRDNV"
        assert root["photo.jpg"]["permissions"] == "SRDNVW"
        assert root["Docs"]["owner-id"] == "alice"
        # Node::getSharePermissions: the share's own, files without CREATE and DELETE
        assert root["Docs"]["share-permissions"] == "17"
        assert root["photo.jpg"]["share-permissions"] == "19"
        assert root[""]["share-permissions"] == "31"
        assert list(root)[-2:] == ["Docs", "photo.jpg"]
        inside = _propfind(server, "bob", "Docs")
        assert inside["Docs"]["permissions"] == "SRD"
        assert inside["Docs/a.txt"]["permissions"] == "SR"
        assert inside["Docs/a.txt"]["share-permissions"] == "17"
        assert inside["Docs/sub"]["share-permissions"] == "17"
        bob = server.clients["bob"]
        refused = bob.put(f"{server.url}/remote.php/dav/files/bob/Docs/new.txt", content=b"x")
        assert refused.status_code == 403
        before = root[""]["getetag"]
        assert bob.put(f"{server.url}/remote.php/dav/files/bob/photo.jpg",
                       content=b"new photo").status_code == 204
        assert _propfind(server, "bob", "")[""]["getetag"] != before
        carol = server.clients["carol"]
        assert carol.get(f"{server.url}/remote.php/dav/files/carol/photo.jpg").content == \
            b"new photo"
        assert carol.request("DELETE", f"{server.url}/remote.php/dav/files/carol/photo.jpg"
                             ).status_code == 204
        assert "photo.jpg" not in _propfind(server, "carol", "")
        assert "photo.jpg" in _propfind(server, "bob", "")
        # bob renames his mount point: only his target changes
        moved = bob.request("MOVE", f"{server.url}/remote.php/dav/files/bob/Docs",
                            headers={"Destination": f"{server.url}/remote.php/dav/files/bob/"
                                                    "From Alice"})
        assert moved.status_code == 201, moved.text
        assert "From Alice" in _propfind(server, "bob", "")
        assert server.backend.stat("alice", "Docs").name == "Docs"
        inside = _propfind(server, "bob", "From Alice")
        assert "From Alice/a.txt" in inside
        fileid = int(inside["From Alice/a.txt"]["fileid"])
        assert server.backend.by_id("bob", fileid).path == "From Alice/a.txt"


def test_sharee_directory(view: SharingBackend) -> None:
    assert [u.uid for u in view.find_users("ALI", 10)] == ["alice"]
    assert [u.uid for u in view.find_users("CE@EXAMPLE", 10)] == ["alice"]  # by e-mail
    assert [u.uid for u in view.find_users("bo", 10)] == ["bob"]
    assert [u.display_name for u in view.find_users("Adams", 10)] == ["Alice Adams"]
    assert [u.uid for u in view.find_users("c", 10)] == ["alice", "carol"]
    assert [u.uid for u in view.find_users("c", 1)] == ["alice"]  # limit, by uid
    assert view.find_users("%", 10) == [] and view.find_users("_", 10) == []
    assert view.find_groups("TAF", 10) == ["staff"]
    assert view.find_groups("nothing", 10) == []
    assert view.group_members("staff") == ["bob", "carol"]
    assert view.group_members("nobody") == []
    with pytest.raises(ValueError, match="negative"):
        view.find_groups("s", -1)
