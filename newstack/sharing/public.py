"""Public links: find a link by token (expired = not found), check its password against the
stored oC10 hash, and a small files view rooted at the shared node with the link's permissions;
the HTTP endpoints (public.php/webdav, dav/public-files, /s/<token>) are built on it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from bridge.oc10.formats import PERM_CREATE, PERM_DELETE, PERM_READ, PERM_UPDATE
from bridge.oc10.passwords import verify_password
from newstack.backend import (
    AlreadyExistsError,
    FilesBackend,
    ForbiddenError,
    Node,
    NotFoundError,
    WriteResult,
)
from newstack.rules import normalize
from newstack.sharing.model import TYPE_LINK, Share

#: oC10 refuses what a link does not allow with Sabre's bare Forbidden
REFUSED = ""


class LinkNotFoundError(NotFoundError):
    """No usable link with that token: unknown, expired, or its file is gone (404)."""


@dataclass(frozen=True)
class PublicLink:
    """A live link and the node it shares (`root`: in the owner's tree, owner's path)."""

    share: Share
    root: Node

    @property
    def token(self) -> str:
        return self.share.token or ""

    @property
    def owner(self) -> str:
        return self.share.uid_owner

    @property
    def permissions(self) -> int:
        return self.share.permissions

    @property
    def password_protected(self) -> bool:
        return self.share.password_hash is not None

    @property
    def upload_only(self) -> bool:
        """A file drop (permissions 4): uploads allowed, nothing can be listed or read."""
        return not self.permissions & PERM_READ


def _files(backend: FilesBackend) -> FilesBackend:
    # the owner's own tree: the recipients' view (newstack/sharing/view.py) adds nothing here
    inner: FilesBackend = getattr(backend, "inner", backend)
    return inner


def open_link(backend: FilesBackend, token: str, *, today: dt.date | None = None
              ) -> PublicLink:
    """The link with `token` and its shared node; LinkNotFoundError when there is none, when
    it expired before `today` (UTC date by default), or when its file is gone."""
    share = backend.shares.by_token(token)
    if share is None or share.share_type != TYPE_LINK:
        raise LinkNotFoundError(f"no public link with token {token!r}")
    day = today or dt.datetime.now(dt.UTC).date()
    if share.expired(day):
        raise LinkNotFoundError(f"the public link {token!r} expired on {share.expiration}")
    try:
        root = _files(backend).by_id(share.uid_owner, share.file_source)
    except NotFoundError as exc:
        raise LinkNotFoundError(f"the file of public link {token!r} is gone") from exc
    return PublicLink(share, root)


def password_matches(backend: FilesBackend, link: PublicLink, password: str) -> bool:
    """Does `password` open the link? Always for a link without a password; otherwise checked
    against the stored hash in any format oC10's Hasher accepts."""
    stored = link.share.password_hash
    if stored is None:
        return True
    return verify_password(password, stored, backend.passwordsalt)


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder and name else folder or name


def drop_name(name: str, exists: Callable[[str], bool]) -> str:
    """PublicFilesPlugin::beforePut: an upload into a file drop never replaces a file; a taken
    name becomes '<name> (2).<ext>', (3), … — with pathinfo()'s quirk that a name without an
    extension gets a trailing dot ('notes (2).')."""
    if not exists(name):
        return name
    dot = name.rfind(".")
    stem, ext = (name, "") if dot < 0 else (name[:dot], name[dot + 1:])
    number = 2
    while exists(f"{stem} ({number}).{ext}"):
        number += 1
    return f"{stem} ({number}).{ext}"


