"""The reverse delta of a rollback: what a user changed on the new stack, carried back into
ownCloud 10 through the oc10 backend's write path (oC10's rules: versions kept on overwrite,
deletes to oC10's trash), then every changed row given the new stack's etag and mtime, so that a
client that synced against the new stack finds nothing to transfer.

Like the forward delta, the walk opens only folders whose etag differs on the two sides. Files
and folders created on the new stack get ownCloud fileids from ownCloud's own allocation (never
the new stack's id range, which oC10's counter must not reach): their oc:id changes, their etag
does not, which clients take as a metadata update without a transfer (docs/cutover.md).

Then what the new stack holds beside the files: versions (migrate/reverse_oc10.py), trash items
deleted, restored and purged there (deletions keep the new stack's deletion time), favorites,
tags, system tags, comments and dead properties (migrate/reverse_extras.py). After the flip back
the nodes ownCloud numbered differently leave the new stack's copy, for the next cutover to
import again with ownCloud's ids (`record_rebuild`, `rebuild_pending`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from migrate.delta import STALE_PHASE, UNFINISHED_ETAG
from migrate.reverse_extras import (
    apply_annotations,
    legacy_annotations,
    native_annotations,
    plan_annotations,
)
from migrate.reverse_oc10 import Oc10Layout, plan_versions
from newstack.backend import FilesBackend, Node, NotFoundError, TrashItem
from newstack.legacy.backend import Oc10Backend
from newstack.metadata import schema
from newstack.metadata.schema import NO_PARENT
from newstack.metadata.store import MetadataStore
from newstack.storage.base import StorageDriver
from newstack.streams import chunk_reader


@dataclass
class ReverseReport:
    uid: str
    folders_visited: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    #: restored from ownCloud's trash (restored on the new stack)
    restored: int = 0
    #: deleted for good on ownCloud (purged on the new stack)
    purged: int = 0
    #: trash items made on ownCloud (nodes made and deleted on the new stack)
    trash_added: int = 0
    #: versions written or removed on ownCloud
    versions: int = 0
    #: favorites, tags, system tags, comments, read markers, dead properties added, removed or
    #: changed on ownCloud
    annotations: int = 0
    #: rows of ownCloud whose etag (and mtime) were set to the new stack's
    etags_set: int = 0
    #: (path, fileid on the new stack, fileid ownCloud gave it) of nodes created on the new
    #: stack; the path of a trash item made is its ownCloud trash path (files_trashbin/files/…)
    new_ids: list[tuple[str, int, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.moved + self.deleted + self.restored


class ReplayClock:
    """The clock of the oc10 backend that trashes for the reverse delta: the time now, or the
    time a node was deleted on the new stack while replaying that deletion."""

    def __init__(self) -> None:
        self.fixed: float | None = None

    def __call__(self) -> float:
        return time.time() if self.fixed is None else self.fixed

    @contextlib.contextmanager
    def at(self, when: float) -> Iterator[None]:
        self.fixed = when
        try:
            yield
        finally:
            self.fixed = None


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class ReverseDelta:
    """Bring `uid`'s files on ownCloud 10 (`legacy`) up to what the new stack (`new`) holds."""

    def __init__(self, new: FilesBackend, legacy: Oc10Backend, uid: str) -> None:
        self.new = new
        self.legacy = legacy
        self.uid = uid
        self.report = ReverseReport(uid)
        self._clock = ReplayClock()
        # the same instance, trashing at the new stack's deletion times
        self._trasher = Oc10Backend(legacy.instance, clock=self._clock)
        #: files written or made on ownCloud: (new-stack node, ownCloud path)
        self._touched: list[tuple[Node, str]] = []
        #: the new stack's top-level trash items by fileid
        self._new_trash: dict[int, TrashItem] = {}

    def run(self) -> ReverseReport:
        started = time.monotonic()
        self._new_trash = {item.node.fileid: item for item in self.new.trash(self.uid)}
        gone: dict[int, str] = {}
        self._walk(gone)
        self._delete_gone(gone)
        self._sync_trash()
        self._sync_versions()
        self._sync_annotations()
        self._take_etags()
        self.report.seconds = time.monotonic() - started
        return self.report

    @property
    def ids(self) -> dict[int, int]:
        """new-stack fileid → ownCloud fileid of the nodes whose ids differ."""
        return {new: old for _, new, old in self.report.new_ids}

    # -- structure: adds, changes, moves, deletes through oC10's write path --------------------

    def _walk(self, gone: dict[int, str]) -> None:
        uid = self.uid
        stack = [(self.new.stat(uid, ""), self.legacy.stat(uid, ""))]
        while stack:
            mine, theirs = stack.pop()
            if mine.etag == theirs.etag and mine.size == theirs.size:
                continue  # nothing changed below this folder on the new stack
            self.report.folders_visited += 1
            old = {n.fileid: n for n in self.legacy.children(uid, theirs.path)}
            for child in self.new.children(uid, mine.path):
                path = _join(theirs.path, child.name)
                there = old.pop(child.fileid, None)
                if there is None:
                    # another node under this name on ownCloud: deleted (or moved away) on
                    # the new stack before this one was made or moved here
                    clash = next((n for n in old.values() if n.name == child.name), None)
                    if clash is not None:
                        old.pop(clash.fileid)
                        self._delete(clash.fileid, only_at=path)
                    there = self._moved_here(child, path) or self._restored_here(child, path)
                if there is None:
                    # made on the new stack; a folder's content is then walked like any other
                    there = (self.legacy.mkdir(uid, path) if child.is_dir
                             else self._copy_file(child, path))
                    self.report.added += 1
                    self.report.new_ids.append((path, child.fileid, there.fileid))
                    if child.is_dir:
                        stack.append((child, there))
                    else:
                        self._touched.append((child, path))
                elif child.is_dir:
                    stack.append((child, there))
                elif (child.etag, child.size) != (there.etag, there.size):
                    self._copy_file(child, path)
                    self.report.changed += 1
                    self._touched.append((child, path))
            gone.update((n.fileid, n.path) for n in old.values())

    def _moved_here(self, child: Node, path: str) -> Node | None:
        """The oC10 node with the child's fileid elsewhere in the user's files, moved here."""
        try:
            found = self.legacy.by_id(self.uid, child.fileid)
        except NotFoundError:
            return None
        if found.path != path:
            self.legacy.move(self.uid, found.path, path, overwrite=True)
            self.report.moved += 1
        return self.legacy.stat(self.uid, path)

    def _restored_here(self, child: Node, path: str) -> Node | None:
        """The node with the child's fileid in ownCloud's trash (restored on the new stack),
        restored here with its fileid and versions."""
        try:
            self.legacy.trashed(self.uid, child.fileid)
        except NotFoundError:
            return None
        self.legacy.restore(self.uid, child.fileid, path)
        self.report.restored += 1
        return self.legacy.stat(self.uid, path)

    def _copy_file(self, node: Node, path: str) -> Node:
        body = chunk_reader(self.new.read(self.uid, node))
        return self.legacy.write(self.uid, path, body, length=node.size, mtime=node.mtime).node

    def _delete_gone(self, gone: dict[int, str]) -> None:
        """ownCloud nodes the new stack no longer has (not moved elsewhere): to oC10's trash."""
        for fileid in sorted(gone, key=lambda f: gone[f], reverse=True):
            try:
                self.new.by_id(self.uid, fileid)
                continue  # still on the new stack somewhere: it was moved there
            except NotFoundError:
                pass
            self._delete(fileid)

    def _delete(self, fileid: int, only_at: str | None = None) -> None:
        """To ownCloud's trash as the new stack trashed it (same deletion time); for good when
        the new stack's trash no longer has it (purged there) either (`_sync_trash`). A node
        the new stack moved elsewhere and still holds goes to the trash too when it is in the
        way, and comes back from there where the walk meets it."""
        try:
            current = self.legacy.by_id(self.uid, fileid)
        except NotFoundError:
            return  # inside a folder already deleted
        if only_at is not None and current.path != only_at:
            return  # moved away by the walk already
        item = self._new_trash.get(fileid)
        with self._clock.at(item.deleted_at if item is not None else time.time()):
            self._trasher.delete(self.uid, current.path)
        self.report.deleted += 1

    # -- the trash, versions and annotations ---------------------------------------------------

    def _sync_trash(self) -> None:
        """Items purged on the new stack go from ownCloud's trash; items ownCloud never had
        (made and deleted on the new stack) are made there."""
        ids = self.ids
        wanted = {ids.get(fileid, fileid) for fileid in self._new_trash}
        for item in self.legacy.trash(self.uid):
            if item.node.fileid not in wanted:
                self.legacy.purge(self.uid, item.node.fileid)
                self.report.purged += 1
        held = {item.node.fileid for item in self.legacy.trash(self.uid)}
        layout = Oc10Layout(self.legacy, self.uid)
        for fileid, item in sorted(self._new_trash.items()):
            if ids.get(fileid, fileid) in held:
                continue
            made = layout.put_trash_item(
                item, lambda node: self.new.trash_children(self.uid, node.fileid),
                lambda node: self._read_trashed(node.fileid))
            self.report.new_ids.extend(made)
            self.report.trash_added += 1

    def _read_trashed(self, fileid: int) -> Iterator[bytes]:
        read = getattr(self.new, "read_trashed", None)
        if read is None:
            raise NotFoundError("the new stack cannot read trashed content")
        chunks: Iterator[bytes] = read(self.uid, fileid)
        return chunks

    def _sync_versions(self) -> None:
        """The versions of every file written or made on ownCloud: the new stack's, with their
        ids (the mtime of their content), etags and checksums."""
        layout = Oc10Layout(self.legacy, self.uid)
        for node, path in self._touched:
            there = self.legacy.stat(self.uid, path)
            want = self.new.versions(self.uid, node.fileid)
            plan = plan_versions(want, self.legacy.versions(self.uid, there.fileid))
            if plan.write or plan.remove or plan.retag:
                self.report.versions += layout.sync_versions(
                    path, plan, {v.version_id: v for v in want},
                    functools.partial(self.new.read_version, self.uid, node.fileid))

    def _sync_annotations(self) -> None:
        store = getattr(self.new, "store", None)
        if store is None:
            return  # not a native new stack (tests of two oc10 backends): nothing to carry
        want = native_annotations(store, self.uid).translated(self.ids)
        plan = plan_annotations(want, legacy_annotations(self.legacy, self.uid))
        self.report.annotations = sum(plan.counts().values())
        if self.report.annotations:
            apply_annotations(self.legacy, store, self.uid, want, plan)

    def annotation_differences(self) -> dict[str, int]:
        """What still differs in the annotations (part of the rollback's check)."""
        store = getattr(self.new, "store", None)
        if store is None:
            return {}
        want = native_annotations(store, self.uid).translated(self.ids)
        return plan_annotations(want, legacy_annotations(self.legacy, self.uid)).counts()

    # -- identity: the new stack's etags and mtimes on ownCloud's rows -------------------------

    def _take_etags(self) -> None:
        """oC10's write path gave every changed row and its ancestors fresh etags; a client that
        synced against the new stack holds the new stack's: set those (and the mtimes)."""
        uid = self.uid
        filecache = self.legacy.instance.tables.filecache
        stack = [(self.new.stat(uid, ""), self.legacy.stat(uid, ""))]
        updates: list[dict[str, object]] = []
        while stack:
            mine, theirs = stack.pop()
            if (mine.etag, mine.mtime) == (theirs.etag, theirs.mtime):
                continue  # etags propagate: nothing below differs either
            updates.append({"id": theirs.fileid, "e": mine.etag, "m": mine.mtime})
            if mine.is_dir:
                stack.extend(self._pairs(mine, theirs))
        if not updates:
            return
        with self.legacy.instance.engine.begin() as conn:
            conn.execute(filecache.update().where(filecache.c.fileid == sa.bindparam("id"))
                         .values(etag=sa.bindparam("e"), mtime=sa.bindparam("m")), updates)
        self.report.etags_set = len(updates)

    def _pairs(self, mine: Node, theirs: Node) -> list[tuple[Node, Node]]:
        by_name = {n.name: n for n in self.legacy.children(self.uid, theirs.path)}
        return [(c, by_name[c.name]) for c in self.new.children(self.uid, mine.path)
                if c.name in by_name]


