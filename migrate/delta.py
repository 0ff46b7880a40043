"""Catch-up passes: bring a migrated user up to date with what changed on ownCloud 10 since,
opening only folders whose oC10 etag moved, writing in batches and folder etags last, so that
a pass killed anywhere is finished by the next (docs/migration.md, "Catch-up passes")."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.formats import parse_trash_name, parse_version_name, path_hash
from migrate.runner import (
    FILES,
    TRASH,
    TRASH_VERSIONS,
    VERSIONS,
    MigrationReport,
    UserMigration,
)
from migrate.source import SourceRow
from newstack.metadata import schema
from newstack.metadata.schema import AREA_FILES, AREA_TRASH, NO_PARENT
from newstack.metadata.store import NODE_FIELD_AT, NodeRecord, node_record_of
from newstack.storage.base import BlobInfo

#: fileids per IN (...) lookup: below every database's bound-parameter limit
_LOOKUP_CHUNK = 500
#: a folder imported or revisited gets this etag until the pass has finished everything below
#: it, so a pass killed in between descends into it again
UNFINISHED_ETAG = ""
#: migration_checkpoints phase listing blobs no longer used but not yet deleted
STALE_PHASE = "delta-stale"
_FILEID, _PARENT, _NAME, _PATH, _AREA, _ETAG, _SIZE, _MTIME = (
    NODE_FIELD_AT[f] for f in ("fileid", "parent", "name", "path", "area", "etag", "size",
                               "mtime"))
#: where a pass puts a node whose path oC10 gave to another fileid (deleted and made again,
#: names swapped) until the node moves on (to the trash, to another folder) or is deleted: it
#: keeps its parent, so a pass killed meanwhile finds it among the folder's children again;
#: its path there is its fileid, so parked nodes never collide; nothing serves this area
PARKED_AREA = "parked"


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
    #: versions imported, replaced (same name, other content) and removed
    versions_added: int = 0
    versions_replaced: int = 0
    versions_removed: int = 0
    #: extras rows (trash records, favorites, tags, comments, markers, dead props, system tag
    #: assignments) inserted, updated and deleted
    extras_added: int = 0
    extras_changed: int = 0
    extras_removed: int = 0
    migration: MigrationReport | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VersionPlan:
    """What a batch does to the versions table: oC10 rows to import (new or replacing one of
    other content) and version ids to remove, by the file's fileid."""

    imports: list[tuple[int, int, SourceRow]]
    replaced: set[tuple[int, int]]
    removals: list[tuple[int, int]]


def plan_versions(files: Iterable[int], wanted: dict[int, list[tuple[int, SourceRow]]],
                  have: dict[tuple[int, int], tuple[int, str, str]]) -> VersionPlan:
    """Versions to import and remove so that each file's equal oC10's. `wanted`: fileid →
    (version id, oC10 row); `have`: (fileid, version id) → (size, etag, checksum) held. A held
    version whose oC10 file differs (written twice within one second: same name, other
    content) is replaced."""
    imports: list[tuple[int, int, SourceRow]] = []
    replaced: set[tuple[int, int]] = set()
    removals: list[tuple[int, int]] = []
    for fileid in files:
        keep: set[int] = set()
        for vid, row in wanted.get(fileid, []):
            keep.add(vid)
            held = have.get((fileid, vid))
            if held is None:
                imports.append((fileid, vid, row))
            elif held != (row.size, row.etag, row.checksum):
                imports.append((fileid, vid, row))
                replaced.add((fileid, vid))
        removals.extend((f, vid) for f, vid in have if f == fileid and vid not in keep)
    return VersionPlan(imports, replaced, removals)


@dataclass(frozen=True)
class _VersionWork:
    plan: VersionPlan
    #: (fileid, version id) → the blob the new stack holds
    have_blob: dict[tuple[int, int], str]


def _version_rows(work: _VersionWork | None) -> list[SourceRow]:
    return [] if work is None else [row for _, _, row in work.plan.imports]


