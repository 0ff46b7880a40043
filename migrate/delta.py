"""Catch-up passes: bring a migrated user up to date with what changed on ownCloud 10 since.

ownCloud 10 gives every ancestor of a change a new etag, so a pass walks both trees from the
roots and descends only into folders whose oC10 etag differs from the one the new stack holds:
it reads rows in proportion to the change, not to the tree. Moves and renames are recognised by
fileid (the subtree moves, nothing is copied), new nodes are imported with their blobs, changed
files get their new content, and nodes whose fileid is gone from the user's files and trash are
deleted. Versions of changed files, trash records, favorites, tags, comments and dead
properties are brought up to date as a whole (they are small). A pass is idempotent: killed
anywhere, the next pass finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.formats import path_hash
from migrate.runner import (
    FILES,
    TRASH,
    MigrationReport,
    UserMigration,
)
from migrate.source import SourceRow
from newstack.metadata import schema
from newstack.metadata.schema import AREA_FILES, AREA_TRASH, NO_PARENT
from newstack.metadata.store import NodeRecord


@dataclass
class DeltaReport:
    uid: str
    #: oc_filecache rows read by the pass (the cost the etag shortcut keeps small)
    rows_read: int = 0
    folders_visited: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    migration: MigrationReport | None = field(default=None, repr=False)


class DeltaPass(UserMigration):
    """One catch-up pass for one user whose bulk migration has finished."""

    def delta(self) -> DeltaReport:
        try:
            return self._delta()
        finally:
            self._shutdown_pool()

    def _delta(self) -> DeltaReport:
        report = DeltaReport(self.uid, migration=self.report)
        storage = self.source.home_storage(self.uid)
        if storage is None:
            return report
        self._import_identity()
        self._import_user(True)
        gone: dict[int, NodeRecord] = {}
        for legacy_root, area in ((FILES, AREA_FILES), (TRASH, AREA_TRASH)):
            top = self._legacy_row(storage, legacy_root)
            with self.store.read() as conn:
                mine = self.store.node(conn, self.uid, area, "")
            if top is None:
                if mine is not None:  # e.g. the trash folder was removed: its items are gone
                    with self.store.read() as conn:
                        gone.update((n.fileid, n) for n in self.store.children(conn, mine.fileid))
                continue
            report.rows_read += 1
            if mine is None:
                self._import_tree(storage, top, area, "", NO_PARENT, report, gone)
                continue
            self._sync(storage, top, mine, area, report, gone)
        self._delete_gone(storage, gone, report)
        self._resync_extras()
        return report

    # -- walking ----------------------------------------------------------------------------------

    def _legacy_row(self, storage: int, path: str) -> SourceRow | None:
        c = self.source.t.filecache.c
        found = self.source.all_rows(storage, c.path_hash == path_hash(path))
        return found[0] if found else None

    def _legacy_children(self, storage: int, parent: int) -> list[SourceRow]:
        c = self.source.t.filecache.c
        return self.source.all_rows(storage, c.parent == parent)

    def _sync(self, storage: int, top: SourceRow, mine: NodeRecord, area: str,
              report: DeltaReport, gone: dict[int, NodeRecord]) -> None:
        stack = [(top, mine)]
        while stack:
            legacy, node = stack.pop()
            if legacy.etag == node.etag and legacy.size == node.size:
                continue  # nothing changed below this folder
            report.folders_visited += 1
            children = self._legacy_children(storage, legacy.fileid)
            report.rows_read += len(children)
            with self.store.write(self.uid) as conn:
                self.store.update_node(conn, node.fileid, etag=legacy.etag, size=legacy.size,
                                       mtime=legacy.mtime, permissions=legacy.permissions)
                present = {n.fileid: n for n in self.store.children(conn, node.fileid)}
            for child in children:
                path = f"{node.path}/{child.name}" if node.path else child.name
                current = present.pop(child.fileid, None)
                if current is None:
                    current = self._moved_here(child, area, path, node.fileid, report, gone)
                if current is None:
                    self._import_tree(storage, child, area, path, node.fileid, report, gone)
                    continue
                if current.path != path or current.area != area:
                    with self.store.write(self.uid) as conn:
                        current = self.store.move_subtree(
                            conn, current, area=area, path=path, parent=node.fileid,
                            name=child.name, mimetype=None if child.is_dir else child.mimetype)
                    report.moved += 1
                if child.is_dir:
                    stack.append((child, current))
                elif (child.etag, child.size, child.mtime) != \
                        (current.etag, current.size, current.mtime):
                    self._update_file(storage, child, current, report)
            gone.update(present)

    def _moved_here(self, child: SourceRow, area: str, path: str, parent: int,
                    report: DeltaReport, gone: dict[int, NodeRecord]) -> NodeRecord | None:
        """The node with this fileid elsewhere in the user's new-stack tree, moved here."""
        with self.store.write(self.uid) as conn:
            existing = self.store.node_by_id(conn, child.fileid)
            if existing is None or existing.owner != self.uid:
                return None
            gone.pop(child.fileid, None)
            moved = self.store.move_subtree(conn, existing, area=area, path=path, parent=parent,
                                            name=child.name)
        report.moved += 1
        return moved

    def _import_tree(self, storage: int, top: SourceRow, area: str, path: str, parent: int,
                     report: DeltaReport, gone: dict[int, NodeRecord]) -> None:
        """A node new to the new stack, with everything below it (some of which may be nodes
        the new stack has elsewhere: those move here)."""
        level: list[tuple[SourceRow, str, int]] = [(top, path, parent)]
        while level:
            level = self._without_moved(storage, level, area, report, gone)
            rows = [row for row, _, _ in level]
            blobs = self._import_blobs([r for r in rows if not r.is_dir])
            records = [self._record_at(row, area, where, parent_id, blobs.get(row.fileid))
                       for row, where, parent_id in level]
            with self.store.write(self.uid) as conn:
                self.store.insert_nodes(records, conn)
            report.added += len(records)
            for row in rows:
                if not row.is_dir:
                    self._sync_versions(storage, row)
            following: list[tuple[SourceRow, str, int]] = []
            for row, where, _ in level:
                if row.is_dir:
                    children = self._legacy_children(storage, row.fileid)
                    report.rows_read += len(children)
                    following.extend((c, f"{where}/{c.name}" if where else c.name, row.fileid)
                                     for c in children)
            level = following

    def _without_moved(self, storage: int, level: list[tuple[SourceRow, str, int]], area: str,
                       report: DeltaReport, gone: dict[int, NodeRecord]
                       ) -> list[tuple[SourceRow, str, int]]:
        """`level` less the nodes the new stack already has: moved here and synced instead."""
        new = []
        for row, where, parent in level:
            moved = self._moved_here(row, area, where, parent, report, gone)
            if moved is None:
                new.append((row, where, parent))
            elif row.is_dir:
                self._sync(storage, row, moved, area, report, gone)
            elif (row.etag, row.size, row.mtime) != (moved.etag, moved.size, moved.mtime):
                self._update_file(storage, row, moved, report)
        return new

    def _record_at(self, row: SourceRow, area: str, path: str, parent: int,
                   blob: object) -> NodeRecord:
        record = self._record(row, area, path, blob)  # type: ignore[arg-type]
        return NodeRecord(**{**record.__dict__, "parent": parent})

    def _update_file(self, storage: int, row: SourceRow, node: NodeRecord,
                     report: DeltaReport) -> None:
        blobs = self._import_blobs([row])
        record = self._record(row, node.area, node.path, blobs.get(row.fileid))
        with self.store.write(self.uid) as conn:
            self.store.update_node(conn, node.fileid, etag=record.etag, size=record.size,
                                   mtime=record.mtime, checksum=record.checksum,
                                   blob_id=record.blob_id, mimetype=record.mimetype)
        if node.blob_id and node.blob_id != record.blob_id:
            self.driver.delete(node.blob_id, missing_ok=True)
        self._sync_versions(storage, row)
        report.changed += 1

    def _sync_versions(self, storage: int, row: SourceRow) -> None:
        """Versions of one file, made equal to oC10's (new ones imported, gone ones removed)."""
        c = self.source.t.filecache.c
        folder = "files_versions" + row.path[len(FILES):].rpartition("/")[0]
        like = folder + "/" + _like(row.name) + ".v%"
        wanted = [r for r in self.source.all_rows(storage, c.path.like(like, escape="\\"))
                  if not r.is_dir]
        with self.store.read() as conn:
            targets = {r.fileid: self._version_target(conn, r) for r in wanted}
        mine = [r for r in wanted if (t := targets[r.fileid]) is not None and t[0] == row.fileid]
        v = schema.versions
        with self.store.read() as conn:
            have = {int(vid): blob for vid, blob in conn.execute(
                sa.select(v.c.version_id, v.c.blob_id).where(v.c.fileid == row.fileid))}
        new_rows = [r for r in mine if targets[r.fileid][1] not in have]  # type: ignore[index]
        blobs = self._import_blobs(new_rows)
        keep = {targets[r.fileid][1] for r in mine}  # type: ignore[index]
        with self.store.write(self.uid) as conn:
            for r in new_rows:
                blob = blobs.get(r.fileid)
                if blob is None:
                    continue
                conn.execute(sa.insert(v).values(
                    fileid=row.fileid, version_id=targets[r.fileid][1],  # type: ignore[index]
                    size=blob[1].size, etag=r.etag, checksum=r.checksum,
                    mimetype=r.mimetype, blob_id=blob[0]))
            for vid in set(have) - keep:
                conn.execute(sa.delete(v).where(v.c.fileid == row.fileid, v.c.version_id == vid))
        for vid in set(have) - keep:
            self.driver.delete(have[vid], missing_ok=True)

    # -- the rest ----------------------------------------------------------------------------------

    def _delete_gone(self, storage: int, gone: dict[int, NodeRecord],
                     report: DeltaReport) -> None:
        for fileid, node in gone.items():
            with self.store.write(self.uid) as conn:
                current = self.store.node_by_id(conn, fileid)
                if current is None or current.parent != node.parent:
                    continue  # moved elsewhere during this pass
                blobs = self.store.delete_subtree(conn, current)
            for blob in blobs:
                self.driver.delete(blob, missing_ok=True)
            report.deleted += 1

    def _resync_extras(self) -> None:
        """Trash records, favorites, tags, comments, dead props: replaced as a whole."""
        with self.store.write(self.uid) as conn:
            self._clear_extras(conn)
            cp = schema.migration_checkpoints
            conn.execute(sa.delete(cp).where(cp.c.uid == self.uid, cp.c.phase == "extras"))
        storage = self.source.home_storage(self.uid)
        assert storage is not None
        self._phase_extras(storage)

    def _clear_extras(self, conn: Connection) -> None:
        n = schema.nodes
        mine = sa.select(n.c.fileid).where(n.c.owner == self.uid)
        conn.execute(sa.delete(schema.trash).where(schema.trash.c.owner == self.uid))
        conn.execute(sa.delete(schema.favorites).where(schema.favorites.c.uid == self.uid))
        conn.execute(sa.delete(schema.tags).where(schema.tags.c.uid == self.uid))
        conn.execute(sa.delete(schema.comment_read_markers).where(
            schema.comment_read_markers.c.uid == self.uid))
        for table in (schema.comments, schema.dead_props):
            conn.execute(sa.delete(table).where(table.c.fileid.in_(mine)))


def _like(name: str) -> str:
    return name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

