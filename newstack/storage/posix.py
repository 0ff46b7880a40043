"""POSIX storage driver: one file per blob under a root directory, fanned out by blob id prefix.

Layout: `<root>/<id[0:2]>/<id[2:4]>/<id>` (short ids padded with `_`), temp files in `<root>/.tmp`.
Every write goes to a temp file, is fsynced and renamed into place, so a blob is whole or absent.
Paths are walked with directory fds and O_NOFOLLOW: a symlink inside the root is never followed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from newstack.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    ChecksumAccumulator,
    LinkMethod,
    LinkMode,
    StorageError,
    check_blob_id,
    check_link_mode,
    check_range,
    iter_chunks,
    size_mismatch,
)

TMP_DIR = ".tmp"
FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_MODE = 0o640
_DIR_MODE = 0o750
# errnos that mean "this way of importing does not work here", so "auto" tries the next way.
_UNSUPPORTED = {errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS}
_LINK_REFUSED = _UNSUPPORTED | {errno.EMLINK, errno.EPERM}


class PosixDriver:
    """Blobs as files under `root`; reflinks or hardlinks files from the same filesystem."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        # The root itself may be a symlink chosen by the operator; nothing below it may be.
        self.root = Path(root).resolve()
        self._fsync = fsync
        #: the filesystem refused a reflink once: "auto" stops trying (ext4, xfs without reflink)
        self._reflink_refused = False
        #: what an active `deferred_sync()` block holds open and still has to make durable
        self._deferred: _Deferred | None = None
        self._deferred_lock = threading.Lock()
        self._proc_fds = os.path.isdir("/proc/self/fd")
        with _os_errors(str(self.root)):
            (self.root / TMP_DIR).mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            self._device = os.stat(self.root / TMP_DIR).st_dev

    # -- the StorageDriver contract ---------------------------------------------------------------

    def put(
        self, blob_id: str, stream: BinaryIO | Iterable[bytes], size: int | None = None
    ) -> BlobInfo:
        check_blob_id(blob_id)
        return self._commit_copy(blob_id, iter_chunks(stream), size)

    def open(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_range(start, end)
        check_blob_id(blob_id)
        # one walk to the blob and an fstat of what was opened, rather than a stat and then a
        # second walk to read: 5 syscalls fewer per GET, and the file checked is the file read
        fd, size = self._open_regular(blob_id)
        stop = size if end is None else min(end, size)
        if 0 < start < stop:
            try:
                with _os_errors(blob_id):
                    os.lseek(fd, start, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
        return _BlobChunks(fd, blob_id, stop - start)

    def stat(self, blob_id: str) -> BlobInfo:
        check_blob_id(blob_id)
        with _os_errors(blob_id):
            leaf = self._open_leaf(blob_id)
            try:
                st = os.stat(blob_id, dir_fd=leaf, follow_symlinks=False)
            finally:
                os.close(leaf)
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(errno.ELOOP, "blob path is not a regular file", blob_id)
        return BlobInfo(size=st.st_size)

    def exists(self, blob_id: str) -> bool:
        try:
            self.stat(blob_id)
        except BlobNotFoundError:
            return False
        return True

    def delete(self, blob_id: str, *, missing_ok: bool = False) -> None:
        check_blob_id(blob_id)
        try:
            with _os_errors(blob_id), self._leaf_dir(blob_id) as leaf:
                os.unlink(blob_id, dir_fd=leaf)
                self._sync_dir(leaf)
        except BlobNotFoundError:
            if not missing_ok:
                raise

    def link_from_path(
        self, blob_id: str, path: str | Path, mode: LinkMode = "auto", *, checksums: bool = True
    ) -> BlobInfo:
        check_blob_id(blob_id)
        check_link_mode(mode)
        origin = str(path)
        fd = _open_source(path)
        try:
            # one fstat answers "regular file?", "same filesystem?" and the size of a link
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(errno.EINVAL, "can only import a regular file", origin)
            same_filesystem = st.st_dev == self._device
            if (not checksums and same_filesystem
                    and (mode == "hardlink" or (mode == "auto" and self._reflink_refused))):
                linked = self._link_unread(blob_id, fd, st.st_size, origin, mode)
                if linked is not None:
                    os.close(fd)
                    return linked
            if not same_filesystem or mode == "copy":
                copied = self._copy_small(blob_id, fd, st.st_size)
                if copied is not None:
                    os.close(fd)
                    return copied
            source = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with source:
            if mode != "auto":
                return self._import(blob_id, source, mode, origin, checksums)
            methods: tuple[LinkMethod, ...] = (
                ("reflink", "hardlink", "copy") if same_filesystem else ("copy",)
            )
            return self._import_first(blob_id, source, methods, origin, checksums)

    def _link_unread(self, blob_id: str, fd: int, size: int, origin: str, mode: LinkMode
                     ) -> BlobInfo | None:
        """The bulk import's common case on one filesystem without reflinks: hardlink the open
        source straight to the blob's free name, no byte read. None when the general path has
        to decide instead: the name is taken (replaced there by temp name and rename), or
        "auto" meets a refusal (the general path tries again and copies)."""
        if not self._proc_fds:
            return None  # the general path says why a hardlink cannot be made
        deferred = self._deferred
        leaf = -1
        try:
            if deferred is None:
                leaf = self._open_leaf(blob_id, create=True)
            else:
                leaf = self._deferred_dir(deferred, _fan_out(blob_id),
                                          lambda: self._open_leaf(blob_id, create=True))
            # the inode opened and checked, not whatever the path names by now
            os.link(f"/proc/self/fd/{fd}", blob_id, dst_dir_fd=leaf, follow_symlinks=True)
            if deferred is None and self._fsync:
                os.fsync(leaf)
        except FileExistsError:
            return None
        except OSError as exc:
            if mode == "auto" and exc.errno in _LINK_REFUSED:
                return None
            raise _storage_error(exc, blob_id, f"hardlink from {origin}") from exc
        finally:
            if deferred is None and leaf >= 0:
                os.close(leaf)
        return BlobInfo(size, None, linked_by="hardlink")

    def _copy_small(self, blob_id: str, fd: int, size: int) -> BlobInfo | None:
        """The bulk import's copy of a small file (inside deferred_sync(), at most CHUNK_SIZE):
        one read, the hashes, one write to a temp name, a rename, on raw descriptors and the
        block's open directories. None when the general path has to copy instead: outside a
        block, a bigger file, or one that grew since its fstat (more bytes than its size)."""
        deferred = self._deferred
        if deferred is None or size > CHUNK_SIZE:
            return None
        with _os_errors(blob_id):
            data = os.read(fd, size + 1)  # a short read of a regular file is its end
            if len(data) > size:
                return None
            accumulator = ChecksumAccumulator()
            accumulator.update(data)
            tmp_dir = self._deferred_dir(deferred, "", self._open_tmp_dir)
            leaf = self._deferred_dir(deferred, _fan_out(blob_id),
                                      lambda: self._open_leaf(blob_id, create=True))
            tmp_name = uuid.uuid4().hex
            out = os.open(tmp_name, _CREATE_FLAGS, _FILE_MODE, dir_fd=tmp_dir)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view):]
                    self._sync_file(out)  # in the block: left to its end
                finally:
                    os.close(out)
                # a new inode: unlike `_rename_into_place`, never the blob's own
                os.rename(tmp_name, blob_id, src_dir_fd=tmp_dir, dst_dir_fd=leaf)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name, dir_fd=tmp_dir)
                raise
        return BlobInfo(len(data), accumulator.checksums(), linked_by="copy")

    def _open_tmp_dir(self) -> int:
        return os.open(self.root / TMP_DIR, _DIR_FLAGS)

    def copy(self, src_blob: str, dst_blob: str) -> None:
        check_blob_id(src_blob)
        check_blob_id(dst_blob)
        # Blobs are only ever replaced by rename, never written in place, so sharing an inode
        # (hardlink) or extents (reflink) with the source is safe.
        with self._open_blob(src_blob) as source:
            self._import_first(dst_blob, source, ("reflink", "hardlink", "copy"), src_blob)

    # -- maintenance ------------------------------------------------------------------------------

    def remove_stale_temp_files(self, older_than_seconds: float = 24 * 3600) -> int:
        """Delete temp files a crashed writer left behind; returns how many were removed."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.root / TMP_DIR):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    # -- internals --------------------------------------------------------------------------------

    def _open_regular(self, blob_id: str) -> tuple[int, int]:
        """(read-only fd, size) of the blob, which must be a regular file, not a symlink or a
        FIFO (O_NONBLOCK: opening a FIFO planted in the root does not wait for a writer)."""
        with _os_errors(blob_id):
            leaf = self._open_leaf(blob_id)
            try:
                fd = os.open(blob_id, _READ_FLAGS, dir_fd=leaf)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self.stat(blob_id)  # says "not a regular file" for a symlink, socket...
                raise
            finally:
                os.close(leaf)
            try:
                st = os.fstat(fd)
            except BaseException:
                os.close(fd)
                raise
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise StorageError(errno.ELOOP, "blob path is not a regular file", blob_id)
        return fd, st.st_size

    @contextlib.contextmanager
    def _open_blob(self, blob_id: str) -> Iterator[BinaryIO]:
        with _os_errors(blob_id), self._leaf_dir(blob_id) as leaf:
            fd = os.open(blob_id, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=leaf)
        with os.fdopen(fd, "rb", buffering=0) as file:
            yield file

    def _import_first(
        self,
        blob_id: str,
        source: BinaryIO,
        methods: tuple[LinkMethod, ...],
        origin: str,
        checksums: bool = True,
    ) -> BlobInfo:
        if self._reflink_refused and len(methods) > 1:
            methods = tuple(m for m in methods if m != "reflink")
        for method in methods[:-1]:
            try:
                return self._import(blob_id, source, method, origin, checksums)
            except StorageError as exc:
                if exc.errno not in _LINK_REFUSED:
                    raise
                if method == "reflink" and exc.errno in _UNSUPPORTED:
                    self._reflink_refused = True
        return self._import(blob_id, source, methods[-1], origin, checksums)

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Hold back the fsyncs of blobs stored meanwhile and make them all durable at the end:
        one fsync per blob directory, or one syncfs of the filesystem when file data was
        written. A bulk import (migration) makes a batch durable before committing its
        metadata, instead of paying fsyncs per blob. The directories written to stay open
        for the block, so each blob costs no directory walk. It holds for every write through
        this driver instance meanwhile, so a bulk import uses an instance of its own (as
        `ocbridge migrate` and the cutover do), never a serving process's."""
        self.start_deferred_sync()
        try:
            yield
        finally:
            self.end_deferred_sync()()

    def start_deferred_sync(self) -> None:
        """`deferred_sync()` in two calls, for a caller that makes the batch durable on another
        thread: this one starts holding back fsyncs ..."""
        with self._deferred_lock:
            if self._deferred is not None:
                raise RuntimeError("deferred_sync() is already active on this driver")
            self._deferred = _Deferred()

    def end_deferred_sync(self) -> PendingSync:
        """... and this one ends the block and returns what is still to be made durable; the
        blobs stored in the block are durable once it has been called (on any thread, while
        later writes go on). Its close() gives up the sync (the batch is abandoned)."""
        with self._deferred_lock:
            pending, self._deferred = self._deferred, None
        if pending is None:
            raise RuntimeError("deferred_sync() is not active on this driver")
        return PendingSync(pending, self.root if self._fsync else None)

    def note_foreign_writes(self) -> None:
        """Blobs were written into this root by other processes (a migration's copy workers,
        which do not sync) during the active deferred_sync() block: its sync then flushes the
        whole filesystem, which makes theirs durable too."""
        deferred = self._deferred
        if deferred is None:
            raise RuntimeError("deferred_sync() is not active on this driver")
        deferred.data = True

    def _import(
        self, blob_id: str, source: BinaryIO, method: LinkMethod, origin: str,
        checksums: bool = True,
    ) -> BlobInfo:
        if method == "copy":
            source.seek(0)
            info = self._commit_copy(blob_id, iter_chunks(source), None)
            return BlobInfo(size=info.size, checksums=info.checksums, linked_by="copy")
        # hashed before linking (a read error stores nothing); without hashing no byte is read
        if checksums:
            source.seek(0)
            accumulator = ChecksumAccumulator()
            for chunk in iter_chunks(source):
                accumulator.update(chunk)
            size, sums = accumulator.size, accumulator.checksums()
        else:
            size, sums = os.fstat(source.fileno()).st_size, None
        if method == "hardlink" and self._link_in_place(blob_id, source, origin):
            return BlobInfo(size, sums, linked_by=method)
        with self._temp_name(blob_id) as (tmp_dir, tmp_name):
            with _os_errors(blob_id, f"{method} from {origin}"):
                if method == "reflink":
                    self._reflink(source, tmp_dir, tmp_name)
                else:
                    self._hardlink(source, tmp_dir, tmp_name)
            self._rename_into_place(blob_id, tmp_dir, tmp_name)
        return BlobInfo(size, sums, linked_by=method)

    def _link_in_place(self, blob_id: str, source: BinaryIO, origin: str) -> bool:
        """Hardlink the source straight to the blob's name when that name is free: link() makes
        a whole name for a whole inode atomically, so no temp name and rename are needed.
        False when the blob exists (then temp name and rename replace it atomically)."""
        if not self._proc_fds:
            raise StorageError(errno.EOPNOTSUPP, "hardlinking an open file needs /proc/self/fd",
                               origin)
        with _os_errors(blob_id, f"hardlink from {origin}"), \
                self._leaf_dir(blob_id, create=True) as leaf:
            try:
                os.link(f"/proc/self/fd/{source.fileno()}", blob_id, dst_dir_fd=leaf,
                        follow_symlinks=True)
            except FileExistsError:
                return False
            self._sync_dir(leaf)
        return True

    def _reflink(self, source: BinaryIO, tmp_dir: int, tmp_name: str) -> None:
        fd = os.open(tmp_name, _CREATE_FLAGS, _FILE_MODE, dir_fd=tmp_dir)
        try:
            fcntl.ioctl(fd, FICLONE, source.fileno())
            self._sync_file(fd)
        finally:
            os.close(fd)

    def _hardlink(self, source: BinaryIO, tmp_dir: int, tmp_name: str) -> None:
        # Link the inode we opened and checked, not whatever the path names by now.
        if not self._proc_fds:
            raise OSError(errno.EOPNOTSUPP, "hardlinking an open file needs /proc/self/fd")
        os.link(
            f"/proc/self/fd/{source.fileno()}", tmp_name, dst_dir_fd=tmp_dir, follow_symlinks=True
        )

    def _commit_copy(self, blob_id: str, chunks: Iterator[bytes], size: int | None) -> BlobInfo:
        accumulator = ChecksumAccumulator()
        with self._temp_name(blob_id) as (tmp_dir, tmp_name):
            with _os_errors(blob_id):
                fd = os.open(tmp_name, _CREATE_FLAGS, _FILE_MODE, dir_fd=tmp_dir)
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:  # the caller's stream: its exceptions pass through as they are
                    accumulator.update(chunk)
                    with _os_errors(blob_id):
                        tmp.write(chunk)
                if size is not None and size != accumulator.size:
                    raise size_mismatch(blob_id, size, accumulator.size)
                with _os_errors(blob_id):
                    tmp.flush()
                    self._sync_file(tmp.fileno())
            self._rename_into_place(blob_id, tmp_dir, tmp_name)
        return BlobInfo(size=accumulator.size, checksums=accumulator.checksums())

    @contextlib.contextmanager
    def _temp_name(self, blob_id: str) -> Iterator[tuple[int, str]]:
        """A unique name in the temp dir (as dir fd and name), unlinked if the block fails."""
        name = uuid.uuid4().hex
        with _os_errors(blob_id), self._cached_dir("", self._open_tmp_dir) as tmp_dir:
            try:
                yield tmp_dir, name
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=tmp_dir)
                raise

    def _rename_into_place(self, blob_id: str, tmp_dir: int, tmp_name: str) -> None:
        with _os_errors(blob_id), self._leaf_dir(blob_id, create=True) as leaf:
            os.rename(tmp_name, blob_id, src_dir_fd=tmp_dir, dst_dir_fd=leaf)
            self._sync_dir(leaf)
            # rename() does nothing when both names are links to one inode (the same file
            # imported twice by hardlink, or a blob copied onto itself), leaving the temp name
            # behind; a stat tells without the cost of a failing unlink every time
            if os.stat(blob_id, dir_fd=leaf, follow_symlinks=False).st_nlink > 1:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name, dir_fd=tmp_dir)

    def _sync_dir(self, dir_fd: int) -> None:
        # inside deferred_sync() every directory written to is one of the block's open
        # directories, synced at its end
        if self._fsync and self._deferred is None:
            os.fsync(dir_fd)

    def _sync_file(self, fd: int) -> None:
        if not self._fsync:
            return
        deferred = self._deferred
        if deferred is None:
            os.fsync(fd)
        else:
            deferred.data = True

    @contextlib.contextmanager
    def _leaf_dir(self, blob_id: str, create: bool = False) -> Iterator[int]:
        """An fd of the blob's fan-out directory, reached without following any symlink."""
        with self._cached_dir(_fan_out(blob_id),
                              lambda: self._open_leaf(blob_id, create)) as fd:
            yield fd

    @contextlib.contextmanager
    def _cached_dir(self, key: str, opener: Callable[[], int]) -> Iterator[int]:
        """A directory fd from `opener`, closed after use; inside deferred_sync() kept open
        under `key` for the rest of the block (and synced at its end)."""
        deferred = self._deferred
        if deferred is None:
            fd = opener()
            try:
                yield fd
            finally:
                os.close(fd)
            return
        yield self._deferred_dir(deferred, key, opener)

    def _deferred_dir(self, deferred: _Deferred, key: str, opener: Callable[[], int]) -> int:
        """The directory fd kept under `key` for a deferred_sync() block, opened on first use."""
        fd = deferred.leaves.get(key, -1)
        if fd < 0:
            fd = opener()
            with self._deferred_lock:
                kept = deferred.leaves.setdefault(key, fd)
            if kept != fd:  # another thread opened it meanwhile
                os.close(fd)
                fd = kept
        return fd

    def _open_leaf(self, blob_id: str, create: bool = False) -> int:
        """`_leaf_dir` as a plain fd, which the caller closes."""
        padded = blob_id.ljust(4, "_")
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in (padded[:2], padded[2:4]):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, _DIR_MODE, dir_fd=fd)
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd


