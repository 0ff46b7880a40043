"""The cutover gate under the freeze, scoped to what changed: the full comparison
(migrate/verify.py) runs before the freeze while the user works; under the freeze only the
folders whose ownCloud etag moved since then are compared, so the freeze grows with the change,
not with the tree (docs/cutover.md)."""

from __future__ import annotations

import contextlib
import hashlib
import operator
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
from newstack.backend import FilesBackend, Node, Version
from newstack.metadata import schema
from newstack.metadata.schema import AREA_FILES
from newstack.metadata.store import MetadataStore

#: ids per IN (...): below every database's bound-parameter limit
_CHUNK = 500
#: Node fields that must be equal (the name is the key)
NODE_FIELDS = ("fileid", "is_dir", "size", "mtime", "etag", "permissions", "mimetype",
               "checksum")
#: a node's NODE_FIELDS as one tuple: equal nodes (nearly all) cost one comparison in C
_node_key = operator.attrgetter(*NODE_FIELDS)


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
    content and versions of files whose etag moved, the trash and the favorites. Folders are
    listed and versions read a chunk at a time on each side (`children_many`,
    `versions_many`): a few queries per chunk, and memory that follows the change."""
    report = VerifyReport(uid=uid)
    try:
        for start in range(0, len(scope.folders), _CHUNK):
            _compare_listings(legacy, new, uid, scope.folders[start:start + _CHUNK], scope,
                              content, report)
        pending = list(scope.new_subtrees)
        while pending:
            paths, pending = pending[-_CHUNK:], pending[:-_CHUNK]
            for node in _compare_listings(legacy, new, uid, paths, scope, content, report,
                                          whole=True):
                if node.is_dir:
                    pending.append(node.path)
        _compare_trash(legacy, new, uid, report)
        _compare_favorites(legacy, new, uid, report)
    except Exception as exc:  # any failure means "could not verify": the gate does not pass
        report.error(f"comparing the changed folders stopped: {type(exc).__name__}: {exc}")
    return report


def _compare_listings(legacy: FilesBackend, new: FilesBackend, uid: str, paths: list[str],
                      scope: ChangedScope, content: str, report: VerifyReport, *,
                      whole: bool = False) -> list[Node]:
    """One chunk of folders: their listings on both sides, then the files whose etag moved
    (all files of new subtrees). Returns the nodes present on both sides."""
    theirs_by_path = legacy.children_many(uid, paths)
    ours_by_path = new.children_many(uid, paths)
    both: list[Node] = []
    moved: list[tuple[Node, Node]] = []
    for path in paths:
        report.checked["folders"] += 1
        if path not in theirs_by_path or path not in ours_by_path:
            side = "ownCloud 10" if path not in theirs_by_path else "the new stack"
            report.error(f"folder {path!r} could not be listed: not found on {side}")
            continue
        listed, changed = compare_listing(theirs_by_path[path], ours_by_path[path], scope,
                                          report, whole=whole)
        both.extend(listed)
        moved.extend(changed)
    for start in range(0, len(moved), _CHUNK):
        _compare_files(legacy, new, uid, moved[start:start + _CHUNK], content, report)
    return both


def compare_listing(theirs_listed: list[Node], ours_listed: list[Node], scope: ChangedScope,
                    report: VerifyReport, *, whole: bool = False
                    ) -> tuple[list[Node], list[tuple[Node, Node]]]:
    """One folder's children on both sides → (ownCloud's nodes present on both sides, the
    (legacy, new) files whose content and versions are compared: every file of a new subtree,
    else those whose etag on the new stack moved since the scope was taken)."""
    theirs = {n.name: n for n in theirs_listed}
    ours = {n.name: n for n in ours_listed}
    for name in sorted(theirs.keys() - ours.keys()):
        report.add(MISSING, theirs[name].path, "", "present", None)
    for name in sorted(ours.keys() - theirs.keys()):
        report.add(UNEXPECTED, ours[name].path, "", None, "present")
    both = sorted(theirs.keys() & ours.keys())
    moved: list[tuple[Node, Node]] = []
    etags_before = scope.etags_before
    folders = 0
    for name in both:
        a, b = theirs[name], ours[name]
        if _node_key(a) != _node_key(b):
            for fld in NODE_FIELDS:
                if getattr(a, fld) != getattr(b, fld):
                    report.add(NODE, a.path, fld, getattr(a, fld), getattr(b, fld))
        if a.is_dir:
            folders += 1
        elif whole or etags_before.get(b.fileid) != b.etag:
            moved.append((a, b))
    if folders:  # no zero counts in the report: it lists what was checked
        report.checked["nodes"] += folders
    if len(both) > folders:
        report.checked["files"] += len(both) - folders
    return [theirs[name] for name in both], moved


def _compare_files(legacy: FilesBackend, new: FilesBackend, uid: str,
                   files: list[tuple[Node, Node]], content: str, report: VerifyReport) -> None:
    """Content (when it is to be hashed) and versions of (legacy, new) file pairs."""
    for a, b in files:
        if content == "bytes" or (content == "checksums" and not a.checksum):
            if _sha1(legacy.read(uid, a)) != _sha1(new.read(uid, b)):
                report.add(CONTENT, a.path, "sha1", "legacy bytes", "other bytes")
            report.checked["files hashed"] += 1
    theirs = legacy.versions_many(uid, [a.fileid for a, _ in files])
    ours = new.versions_many(uid, [b.fileid for _, b in files])
    for a, b in files:
        if a.fileid not in theirs or b.fileid not in ours:
            side = "ownCloud 10" if a.fileid not in theirs else "the new stack"
            report.error(f"versions of {a.path!r} could not be read: not a file on {side}")
            continue
        old = version_keys(theirs[a.fileid])
        mine = version_keys(ours[b.fileid])
        if old != mine:
            report.add(VERSION, a.path, "versions", old, mine)


def version_keys(versions: Iterable[Version]) -> list[tuple[int, int, str]]:
    """What the gate compares of a file's versions: id, size and etag, newest first."""
    return [(v.version_id, v.size, v.etag) for v in versions]


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
