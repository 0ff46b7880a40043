"""The storage driver contract: blobs addressed by opaque ids, streamed in and out, with errors.

Drivers live one per module beside this one (`memory`, `posix`, `s3`) and are found by short name in
`registry.py`; `tests/newstack/storage/contract.py` is the executable form of this contract.

Errors every driver raises (builtin `OSError` subclasses: callers catch what they catch for files):

    OSError
    └── StorageError                  the store failed or refused an operation (errno says why)
        ├── BlobNotFoundError         also a FileNotFoundError: no blob with that id
        └── StorageUnavailableError   the store cannot be reached or is overloaded; retry later
    ValueError
    └── InvalidBlobIdError            the id breaks the blob id rules (the caller's bug)

SDK exceptions never leave a driver: each translates them in exactly one place.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

from bridge.oc10 import formats

CHUNK_SIZE = 1024 * 1024
"""Largest chunk `StorageDriver.open` yields and the read size drivers use on streams."""

LinkMode = Literal["auto", "reflink", "hardlink", "copy"]
LinkMethod = Literal["reflink", "hardlink", "copy"]
LINK_MODES: tuple[LinkMode, ...] = ("auto", "reflink", "hardlink", "copy")

MAX_BLOB_ID_LENGTH = 200
_BLOB_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class StorageError(OSError):
    """A storage operation failed; `errno` says why, `filename` names the blob id or path."""


class BlobNotFoundError(FileNotFoundError, StorageError):
    """No blob with this id exists (a `FileNotFoundError` and a `StorageError` alike)."""


class StorageUnavailableError(StorageError):
    """The store is unreachable, timed out or overloaded; the same call may succeed later."""


class InvalidBlobIdError(ValueError):
    """A blob id that could escape its namespace or is not portable across drivers."""


def check_blob_id(blob_id: str) -> str:
    """Return `blob_id` if it follows the rules all drivers enforce, else raise InvalidBlobIdError.

    Rules: 1 to 200 characters from `A-Z a-z 0-9 . _ -`, not starting with `.`, no `..`. So no `/`,
    no NUL, nothing that is a path; the id is safe as a file name and as an S3 key everywhere.
    """
    if (
        not isinstance(blob_id, str)
        or not 0 < len(blob_id) <= MAX_BLOB_ID_LENGTH
        or not _BLOB_ID.fullmatch(blob_id)
        or ".." in blob_id
    ):
        raise InvalidBlobIdError(
            f"invalid blob id {blob_id!r}: use 1-{MAX_BLOB_ID_LENGTH} characters from "
            "A-Z a-z 0-9 . _ -, not starting with '.' and without '..'"
        )
    return blob_id


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range start={start} end={end}: need 0 <= start <= end")


def check_link_mode(mode: str) -> None:
    if mode not in LINK_MODES:
        raise ValueError(f"invalid link mode {mode!r}: use one of {', '.join(LINK_MODES)}")


@dataclass(frozen=True)
class Checksums:
    """The ownCloud 10 checksum triple, lowercase hex."""

    sha1: str
    md5: str
    adler32: str

    def oc10(self) -> str:
        """The `oc_filecache.checksum` form: `SHA1:<hex> MD5:<hex> ADLER32:<hex>`."""
        return f"SHA1:{self.sha1} MD5:{self.md5} ADLER32:{self.adler32}"


@dataclass(frozen=True)
class BlobInfo:
    """What a driver knows about a stored blob.

    `checksums` is set by the calls that read every byte on the way in (`put`, `link_from_path`);
    `linked_by` says how `link_from_path` stored the file.
    """

    size: int
    checksums: Checksums | None = None
    linked_by: LinkMethod | None = None


class ChecksumAccumulator(formats.ChecksumAccumulator):
    """SHA1, MD5 and ADLER32 of a stream fed chunk by chunk (bridge.oc10.formats), plus its
    size, as the drivers report them."""

    def checksums(self) -> Checksums:
        sha1, md5, adler32 = self.hexdigests()
        return Checksums(sha1=sha1, md5=md5, adler32=adler32)


def iter_chunks(source: BinaryIO | Iterable[bytes | bytearray | memoryview]) -> Iterator[bytes]:
    """The non-empty chunks of a binary file object (read CHUNK_SIZE at a time) or an iterable."""
    read = getattr(source, "read", None)
    if read is not None:
        while chunk := read(CHUNK_SIZE):
            yield bytes(chunk) if not isinstance(chunk, bytes) else chunk
        return
    for chunk in source:
        if chunk:
            yield bytes(chunk) if not isinstance(chunk, bytes) else chunk


def open_regular_file(path: str | Path) -> BinaryIO:
    """Open `path` for reading; StorageError for a symlink or anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(errno.ELOOP, "refusing to import a symlink", str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(errno.EINVAL, "can only import a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def size_mismatch(blob_id: str, expected: int, actual: int) -> StorageError:
    return StorageError(
        errno.EIO,
        f"stream gave {actual} bytes but the caller announced {expected}; nothing was stored",
        blob_id,
    )


def unsupported_link_mode(driver: str, mode: str, path: str | Path) -> StorageError:
    return StorageError(
        errno.EOPNOTSUPP,
        f"the {driver} driver cannot import a file by {mode}; use mode 'auto' or 'copy'",
        str(path),
    )


@runtime_checkable
class StorageDriver(Protocol):
    """Stores immutable-by-convention byte blobs under opaque ids; all methods are thread-safe.

    Ids follow `check_blob_id` and every method raises InvalidBlobIdError for a bad one before any
    I/O. Metadata (names, folders, renames) lives elsewhere, so a rename never touches a blob.
    """

    def put(
        self, blob_id: str, stream: BinaryIO | Iterable[bytes], size: int | None = None
    ) -> BlobInfo:
        """Store the bytes of `stream` (a binary file object or an iterable of bytes) as `blob_id`.

        Streams with bounded memory whatever the size; `size`, when given, must match the stream
        (else StorageError, nothing stored). Replaces an existing blob atomically: readers see the
        old or the new bytes, never a mix or a partial blob. An exception raised by `stream` itself
        propagates unchanged and leaves nothing behind. Returns the size and the checksums.
        """
        ...

    def open(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes in [start, end) in chunks of at most CHUNK_SIZE.

        `end` None or past the size means "to the end"; `start` at or past the size yields nothing.
        Raises BlobNotFoundError when called (not on first iteration); ValueError for start < 0 or
        end < start. Call `close()` on the iterator when stopping early.
        """
        ...

    def stat(self, blob_id: str) -> BlobInfo:
        """The blob's size (no checksums: drivers do not keep them); BlobNotFoundError if none."""
        ...

    def exists(self, blob_id: str) -> bool: ...

    def delete(self, blob_id: str, *, missing_ok: bool = False) -> None:
        """Remove the blob; BlobNotFoundError if there is none, unless `missing_ok`."""
        ...

    def link_from_path(
        self, blob_id: str, path: str | Path, mode: LinkMode = "auto", *, checksums: bool = True
    ) -> BlobInfo:
        """Import the regular file at `path` (never a symlink) as `blob_id`, with its checksums.

        "reflink" shares extents (copy-on-write), "hardlink" shares the inode, "copy" copies bytes;
        a driver that cannot do the mode asked for raises StorageError (EOPNOTSUPP, EXDEV...) and
        stores nothing. "auto" picks the cheapest that works. The result's `linked_by` says which.
        `checksums=False` lets a reflink or hardlink skip reading the file (checksums None then);
        a copy reads every byte anyway and always returns them.
        """
        ...

    def copy(self, src_blob: str, dst_blob: str) -> None:
        """Make `dst_blob` a copy of `src_blob` (inside the store where possible)."""
        ...