# ---------------------------------------------------------------------------------------------
# After the flip back: the new stack's copy rebuilt with ownCloud's ids

#: migration_checkpoints phase listing the new-stack fileids ownCloud gave other ids
REBUILD_PHASE = "reverse-rebuild"


def record_rebuild(store: MetadataStore, uid: str, report: ReverseReport) -> None:
    """Before the flip back: lists the nodes whose ids differ on the two sides, for
    `rebuild_pending` to take out of the new stack's copy once the user is on ownCloud (by the
    rollback after the flip, or by the user's next cutover if that job was killed)."""
    cp = schema.migration_checkpoints
    with store.write(uid) as conn:
        conn.execute(sa.delete(cp).where(cp.c.uid == uid, cp.c.phase == REBUILD_PHASE))
        if report.new_ids:
            conn.execute(sa.insert(cp).values(
                uid=uid, phase=REBUILD_PHASE, position=0, updated=int(time.time()),
                detail="\n".join(str(new) for _, new, _ in report.new_ids)))


def rebuild_pending(store: MetadataStore, driver: StorageDriver, uid: str) -> int:
    """Only while the user is routed to ownCloud: removes the listed nodes (with what is below
    and attached to them) from the new stack's copy and gives every folder above them the
    unfinished etag, so that the next catch-up pass opens those folders and imports the nodes
    again from ownCloud, with ownCloud's ids, etags and mtimes (those the client holds). Their
    blobs are listed as stale in the same transaction (a pass deletes them at its start) and
    deleted after it. Returns the nodes removed."""
    cp, n = schema.migration_checkpoints, schema.nodes
    blobs: list[str] = []
    removed = 0
    with store.write(uid) as conn:
        listed = conn.execute(sa.select(cp.c.detail).where(
            cp.c.uid == uid, cp.c.phase == REBUILD_PHASE)).scalar()
        if not listed:
            return 0
        unfinished: set[int] = set()
        for fileid in (int(x) for x in listed.split()):
            node = store.node_by_id(conn, fileid)
            if node is None or node.owner != uid:
                continue  # below a node removed already
            blobs.extend(store.delete_subtree(conn, node))
            removed += 1
            parent = node.parent
            while parent != NO_PARENT and parent not in unfinished:
                unfinished.add(parent)
                above = store.node_by_id(conn, parent)
                parent = NO_PARENT if above is None else above.parent
        ids = sorted(unfinished)
        for start in range(0, len(ids), 500):
            conn.execute(sa.update(n).where(n.c.fileid.in_(ids[start:start + 500]))
                         .values(etag=UNFINISHED_ETAG))
        if blobs:
            held = conn.execute(sa.select(cp.c.detail).where(
                cp.c.uid == uid, cp.c.phase == STALE_PHASE)).scalar()
            conn.execute(sa.delete(cp).where(cp.c.uid == uid, cp.c.phase == STALE_PHASE))
            conn.execute(sa.insert(cp).values(
                uid=uid, phase=STALE_PHASE, position=0, updated=int(time.time()),
                detail="\n".join([*([held] if held else []), *blobs])))
        conn.execute(sa.delete(cp).where(cp.c.uid == uid, cp.c.phase == REBUILD_PHASE))
    for blob_id in blobs:
        driver.delete(blob_id, missing_ok=True)
    return removed