class PublicView:
    """The files of one link, as an anonymous visitor may use them. Paths are relative to the
    shared node ('' is the node itself); nodes come back with such paths and the owner's uid,
    their permissions masked by the link's (REFERENCE §5.1, §6.10)."""

    def __init__(self, backend: FilesBackend, link: PublicLink) -> None:
        self.backend = _files(backend)
        self.link = link

    @property
    def owner(self) -> str:
        return self.link.owner

    def _owner_path(self, path: str) -> str:
        path = normalize(path)
        if path and not self.link.root.is_dir:
            raise NotFoundError(f"{path!r}: the link shares a single file")
        return _join(self.link.root.path, path)

    def _shown(self, node: Node) -> Node:
        root = self.link.root
        relative = "" if node.path == root.path else node.path[len(root.path) + 1:]
        name = root.name if not relative else relative.rpartition("/")[2]
        return dataclasses.replace(node, path=relative, name=name,
                                   permissions=node.permissions & self.link.permissions)

    def _need(self, bits: int) -> None:
        if self.link.permissions & bits != bits:
            raise ForbiddenError(REFUSED)

    # reading --------------------------------------------------------------------------------

    def stat(self, path: str) -> Node:
        return self._shown(self.backend.stat(self.owner, self._owner_path(path)))

    def children(self, path: str) -> list[Node]:
        self._need(PERM_READ)
        return [self._shown(child)
                for child in self.backend.children(self.owner, self._owner_path(path))]

    def read(self, node: Node, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Content of a node this view returned (`node.path` relative to the link)."""
        self._need(PERM_READ)
        own = self.backend.stat(self.owner, self._owner_path(node.path))
        if own.fileid != node.fileid:
            raise NotFoundError(f"{node.path!r} changed; look it up again")
        return self.backend.read(self.owner, own, start, end)

    # writing --------------------------------------------------------------------------------

    def _exists(self, path: str) -> Node | None:
        try:
            return self.backend.stat(self.owner, self._owner_path(path))
        except NotFoundError:
            return None

    def write(self, path: str, body: BinaryIO, *, length: int | None, mtime: int | None = None,
              checksum: str | None = None, if_match: str | None = None,
              if_none_match: str | None = None) -> WriteResult:
        path = normalize(path)
        if not path and not self.link.root.is_dir:
            self._need(PERM_UPDATE)  # replacing the shared file itself
        else:
            if self.link.upload_only and "/" not in path:
                path = drop_name(path, lambda name: self._exists(name) is not None)
            existing = self._exists(path)
            if existing is not None and existing.is_dir:
                raise AlreadyExistsError(f"{path!r} is a folder")
            self._need(PERM_UPDATE if existing is not None else PERM_CREATE)
        result = self.backend.write(self.owner, self._owner_path(path), body, length=length,
                                    mtime=mtime, checksum=checksum, if_match=if_match,
                                    if_none_match=if_none_match)
        return dataclasses.replace(result, node=self._shown(result.node))

    def mkdir(self, path: str) -> Node:
        self._need(PERM_CREATE)
        return self._shown(self.backend.mkdir(self.owner, self._owner_path(path)))

    def delete(self, path: str) -> None:
        if not normalize(path):
            raise ForbiddenError(REFUSED)  # the shared node itself stays
        self._need(PERM_DELETE)
        self.backend.delete(self.owner, self._owner_path(path))

    def move(self, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        if not normalize(src) or not normalize(dst):
            raise ForbiddenError(REFUSED)
        self._need(PERM_UPDATE | PERM_CREATE | PERM_DELETE)
        result = self.backend.move(self.owner, self._owner_path(src), self._owner_path(dst),
                                   overwrite=overwrite)
        return dataclasses.replace(result, node=self._shown(result.node))

    def copy(self, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        if not normalize(dst):
            raise ForbiddenError(REFUSED)
        self._need(PERM_READ | PERM_CREATE)
        if overwrite and self._exists(dst) is not None:
            self._need(PERM_UPDATE)
        result = self.backend.copy(self.owner, self._owner_path(src), self._owner_path(dst),
                                   overwrite=overwrite)
        return dataclasses.replace(result, node=self._shown(result.node))

    def set_mtime(self, path: str, mtime: int) -> Node:
        self._need(PERM_UPDATE)
        return self._shown(self.backend.set_mtime(self.owner, self._owner_path(path), mtime))