class _Deferred:
    """The state of one deferred_sync() block: its open directories by fan-out prefix (the
    temp dir under ""), and whether file data waits for the final sync."""

    __slots__ = ("leaves", "data")

    def __init__(self) -> None:
        self.leaves: dict[str, int] = {}
        self.data = False

    def close_all(self) -> None:
        for fd in self.leaves.values():
            os.close(fd)


class PendingSync:
    """The fsyncs a deferred_sync() block still owes: call it once to make the block's blobs
    durable; the block's directory fds are closed either way, by the call or by close()."""

    __slots__ = ("_deferred", "_root", "_lock")

    def __init__(self, deferred: _Deferred | None, root: Path | None) -> None:
        self._deferred = deferred
        self._lock = threading.Lock()  # the fds are closed once, whichever thread gets there
        #: None: the driver does not fsync (tests), only the fds are closed
        self._root = root

    def __call__(self) -> None:
        with self._lock:  # taken over: a close() meanwhile finds nothing left to close
            pending, self._deferred = self._deferred, None
        if pending is None:
            return
        root = self._root
        try:
            if root is not None:
                with _os_errors(str(root), "syncing blobs"):
                    if pending.data:
                        _syncfs(pending.leaves.get("", -1), root)
                    else:
                        for prefix, fd in pending.leaves.items():
                            if prefix:
                                os.fsync(fd)
        finally:
            pending.close_all()

    def close(self) -> None:
        with self._lock:
            pending, self._deferred = self._deferred, None
        if pending is not None:
            pending.close_all()


