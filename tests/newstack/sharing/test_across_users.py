"""What owner and recipients share beyond the files, on both backends: locks (per file, not per
user), favorites (per user, on the owner's fileid), the owner's quota, the trash."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa

from newstack.backend import (
    ForbiddenError,
    Lock,
    LockedError,
    NotFoundError,
    QuotaExceededError,
)
from newstack.legacy.backend import Oc10Backend
from newstack.native import NativeBackend
from newstack.sharing.model import TYPE_GROUP, TYPE_LINK, TYPE_USER, NewShare, Share
from newstack.sharing.view import SharingBackend
from tests.newstack.backends import BACKENDS
from tests.newstack.sharing_stack import (
    close_sharing_backend,
    make_sharing_backend,
    sharing_server,
    uncached_view,
)


@pytest.fixture(params=BACKENDS)
def view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharingBackend]:
    with uncached_view(request.param, tmp_path) as view:
        yield view


def _share(view: SharingBackend, kind: int, path: str, share_with: str, permissions: int,
           target: str | None = None) -> Share:
    node = view.stat("alice", path)
    return view.shares.create(NewShare(
        share_type=kind, share_with=share_with, uid_owner="alice", uid_initiator="alice",
        item_type="folder" if node.is_dir else "file", file_source=node.fileid,
        file_target=target or "/" + node.name, permissions=permissions))


def _lock(view: SharingBackend, uid: str, path: str, token: str, depth: int = 0) -> Lock:
    return view.lock(uid, Lock(token=token, path=path, owner=uid, scope="exclusive",
                               depth=depth, timeout=600, created_at=0))


def _set_quota(view: SharingBackend, uid: str, quota: str) -> None:
    inner = view.inner
    if isinstance(inner, NativeBackend):
        inner.store.update_user(uid, quota=quota)
        return
    assert isinstance(inner, Oc10Backend)
    accounts = inner.t.accounts
    with inner.engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.user_id == uid).values(quota=quota))


# ---------------------------------------------------------------------------------------------
# locks


def test_an_owners_lock_binds_the_recipients_and_theirs_the_owner(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 31, target="/From Alice")
    _lock(view, "alice", "Docs/a.txt", "alice-token")
    seen = view.locks("bob", "From Alice/a.txt")
    assert [(lock.token, lock.path) for lock in seen] == [("alice-token", "From Alice/a.txt")]
    with pytest.raises(LockedError):
        _lock(view, "bob", "From Alice/a.txt", "bob-token")
    # a recipient's lock on a folder inside the share covers the owner's files below it
    taken = _lock(view, "bob", "From Alice/sub", "bob-token", depth=-1)
    assert taken.path == "From Alice/sub"
    assert [lock.token for lock in view.locks("alice", "Docs/sub/b.txt")] == ["bob-token"]
    with pytest.raises(LockedError):
        _lock(view, "alice", "Docs/sub/b.txt", "alice-2")
    # a recipient's DELETE of the folder holding the mount meets both locks
    below = view.locks("bob", "", with_children=True)
    assert {(lock.token, lock.path) for lock in below} == {
        ("alice-token", "From Alice/a.txt"), ("bob-token", "From Alice/sub")}
    refreshed = view.refresh_lock("bob", "bob-token", 900)
    assert (refreshed.path, refreshed.timeout) == ("From Alice/sub", 900)
    view.unlock("bob", "From Alice/sub", "bob-token")
    assert view.locks("alice", "Docs/sub/b.txt") == []
    assert _lock(view, "alice", "Docs/sub/b.txt", "alice-2").path == "Docs/sub/b.txt"
    # a user the node is not shared with sees none of it
    assert view.locks("carol", "Docs/a.txt") == []


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_lock_refuses_the_other_users_put(kind: str, tmp_path: Path) -> None:
    with sharing_server(kind, tmp_path) as server:
        backend = server.backend
        assert isinstance(backend, SharingBackend)
        _share(backend, TYPE_GROUP, "Docs", "staff", 31)
        url = f"{server.url}/remote.php/dav/files"
        body = ("<?xml version='1.0'?><d:lockinfo xmlns:d='DAV:'><d:lockscope><d:exclusive/>"
                "</d:lockscope><d:locktype><d:write/></d:locktype></d:lockinfo>")
        locked = server.clients["alice"].request("LOCK", f"{url}/alice/Docs/a.txt",
                                                 content=body)
        assert locked.status_code == 200, locked.text
        token = locked.headers["Lock-Token"]
        refused = server.clients["bob"].put(f"{url}/bob/Docs/a.txt", content=b"bob's")
        assert refused.status_code == 423, refused.text
        # the lock's token releases it for whoever holds it, as Sabre checks tokens
        allowed = server.clients["bob"].put(f"{url}/bob/Docs/a.txt", content=b"bob's",
                                            headers={"If": f"({token})"})
        assert allowed.status_code == 204, allowed.text
        assert server.clients["alice"].request(
            "UNLOCK", f"{url}/alice/Docs/a.txt", headers={"Lock-Token": token}
        ).status_code == 204
        # and the other way round: carol's lock stops alice
        locked = server.clients["carol"].request("LOCK", f"{url}/carol/Docs/sub",
                                                 content=body)
        assert locked.status_code == 200, locked.text
        assert server.clients["alice"].put(f"{url}/alice/Docs/sub/b.txt",
                                           content=b"x").status_code == 423
        assert server.clients["bob"].request("DELETE", f"{url}/bob/Docs/sub").status_code \
            == 423


# ---------------------------------------------------------------------------------------------
# favorites


def test_favorites_inside_a_share_are_the_recipients_own(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 31)
    _share(view, TYPE_USER, "photo.jpg", "carol", 19)
    inner_file = view.stat("bob", "Docs/a.txt")
    for uid, path in (("bob", "Docs/a.txt"), ("bob", "Docs/sub"), ("bob", "Docs"),
                      ("carol", "photo.jpg")):
        view.set_favorite(uid, path, True)
        node = view.stat(uid, path)
        assert view.extras(uid, [node])[node.fileid].favorite, (uid, path)
        owners = view.stat("alice", "Docs" + path[4:] if uid == "bob" else path)
        assert not view.extras("alice", [owners])[owners.fileid].favorite, (uid, path)
    view.set_favorite("bob", "Docs/sub", False)
    sub = view.stat("bob", "Docs/sub")
    assert not view.extras("bob", [sub])[sub.fileid].favorite
    # a rename inside the share keeps the fileid; a move out of it keeps the mark too
    view.move("bob", "Docs/a.txt", "Docs/renamed.txt", overwrite=False)
    assert view.extras("bob", [inner_file])[inner_file.fileid].favorite
    moved = view.move("bob", "Docs/renamed.txt", "taken_out.txt", overwrite=False).node
    assert moved.fileid != inner_file.fileid and moved.owner == "bob"
    assert view.extras("bob", [moved])[moved.fileid].favorite


@pytest.mark.parametrize("kind", BACKENDS)
def test_proppatch_favorite_inside_a_share(kind: str, tmp_path: Path) -> None:
    with sharing_server(kind, tmp_path) as server:
        backend = server.backend
        assert isinstance(backend, SharingBackend)
        _share(backend, TYPE_USER, "Docs", "bob", 1)  # read only: a favorite is no write
        url = f"{server.url}/remote.php/dav/files/bob/Docs/a.txt"
        reply = server.clients["bob"].request("PROPPATCH", url, content=(
            "<?xml version='1.0'?><d:propertyupdate xmlns:d='DAV:' "
            "xmlns:oc='http://owncloud.org/ns'><d:set><d:prop><oc:favorite>1</oc:favorite>"
            "</d:prop></d:set></d:propertyupdate>"))
        assert reply.status_code == 207 and "200 OK" in reply.text, reply.text
        found = server.clients["bob"].request("PROPFIND", url, headers={"Depth": "0"}, content=(
            "<?xml version='1.0'?><d:propfind xmlns:d='DAV:' xmlns:oc='http://owncloud.org/ns'>"
            "<d:prop><oc:favorite/></d:prop></d:propfind>"))
        assert ElementTree.fromstring(found.content).findtext(
            ".//{http://owncloud.org/ns}favorite") == "1"


# ---------------------------------------------------------------------------------------------
# quota


def test_writes_inside_a_share_count_against_the_owners_quota(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 31)
    used = view.quota("alice").used
    _set_quota(view, "alice", f"{used + 100} B")
    bobs = view.quota("bob").available
    assert bobs == -3 or bobs > 1000  # bob himself has room (oc10 fixture: 5 GB default)
    with pytest.raises(QuotaExceededError):
        view.write("bob", "Docs/big.bin", io.BytesIO(b"x" * 200), length=200)
    view.write("bob", "Docs/small.bin", io.BytesIO(b"x" * 50), length=50)
    assert view.quota("alice").used == used + 50
    # and the recipient's own files stay under the recipient's quota, not the owner's
    view.write("bob", "own.bin", io.BytesIO(b"x" * 200), length=200)


@pytest.mark.parametrize("kind", BACKENDS)
def test_propfind_inside_a_share_shows_the_owners_free_space(kind: str, tmp_path: Path
                                                             ) -> None:
    with sharing_server(kind, tmp_path) as server:
        backend = server.backend
        assert isinstance(backend, SharingBackend)
        _share(backend, TYPE_USER, "Docs", "bob", 31)
        used = backend.quota("alice").used
        _set_quota(backend, "alice", f"{used + 1000} B")
        body = ("<?xml version='1.0'?><d:propfind xmlns:d='DAV:'><d:prop>"
                "<d:quota-available-bytes/></d:prop></d:propfind>")
        url = f"{server.url}/remote.php/dav/files/bob"
        inside = server.clients["bob"].request("PROPFIND", f"{url}/Docs/sub",
                                               headers={"Depth": "0"}, content=body)
        assert ElementTree.fromstring(inside.content).findtext(
            ".//{DAV:}quota-available-bytes") == "1000"
        own = server.clients["bob"].request("PROPFIND", f"{url}/", headers={"Depth": "0"},
                                            content=body)
        assert ElementTree.fromstring(own.content).findtext(
            ".//{DAV:}quota-available-bytes") == str(backend.quota("bob").available)


# ---------------------------------------------------------------------------------------------
# shares go with their node and their users


def _link(view: SharingBackend, path: str) -> Share:
    node = view.stat("alice", path)
    return view.shares.create(NewShare(
        share_type=TYPE_LINK, share_with=None, uid_owner="alice", uid_initiator="alice",
        item_type="folder" if node.is_dir else "file", file_source=node.fileid,
        file_target="/" + node.name, permissions=1))


def _ids(shares: list[Share]) -> list[int]:
    return [share.id for share in shares]


def test_purging_a_shared_node_removes_its_shares(view: SharingBackend) -> None:
    docs, inner_file = view.stat("alice", "Docs"), view.stat("alice", "Docs/sub/b.txt")
    photo = view.stat("alice", "photo.jpg")
    on_docs = _share(view, TYPE_USER, "Docs", "bob", 31)
    on_inner = _link(view, "Docs/sub/b.txt")
    on_photo = _share(view, TYPE_GROUP, "photo.jpg", "staff", 19)
    view.delete("alice", "Docs")
    # in the trash the shares stay (a restore brings them back), out of sight
    assert _ids(view.shares.on_files([docs.fileid, inner_file.fileid])) == [on_docs.id,
                                                                           on_inner.id]
    assert [n.name for n in view.children("bob", "")] == ["photo.jpg"]
    view.purge("alice", docs.fileid)
    assert view.shares.on_files([docs.fileid, inner_file.fileid]) == []
    assert _ids(view.shares.on_files([photo.fileid])) == [on_photo.id]
    view.delete("alice", "photo.jpg")
    view.purge("alice")  # emptying the trash
    assert view.shares.on_files([photo.fileid]) == []
    assert view.shares.received("carol", ["staff"]) == []


def test_a_deleted_users_shares_go_with_them(view: SharingBackend) -> None:
    to_bob = _share(view, TYPE_USER, "Docs", "bob", 31)
    to_staff = _share(view, TYPE_GROUP, "photo.jpg", "staff", 19)
    link = _link(view, "Docs/a.txt")
    view.move("bob", "photo.jpg", "from alice.jpg", overwrite=False)  # bob's own member row
    view.write("carol", "c.txt", io.BytesIO(b"carol's"), length=7)
    carols = view.stat("carol", "c.txt")
    from_carol = view.shares.create(NewShare(
        share_type=TYPE_USER, share_with="bob", uid_owner="carol", uid_initiator="carol",
        item_type="file", file_source=carols.fileid, file_target="/c.txt", permissions=19))
    view.shares.user_deleted("bob")  # type: ignore[attr-defined]
    for gone in (to_bob, from_carol):
        assert view.shares.get(gone.id) is None
    assert [r.share.id for r in view.shares.received("bob", ["staff"])] == [to_staff.id]
    assert view.shares.received("bob", ["staff"])[0].target == "/photo.jpg"  # row gone
    assert view.shares.get(link.id) is not None
    view.shares.user_deleted("alice")  # type: ignore[attr-defined]
    assert view.shares.get(to_staff.id) is None and view.shares.get(link.id) is None
    assert view.shares.received("carol", ["staff"]) == []


def test_deleting_a_native_user_deletes_their_shares(tmp_path: Path) -> None:
    backend = make_sharing_backend("native", tmp_path)
    assert isinstance(backend, SharingBackend) and isinstance(backend.inner, NativeBackend)
    try:
        share = _share(backend, TYPE_USER, "Docs", "bob", 31)
        backend.inner.delete_user("bob")
        assert backend.shares.get(share.id) is None
    finally:
        close_sharing_backend(backend)


# ---------------------------------------------------------------------------------------------
# the trash


def _trash(view: SharingBackend, uid: str) -> list[tuple[str, str]]:
    return sorted((t.original_location, t.original_name) for t in view.trash(uid))


def test_a_recipients_delete_lands_in_both_trashes(view: SharingBackend) -> None:
    _share(view, TYPE_GROUP, "Docs", "staff", 31)
    view.move("bob", "Docs", "From Alice", overwrite=False)
    bobs_root = view.inner.stat("bob", "")
    view.delete("bob", "From Alice/sub/b.txt")
    assert _trash(view, "alice") == [("Docs/sub", "b.txt")]
    assert _trash(view, "bob") == [("From Alice/sub", "b.txt")]
    assert _trash(view, "carol") == []
    # the folders that carried the copy into bob's trash are gone, his own files unchanged
    assert [n.name for n in view.inner.children("bob", "")] == []
    assert view.inner.stat("bob", "").size == bobs_root.size
    # a folder: the whole tree is copied
    view.write("alice", "Docs/sub/c.txt", io.BytesIO(b"c"), length=1)
    view.delete("bob", "From Alice/sub")
    (item,) = [t for t in view.trash("bob") if t.original_name == "sub"]
    assert [n.name for n in view.trash_children("bob", item.node.fileid)] == ["c.txt"]
    assert ("Docs", "sub") in _trash(view, "alice")
    view.delete("carol", "Docs/a.txt")
    assert _trash(view, "carol") == [("Docs", "a.txt")]
    # the owner deleting in the share: only the owner's trash
    view.write("alice", "Docs/new.txt", io.BytesIO(b"n"), length=1)
    view.delete("alice", "Docs/new.txt")
    assert ("Docs", "new.txt") in _trash(view, "alice")
    assert ("Docs", "new.txt") not in _trash(view, "carol")


def test_a_recipient_restores_into_the_share(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 31, target="/renamed")
    view.delete("bob", "renamed/a.txt")
    (item,) = view.trash("bob")
    restored = view.restore("bob", item.node.fileid)
    assert (restored.path, restored.owner, restored.shared) == ("renamed/a.txt", "alice", True)
    assert b"".join(view.read("bob", view.stat("bob", "renamed/a.txt"))) == b"alpha\n"
    assert view.trash("bob") == []
    assert [n.name for n in view.inner.children("bob", "")] == []
    # a read-only share refuses it (403), as oC10 does
    _share(view, TYPE_USER, "photo.jpg", "carol", 17)
    view.write("carol", "mine.txt", io.BytesIO(b"m"), length=1)
    view.mkdir("alice", "Ro")
    _share(view, TYPE_USER, "Ro", "carol", 1)
    view.delete("carol", "mine.txt")
    (own,) = view.trash("carol")
    with pytest.raises(ForbiddenError):
        view.restore("carol", own.node.fileid, "Ro/mine.txt")
    assert [t.original_name for t in view.trash("carol")] == ["mine.txt"]
    assert view.restore("carol", own.node.fileid).path == "mine.txt"


def test_an_upload_only_share_hides_what_is_inside(view: SharingBackend) -> None:
    _share(view, TYPE_USER, "Docs", "bob", 4)  # create only (oC10 10.16 allows it)
    hidden = view.stat("alice", "Docs/a.txt")
    assert view.stat("bob", "Docs").is_dir
    assert view.children("bob", "Docs") == []
    for path in ("Docs/a.txt", "Docs/sub", "Docs/sub/b.txt"):
        with pytest.raises(NotFoundError):
            view.stat("bob", path)
    with pytest.raises(NotFoundError):
        view.by_id("bob", hidden.fileid)
    with pytest.raises(ForbiddenError):
        view.delete("bob", "Docs/a.txt")  # 403 as in oC10, though he cannot see it
    view.write("bob", "Docs/upload.txt", io.BytesIO(b"up"), length=2)
    assert b"".join(view.read("alice", view.stat("alice", "Docs/upload.txt"))) == b"up"
    with pytest.raises(ForbiddenError):
        view.delete("bob", "Docs/upload.txt")
    with pytest.raises(ForbiddenError):
        view.write("bob", "Docs/a.txt", io.BytesIO(b"x"), length=1)
    assert b"".join(view.read("alice", hidden)) == b"alpha\n"


def test_mounts_in_an_own_folder_moved_into_a_share_go_to_the_share_folder(
        view: SharingBackend) -> None:
    view.share_folder = "/Shares"
    view.mkdir("alice", "A")
    _share(view, TYPE_USER, "A", "bob", 31, target="/Shares/A")
    _share(view, TYPE_USER, "photo.jpg", "bob", 19, target="/Shares/photo.jpg")
    view.mkdir("bob", "local")
    view.write("bob", "local/own.txt", io.BytesIO(b"own"), length=3)
    view.move("bob", "Shares/photo.jpg", "local/photo.jpg", overwrite=False)
    view.write("bob", "Shares/photo.jpg", io.BytesIO(b"taken"), length=5)  # a name taken
    view.move("bob", "local", "Shares/A/local", overwrite=False)
    # the folder's own content crossed into alice's tree; the mount did not
    assert view.stat("alice", "A/local/own.txt").owner == "alice"
    with pytest.raises(NotFoundError):
        view.stat("alice", "A/local/photo.jpg")
    moved = view.stat("bob", "Shares/photo (2).jpg")
    assert (moved.owner, moved.shared) == ("alice", True)
    assert b"".join(view.read("bob", moved)) == b"\xff\xd8jpeg"
