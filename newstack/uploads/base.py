"""The upload staging contract: where chunks of chunked uploads wait until they are assembled.

newstack/dav/chunking.py speaks only to `UploadStaging`; `metadata.py` keeps chunks as nodes of
the metadata store plus driver blobs (the native backend), `directory.py` as plain files where
ownCloud 10 keeps them (`<home>/uploads/<transfer id>/<chunk>`, the oc10 backend).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from newstack.backend import BackendError, InvalidPathError

#: what a client may not use in an upload folder or chunk name (besides '', '.', '..')
_BAD_NAME: Final = re.compile(r"[\x00-\x1f\\/]")
MAX_NAME_CHARS: Final = 250


@dataclass(frozen=True)
class UploadEntry:
    """A user's uploads root, an upload folder or a chunk.

    `path` is relative to the user's uploads root: '' for the root, `<folder>` for an upload
    folder (the NG transfer id, or `.chunking-v1-…` for v1), `<folder>/<chunk>` for a chunk.
    """

    fileid: int
    owner: str
    path: str
    name: str
    is_dir: bool
    size: int
    mtime: int
    etag: str
    checksum: str = ""
    #: where the staging keeps the bytes (a blob id, a file below the root); opaque to callers
    ref: str = ""

    @property
    def folder(self) -> str:
        """The upload folder this entry is or belongs to ('' for the root)."""
        return self.path.partition("/")[0]


class CorruptChunkError(BackendError):
    """A chunk's bytes are gone or differ from what was stored (the upload cannot complete)."""


class UploadStaging(Protocol):
    """Upload folders and chunks of all users.

    Contract:
    - Thread-safe and without per-request state; every process sharing the staging's storage
      sees every chunk, whichever process received it.
    - Listings are ordered by name in byte order (UTF-8), like oc_filecache listings.
    - A chunk is whole or absent: a body that breaks off (IncompleteBodyError) or fails to
      store leaves nothing visible, and a re-sent chunk replaces the old one in one step.
    - Names are single path segments. Writers refuse others with InvalidPathError (the
      message of `check_name`); readers answer None / [] for them.
    - Storage that cannot be reached raises StorageUnavailableError; a missing upload folder
      on a write raises ConflictError, an existing one on create_folder AlreadyExistsError.
    - Every write touches the upload folder's mtime, which `cleanup` goes by.
    """

    def root(self, uid: str) -> UploadEntry | None:
        """The user's uploads root; None before the user's first chunked upload."""

    def folder(self, uid: str, name: str) -> UploadEntry | None:
        """An upload folder, None if there is none (or a chunk-less name is not a folder)."""

    def chunk(self, uid: str, folder: str, name: str) -> UploadEntry | None: ...

    def folders(self, uid: str) -> list[UploadEntry]:
        """The user's upload folders."""

    def chunks(self, uid: str, folder: str) -> list[UploadEntry]:
        """The chunks of an upload folder ([] if there is no such folder)."""

    def create_folder(self, uid: str, name: str) -> UploadEntry:
        """MKCOL of an upload folder; AlreadyExistsError if there is one of that name."""

    def put_chunk(self, uid: str, folder: str, name: str, body: BinaryIO, length: int | None,
                  *, create_folder: bool = False) -> tuple[UploadEntry, bool]:
        """Store one chunk from a request body, streamed; (the chunk, True if new). Without
        create_folder a missing upload folder is a ConflictError."""

    def delete(self, entry: UploadEntry) -> None:
        """Remove an upload folder (with its chunks) or one chunk; gone already is fine."""

    def claim(self, uid: str, folder: str, names: Sequence[str]) -> list[UploadEntry] | None:
        """If the folder holds a chunk for every name, take the folder away atomically (so only
        one request assembles) and return those chunks in `names` order, still readable with
        `open_chunk` until `release`. None while chunks are missing or another took it."""

    def open_chunk(self, chunk: UploadEntry) -> Iterator[bytes]:
        """A chunk's bytes, at most CHUNK_SIZE at a time; close() the iterator when done.
        StorageUnavailableError if it cannot be read, CorruptChunkError if nothing holds it."""

    def release(self, chunks: Sequence[UploadEntry]) -> None:
        """Drop claimed chunks (and the rest of their folder) after assembly, written or not."""

    def cleanup(self, older_than_seconds: float, *, now: float | None = None) -> int:
        """Remove upload folders (NG and v1) untouched for `older_than_seconds`; returns how
        many went. oC10: `occ dav:cleanup-chunks`."""


def check_name(name: str) -> None:
    """InvalidPathError unless `name` may name an upload folder or a chunk."""
    if _BAD_NAME.search(name) or len(name) > MAX_NAME_CHARS or name in ("", ".", ".."):
        raise InvalidPathError(f"{name[:40]!r} is not a valid name for an upload or a chunk")


