"""Public links (newstack/sharing/public.py) on both backends: tokens, expiry, passwords in oC10's
hash formats, and each link permission set (1, 4, 5, 3, 15) enforced."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.oc10.passwords import hash_legacy_bcrypt, hash_legacy_sha1, hash_password
from newstack.backend import FilesBackend, ForbiddenError, NotFoundError
from newstack.sharing.model import TYPE_LINK, NewShare, Share
from newstack.sharing.public import (
    LinkNotFoundError,
    PublicView,
    open_link,
    password_matches,
)
from newstack.sharing.view import SharingBackend
from tests.newstack.backends import BACKENDS
from tests.newstack.sharing_stack import close_sharing_backend, make_sharing_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharingBackend]:
    made = make_sharing_backend(request.param, tmp_path)
    assert isinstance(made, SharingBackend)
    yield made
    close_sharing_backend(made)


def _link(backend: FilesBackend, path: str, permissions: int,
          password_hash: str | None = None, **more: object) -> Share:
    node = backend.stat("alice", path)
    return backend.shares.create(NewShare(
        share_type=TYPE_LINK, share_with=password_hash, uid_owner="alice",
        uid_initiator="alice", item_type="folder" if node.is_dir else "file",
        file_source=node.fileid, file_target="/" + node.name, permissions=permissions,
        **more))  # type: ignore[arg-type]


def _view(backend: FilesBackend, share: Share) -> PublicView:
    assert share.token is not None
    return PublicView(backend, open_link(backend, share.token))


def _put(view: PublicView, path: str, data: bytes) -> None:
    view.write(path, io.BytesIO(data), length=len(data))


def _read(view: PublicView, path: str) -> bytes:
    return b"".join(view.read(view.stat(path)))


def test_read_only_link(backend: SharingBackend) -> None:
    view = _view(backend, _link(backend, "Docs", 1))
    root = view.stat("")
    assert (root.path, root.name, root.owner, root.permissions) == ("", "Docs", "alice", 1)
    assert [n.path for n in view.children("")] == ["a.txt", "sub"]
    assert _read(view, "sub/b.txt") == b"beta " * 1000
    for refused in (lambda: _put(view, "new.txt", b"x"), lambda: _put(view, "a.txt", b"x"),
                    lambda: view.mkdir("new"), lambda: view.delete("a.txt"),
                    lambda: view.move("a.txt", "b.txt", overwrite=False),
                    lambda: view.copy("a.txt", "c.txt", overwrite=False)):
        with pytest.raises(ForbiddenError):
            refused()
    with pytest.raises(NotFoundError):
        view.stat("../photo.jpg")


def test_upload_only_link_is_a_file_drop(backend: SharingBackend) -> None:
    view = _view(backend, _link(backend, "Docs", 4))
    assert view.link.upload_only
    _put(view, "dropped.txt", b"for alice")
    assert b"".join(backend.read("alice", backend.stat("alice", "Docs/dropped.txt"))) == \
        b"for alice"
    for refused in (lambda: view.children(""), lambda: _read(view, "a.txt"),
                    lambda: view.delete("a.txt")):
        with pytest.raises(ForbiddenError):
            refused()
    # a taken name is never overwritten: the upload gets the next free name
    # (PublicFilesPlugin::beforePut), whoever calls the view
    for expected in ("a (2).txt", "a (3).txt"):
        written = view.write("a.txt", io.BytesIO(b"another"), length=7).node
        assert (written.path, written.name) == (expected, expected)
    assert _owners(backend, "Docs/a.txt") == b"alpha\n"
    assert _owners(backend, "Docs/a (3).txt") == b"another"
    backend.write("alice", "Docs/notes", io.BytesIO(b"n"), length=1)
    assert view.write("notes", io.BytesIO(b"m"), length=1).node.path == "notes (2)."


def _owners(backend: SharingBackend, path: str) -> bytes:
    return b"".join(backend.read("alice", backend.stat("alice", path)))


@pytest.mark.parametrize(("permissions", "allowed"), [
    (5, {"create", "read"}),
    (15, {"create", "read", "update", "delete", "move"}),
])
def test_upload_links(backend: SharingBackend, permissions: int, allowed: set[str]) -> None:
    view = _view(backend, _link(backend, "Docs", permissions))
    actions: dict[str, Callable[[], object]] = {
        "create": lambda: _put(view, "new.txt", b"new"),
        "read": lambda: _read(view, "a.txt"),
        "update": lambda: _put(view, "a.txt", b"changed"),
        "move": lambda: view.move("sub/b.txt", "b2.txt", overwrite=False),
        "delete": lambda: view.delete("a.txt"),
    }
    for name, action in actions.items():
        if name in allowed:
            action()
        else:
            with pytest.raises(ForbiddenError):
                action()
    if "move" in allowed:
        assert backend.stat("alice", "Docs/b2.txt").size == 5000


def test_editable_file_link(backend: SharingBackend) -> None:
    view = _view(backend, _link(backend, "photo.jpg", 3))
    assert view.stat("").name == "photo.jpg"
    _put(view, "", b"new picture")
    assert _read(view, "") == b"new picture"
    with pytest.raises(NotFoundError):
        view.stat("inside")
    assert view.link.root.fileid == backend.stat("alice", "photo.jpg").fileid


def test_tokens_expiry_and_removed_files(backend: SharingBackend) -> None:
    expired = _link(backend, "Docs", 1, expiration=dt.date(2026, 1, 1))
    assert expired.token is not None
    assert open_link(backend, expired.token, today=dt.date(2026, 1, 1)).share == expired
    with pytest.raises(LinkNotFoundError):
        open_link(backend, expired.token, today=dt.date(2026, 1, 2))
    with pytest.raises(LinkNotFoundError):
        open_link(backend, "doesNotExist123")
    gone = _link(backend, "photo.jpg", 1)
    assert gone.token is not None
    backend.delete("alice", "photo.jpg")
    with pytest.raises(LinkNotFoundError):
        open_link(backend, gone.token)


@pytest.mark.parametrize("make_hash", [
    lambda pw, salt: hash_password(pw, 4),
    lambda pw, salt: hash_legacy_bcrypt(pw, salt, 4),
    lambda pw, salt: hash_legacy_sha1(pw),
], ids=["bcrypt", "legacy-bcrypt", "legacy-sha1"])
def test_link_passwords_in_every_oc10_format(
        backend: SharingBackend, make_hash: Callable[[str, str], str]) -> None:
    stored = make_hash("open sesame", backend.passwordsalt)
    link = open_link(backend, str(_link(backend, "Docs", 1, password_hash=stored).token))
    assert link.password_protected
    assert password_matches(backend, link, "open sesame")
    assert not password_matches(backend, link, "open sesame ")
    assert not password_matches(backend, link, "")
    open_one = open_link(backend, str(_link(backend, "photo.jpg", 1).token))
    assert password_matches(backend, open_one, "anything")
