"""In-memory storage driver: the contract's reference behaviour and the fake for other tests."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from newstack.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    ChecksumAccumulator,
    LinkMode,
    check_blob_id,
    check_link_mode,
    check_range,
    iter_chunks,
    open_regular_file,
    size_mismatch,
    unsupported_link_mode,
)


class MemoryDriver:
    """Blobs in a dict; `blobs` is a read-only view for assertions in tests."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def blobs(self) -> dict[str, bytes]:
        with self._lock:
            return dict(self._blobs)

    def put(
        self, blob_id: str, stream: BinaryIO | Iterable[bytes], size: int | None = None
    ) -> BlobInfo:
        check_blob_id(blob_id)
        accumulator = ChecksumAccumulator()
        parts = []
        for chunk in iter_chunks(stream):
            accumulator.update(chunk)
            parts.append(chunk)
        if size is not None and size != accumulator.size:
            raise size_mismatch(blob_id, size, accumulator.size)
        data = b"".join(parts)
        with self._lock:
            self._blobs[blob_id] = data
        return BlobInfo(size=len(data), checksums=accumulator.checksums())

    def open(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_range(start, end)
        data = self._get(blob_id)
        stop = len(data) if end is None else min(end, len(data))
        view = memoryview(data)
        chunks = range(start, stop, CHUNK_SIZE)
        return (bytes(view[at : min(at + CHUNK_SIZE, stop)]) for at in chunks)

    def stat(self, blob_id: str) -> BlobInfo:
        return BlobInfo(size=len(self._get(blob_id)))

    def exists(self, blob_id: str) -> bool:
        check_blob_id(blob_id)
        with self._lock:
            return blob_id in self._blobs

    def delete(self, blob_id: str, *, missing_ok: bool = False) -> None:
        check_blob_id(blob_id)
        with self._lock:
            if self._blobs.pop(blob_id, None) is None and not missing_ok:
                raise BlobNotFoundError(errno.ENOENT, "blob not found", blob_id)

    def link_from_path(
        self, blob_id: str, path: str | Path, mode: LinkMode = "auto", *, checksums: bool = True
    ) -> BlobInfo:
        check_blob_id(blob_id)
        check_link_mode(mode)
        if mode not in ("auto", "copy"):
            raise unsupported_link_mode("memory", mode, path)
        with open_regular_file(path) as source:
            info = self.put(blob_id, source)
        return BlobInfo(size=info.size, checksums=info.checksums, linked_by="copy")

    def copy(self, src_blob: str, dst_blob: str) -> None:
        check_blob_id(dst_blob)
        data = self._get(src_blob)
        with self._lock:
            self._blobs[dst_blob] = data

    def _get(self, blob_id: str) -> bytes:
        check_blob_id(blob_id)
        with self._lock:
            try:
                return self._blobs[blob_id]
            except KeyError:
                raise BlobNotFoundError(errno.ENOENT, "blob not found", blob_id) from None
