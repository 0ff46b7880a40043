"""The cutover gate under the freeze, scoped to what changed: the full comparison
(migrate/verify.py) runs before the freeze while the user works; under the freeze only the
folders whose ownCloud etag moved since then are compared, so the freeze grows with the change,
not with the tree (docs/cutover.md)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from bridge.oc10.mimetypes import DIR_MIMETYPE
from migrate.runner import FILES
from migrate.source import LegacySource
from migrate.verify import (
    CONTENT,
    FAVORITES,
    MISSING,
    NODE,
    TRASH,
    UNEXPECTED,
    VERSION,
    VerifyReport,
)
from newstack.backend import FilesBackend, Node
from newstack.metadata import schema
from newstack.metadata.schema import AREA_FILES
from newstack.metadata.store import MetadataStore

#: ids per IN (...): below every database's bound-parameter limit
_CHUNK = 500
#: Node fields that must be equal (the name is the key)
NODE_FIELDS = ("fileid", "is_dir", "size", "mtime", "etag", "permissions", "mimetype",
               "checksum")


@dataclass
class ChangedScope:
    """Where ownCloud changed since the new stack was last verified equal: folder paths whose
    listing must be compared again, and the new stack's etags of their children then (a file
    whose etag moves is compared by content too)."""

    folders: list[str] = field(default_factory=list)
    #: folders that did not exist on the new stack: compared with their whole subtree
    new_subtrees: list[str] = field(default_factory=list)
    etags_before: dict[int, str] = field(default_factory=dict)
    rows_read: int = 0


@dataclass(frozen=True)
class FolderState:
    """A folder as one side holds it: what the scope is decided on."""

    fileid: int
    path: str
    etag: str
    size: int


def scope_of(legacy_folders: Iterable[FolderState], new_folders: Iterable[FolderState]
             ) -> tuple[list[str], list[str], list[int]]:
    """Both sides' folders, each in fileid order → (folders whose listing is compared, folders
    new to the new stack, compared with their whole subtree, the new stack's fileids of the
    former). A folder whose path, etag or size
    differs is in scope wherever it is in the tree (ownCloud moves every ancestor's etag on a
    change, so these are the changed folders and their ancestors); only the differing folders
    are held, so the memory follows the change, not the tree."""
    theirs, ours = iter(legacy_folders), iter(new_folders)
    odd_legacy: dict[str, FolderState] = {}
    odd_new: dict[str, int] = {}
    a, b = next(theirs, None), next(ours, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.fileid < b.fileid):
            assert a is not None
            odd_legacy[a.path] = a
            a = next(theirs, None)
        elif a is None or b.fileid < a.fileid:
            odd_new[b.path] = b.fileid
            b = next(ours, None)
        else:
            if (a.path, a.etag, a.size) != (b.path, b.etag, b.size):
                odd_legacy[a.path] = a
                odd_new[b.path] = b.fileid
            a, b = next(theirs, None), next(ours, None)
    folders: list[str] = []
    new_subtrees: list[str] = []
    whole: set[str] = set()
    for path in sorted(odd_legacy):  # parents before children
        if path in odd_new:  # no other path of the new stack can hold a folder there
            folders.append(path)
        elif not any(ancestor in whole for ancestor in _ancestors(path)):
            whole.add(path)
            new_subtrees.append(path)
    return folders, new_subtrees, [odd_new[path] for path in folders]


def _ancestors(path: str) -> Iterator[str]:
    while path:
        path = path.rpartition("/")[0]
        yield path


def changed_scope(source: LegacySource, store: MetadataStore, uid: str) -> ChangedScope:
    """Before the final delta: the user's folders on both sides, streamed in fileid order and
    merged (`scope_of`): a handful of queries whatever the tree, then the new stack's etags of
    the changed folders' children, a chunk of folders per query."""
    scope = ChangedScope()
    storage = source.home_storage(uid)
    if storage is None:
        raise ValueError(f"{uid!r} has no home storage on ownCloud 10")
    legacy = _legacy_folders(source, storage, scope)
    new = _new_folders(store, uid, scope)
    try:
        scope.folders, scope.new_subtrees, ids = scope_of(legacy, new)
    finally:
        legacy.close()
        new.close()
    n = schema.nodes
    with store.read() as conn:
        for start in range(0, len(ids), _CHUNK):
            for fileid, etag in conn.execute(sa.select(n.c.fileid, n.c.etag).where(
                    n.c.parent.in_(ids[start:start + _CHUNK]))):
                scope.etags_before[int(fileid)] = etag
                scope.rows_read += 1
    return scope


def _legacy_folders(source: LegacySource, storage: int, scope: ChangedScope
                    ) -> Generator[FolderState]:
    c = source.t.filecache.c
    folder_ids = [i for i, name in source.mimetypes.names().items() if name == DIR_MIMETYPE]
    with contextlib.closing(source.rows(storage, where=c.mimetype.in_(folder_ids))) as batches:
        for batch in batches:
            scope.rows_read += len(batch)
            for row in batch:
                if row.path == FILES:
                    yield FolderState(row.fileid, "", row.etag, row.size)
                elif row.path.startswith(FILES + "/"):
                    yield FolderState(row.fileid, row.path[len(FILES) + 1:], row.etag, row.size)


