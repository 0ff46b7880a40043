"""The reverse delta of a rollback: what a user changed on the new stack, carried back into
ownCloud 10 through the oc10 backend's write path (oC10's rules: versions kept on overwrite,
deletes to oC10's trash), then every changed row given the new stack's etag and mtime, so that a
client that synced against the new stack finds nothing to transfer.

Like the forward delta, the walk opens only folders whose etag differs on the two sides. Files
and folders created on the new stack get ownCloud fileids from ownCloud's own allocation (never
the new stack's id range, which oC10's counter must not reach): their oc:id changes, their etag
does not, which clients take as a metadata update without a transfer (docs/cutover.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from newstack.backend import FilesBackend, Node, NotFoundError
from newstack.legacy.backend import Oc10Backend
from newstack.streams import chunk_reader


@dataclass
class ReverseReport:
    uid: str
    folders_visited: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    #: rows of ownCloud whose etag (and mtime) were set to the new stack's
    etags_set: int = 0
    #: (path, fileid on the new stack, fileid ownCloud gave it) of nodes created on the new stack
    new_ids: list[tuple[str, int, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.moved + self.deleted


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class ReverseDelta:
    """Bring `uid`'s files on ownCloud 10 (`legacy`) up to what the new stack (`new`) holds."""

    def __init__(self, new: FilesBackend, legacy: Oc10Backend, uid: str) -> None:
        self.new = new
        self.legacy = legacy
        self.uid = uid
        self.report = ReverseReport(uid)

    def run(self) -> ReverseReport:
        started = time.monotonic()
        gone: dict[int, str] = {}
        self._walk(gone)
        self._delete_gone(gone)
        self._take_etags()
        self.report.seconds = time.monotonic() - started
        return self.report

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
                    there = self._moved_here(child, path)
                if there is None:
                    # made on the new stack; a folder's content is then walked like any other
                    there = (self.legacy.mkdir(uid, path) if child.is_dir
                             else self._copy_file(child, path))
                    self.report.added += 1
                    self.report.new_ids.append((path, child.fileid, there.fileid))
                    if child.is_dir:
                        stack.append((child, there))
                elif child.is_dir:
                    stack.append((child, there))
                elif (child.etag, child.size) != (there.etag, there.size):
                    self._copy_file(child, path)
                    self.report.changed += 1
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
            try:
                current = self.legacy.by_id(self.uid, fileid)
            except NotFoundError:
                continue  # inside a folder already deleted
            self.legacy.delete(self.uid, current.path)
            self.report.deleted += 1

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