def _syncfs(dir_fd: int, root: Path) -> None:
    """Flush the whole filesystem holding `root` (syncfs(2)): one call instead of an fsync per
    blob file; falls back to sync(2) where libc has no syncfs."""
    syncfs = getattr(_LIBC, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = dir_fd if dir_fd >= 0 else os.open(root, _DIR_FLAGS)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(root))
    finally:
        if fd != dir_fd:
            os.close(fd)


_LIBC = ctypes.CDLL(None, use_errno=True)


class _BlobChunks:
    """The chunks of an open blob (at most CHUNK_SIZE each); owns the fd and closes it at the
    end, on close() or when dropped. Reads exactly the bytes asked for: no 1 MiB buffer is
    allocated for a 4 KB file."""

    __slots__ = ("_fd", "_blob_id", "_remaining")

    def __init__(self, fd: int, blob_id: str, length: int) -> None:
        self._fd = fd
        self._blob_id = blob_id
        self._remaining = length

    def __iter__(self) -> _BlobChunks:
        return self

    def __next__(self) -> bytes:
        if self._remaining <= 0 or self._fd < 0:
            self.close()
            raise StopIteration
        try:
            chunk = os.read(self._fd, min(CHUNK_SIZE, self._remaining))
        except OSError as exc:
            self.close()
            with _os_errors(self._blob_id):
                raise exc from None
        if not chunk:  # shorter than its size said: end here, as reading to EOF did
            self.close()
            raise StopIteration
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


@contextlib.contextmanager
def _os_errors(name: str, action: str = "") -> Iterator[None]:
    """The one place this driver turns OS errors into storage errors."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise _storage_error(exc, name, action) from exc


def _storage_error(exc: OSError, name: str, action: str = "") -> StorageError:
    if exc.errno == errno.ENOENT:
        return BlobNotFoundError(errno.ENOENT, "blob not found", name)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return StorageError(
            errno.ELOOP, "refusing a symlink or non-directory inside the storage root", name
        )
    reason = exc.strerror or str(exc)
    return StorageError(exc.errno, f"{action}: {reason}" if action else reason, name)


def _fan_out(blob_id: str) -> str:
    """The blob's fan-out directory below the root, `ab/cd` (short ids padded with `_`)."""
    padded = blob_id.ljust(4, "_")
    return padded[:2] + "/" + padded[2:4]


def _open_source(path: str | Path) -> int:
    """A read-only fd of a file to import (`open_regular_file` without the file object, whose
    creation and close cost more than the link); the caller checks it is a regular file."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(errno.ELOOP, "refusing to import a symlink", str(path)) from None
        raise