class DeltaPass(UserMigration):
    """One catch-up pass for one user whose bulk migration has finished."""

    #: blobs stopped being used stay listed for `delete_stale` instead of going after each commit
    _defer_stale = False

    def delta(self, *, defer_stale: bool = False) -> DeltaReport:
        """`defer_stale`: the blobs the pass stops using are only listed (in the transactions
        that stop using them), for `delete_stale` to delete later, as a cutover does after the
        flip so that their unlinks and fsyncs stay out of the freeze; nothing reads them once
        those transactions commit, and the next pass's start deletes them too."""
        self._defer_stale = defer_stale
        try:
            return self._delta()
        finally:
            self._shutdown_pool()

    def delete_stale(self) -> None:
        """Deletes the blobs listed as no longer used (by a deferring or a killed pass)."""
        self._defer_stale = False
        self._delete_stale()

    def _delta(self) -> DeltaReport:
        report = DeltaReport(self.uid, migration=self.report)
        storage = self.source.home_storage(self.uid)
        if storage is None:
            return report
        self._import_identity()
        self._import_user(True)
        self._delete_stale()  # left by a pass killed after a commit
        #: changed files waiting for their batch: (oC10 row, the node as the new stack has it)
        self._pending: list[tuple[SourceRow, NodeRecord]] = []
        #: folders whose etag, size, mtime and permissions are written once the pass is done
        self._finished_folders: dict[int, SourceRow] = {}
        #: a pass's listings of files_versions folders: path → its rows (None: no folder)
        self._version_folders: dict[str, list[SourceRow] | None] = {}
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
        self._flush_files(storage, report)
        self._delete_gone(gone, report)
        self._finish_folders()
        self._resync_extras(report)
        return report

    # -- walking ----------------------------------------------------------------------------------

    def _legacy_row(self, storage: int, path: str) -> SourceRow | None:
        c = self.source.t.filecache.c
        found = self.source.all_rows(storage, c.path_hash == path_hash(path))
        return found[0] if found else None

    def _children_of(self, storage: int, parents: Sequence[int]) -> list[SourceRow]:
        """The oC10 rows under these folders, one query per chunk (fs_parent_name_hash)."""
        c = self.source.t.filecache.c
        found: list[SourceRow] = []
        for start in range(0, len(parents), _LOOKUP_CHUNK):
            found.extend(self.source.all_rows(
                storage, c.parent.in_(parents[start:start + _LOOKUP_CHUNK])))
        return found

    def _sync(self, storage: int, top: SourceRow, mine: NodeRecord, area: str,
              report: DeltaReport, gone: dict[int, NodeRecord]) -> None:
        """Brings the subtree of `mine` up to `top`'s, a level at a time: the folders of a level
        whose etag (or size) moved are opened together, their children read by one query per
        chunk on each side."""
        level = [(top, mine)]
        while level:
            opened = [(legacy, node) for legacy, node in level
                      if legacy.etag != node.etag or legacy.size != node.size]
            level = []
            for start in range(0, len(opened), _LOOKUP_CHUNK):
                level.extend(self._sync_folders(storage, opened[start:start + _LOOKUP_CHUNK],
                                                area, report, gone))

    def _sync_folders(self, storage: int, folders: list[tuple[SourceRow, NodeRecord]],
                      area: str, report: DeltaReport, gone: dict[int, NodeRecord]
                      ) -> list[tuple[SourceRow, NodeRecord]]:
        """Syncs the children of these folders; returns the child folders to look into."""
        legacy_children: dict[int, list[SourceRow]] = {}
        for row in self._children_of(storage, [f.fileid for f, _ in folders]):
            legacy_children.setdefault(row.parent, []).append(row)
        # the new stack's children as plain rows: a record is built only for the few acted on
        present: dict[int, dict[int, Sequence[Any]]] = {}
        with self.store.read() as conn:
            for kept in self.store.child_rows_of(conn, [n.fileid for _, n in folders]):
                present.setdefault(kept[_PARENT], {})[kept[_FILEID]] = kept
        below: list[tuple[SourceRow, NodeRecord]] = []
        for legacy, node in folders:
            report.folders_visited += 1
            children = legacy_children.get(legacy.fileid, [])
            report.rows_read += len(children)
            mine = present.get(node.fileid, {})
            # written after everything below it: until then a killed pass comes back here
            self._finished_folders[node.fileid] = legacy
            parked = self._park_displaced(children, mine)
            for child in children:
                path = f"{node.path}/{child.name}" if node.path else child.name
                held = mine.pop(child.fileid, None)
                if held is not None and held[_PATH] == path and held[_AREA] == area:
                    # in place (nearly every child): only a folder or a changed file needs more
                    if child.is_dir:
                        below.append((child, node_record_of(held)))
                    elif (child.etag, child.size, child.mtime) != \
                            (held[_ETAG], held[_SIZE], held[_MTIME]):
                        self._queue_file(storage, child, node_record_of(held), report)
                    continue
                current = node_record_of(held) if held is not None else \
                    parked.pop(child.fileid, None)
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
                    below.append((child, current))
                elif (child.etag, child.size, child.mtime) != \
                        (current.etag, current.size, current.mtime):
                    self._queue_file(storage, child, current, report)
            gone.update((fileid, node_record_of(held)) for fileid, held in mine.items())
            gone.update(parked)
        return below

    def _park_displaced(self, children: list[SourceRow], mine: dict[int, Sequence[Any]]
                        ) -> dict[int, NodeRecord]:
        """Moves the held children (`mine`: rows of `child_rows_of`) whose name oC10 now gives
        to another fileid out of the way (PARKED_AREA), in one transaction, before anything
        takes their paths; returns them as they are now, taken out of `mine`."""
        wanted = {child.name: child.fileid for child in children}
        displaced = [fileid for fileid, held in mine.items()
                     if wanted.get(held[_NAME], fileid) != fileid]
        if not displaced:
            return {}
        parked: dict[int, NodeRecord] = {}
        with self.store.write(self.uid) as conn:
            for fileid in displaced:
                held = mine.pop(fileid)
                current = self.store.node_by_id(conn, fileid)
                if current is None:
                    continue
                if current.parent != held[_PARENT]:  # moved elsewhere during this pass
                    continue
                if current.area != PARKED_AREA:
                    current = self.store.move_subtree(
                        conn, current, area=PARKED_AREA, path=str(fileid),
                        parent=current.parent, name=current.name)
                parked[fileid] = current
        self._crash("delta:parked")
        return parked

    def _moved_here(self, child: SourceRow, area: str, path: str, parent: int,
                    report: DeltaReport, gone: dict[int, NodeRecord]) -> NodeRecord | None:
        """The node with this fileid elsewhere in the user's new-stack tree, moved here."""
        with self.store.read() as conn:
            existing = self.store.node_by_id(conn, child.fileid)
        if existing is None or existing.owner != self.uid:
            return None
        return self._move_here(existing, child, area, path, parent, report, gone)

    def _move_here(self, existing: NodeRecord, child: SourceRow, area: str, path: str,
                   parent: int, report: DeltaReport, gone: dict[int, NodeRecord]) -> NodeRecord:
        gone.pop(child.fileid, None)
        with self.store.write(self.uid) as conn:
            moved = self.store.move_subtree(conn, existing, area=area, path=path, parent=parent,
                                            name=child.name)
        self._crash("delta:moved")
        report.moved += 1
        return moved

    def _import_tree(self, storage: int, top: SourceRow, area: str, path: str, parent: int,
                     report: DeltaReport, gone: dict[int, NodeRecord]) -> None:
        """A node new to the new stack, with everything below it (some of which may be nodes
        the new stack has elsewhere: those move here), a batch of one level at a time."""
        level: list[tuple[SourceRow, str, int]] = [(top, path, parent)]
        batch = max(self.options.batch, 1)
        while level:
            following: list[tuple[SourceRow, str, int]] = []
            for start in range(0, len(level), batch):
                part = self._without_moved(storage, level[start:start + batch], area, report,
                                           gone)
                self._import_level(storage, part, area, report)
                folders = {row.fileid: where for row, where, _ in part if row.is_dir}
                for child in self._children_of(storage, list(folders)):
                    where = folders[child.parent]
                    following.append((child, f"{where}/{child.name}" if where else child.name,
                                      child.parent))
                    report.rows_read += 1
            level = following

    def _import_level(self, storage: int, part: list[tuple[SourceRow, str, int]], area: str,
                      report: DeltaReport) -> None:
        files = [row for row, _, _ in part if not row.is_dir]
        versions = self._versions_of(storage, files, report)
        blobs = self._import_blobs(files + _version_rows(versions))
        records = []
        for row, where, parent_id in part:
            record = self._record_at(row, area, where, parent_id, blobs.get(row.fileid))
            if row.is_dir:
                self._finished_folders[row.fileid] = row
                record = NodeRecord(**{**record.__dict__, "etag": UNFINISHED_ETAG})
            records.append(record)
        with self.store.write(self.uid) as conn:
            self.store.insert_nodes(records, conn)
            self._remember_stale(conn, self._write_versions(conn, versions, blobs, report))
        self._crash("delta:imported")
        report.added += len(records)
        self._delete_stale()

    def _without_moved(self, storage: int, level: list[tuple[SourceRow, str, int]], area: str,
                       report: DeltaReport, gone: dict[int, NodeRecord]
                       ) -> list[tuple[SourceRow, str, int]]:
        """`level` less the nodes the new stack already has: moved here and synced instead
        (looked up by fileid, a chunk at a time)."""
        existing: dict[int, NodeRecord] = {}
        n = schema.nodes
        ids = [row.fileid for row, _, _ in level]
        with self.store.read() as conn:
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                for fileid in conn.execute(sa.select(n.c.fileid).where(
                        n.c.fileid.in_(ids[start:start + _LOOKUP_CHUNK]),
                        n.c.owner == self.uid)).scalars():
                    node = self.store.node_by_id(conn, int(fileid))
                    if node is not None:
                        existing[node.fileid] = node
        new = []
        for row, where, parent in level:
            found = existing.get(row.fileid)
            if found is None:
                new.append((row, where, parent))
                continue
            moved = self._move_here(found, row, area, where, parent, report, gone)
            if row.is_dir:
                self._sync(storage, row, moved, area, report, gone)
            elif (row.etag, row.size, row.mtime) != (moved.etag, moved.size, moved.mtime):
                self._queue_file(storage, row, moved, report)
        return new

    def _record_at(self, row: SourceRow, area: str, path: str, parent: int,
                   blob: tuple[str, BlobInfo] | None) -> NodeRecord:
        record = self._record(row, area, path, blob)
        return NodeRecord(**{**record.__dict__, "parent": parent})

    # -- changed files, a batch at a time ----------------------------------------------------------

    def _queue_file(self, storage: int, row: SourceRow, node: NodeRecord,
                    report: DeltaReport) -> None:
        self._pending.append((row, node))
        if len(self._pending) >= max(self.options.batch, 1):
            self._flush_files(storage, report)

    def _flush_files(self, storage: int, report: DeltaReport) -> None:
        """The queued changed files: their blobs (made durable together), one transaction for
        their rows, then their versions; the blobs they replaced are deleted last."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        versions = self._versions_of(storage, [row for row, _ in pending], report)
        # the files' and their versions' blobs: made durable together
        blobs = self._import_blobs([row for row, _ in pending] + _version_rows(versions))
        self._crash("delta:blobs-copied")
        values = []
        stale = []
        for row, node in pending:
            record = self._record(row, node.area, node.path, blobs.get(row.fileid))
            values.append(dict(b_fileid=node.fileid, etag=record.etag, size=record.size,
                               mtime=record.mtime, checksum=record.checksum,
                               blob_id=record.blob_id, mimetype=record.mimetype))
            if node.blob_id and node.blob_id != record.blob_id:
                stale.append(node.blob_id)
        n = schema.nodes
        with self.store.write(self.uid) as conn:
            conn.execute(sa.update(n).where(n.c.fileid == sa.bindparam("b_fileid")), values)
            stale.extend(self._write_versions(conn, versions, blobs, report))
            self._remember_stale(conn, stale)
        self._crash("delta:files-committed")
        report.changed += len(pending)
        self._delete_stale()

    # Blobs replaced or deleted are listed in the transaction that stops using them and deleted
    # after it commits; a pass killed in between deletes them at its next start.

    def _remember_stale(self, conn: Connection, blob_ids: Sequence[str]) -> None:
        if not blob_ids:
            return
        cp = schema.migration_checkpoints
        held = conn.execute(sa.select(cp.c.detail).where(
            cp.c.uid == self.uid, cp.c.phase == STALE_PHASE)).scalar()
        listed = "\n".join([*([held] if held else []), *blob_ids])
        conn.execute(sa.delete(cp).where(cp.c.uid == self.uid, cp.c.phase == STALE_PHASE))
        conn.execute(sa.insert(cp).values(uid=self.uid, phase=STALE_PHASE, position=0,
                                          detail=listed, updated=int(time.time())))

    def _delete_stale(self) -> None:
        if self._defer_stale:
            return
        cp = schema.migration_checkpoints
        with self.store.read() as conn:
            held = conn.execute(sa.select(cp.c.detail).where(
                cp.c.uid == self.uid, cp.c.phase == STALE_PHASE)).scalar()
        if not held:
            return
        with self._durable_batch():
            for blob_id in held.split("\n"):
                self.driver.delete(blob_id, missing_ok=True)
        self._crash("delta:blobs-deleted")
        with self.store.write(self.uid) as conn:
            conn.execute(sa.delete(cp).where(cp.c.uid == self.uid, cp.c.phase == STALE_PHASE))

    def _versions_of(self, storage: int, files: Sequence[SourceRow],
                     report: DeltaReport) -> _VersionWork | None:
        """What makes these files' versions equal to oC10's: its blobs imported along with the
        files', it is written by `_write_versions` in the transaction of the files themselves,
        so that a file never has its new content committed without its versions. Files in the
        trash too: a file changed or made since the last pass and then deleted brings the
        versions oC10 moved to files_trashbin/versions (and loses the ones it no longer has)."""
        folder_of = {row.fileid: folder for row in files
                     if not row.is_dir and (folder := versions_folder(row.path)) is not None}
        files = [row for row in files if row.fileid in folder_of]
        if not files:
            return None
        wanted: dict[int, list[tuple[int, SourceRow]]] = {}
        self._read_version_folders(storage, set(folder_of.values()), report)
        for row in files:
            for version in self._version_folders[folder_of[row.fileid]] or ():
                vid = None if version.is_dir else version_id_of(row.path, version.name)
                if vid is not None:
                    wanted.setdefault(row.fileid, []).append((vid, version))
        v = schema.versions
        have: dict[tuple[int, int], tuple[int, str, str]] = {}
        have_blob: dict[tuple[int, int], str] = {}
        ids = [row.fileid for row in files]
        with self.store.read() as conn:
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                for fileid, vid, size, etag, checksum, blob_id in conn.execute(sa.select(
                        v.c.fileid, v.c.version_id, v.c.size, v.c.etag, v.c.checksum,
                        v.c.blob_id).where(v.c.fileid.in_(ids[start:start + _LOOKUP_CHUNK]))):
                    key = (int(fileid), int(vid))
                    have[key] = (int(size), etag, checksum)
                    have_blob[key] = blob_id
        plan = plan_versions(ids, wanted, have)
        if not plan.imports and not plan.removals:
            return None
        return _VersionWork(plan, have_blob)

    def _write_versions(self, conn: Connection, work: _VersionWork | None,
                        blobs: dict[int, tuple[str, BlobInfo]], report: DeltaReport
                        ) -> list[str]:
        """Writes `work` in `conn` (executemany batches); returns the blobs it stops using."""
        if work is None:
            return []
        plan, have_blob = work.plan, work.have_blob
        v = schema.versions
        stale = [have_blob[key] for key in plan.removals]
        gone = [dict(b_fileid=fileid, b_vid=vid) for fileid, vid in plan.removals]
        inserts = []
        for fileid, vid, row in plan.imports:
            blob = blobs.get(row.fileid)
            if blob is None:  # unreadable: a finding; the version held (if any) stays
                continue
            if (fileid, vid) in plan.replaced:
                gone.append(dict(b_fileid=fileid, b_vid=vid))
                if have_blob[(fileid, vid)] != blob[0]:
                    stale.append(have_blob[(fileid, vid)])
                report.versions_replaced += 1
            else:
                report.versions_added += 1
            inserts.append(dict(fileid=fileid, version_id=vid, size=blob[1].size,
                                etag=row.etag, checksum=row.checksum, mimetype=row.mimetype,
                                blob_id=blob[0]))
        if gone:
            conn.execute(sa.delete(v).where(v.c.fileid == sa.bindparam("b_fileid"),
                                            v.c.version_id == sa.bindparam("b_vid")), gone)
        if inserts:
            conn.execute(sa.insert(v), inserts)
        report.versions_removed += len(plan.removals)
        return stale

    def _read_version_folders(self, storage: int, folders: set[str],
                              report: DeltaReport) -> None:
        """Lists these files_versions folders (each once per pass) by indexed keys, the
        folders' path hashes and then their children, rather than by a path prefix, which no
        index of oc_filecache serves and which made each change cost a scan of the tree."""
        missing = sorted(folders - self._version_folders.keys())
        if not missing:
            return
        c = self.source.t.filecache.c
        by_hash = {path_hash(folder): folder for folder in missing}
        rows: list[SourceRow] = []
        hashes = list(by_hash)
        for start in range(0, len(hashes), _LOOKUP_CHUNK):
            rows.extend(self.source.all_rows(
                storage, c.path_hash.in_(hashes[start:start + _LOOKUP_CHUNK])))
        report.rows_read += len(rows)
        for folder in missing:
            self._version_folders[folder] = None
        ids = {row.fileid: row.path for row in rows if row.is_dir and row.path in folders}
        for folder in ids.values():
            self._version_folders[folder] = []
        for child in self._children_of(storage, list(ids)):
            listed = self._version_folders[ids[child.parent]]
            assert listed is not None
            listed.append(child)
            report.rows_read += 1

    def _finish_folders(self) -> None:
        """Folders visited or imported get oC10's etag, size, mtime and permissions, all in one
        transaction once everything below them is written."""
        if not self._finished_folders:
            return
        n = schema.nodes
        values = [dict(b_fileid=fileid, etag=row.etag, size=row.size, mtime=row.mtime,
                       permissions=row.permissions)
                  for fileid, row in self._finished_folders.items()]
        with self.store.write(self.uid) as conn:
            conn.execute(sa.update(n).where(n.c.fileid == sa.bindparam("b_fileid")), values)
        self._crash("delta:folders-finished")
        self._finished_folders.clear()

    # -- the rest ----------------------------------------------------------------------------------

    def _delete_gone(self, gone: dict[int, NodeRecord], report: DeltaReport) -> None:
        """Nodes whose fileid left the user's files and trash, in one transaction; their
        blobs go after it commits."""
        if not gone:
            return
        blobs: list[str] = []
        with self.store.write(self.uid) as conn:
            for fileid, node in gone.items():
                current = self.store.node_by_id(conn, fileid)
                if current is None or current.parent != node.parent:
                    continue  # moved elsewhere during this pass
                blobs.extend(self.store.delete_subtree(conn, current))
                report.deleted += 1
            self._remember_stale(conn, blobs)
        self._crash("delta:deleted")
        self._delete_stale()

    def _resync_extras(self, report: DeltaReport) -> None:
        """Trash records, favorites, tags, comments, dead props, system tag assignments: only
        what differs from ownCloud's is written (migrate/extras_sync.py), so the final delta
        under the freeze costs the change, not a re-import; shares and links brought up to
        date (upserted by id, the ones gone removed)."""
        from migrate import account_data, extras_sync

        storage = self.source.home_storage(self.uid)
        assert storage is not None
        with self.store.write(self.uid) as conn:
            # first: a tag made on ownCloud since and assigned must exist before the assignment
            account_data.import_systemtag_definitions(self.source, conn)
        counts = extras_sync.resync(self.source, self.store, self.uid, storage,
                                    self.report.note, batch=max(self.options.batch, 1),
                                    crash=self._crash)
        report.extras_added += counts.added
        report.extras_changed += counts.changed
        report.extras_removed += counts.removed
        with self.store.write(self.uid) as conn:
            if self._checkpoint(conn, "extras") < 0:
                self._save_checkpoint(conn, "extras", 0)
            cp = schema.migration_checkpoints
            conn.execute(sa.delete(cp).where(cp.c.uid == self.uid, cp.c.phase == "shares"))
        self._phase_shares()


def versions_folder(path: str) -> str | None:
    """The oC10 folder holding the versions of the file at `path` (home-relative), or None
    for a path that has none: files/<dir>/<name> → files_versions/<dir>; a trashed file
    files_trashbin/files/<name>.d<t> → files_trashbin/versions (as <name>.v<vts>.d<t>); a
    file inside a trashed folder files_trashbin/files/<top>.d<t>/<dir>/<name> →
    files_trashbin/versions/<top>.d<t>/<dir>."""
    if path.startswith(FILES + "/"):
        return VERSIONS + path[len(FILES):].rpartition("/")[0]
    if path.startswith(TRASH + "/"):
        inner = path[len(TRASH) + 1:]
        if "/" not in inner:
            return TRASH_VERSIONS
        return f"{TRASH_VERSIONS}/{inner.rpartition('/')[0]}"
    return None


def version_id_of(path: str, version_name: str) -> int | None:
    """The version id if `version_name` (a name in `versions_folder(path)`) is a version of
    the file at `path`, else None."""
    name = path.rpartition("/")[2]
    if path.startswith(TRASH + "/") and "/" not in path[len(TRASH) + 1:]:
        trashed, deleted = parse_trash_name(name) or ("", -1)
        suffixed = parse_trash_name(version_name)
        if suffixed is None or suffixed[1] != deleted:
            return None
        name, version_name = trashed, suffixed[0]
    parsed = parse_version_name(version_name)
    return parsed[1] if parsed is not None and parsed[0] == name else None


def _like(name: str) -> str:
    return name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

