"""What a rollback writes into ownCloud 10's layout that no client request of oC10 writes: an
old version with given content and version id, and a trash item made on the new stack with its
own deletion time. Both as oC10 keeps them (REFERENCE §3.4, §3.5): `files_versions/<dir>/<name>
.v<T>` and `files_trashbin/files/<name>.d<T>` files with their oc_filecache rows (etag, mtime,
checksum given: the new stack's), the oc_files_trash row, sizes propagated to the folders above.

Through the oc10 backend's public parts (its FileCache, uniqid clock, home and storage); the
user is frozen or routed to the new stack while this runs, so nothing else writes their rows.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection

from bridge.oc10.formats import trash_name, version_name
from bridge.oc10.mimetypes import DIR_MIMETYPE
from newstack.backend import Node, TrashItem, Version
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.filecache import PERM_FILE, PERM_FOLDER, Row, join, parent_of

TRASH = "files_trashbin/files"
VERSIONS = "files_versions"


@dataclass(frozen=True)
class VersionPlan:
    """What makes one file's oC10 versions equal to the new stack's, by version id."""

    #: missing on ownCloud, or held there with other content: written from the new stack
    write: list[int]
    #: on ownCloud only (e.g. restored on the new stack, which consumes the version)
    remove: list[int]
    #: same content, another etag (ownCloud's write path computes its own): etag set
    retag: list[int]


def plan_versions(want: Iterable[Version], have: Iterable[Version]) -> VersionPlan:
    wanted = {v.version_id: v for v in want}
    held = {v.version_id: v for v in have}
    write, retag = [], []
    for vid, v in sorted(wanted.items()):
        h = held.get(vid)
        if h is None or h.size != v.size or (
                h.checksum and v.checksum and h.checksum != v.checksum):
            write.append(vid)
        elif h.etag != v.etag or h.checksum != v.checksum:
            retag.append(vid)
    remove = sorted(vid for vid in held if vid not in wanted)
    return VersionPlan(write, remove, retag)


class Oc10Layout:
    """Writes versions and trash items of one user into an ownCloud 10 instance."""

    def __init__(self, legacy: Oc10Backend, uid: str) -> None:
        self.legacy = legacy
        self.cache = legacy.cache
        self.uid = uid
        self.storage = legacy.home_storage(uid)[1]
        self.home = legacy.home(uid)

    # -- versions -------------------------------------------------------------------------------

    def sync_versions(self, path: str, plan: VersionPlan, wanted: dict[int, Version],
                      read: Callable[[int], Iterator[bytes]]) -> int:
        """Applies `plan` to the versions of the file at user path `path`; `read(vid)` streams
        the new stack's content of a version. Returns the versions written or removed."""
        folder_path = join(VERSIONS, parent_of(path)) if parent_of(path) else VERSIONS
        name = path.rpartition("/")[2]
        changes: dict[str, int] = {}
        with self.legacy.engine.begin() as conn:
            folder = self._ensure_folder(conn, folder_path, changes)
            for vid in plan.remove + plan.write:
                vpath = join(folder.path, version_name(name, vid))
                old = self.cache.get(conn, self.storage, vpath)
                if old is not None:
                    self.cache.delete_tree(conn, old)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._disk(vpath))
                    changes[vpath] = changes.get(vpath, 0) - max(old.size, 0)
            for vid in plan.write:
                v = wanted[vid]
                vpath = join(folder.path, version_name(name, vid))
                size = self._write_file(vpath, read(vid), vid)
                self.cache.insert(conn, self.storage, vpath, parent=folder.fileid,
                                  mimetype=v.mimetype, size=size, mtime=vid, etag=v.etag,
                                  permissions=PERM_FILE, checksum=v.checksum)
                changes[vpath] = changes.get(vpath, 0) + size
            for vid in plan.retag:
                v = wanted[vid]
                row = self.cache.get(conn, self.storage,
                                     join(folder.path, version_name(name, vid)))
                if row is not None:
                    self.cache.update(conn, row.fileid, etag=v.etag, checksum=v.checksum)
            self._propagate(conn, changes)
        return len(plan.write) + len(plan.remove)

    # -- trash ----------------------------------------------------------------------------------

    def put_trash_item(self, item: TrashItem, children: Callable[[Node], list[Node]],
                       read: Callable[[Node], Iterator[bytes]]) -> list[tuple[str, int, int]]:
        """The new stack's trashed `item` (and what a trashed folder holds) as an oC10 trash
        item of the same name, deletion time, location, etags and mtimes; returns (trash
        path, new-stack fileid, oC10 fileid) of every node made."""
        made: list[tuple[str, int, int]] = []
        changes: dict[str, int] = {}
        top = join(TRASH, trash_name(item.original_name, item.deleted_at))
        with self.legacy.engine.begin() as conn:
            trash = self._ensure_folder(conn, TRASH, changes)
            pending: list[tuple[Node, str, int]] = [(item.node, top, trash.fileid)]
            while pending:
                node, spath, parent = pending.pop()
                if node.is_dir:
                    os.makedirs(self._disk(spath), exist_ok=True)
                    size = node.size
                else:
                    size = self._write_file(spath, read(node), node.mtime)
                row = self.cache.insert(
                    conn, self.storage, spath, parent=parent,
                    mimetype=DIR_MIMETYPE if node.is_dir else node.mimetype, size=size,
                    mtime=node.mtime, etag=node.etag, permissions=node.permissions,
                    checksum=node.checksum)
                made.append((spath, node.fileid, row.fileid))
                if node.is_dir:
                    pending.extend((child, join(spath, child.name), row.fileid)
                                   for child in children(node))
            conn.execute(self.legacy.t.files_trash.insert().values(
                id=item.original_name, user=self.uid, timestamp=str(item.deleted_at),
                location=item.original_location, type=None, mime=None))
            changes[top] = max(item.node.size, 0)
            self._propagate(conn, changes)
        return made

    # -- helpers --------------------------------------------------------------------------------

    def _disk(self, spath: str) -> str:
        return os.path.join(self.home, spath)

    def _write_file(self, spath: str, chunks: Iterator[bytes], mtime: int) -> int:
        target = self._disk(spath)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        part = f"{target}.part"
        size = 0
        with open(part, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.utime(part, (time.time(), mtime))
        os.replace(part, target)
        return size

    def _ensure_folder(self, conn: Connection, spath: str, changes: dict[str, int]) -> Row:
        row = self.cache.get(conn, self.storage, spath)
        if row is not None:
            return row
        parent = self._ensure_folder(conn, parent_of(spath), changes)
        os.makedirs(self._disk(spath), exist_ok=True)
        now = time.time()
        changes.setdefault(spath, 0)
        return self.cache.insert(conn, self.storage, spath, parent=parent.fileid,
                                 mimetype=DIR_MIMETYPE, size=0, mtime=int(now),
                                 etag=self.legacy.uniqid.next(now), permissions=PERM_FOLDER)

    def _propagate(self, conn: Connection, changes: dict[str, int]) -> None:
        if changes:
            now = time.time()
            self.cache.propagate(conn, self.storage, changes,
                                 etag=self.legacy.uniqid.next(now), mtime=int(now))
