"""Upload staging of the native backend: `uploads` nodes in the MetadataStore, chunk bytes as
blobs of its StorageDriver (UploadStaging in newstack/uploads/base.py)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, Final

from sqlalchemy import Connection

from bridge.oc10.mimetypes import DIR_MIMETYPE, mimetype_for
from newstack.backend import AlreadyExistsError, ConflictError, StorageUnavailableError
from newstack.metadata.store import (
    FILE_PERMISSIONS,
    FOLDER_PERMISSIONS,
    Changes,
    MetadataStore,
    NodeRecord,
    new_blob_id,
)
from newstack.rules import body_chunks
from newstack.storage.base import StorageDriver, StorageError
from newstack.uploads.base import CorruptChunkError, UploadEntry

log = logging.getLogger("ocbridge.newstack.uploads")

#: the nodes area holding upload folders and chunks (besides 'files' and 'trash')
AREA_UPLOADS: Final = "uploads"


class MetadataUploads:
    """Upload folders and chunks of all users as nodes of the `uploads` area plus driver blobs.

    oC10 keeps chunks in oc_filecache too (a separate uploads storage), so chunks have
    fileids; and every process sharing the metadata service and the driver sees every chunk.
    Entries' `ref` is the blob id.
    """

    def __init__(self, store: MetadataStore, driver: StorageDriver,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.driver = driver
        self._clock = clock

    # -- reading --------------------------------------------------------------------------------

    def root(self, uid: str) -> UploadEntry | None:
        with self.store.read() as conn:
            return _entry(self.store.node(conn, uid, AREA_UPLOADS, ""))

    def folder(self, uid: str, name: str) -> UploadEntry | None:
        with self.store.read() as conn:
            node = self.store.node(conn, uid, AREA_UPLOADS, name)
        return _entry(node) if node is not None and node.is_dir else None

    def chunk(self, uid: str, folder: str, name: str) -> UploadEntry | None:
        with self.store.read() as conn:
            return _entry(self.store.node(conn, uid, AREA_UPLOADS, f"{folder}/{name}"))

    def folders(self, uid: str) -> list[UploadEntry]:
        return self._children(uid, "")

    def chunks(self, uid: str, folder: str) -> list[UploadEntry]:
        return self._children(uid, folder)

    def _children(self, uid: str, path: str) -> list[UploadEntry]:
        with self.store.read() as conn:
            node = self.store.node(conn, uid, AREA_UPLOADS, path)
            if node is None or not node.is_dir:
                return []
            return [_record_entry(child) for child in self.store.children(conn, node.fileid)]

    # -- writing --------------------------------------------------------------------------------

    def create_folder(self, uid: str, name: str) -> UploadEntry:
        now = self._clock()
        with self.store.write(uid) as conn:
            if self.store.node(conn, uid, AREA_UPLOADS, name) is not None:
                raise AlreadyExistsError(f"upload folder {name!r} exists")
            return _record_entry(self._insert_folder(conn, uid, name, now))

    def put_chunk(self, uid: str, folder: str, name: str, body: BinaryIO, length: int | None,
                  *, create_folder: bool = False) -> tuple[UploadEntry, bool]:
        blob_id = new_blob_id()
        try:
            info = self.driver.put(blob_id, body_chunks(body, length, None, name))
        except StorageError as exc:
            raise StorageUnavailableError(f"cannot store chunk {folder}/{name}: {exc}") from exc
        now = self._clock()
        garbage: list[str] = []
        try:
            with self.store.write(uid) as conn:
                parent = self.store.node(conn, uid, AREA_UPLOADS, folder)
                if parent is None or not parent.is_dir:
                    if not create_folder or parent is not None:
                        raise ConflictError(
                            "Files cannot be created in non-existent collections")
                    parent = self._insert_folder(conn, uid, folder, now)
                path = f"{folder}/{name}"
                existing = self.store.node(conn, uid, AREA_UPLOADS, path)
                etag = secrets.token_hex(16)
                checksum = info.checksums.oc10() if info.checksums else ""
                changes = Changes()
                if existing is None:
                    fileid = self.store.allocate_fileids(1, conn)[0]
                    self.store.insert_node(conn, NodeRecord(
                        fileid=fileid, owner=uid, area=AREA_UPLOADS, path=path,
                        parent=parent.fileid, name=name, is_dir=False, size=info.size,
                        mtime=int(now), etag=etag, checksum=checksum,
                        mimetype=mimetype_for(name), permissions=FILE_PERMISSIONS,
                        blob_id=blob_id))
                    changes.add(AREA_UPLOADS, path, info.size)
                else:
                    fileid = existing.fileid
                    self.store.update_node(conn, fileid, size=info.size, mtime=int(now),
                                           etag=etag, checksum=checksum, blob_id=blob_id)
                    if existing.blob_id:
                        garbage.append(existing.blob_id)
                    changes.add(AREA_UPLOADS, path, info.size - max(existing.size, 0))
                self.store.propagate(conn, uid, changes, etag=self.store.uniqid.next(now),
                                     mtime=int(now))
                stored = self.store.node_by_id(conn, fileid)
        except BaseException:
            self._delete_blobs([blob_id])
            raise
        self._delete_blobs(garbage)
        assert stored is not None
        return _record_entry(stored), existing is None

    def delete(self, entry: UploadEntry) -> None:
        now = self._clock()
        with self.store.write(entry.owner) as conn:
            current = self.store.node_by_id(conn, entry.fileid)
            if current is None:
                return
            blobs = self.store.delete_subtree(conn, current)
            changes = Changes()
            changes.add(AREA_UPLOADS, current.path, -max(current.size, 0))
            self.store.propagate(conn, entry.owner, changes,
                                 etag=self.store.uniqid.next(now), mtime=int(now))
        self._delete_blobs(blobs)

    def claim(self, uid: str, folder: str, names: Sequence[str]) -> list[UploadEntry] | None:
        """The folder's rows go in one transaction; the blobs of the claimed chunks stay until
        release(), those of other chunks go now."""
        now = self._clock()
        with self.store.write(uid) as conn:
            node = self.store.node(conn, uid, AREA_UPLOADS, folder)
            if node is None:
                return None
            present = {c.name: c for c in self.store.children(conn, node.fileid)}
            if any(name not in present for name in names):
                return None
            self.store.delete_subtree(conn, node)
            changes = Changes()
            changes.add(AREA_UPLOADS, folder, -max(node.size, 0))
            self.store.propagate(conn, uid, changes, etag=self.store.uniqid.next(now),
                                 mtime=int(now))
        claimed = [present[name] for name in names]
        taken = {c.blob_id for c in claimed}
        self._delete_blobs(c.blob_id for c in present.values()
                           if c.blob_id and c.blob_id not in taken)
        return [_record_entry(c) for c in claimed]

    def open_chunk(self, chunk: UploadEntry) -> Iterator[bytes]:
        if not chunk.ref:
            raise CorruptChunkError(f"chunk {chunk.path} has no blob")
        try:
            return _translated(self.driver.open(chunk.ref), chunk.path)
        except StorageError as exc:
            raise StorageUnavailableError(f"cannot read chunk {chunk.path}: {exc}") from exc

    def release(self, chunks: Sequence[UploadEntry]) -> None:
        self._delete_blobs(c.ref for c in chunks)

    def cleanup(self, older_than_seconds: float, *, now: float | None = None) -> int:
        """A chunk PUT touches its folder (propagation), so the folder mtime is the last use."""
        cutoff = (self._clock() if now is None else now) - older_than_seconds
        removed = 0
        for user in self.store.list_users():
            for folder in self.folders(user.uid):
                if folder.mtime < cutoff:
                    self.delete(folder)
                    removed += 1
        return removed

    # -- helpers --------------------------------------------------------------------------------

    def _delete_blobs(self, blob_ids: Iterable[str | None]) -> None:
        # after the commit: a blob that cannot go now is an orphan, never a broken chunk
        for blob_id in blob_ids:
            if not blob_id:
                continue
            try:
                self.driver.delete(blob_id, missing_ok=True)
            except StorageError:
                log.warning("could not delete chunk blob %s", blob_id, exc_info=True)

    def _insert_folder(self, conn: Connection, uid: str, name: str, now: float) -> NodeRecord:
        root = self.store.node(conn, uid, AREA_UPLOADS, "")
        if root is None:
            root = self.store.make_root(conn, uid, AREA_UPLOADS, now)
        etag = self.store.uniqid.next(now)
        folder = NodeRecord(
            fileid=self.store.allocate_fileids(1, conn)[0], owner=uid, area=AREA_UPLOADS,
            path=name, parent=root.fileid, name=name, is_dir=True, size=0, mtime=int(now),
            etag=etag, checksum="", mimetype=DIR_MIMETYPE, permissions=FOLDER_PERMISSIONS,
            blob_id=None)
        self.store.insert_node(conn, folder)
        changes = Changes()
        changes.add(AREA_UPLOADS, name)
        self.store.propagate(conn, uid, changes, etag=etag, mtime=int(now))
        return folder


def _translated(pieces: Iterator[bytes], where: str) -> Iterator[bytes]:
    try:
        yield from pieces  # closing this closes the driver's iterator too
    except StorageError as exc:
        raise StorageUnavailableError(f"cannot read chunk {where}: {exc}") from exc


def _record_entry(record: NodeRecord) -> UploadEntry:
    return UploadEntry(fileid=record.fileid, owner=record.owner, path=record.path,
                       name=record.name, is_dir=record.is_dir, size=record.size,
                       mtime=record.mtime, etag=record.etag, checksum=record.checksum or "",
                       ref=record.blob_id or "")


def _entry(record: NodeRecord | None) -> UploadEntry | None:
    return None if record is None else _record_entry(record)
