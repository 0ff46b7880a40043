"""The cutover gate under the freeze, scoped to what changed: the full comparison
(migrate/verify.py) runs before the freeze while the user works; under the freeze only the
folders whose ownCloud etag moved since then are compared, so the freeze grows with the change,
not with the tree (docs/cutover.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

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


def changed_scope(legacy: FilesBackend, new: FilesBackend, uid: str) -> ChangedScope:
    """Before the final delta: walk both trees from the root, opening only folders whose etags
    differ (ownCloud moves every ancestor's etag on a change; the new stack holds the etags it
    copied), so the cost is that of the change."""
    scope = ChangedScope()
    pending = [(legacy.stat(uid, ""), new.stat(uid, ""))]
    while pending:
        old, mine = pending.pop()
        if (old.etag, old.size) == (mine.etag, mine.size):
            continue
        scope.folders.append(old.path)
        theirs = legacy.children(uid, old.path)
        ours = {n.name: n for n in new.children(uid, mine.path)}
        scope.rows_read += len(theirs) + len(ours)
        scope.etags_before.update((n.fileid, n.etag) for n in ours.values())
        for child in theirs:
            counterpart = ours.get(child.name)
            if not child.is_dir:
                continue
            if counterpart is None or not counterpart.is_dir:
                scope.new_subtrees.append(child.path)
            else:
                pending.append((child, counterpart))
    return scope


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
