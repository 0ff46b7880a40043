"""Recipients' view: a FilesBackend wrapper that mounts each user's accepted received shares at
their targets, over either backend, so both serve shares exactly alike (REFERENCE §5, §6.3, §6.4).

Paths below a mount map into the owner's tree and run as the owner (the owner's versions, trash,
etags); permissions are the owner's bits masked by the share's; folders with mounts below them
show oC10's combined etag and size (FileInfo::addSubEntry), so recipients see changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from bridge.oc10.formats import PERM_CREATE, PERM_DELETE, PERM_READ, PERM_UPDATE
from newstack.backend import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    FilesBackend,
    ForbiddenError,
    Lock,
    Node,
    NodeExtras,
    NotFoundError,
    Quota,
    TrashItem,
    User,
    Version,
    WriteResult,
)
from newstack.ocs.shares import deduplicated_target
from newstack.rules import normalize
from newstack.sharing.model import (
    KEEP,
    LISTED_TYPES,
    STATE_ACCEPTED,
    STATE_REJECTED,
    TYPE_GROUP,
    TYPE_USER,
    NewShare,
    Received,
    Share,
    ShareNotFoundError,
    ShareStore,
)
from newstack.streams import chunk_reader

#: how long a user's received-share list is reused (a new share shows up within this time in
#: other processes; this process's own changes are seen at once)
RECEIVED_TTL: Final = 2.0
#: beyond this many users in the cache, expired entries are dropped
MAX_CACHED_USERS: Final = 10_000
#: oC10 answers a refused write inside a share with Sabre's bare Forbidden (no message)
REFUSED: Final = ""
_READ_CHUNK: Final = 1 << 20
log = logging.getLogger(__name__)
#: fileids per share lookup when a purged folder is searched for shares
_SHARE_BATCH: Final = 500


@dataclass(frozen=True)
class Mount:
    """An accepted received share, mounted at `target` (a path in the recipient's files)."""

    received: Received
    #: the recipient's path of the mount point, no leading '/'
    target: str
    #: every mounted share of the node the user receives, merged (None: this share's own)
    merged_permissions: int | None = None

    @property
    def owner(self) -> str:
        return self.received.share.uid_owner

    @property
    def permissions(self) -> int:
        if self.merged_permissions is not None:
            return self.merged_permissions
        return self.received.share.permissions


@dataclass(frozen=True)
class Place:
    """Where a recipient's path lives: in their own tree, or below a mount in the owner's."""

    uid: str
    path: str
    mount: Mount | None = None
    #: the mount's root node in the owner's tree (when `mount`)
    source: Node | None = None

    @property
    def is_mount_root(self) -> bool:
        return self.mount is not None and self.source is not None and \
            self.path == self.source.path


# ---------------------------------------------------------------------------------------------
# pure rules


def mounted(received: Iterable[Received], today: dt.date) -> list[Mount]:
    """The shares a recipient sees: accepted, not expired, each target once (first share wins,
    as oC10 mounts them in order), ordered by share id. Several shares of one node (a user and
    a group share, two groups) make one mount, the first share's, with their permissions
    together (MountProvider groups a user's shares by node and merges them)."""
    live = [item for item in sorted(received, key=lambda r: r.share.id)
            if item.state == STATE_ACCEPTED and not item.share.expired(today)
            and item.share.share_type in (TYPE_USER, TYPE_GROUP)]
    together: dict[tuple[str, int], int] = {}
    for item in live:
        key = (item.share.uid_owner, item.share.file_source)
        together[key] = together.get(key, 0) | item.share.permissions
    mounts: list[Mount] = []
    taken: set[str] = set()
    seen: set[tuple[str, int]] = set()
    for item in live:
        key = (item.share.uid_owner, item.share.file_source)
        target = normalize(item.target)
        if key in seen or not target or target in taken:
            continue
        seen.add(key)
        taken.add(target)
        merged = together[key]
        mounts.append(Mount(item, target,
                            None if merged == item.share.permissions else merged))
    return mounts


def contested_targets(received: Iterable[Received], today: dt.date) -> set[str]:
    """Targets that more than one mountable share of different nodes claims."""
    claims: dict[str, set[tuple[str, int]]] = {}
    for item in received:
        if item.state != STATE_ACCEPTED or item.share.expired(today):
            continue
        if item.share.share_type not in (TYPE_USER, TYPE_GROUP):
            continue
        node = (item.share.uid_owner, item.share.file_source)
        claims.setdefault(normalize(item.target), set()).add(node)
    return {target for target, nodes in claims.items() if len(nodes) > 1}


def find_mount(mounts: Iterable[Mount], path: str) -> tuple[Mount, str] | None:
    """The mount holding `path` and the rest of the path below its root ('' for the root)."""
    best: tuple[Mount, str] | None = None
    for mount in mounts:
        if path == mount.target:
            rest = ""
        elif path.startswith(mount.target + "/"):
            rest = path[len(mount.target) + 1:]
        else:
            continue
        if best is None or len(mount.target) > len(best[0].target):
            best = (mount, rest)
    return best


def inner_permissions(owner_bits: int, share_permissions: int) -> int:
    """An item inside a received share: the owner's bits masked by the share's."""
    return owner_bits & share_permissions


def root_permissions(owner_bits: int, share_permissions: int, *, listed: bool) -> int:
    """The mount point: SharedStorage always grants DELETE there (unshare from self); listed as
    a child it may also be renamed or moved (UPDATE), as View::getDirectoryContent reports."""
    bits = (owner_bits & (share_permissions | PERM_DELETE)) | PERM_DELETE
    return bits | PERM_UPDATE if listed else bits


def combined_etag(own_etag: str, entries: Iterable[tuple[str, str, int]]) -> str:
    """FileInfo::getEtag for a folder with mounts below it: md5 of the own etag and, for each
    mount, '::' + its path relative to the folder with a trailing '/' + '/' + root etag +
    root permissions (so moving a mount or changing its permissions changes the etag)."""
    parts = [f"{relative}/{etag}{permissions}" for relative, etag, permissions in entries]
    if not parts:
        return own_etag
    return hashlib.md5("::".join([own_etag, *parts]).encode("utf-8")).hexdigest()


def _unreadable(mount: Mount) -> bool:
    """A share without READ (create only: an upload folder) hides what is inside it."""
    return not mount.permissions & PERM_READ


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder and name else folder or name


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _below(path: str, top: str) -> bool:
    return top == "" or path.startswith(top + "/")


# ---------------------------------------------------------------------------------------------
# the wrapper


class SharingBackend:
    """FilesBackend `inner` with received shares mounted for every user. Thread-safe."""

    def __init__(self, inner: FilesBackend, *, clock: Callable[[], float] = time.time,
                 received_ttl: float = RECEIVED_TTL) -> None:
        self.inner = inner
        self._clock = clock
        self._ttl = received_ttl
        self._lock = threading.Lock()
        self._received: dict[str, tuple[float, list[Mount]]] = {}
        self._shares = _ForgettingStore(inner.shares, self.forget)
        self._share_folder: str | None = None
        # chunked uploads stage under the uploader's own uid, whatever the target
        self.uploads: Any = getattr(inner, "uploads", None)
        if self.uploads is None:
            from newstack.native import NativeBackend

            if isinstance(inner, NativeBackend):
                from newstack.uploads.metadata import MetadataUploads

                self.uploads = MetadataUploads(inner.store, inner.driver)

    # never set here: read from the inner backend through __getattr__, as migration may
    # replace the identity while serving
    instance_id: str
    data_fingerprint: str

    @property
    def shares(self) -> ShareStore:
        return self._shares

    @property
    def passwordsalt(self) -> str:
        return self.inner.passwordsalt

    # -- mounts -----------------------------------------------------------------------------------

    def mounts(self, uid: str) -> list[Mount]:
        """The user's mounted shares, from a list reused for `received_ttl` seconds."""
        now = self._clock()
        cached = self._received.get(uid)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = self.inner.user(uid)
        groups = user.groups if user is not None else ()
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        received = self.inner.shares.received(uid, groups)
        found = mounted(received, today)
        contested = contested_targets(received, today)
        if contested:
            # a share whose node went to the trash gives way to a live one on its target, as
            # oC10's share queries skip nodes outside files/ (checked only where two collide)
            gone = {m.received.share.id for m in found
                    if m.target in contested and self._source(m) is None}
            if gone:
                found = mounted([r for r in received if r.share.id not in gone], today)
        if found:
            self._make_parents(uid, found)
        with self._lock:
            if len(self._received) >= MAX_CACHED_USERS:
                self._received = {k: v for k, v in self._received.items() if v[0] > now}
            self._received[uid] = (now + self._ttl, found)
        return found

    def _make_parents(self, uid: str, mounts: list[Mount]) -> None:
        """Helper::getShareFolder: the folder a mount sits in (the `share_folder`, e.g.
        /Shares) is created in the recipient's files when it is missing, as oC10 does when it
        sets up the mounts."""
        for parent in sorted({_parent(m.target) for m in mounts} - {""}):
            if find_mount(mounts, parent) is not None:
                continue  # inside another share: that share's folder, not the user's
            try:
                self.inner.stat(uid, parent)
                continue
            except NotFoundError:
                pass
            folder = ""
            for name in parent.split("/"):
                folder = _join(folder, name)
                try:
                    self.inner.mkdir(uid, folder)
                except (AlreadyExistsError, ConflictError, ForbiddenError):
                    pass  # there already (another request was first), or not ours to make

    def forget(self, uid: str | None = None) -> None:
        """Drop the cached mounts of `uid` (of everyone when None) after a share changed."""
        with self._lock:
            if uid is None:
                self._received.clear()
            else:
                self._received.pop(uid, None)

    def _source(self, mount: Mount) -> Node | None:
        """The shared node in the owner's tree; None once it is gone (trashed, deleted)."""
        try:
            return self.inner.by_id(mount.owner, mount.received.share.file_source)
        except NotFoundError:
            return None

    def _live_mounts(self, uid: str) -> Iterator[tuple[Mount, Node]]:
        """`uid`'s mounts whose shared node still exists, with that node."""
        for mount in self.mounts(uid):
            source = self._source(mount)
            if source is not None:
                yield mount, source

    def place(self, uid: str, path: str) -> Place:
        path = normalize(path)
        mounts = self.mounts(uid)
        if not mounts:
            return Place(uid, path)
        hit = find_mount(mounts, path)
        if hit is None:
            return Place(uid, path)
        mount, rest = hit
        source = self._source(mount)
        if source is None:  # the owner removed the node: the mount is gone, as in oC10
            return Place(uid, path)
        if rest and not source.is_dir:
            raise NotFoundError(f"{path!r} not found: {mount.target!r} is a file")
        return Place(mount.owner, _join(source.path, rest), mount, source)

    def _shown(self, node: Node, place: Place, recipient_path: str, *, listed: bool = False
               ) -> Node:
        """An owner's node as the recipient sees it at `recipient_path`."""
        mount, source = place.mount, place.source
        assert mount is not None and source is not None
        if node.fileid == source.fileid:
            bits = root_permissions(node.permissions, mount.permissions, listed=listed)
        else:
            bits = inner_permissions(node.permissions, mount.permissions)
        return dataclasses.replace(node, path=recipient_path,
                                   name=recipient_path.rpartition("/")[2], permissions=bits,
                                   shared=True, share_permissions=mount.permissions)

    def _with_mounts(self, uid: str, node: Node, mounts: list[Mount]) -> Node:
        """A folder of the user's own tree with mounts below it: combined etag, sizes added,
        newest mtime (FileInfo::addSubEntry)."""
        if not node.is_dir or not mounts:
            return node
        below = [m for m in mounts if m.target != node.path and _below(m.target, node.path)]
        if not below:
            return node
        entries: list[tuple[str, str, int]] = []
        size, mtime = node.size, node.mtime
        for mount in below:
            source = self._source(mount)
            if source is None:
                continue
            relative = "/" + (mount.target[len(node.path) + 1:] if node.path else mount.target)
            bits = inner_permissions(source.permissions, mount.permissions | PERM_DELETE)
            entries.append((relative + "/", source.etag, bits))
            if source.size > 0:
                size += source.size
            mtime = max(mtime, source.mtime)
        if not entries:
            return node
        return dataclasses.replace(node, etag=combined_etag(node.etag, entries), size=size,
                                   mtime=mtime)

    def _need(self, node: Node, bits: int) -> None:
        if node.permissions & bits != bits:
            raise ForbiddenError(REFUSED)

    def _shown_stat(self, uid: str, path: str) -> tuple[Place, Node]:
        place = self.place(uid, path)
        if place.mount is None:
            return place, self._with_mounts(uid, self.inner.stat(uid, place.path),
                                            self.mounts(uid))
        if not place.is_mount_root and _unreadable(place.mount):
            raise NotFoundError(f"{path!r} not found: the share does not allow reading")
        return place, self._shown(self.inner.stat(place.uid, place.path), place,
                                  normalize(path))

    # -- users ------------------------------------------------------------------------------------

    def authenticate(self, login: str, password: str) -> User | None:
        return self.inner.authenticate(login, password)

    def user(self, uid: str) -> User | None:
        return self.inner.user(uid)

    def find_users(self, pattern: str, limit: int) -> list[User]:
        return self.inner.find_users(pattern, limit)

    def find_groups(self, pattern: str, limit: int) -> list[str]:
        return self.inner.find_groups(pattern, limit)

    def group_members(self, gid: str) -> list[str]:
        return self.inner.group_members(gid)

    # -- reading ----------------------------------------------------------------------------------

    def stat(self, uid: str, path: str) -> Node:
        return self._shown_stat(uid, path)[1]

    def children(self, uid: str, path: str) -> list[Node]:
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is not None:
            if _unreadable(place.mount):
                return []  # an upload-only share: the recipient sees nothing inside
            return [self._shown(child, place, _join(path, child.name))
                    for child in self.inner.children(place.uid, place.path)]
        own = self.inner.children(uid, path)
        mounts = self.mounts(uid)
        if not mounts:
            return own
        here = {m.target: m for m in mounts if _parent(m.target) == path}
        listed = [self._with_mounts(uid, child, mounts) for child in own
                  if child.path not in here]
        # mount points come after the folder's own children, as oC10 lists them
        for target, mount in here.items():
            source = self._source(mount)
            if source is None:
                continue
            mount_place = Place(mount.owner, source.path, mount, source)
            listed.append(self._shown(source, mount_place, target, listed=True))
        return listed

    def children_many(self, uid: str, paths: Iterable[str]) -> dict[str, list[Node]]:
        asked = list(paths)
        if not self.mounts(uid):
            return self.inner.children_many(uid, asked)
        # mount points and shared folders change listings: each one as `children` gives it
        listed: dict[str, list[Node]] = {}
        for path in asked:
            try:
                listed[path] = self.children(uid, path)
            except NotFoundError:
                continue
        return listed

    def by_id(self, uid: str, fileid: int) -> Node:
        try:
            return self._with_mounts(uid, self.inner.by_id(uid, fileid), self.mounts(uid))
        except NotFoundError:
            pass
        for mount, source in self._live_mounts(uid):
            try:
                node = self.inner.by_id(mount.owner, fileid)
            except NotFoundError:
                continue
            if node.path != source.path and _unreadable(mount):
                continue
            if node.path == source.path or (source.is_dir and _below(node.path, source.path)):
                rest = node.path[len(source.path):].lstrip("/")
                place = Place(mount.owner, source.path, mount, source)
                return self._shown(node, place, _join(mount.target, rest))
        raise NotFoundError(f"no file {fileid} for {uid!r}")

    def extras(self, uid: str, nodes: Iterable[Node]) -> dict[int, NodeExtras]:
        return self.inner.extras(uid, nodes)

    def quota(self, uid: str) -> Quota:
        return self.inner.quota(uid)

    def read(self, uid: str, node: Node, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        if node.owner == uid:
            return self.inner.read(uid, node, start, end)
        # a shared file: read it as its owner sees it, once the user may still see it
        place = self.place(uid, node.path)
        if place.mount is None:
            raise NotFoundError(f"{node.path!r} is not shared with {uid!r}")
        own = self.inner.stat(place.uid, place.path)
        return self.inner.read(place.uid, own, start, end)

    # -- writing ----------------------------------------------------------------------------------

    def _writable(self, uid: str, path: str) -> tuple[Place, Node | None]:
        """Where a new or replaced file at `path` goes, and what is there now; refuses what the
        share does not allow."""
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is None:
            return place, None
        try:
            current = self._shown(self.inner.stat(place.uid, place.path), place, path)
        except NotFoundError:
            current = None
        if current is not None:
            if current.is_dir:
                return place, current
            if not place.mount.permissions & PERM_UPDATE:
                raise ForbiddenError(REFUSED)
            return place, current
        self._need_creatable_parent(place, path)
        return place, None

    def write(self, uid: str, path: str, body: BinaryIO, *, length: int | None,
              mtime: int | None = None, checksum: str | None = None,
              if_match: str | None = None, if_none_match: str | None = None) -> WriteResult:
        place, _current = self._writable(uid, path)
        result = self.inner.write(place.uid, place.path, body, length=length, mtime=mtime,
                                  checksum=checksum, if_match=if_match,
                                  if_none_match=if_none_match)
        if place.mount is None:
            return result
        return dataclasses.replace(result, node=self._shown(result.node, place,
                                                            normalize(path)))

    def _need_creatable_parent(self, place: Place, path: str) -> None:
        """`path` (as `place`'s user sees it) may be created inside a share: its parent exists
        and the share grants create."""
        try:
            parent = self._shown(self.inner.stat(place.uid, _parent(place.path)), place,
                                 _parent(path))
        except NotFoundError as exc:
            raise ConflictError(f"the parent of {path!r} does not exist") from exc
        self._need(parent, PERM_CREATE)

    def mkdir(self, uid: str, path: str) -> Node:
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is None:
            return self.inner.mkdir(uid, path)
        if place.is_mount_root:
            raise AlreadyExistsError(f"{path!r} exists")
        self._need_creatable_parent(place, path)
        return self._shown(self.inner.mkdir(place.uid, place.path), place, path)

    def delete(self, uid: str, path: str) -> None:
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is None:
            self.inner.delete(uid, path)
            return
        if place.is_mount_root:
            # a recipient deleting the mount point leaves the share (oC10: deleteFromSelf)
            self.shares.set_received(place.mount.received.share.id, uid, state=STATE_REJECTED)
            return
        self._need(self._shown(self.inner.stat(place.uid, place.path), place, path),
                   PERM_DELETE)
        self._trash_copy(uid, place, path)
        self.inner.delete(place.uid, place.path)

    def _trash_copy(self, uid: str, place: Place, path: str) -> None:
        """Trashbin::move2trash for a recipient: the owner's trash gets the item and the
        deleting user's trash a copy, at the path the user saw (so a restore brings it back
        into the share). The copy is written into the user's own tree at that path, below the
        mount point that hides it, and trashed from there; folders made for it are purged."""
        made: list[str] = []
        try:
            try:
                self.inner.stat(uid, path)
                log.warning("no trash copy of %r for %s: their own files hold that path",
                            path, uid)
                return
            except NotFoundError:
                pass
            folder = ""
            for name in _parent(path).split("/") if _parent(path) else ():
                folder = _join(folder, name)
                try:
                    if not self.inner.stat(uid, folder).is_dir:
                        return
                except NotFoundError:
                    self.inner.mkdir(uid, folder)
                    made.append(folder)
            self._cross_owner(place, Place(uid, path), None)
            self.inner.delete(uid, path)
        except BackendError as exc:
            # the owner's trash keeps the item whatever happens to the user's copy
            log.warning("no trash copy of %r for %s: %s", path, uid, exc)
        finally:
            for folder in reversed(made):
                self._purge_own(uid, folder)

    def _purge_own(self, uid: str, path: str) -> None:
        try:
            fileid = self.inner.stat(uid, path).fileid
            self.inner.delete(uid, path)
            self.inner.purge(uid, fileid)
        except BackendError as exc:
            log.warning("could not remove %r of %s: %s", path, uid, exc)

    def move(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        return self._transfer(uid, src, dst, overwrite=overwrite, keep_source=False)

    def copy(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        return self._transfer(uid, src, dst, overwrite=overwrite, keep_source=True)

    def _transfer(self, uid: str, src: str, dst: str, *, overwrite: bool, keep_source: bool
                  ) -> WriteResult:
        src, dst = normalize(src), normalize(dst)
        source_place, source = self._shown_stat(uid, src)
        target_place = self.place(uid, dst)
        if not keep_source and source_place.is_mount_root:
            return self._move_mount(uid, source_place, source, target_place, dst)
        if source_place.mount is None and target_place.mount is None:
            if keep_source:
                return self.inner.copy(uid, src, dst, overwrite=overwrite)
            result = self.inner.move(uid, src, dst, overwrite=overwrite)
            self._carry_mounts(uid, src, dst)
            return result
        if target_place.is_mount_root:
            raise ForbiddenError(REFUSED)
        # a rename in place needs UPDATE; anything else deletes at the source and creates at
        # the target (as oC10's tree checks a MOVE)
        rename = not keep_source and _parent(src) == _parent(dst)
        if not keep_source:
            self._need(source, PERM_UPDATE if rename else PERM_DELETE)
        existing = self._existing(target_place, dst)
        if existing is None:
            parent_place, parent = self._shown_stat(uid, _parent(dst))
            if not parent.is_dir:
                raise ConflictError(f"the parent of {dst!r} is not a folder")
            if parent_place.mount is not None:
                self._need(parent, PERM_UPDATE if rename else PERM_CREATE)
        elif not overwrite:
            raise AlreadyExistsError(f"{dst!r} exists")
        elif target_place.mount is not None:
            self._need(existing, PERM_UPDATE if not existing.is_dir else PERM_DELETE)
        if source_place.uid == target_place.uid:
            verb = self.inner.copy if keep_source else self.inner.move
            result = verb(source_place.uid, source_place.path, target_place.path,
                          overwrite=overwrite)
        else:
            result = self._cross_owner(source_place, target_place, existing)
            if not keep_source:
                favorite = self.inner.extras(uid, [source]).get(source.fileid)
                if source_place.mount is None:
                    self._rehome_mounts(uid, src)
                self.inner.delete(source_place.uid, source_place.path)
                if favorite is not None and favorite.favorite:
                    # a move keeps the mover's favorite, though the copy has a new fileid
                    self.set_favorite(uid, dst, True)
        if target_place.mount is None:
            return result
        return dataclasses.replace(result, node=self._shown(result.node, target_place, dst))

    def _rehome_mounts(self, uid: str, src: str) -> None:
        """Mount points inside a folder of the user's own that leaves their storage (moved
        into a share: a copy, not a move) do not go with it; like SharedMount::verifyMountPoint
        when a mount's parent is gone, they move to the share folder, names deduplicated."""
        mounts = self.mounts(uid)
        taken = {m.target for m in mounts}
        for mount in mounts:
            if not _below(mount.target, src) or mount.target == src:
                continue
            folder = normalize(self.share_folder)

            def exists(candidate: str, folder: str = folder) -> bool:
                path = normalize(candidate)
                if path in taken:
                    return True
                try:
                    self.inner.stat(uid, path)
                    return True
                except NotFoundError:
                    return False

            name = mount.target.rpartition("/")[2]
            target = deduplicated_target("/" + _join(folder, name), exists)
            taken.add(normalize(target))
            self.shares.set_received(mount.received.share.id, uid, target=target)

    @property
    def share_folder(self) -> str:
        """Where received shares land (oC10's config.php `share_folder`): set here (the share
        API does, so both agree), else the inner backend's, else the root."""
        if self._share_folder is not None:
            return self._share_folder
        configured = getattr(self.inner, "share_folder", None)
        return configured if isinstance(configured, str) and configured else "/"

    @share_folder.setter
    def share_folder(self, folder: str) -> None:
        self._share_folder = folder

    def _carry_mounts(self, uid: str, src: str, dst: str) -> None:
        """Mount points inside a moved folder of the user's own move with it (oC10 moves the
        mounts below a renamed folder: MountManager::moveMount)."""
        for mount in self.mounts(uid):
            if src and mount.target.startswith(src + "/"):
                target = "/" + dst + mount.target[len(src):]
                self.shares.set_received(mount.received.share.id, uid, target=target)

    def _existing(self, place: Place, path: str) -> Node | None:
        try:
            node = self.inner.stat(place.uid, place.path)
        except NotFoundError:
            return None
        return node if place.mount is None else self._shown(node, place, path)

    def _cross_owner(self, source: Place, target: Place, existing: Node | None) -> WriteResult:
        """Copy a file or tree from one owner's storage into another's, streamed (oC10 copies
        across storages too; versions stay with the source)."""
        node = self.inner.stat(source.uid, source.path)
        if existing is not None and (existing.is_dir or node.is_dir):
            self.inner.delete(target.uid, target.path)
            existing = None
        if not node.is_dir:
            return self.inner.write(target.uid, target.path, chunk_reader(
                self.inner.read(source.uid, node), _READ_CHUNK), length=node.size, mtime=node.mtime)
        top = self.inner.mkdir(target.uid, target.path)
        pending = [(source.path, target.path)]
        while pending:
            from_folder, to_folder = pending.pop()
            for child in self.inner.children(source.uid, from_folder):
                to_path = _join(to_folder, child.name)
                if child.is_dir:
                    self.inner.mkdir(target.uid, to_path)
                    pending.append((child.path, to_path))
                else:
                    self.inner.write(target.uid, to_path, chunk_reader(
                        self.inner.read(source.uid, child), _READ_CHUNK), length=child.size,
                        mtime=child.mtime)
        return WriteResult(node=dataclasses.replace(
            top, size=self.inner.stat(target.uid, target.path).size), created=True)

    def _move_mount(self, uid: str, place: Place, node: Node, target: Place, dst: str
                    ) -> WriteResult:
        """A recipient renames or moves a mount point: a new target for them alone."""
        assert place.mount is not None
        if target.mount is not None:
            raise ForbiddenError(REFUSED)  # a share cannot move into a share
        try:
            self.inner.stat(uid, dst)
            raise AlreadyExistsError(f"{dst!r} exists")
        except NotFoundError:
            pass
        parent = _parent(dst)
        if parent:
            try:
                folder = self.inner.stat(uid, parent)
            except NotFoundError as exc:
                raise ConflictError(f"the parent of {dst!r} does not exist") from exc
            if not folder.is_dir:
                raise ConflictError(f"the parent of {dst!r} is not a folder")
        self.shares.set_received(place.mount.received.share.id, uid, target="/" + dst)
        return WriteResult(node=self.stat(uid, dst), created=True)

    def set_mtime(self, uid: str, path: str, mtime: int) -> Node:
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is None:
            return self.inner.set_mtime(uid, path, mtime)
        self._need(self._shown(self.inner.stat(place.uid, place.path), place, path),
                   PERM_UPDATE)
        return self._shown(self.inner.set_mtime(place.uid, place.path, mtime), place, path)

    def set_favorite(self, uid: str, path: str, favorite: bool) -> None:
        place = self.place(uid, path)
        if place.mount is None:
            self.inner.set_favorite(uid, place.path, favorite)
            return
        # a favorite is the recipient's own mark on the owner's fileid (oC10's tags are per user)
        node = self.inner.stat(place.uid, place.path)
        self.inner.set_favorite_by_id(uid, node.fileid, favorite)  # type: ignore[attr-defined]

    def set_dead_props(self, uid: str, path: str, props: dict[str, str | None]) -> None:
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is None:
            self.inner.set_dead_props(uid, path, props)
            return
        self._need(self._shown(self.inner.stat(place.uid, place.path), place, path),
                   PERM_UPDATE)
        self.inner.set_dead_props(place.uid, place.path, props)

    # -- trash and versions: the trash is the user's own; versions follow the file --------------

    def trash(self, uid: str) -> list[TrashItem]:
        return self.inner.trash(uid)

    def restore(self, uid: str, fileid: int, dst: str | None = None) -> Node:
        if not self.mounts(uid):
            return self.inner.restore(uid, fileid, dst)
        target = normalize(dst) if dst is not None else self._original_path(uid, fileid)
        if target is None:
            return self.inner.restore(uid, fileid, dst)
        place = self.place(uid, target)
        if place.mount is None:
            return self.inner.restore(uid, fileid, dst)
        # back into a received share: the share must take it, then it is restored into the
        # user's files under a passing name and copied over into the owner's tree
        if place.is_mount_root or self._existing(place, target) is not None:
            raise AlreadyExistsError(f"{target!r} exists")
        self._need_creatable_parent(place, target)
        passing = f".restoring-{fileid}-{secrets.token_hex(4)}"
        self.inner.restore(uid, fileid, passing)
        try:
            result = self._cross_owner(Place(uid, passing), place, None)
        except BaseException:
            self.inner.delete(uid, passing)  # back into the trash rather than lost
            raise
        self._purge_own(uid, passing)
        return self._shown(result.node, place, target)

    def _original_path(self, uid: str, fileid: int) -> str | None:
        """Where a top-level trashed item came from; None for anything else."""
        for item in self.inner.trash(uid):
            if item.node.fileid == fileid:
                folder = "" if item.original_location == "." else item.original_location
                return normalize(_join(folder, item.original_name))
        return None

    def trashed(self, uid: str, fileid: int) -> Node:
        return self.inner.trashed(uid, fileid)

    def trash_children(self, uid: str, fileid: int) -> list[Node]:
        return self.inner.trash_children(uid, fileid)

    def purge(self, uid: str, fileid: int | None = None) -> None:
        """Delete for good; the shares of what goes away go with it (oC10 leaves them orphaned
        until DeleteOrphanedSharesJob removes rows whose file is no longer in the cache)."""
        doomed: list[int] = []
        # a trash is searched only when its owner has shares at all (one query otherwise)
        if self.inner.shares.created_by(uid, reshares=True):
            tops = [fileid] if fileid is not None else [item.node.fileid
                                                        for item in self.inner.trash(uid)]
            doomed = [share.id for top in tops for share in self._shares_below(uid, top)]
        self.inner.purge(uid, fileid)
        for share_id in doomed:
            try:
                self.shares.delete(share_id)
            except ShareNotFoundError:
                pass  # deleted meanwhile

    def _shares_below(self, uid: str, top: int) -> Iterator[Share]:
        """Shares on a trashed item and anything inside it, looked up a batch of ids at a time
        (a folder is walked level by level, never held whole)."""
        batch = [top]
        pending = [top]
        while pending:
            folder = pending.pop()
            for child in self.inner.trash_children(uid, folder):
                batch.append(child.fileid)
                if child.is_dir:
                    pending.append(child.fileid)
                if len(batch) >= _SHARE_BATCH:
                    yield from self.inner.shares.on_files(batch)
                    batch = []
        if batch:
            yield from self.inner.shares.on_files(batch)

    def _file_owner(self, uid: str, fileid: int) -> tuple[str, Node]:
        node = self.by_id(uid, fileid)
        return node.owner, node

    def versions(self, uid: str, fileid: int) -> list[Version]:
        owner, _node = self._file_owner(uid, fileid)
        return self.inner.versions(owner, fileid)

    def versions_many(self, uid: str, fileids: Iterable[int]) -> dict[int, list[Version]]:
        asked = list(fileids)
        found = self.inner.versions_many(uid, asked)
        if self.mounts(uid):  # files shared with the user: through their owners, one by one
            for fileid in asked:
                if fileid not in found:
                    try:
                        found[fileid] = self.versions(uid, fileid)
                    except NotFoundError:
                        continue
        return found

    def read_version(self, uid: str, fileid: int, version_id: int) -> Iterator[bytes]:
        owner, _node = self._file_owner(uid, fileid)
        return self.inner.read_version(owner, fileid, version_id)

    def restore_version(self, uid: str, fileid: int, version_id: int) -> Node:
        owner, node = self._file_owner(uid, fileid)
        if owner == uid:
            return self.inner.restore_version(uid, fileid, version_id)
        self._need(node, PERM_UPDATE)
        restored = self.inner.restore_version(owner, fileid, version_id)
        return dataclasses.replace(restored, path=node.path, name=node.name,
                                   permissions=node.permissions, shared=True,
                                   share_permissions=node.share_permissions)

    # -- finding: the user's own ------------------------------------------------------------------

    def favorites(self, uid: str) -> list[Node]:
        return self.inner.favorites(uid)

    def search(self, uid: str, pattern: str, limit: int) -> list[Node]:
        return self.inner.search(uid, pattern, limit)

    def systemtag_fileids(self, uid: str, tag_id: int) -> list[int]:
        return self.inner.systemtag_fileids(uid, tag_id)

    # -- locks: a lock belongs to the file, not to the user (oC10 stores them per fileid), so
    # a lock inside a share lives in the owner's tree and binds the owner and every recipient

    def _lock_path(self, place: Place, owner_path: str) -> str:
        """An owner's lock path as the recipient sees it; a lock on an ancestor of the shared
        node (depth infinity) shows on the mount point."""
        source = place.source
        assert source is not None and place.mount is not None
        if owner_path == source.path:
            return place.mount.target
        if _below(owner_path, source.path):
            return _join(place.mount.target, owner_path[len(source.path) + 1:])
        return place.mount.target

    def _mounts_below(self, uid: str, path: str) -> list[Place]:
        found = []
        for mount in self.mounts(uid):
            if mount.target != path and _below(mount.target, path):
                source = self._source(mount)
                if source is not None:
                    found.append(Place(mount.owner, source.path, mount, source))
        return found

    def locks(self, uid: str, path: str, *, with_parents: bool = True,
              with_children: bool = False) -> list[Lock]:
        path = normalize(path)
        place = self.place(uid, path)
        if place.mount is None:
            own = self.inner.locks(uid, path, with_parents=with_parents,
                                   with_children=with_children)
            if not with_children or not self.mounts(uid):
                return own
            # a recipient's DELETE or MOVE of a folder holding mounts meets the owners' locks
            for below in self._mounts_below(uid, path):
                for lock in self.inner.locks(below.uid, below.path, with_parents=False,
                                             with_children=True):
                    own.append(dataclasses.replace(
                        lock, path=self._lock_path(below, lock.path)))
            return own
        return [dataclasses.replace(lock, path=self._lock_path(place, lock.path))
                for lock in self.inner.locks(place.uid, place.path, with_parents=with_parents,
                                             with_children=with_children)]

    def lock(self, uid: str, lock: Lock) -> Lock:
        place = self.place(uid, lock.path)
        if place.mount is None:
            return self.inner.lock(uid, lock)
        stored = self.inner.lock(place.uid, dataclasses.replace(lock, path=place.path))
        return dataclasses.replace(stored, path=normalize(lock.path))

    def refresh_lock(self, uid: str, token: str, timeout: int) -> Lock:
        try:
            return self.inner.refresh_lock(uid, token, timeout)
        except NotFoundError:
            pass
        # a lock taken inside a share is kept with the shared node's owner
        for mount, source in self._live_mounts(uid):
            try:
                refreshed = self.inner.refresh_lock(mount.owner, token, timeout)
            except NotFoundError:
                continue
            place = Place(mount.owner, source.path, mount, source)
            return dataclasses.replace(refreshed,
                                       path=self._lock_path(place, refreshed.path))
        raise NotFoundError(f"no live lock {token!r}")

    def unlock(self, uid: str, path: str, token: str) -> None:
        place = self.place(uid, path)
        self.inner.unlock(place.uid, place.path, token)

    def __getattr__(self, name: str) -> Any:
        # what the API layer reaches beyond the Protocol (e.g. the native store for meta/)
        if name == "inner":  # not set yet (during __init__ or copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


class _ForgettingStore:
    """The inner ShareStore; every change through it drops this process's cached mounts, so a
    new, changed or left share shows at once here (other processes: within RECEIVED_TTL)."""

    def __init__(self, store: ShareStore, forget: Callable[[], None]) -> None:
        self._store = store
        self._forget = forget

    def get(self, share_id: int) -> Share | None:
        return self._store.get(share_id)

    def by_token(self, token: str) -> Share | None:
        return self._store.by_token(token)

    def created_by(self, uid: str, *, file_sources: Iterable[int] | None = None,
                   types: Iterable[int] = LISTED_TYPES, reshares: bool = False) -> list[Share]:
        return self._store.created_by(uid, file_sources=file_sources, types=types,
                                      reshares=reshares)

    def on_files(self, fileids: Iterable[int], types: Iterable[int] = LISTED_TYPES
                 ) -> list[Share]:
        return self._store.on_files(fileids, types)

    def received(self, uid: str, groups: Iterable[str]) -> list[Received]:
        return self._store.received(uid, groups)

    def create(self, share: NewShare) -> Share:
        try:
            return self._store.create(share)
        finally:
            self._forget()

    def update(self, share_id: int, *, permissions: int | object = KEEP,
               expiration: dt.date | None | object = KEEP,
               share_with: str | None | object = KEEP,
               share_name: str | None | object = KEEP,
               attributes: str | None | object = KEEP) -> Share:
        try:
            return self._store.update(share_id, permissions=permissions, expiration=expiration,
                                      share_with=share_with, share_name=share_name,
                                      attributes=attributes)
        finally:
            self._forget()

    def delete(self, share_id: int) -> None:
        try:
            self._store.delete(share_id)
        finally:
            self._forget()

    def set_received(self, share_id: int, uid: str, *, target: str | None = None,
                     state: int | None = None) -> Received:
        try:
            return self._store.set_received(share_id, uid, target=target, state=state)
        finally:
            self._forget()

    def __getattr__(self, name: str) -> Any:
        # store-specific extras (import_shares, share_types, table) pass through
        if name == "_store":
            raise AttributeError(name)
        return getattr(self._store, name)


def _conforms(backend: SharingBackend) -> FilesBackend:
    return backend