def _new_folders(store: MetadataStore, uid: str, scope: ChangedScope
                 ) -> Generator[FolderState]:
    n = schema.nodes
    with store.read() as conn:
        result = conn.execution_options(stream_results=True, yield_per=1000).execute(
            sa.select(n.c.fileid, n.c.path, n.c.etag, n.c.size).where(
                n.c.owner == uid, n.c.area == AREA_FILES, n.c.is_dir.is_(True))
            .order_by(n.c.fileid))
        try:
            for fileid, path, etag, size in result:
                scope.rows_read += 1
                yield FolderState(int(fileid), path, etag, int(size))
        finally:
            result.close()


def compare_scope(legacy: FilesBackend, new: FilesBackend, uid: str, scope: ChangedScope,
                  *, content: str = "checksums") -> VerifyReport:
    """After the final delta: the changed folders' listings, every node of new subtrees, the
    content and versions of files whose etag moved, the trash and the favorites."""
    report = VerifyReport(uid=uid)
    try:
        for path in scope.folders:
            _compare_listing(legacy, new, uid, path, scope, content, report)
        pending = list(scope.new_subtrees)
        while pending:
            path = pending.pop()
            for node in _compare_listing(legacy, new, uid, path, scope, content, report,
                                         whole=True):
                if node.is_dir:
                    pending.append(node.path)
        _compare_trash(legacy, new, uid, report)
        _compare_favorites(legacy, new, uid, report)
    except Exception as exc:  # any failure means "could not verify": the gate does not pass
        report.error(f"comparing the changed folders stopped: {type(exc).__name__}: {exc}")
    return report


def _compare_listing(legacy: FilesBackend, new: FilesBackend, uid: str, path: str,
                     scope: ChangedScope, content: str, report: VerifyReport, *,
                     whole: bool = False) -> list[Node]:
    report.checked["folders"] += 1
    theirs = {n.name: n for n in legacy.children(uid, path)}
    ours = {n.name: n for n in new.children(uid, path)}
    for name in sorted(theirs.keys() - ours.keys()):
        report.add(MISSING, theirs[name].path, "", "present", None)
    for name in sorted(ours.keys() - theirs.keys()):
        report.add(UNEXPECTED, ours[name].path, "", None, "present")
    both = sorted(theirs.keys() & ours.keys())
    for name in both:
        a, b = theirs[name], ours[name]
        for fld in NODE_FIELDS:
            if getattr(a, fld) != getattr(b, fld):
                report.add(NODE, a.path, fld, getattr(a, fld), getattr(b, fld))
        report.checked["files" if not a.is_dir else "nodes"] += 1
        moved = whole or scope.etags_before.get(b.fileid) != b.etag
        if not a.is_dir and moved:
            _compare_file(legacy, new, uid, a, b, content, report)
    return [theirs[name] for name in both]


def _compare_file(legacy: FilesBackend, new: FilesBackend, uid: str, a: Node, b: Node,
                  content: str, report: VerifyReport) -> None:
    if content == "bytes" or (content == "checksums" and not a.checksum):
        if _sha1(legacy.read(uid, a)) != _sha1(new.read(uid, b)):
            report.add(CONTENT, a.path, "sha1", "legacy bytes", "other bytes")
        report.checked["files hashed"] += 1
    old = [(v.version_id, v.size, v.etag) for v in legacy.versions(uid, a.fileid)]
    mine = [(v.version_id, v.size, v.etag) for v in new.versions(uid, b.fileid)]
    if old != mine:
        report.add(VERSION, a.path, "versions", old, mine)


def _sha1(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha1()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _compare_trash(legacy: FilesBackend, new: FilesBackend, uid: str,
                   report: VerifyReport) -> None:
    def items(backend: FilesBackend) -> dict[int, tuple[object, ...]]:
        return {t.node.fileid: (t.original_name, t.original_location, t.deleted_at,
                                t.node.size, t.node.etag, t.node.is_dir)
                for t in backend.trash(uid)}

    old, mine = items(legacy), items(new)
    report.checked["trash entries"] += len(old)
    for fileid in sorted(old.keys() | mine.keys()):
        if old.get(fileid) != mine.get(fileid):
            report.add(TRASH, str(fileid), "item", old.get(fileid), mine.get(fileid))


def _compare_favorites(legacy: FilesBackend, new: FilesBackend, uid: str,
                       report: VerifyReport) -> None:
    old = [n.fileid for n in legacy.favorites(uid)]
    mine = [n.fileid for n in new.favorites(uid)]
    report.checked["favorites"] += len(old)
    if old != mine:
        report.add(FAVORITES, "", "fileids", old, mine)
