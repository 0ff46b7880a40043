"""Upload staging as plain files where ownCloud 10 keeps them: `<home>/uploads/<transfer id>/
<chunk name>` (REFERENCE §3.3, §6.7), for the oc10 backend (UploadStaging in base.py).

Chunks are written to `.ocbridge-part-<hex>.part` in their folder, fsynced and renamed into
place (oC10's scanner skips `*.part`); v1 claims and deletions first rename the folder to
`.ocbridge-claim-<hex>` / `.ocbridge-gone-<hex>`. These names are hidden and refused. Below
each user's uploads root every path is walked with directory fds and O_NOFOLLOW.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Final

from bridge.oc10.formats import file_etag, uniqid
from newstack.backend import (
    AlreadyExistsError,
    ConflictError,
    InvalidPathError,
    StorageUnavailableError,
)
from newstack.rules import body_chunks
from newstack.storage.base import CHUNK_SIZE
from newstack.uploads.base import UploadEntry, check_name

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_MODE: Final = 0o640
_DIR_MODE: Final = 0o750
#: names the staging uses for itself; never listed, refused as client names
_INTERNAL: Final = re.compile(r"\.ocbridge-(?:part|claim|gone)-[0-9a-f]{32}(?:\.part)?")
_NAME_MAX_BYTES: Final = 255
#: ids of entries with no oc_filecache row: 2^52 + 52 bits of a hash of (uid, path), above
#: every oC10 fileid and the native id range (newstack.fileid_base), stable across processes
_ID_BASE: Final = 1 << 52


class DirectoryUploads:
    """Upload folders and chunks as directories and files below `root_for_user(uid)`.

    Ids and etags come from the filesystem, so every process serving the same directory sees
    the same values: chunk etags are Local::getETag's md5(mtime, inode, device, size), folder
    etags uniqid() of the folder's mtime, fileids a hash of (uid, path) (see _ID_BASE).
    `users` lists the uids cleanup() visits; `fsync` as for the POSIX storage driver.
    """

    def __init__(self, root_for_user: Callable[[str], Path], *,
                 users: Callable[[], Iterable[str]] | None = None, fsync: bool = True) -> None:
        self._root_for_user = root_for_user
        self._users = users
        self._fsync = fsync

    # -- reading --------------------------------------------------------------------------------

    def root(self, uid: str) -> UploadEntry | None:
        with self._root(uid) as root:
            return None if root is None else _entry(uid, "", os.fstat(root))

    def folder(self, uid: str, name: str) -> UploadEntry | None:
        if not _readable(name):
            return None
        with self._root(uid) as root:
            st = None if root is None else _lstat(root, name, uid)
        return _entry(uid, name, st) if st is not None and stat.S_ISDIR(st.st_mode) else None

    def chunk(self, uid: str, folder: str, name: str) -> UploadEntry | None:
        if not (_readable(folder) and _readable(name)):
            return None
        with self._folder(uid, folder) as fd:
            st = None if fd is None else _lstat(fd, name, uid)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        return _entry(uid, f"{folder}/{name}", st)

    def folders(self, uid: str) -> list[UploadEntry]:
        with self._root(uid) as root:
            return [] if root is None else _listing(root, uid, "", stat.S_ISDIR)

    def chunks(self, uid: str, folder: str) -> list[UploadEntry]:
        if not _readable(folder):
            return []
        with self._folder(uid, folder) as fd:
            return [] if fd is None else _listing(fd, uid, folder, stat.S_ISREG)

    # -- writing --------------------------------------------------------------------------------

    def create_folder(self, uid: str, name: str) -> UploadEntry:
        _check_writable(name)
        with self._root(uid, create=True) as root:
            assert root is not None
            try:
                os.mkdir(name, _DIR_MODE, dir_fd=root)
            except FileExistsError:
                raise AlreadyExistsError(f"upload folder {name!r} exists") from None
            except OSError as exc:
                raise _unavailable(uid, name, exc) from exc
            self._sync(root, uid)
            st = _lstat(root, name, uid)
        if st is None:  # removed again at once
            raise _folder_gone()
        return _entry(uid, name, st)

    def put_chunk(self, uid: str, folder: str, name: str, body: BinaryIO, length: int | None,
                  *, create_folder: bool = False) -> tuple[UploadEntry, bool]:
        _check_writable(folder)
        _check_writable(name)
        path = f"{folder}/{name}"
        with self._root(uid, create=create_folder) as root:
            if root is None:
                raise _folder_gone()
            if create_folder:
                try:
                    os.mkdir(folder, _DIR_MODE, dir_fd=root)
                    self._sync(root, uid)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise _unavailable(uid, folder, exc) from exc
            with _subdir(root, folder, uid) as fd:
                if fd is None:
                    raise _folder_gone()
                st, created = self._write(fd, uid, path, name, body, length)
                if not _same_dir(root, folder, fd, uid):
                    # deleted, cleaned up or claimed while the body arrived: the chunk went
                    # with the folder
                    raise _folder_gone()
        return _entry(uid, path, st), created

    def _write(self, folder_fd: int, uid: str, path: str, name: str, body: BinaryIO,
               length: int | None) -> tuple[os.stat_result, bool]:
        temp = f".ocbridge-part-{uuid.uuid4().hex}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temp, flags, _FILE_MODE, dir_fd=folder_fd)
        except FileNotFoundError:  # the folder was removed meanwhile
            raise _folder_gone() from None
        except OSError as exc:
            raise _unavailable(uid, path, exc) from exc
        try:
            with os.fdopen(fd, "wb") as file:
                # its errors (a body cut short) pass through as they are
                for piece in body_chunks(body, length, None, name):
                    _os(uid, path, file.write, piece)
                _os(uid, path, file.flush)
                if self._fsync:
                    _os(uid, path, os.fsync, file.fileno())
                st = os.fstat(file.fileno())
            created = _lstat(folder_fd, name, uid) is None
            try:
                os.rename(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
            except FileNotFoundError:
                raise _folder_gone() from None
            except OSError as exc:
                raise _unavailable(uid, path, exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder_fd)
            raise
        self._sync(folder_fd, uid)
        return st, created

    def delete(self, entry: UploadEntry) -> None:
        if not entry.path:
            raise ValueError("the uploads root is not deleted, only the folders in it")
        if entry.is_dir:
            with self._root(entry.owner) as root:
                if root is not None:
                    self._remove_folder(root, entry.owner, entry.path)
            return
        folder, _, name = entry.path.partition("/")
        with self._folder(entry.owner, folder) as fd:
            if fd is None:
                return
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise _unavailable(entry.owner, entry.path, exc) from exc
            self._sync(fd, entry.owner)

    def claim(self, uid: str, folder: str, names: Sequence[str]) -> list[UploadEntry] | None:
        """The folder is renamed to a private name: whoever renames it first assembles."""
        present = {c.name for c in self.chunks(uid, folder)}
        if not present or any(name not in present for name in names):
            return None
        claimed = f".ocbridge-claim-{uuid.uuid4().hex}"
        with self._root(uid) as root:
            if root is None:
                return None
            try:
                os.rename(folder, claimed, src_dir_fd=root, dst_dir_fd=root)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise _unavailable(uid, folder, exc) from exc
            self._sync(root, uid)
            with _subdir(root, claimed, uid) as fd:
                # listed again: a chunk re-sent before the rename has a new size and inode
                held = {} if fd is None else {
                    c.name: c for c in _listing(fd, uid, claimed, stat.S_ISREG)}
        if any(name not in held for name in names):  # removed by hand meanwhile
            return None
        return [_claimed(held[name], folder) for name in names]

    def open_chunk(self, chunk: UploadEntry) -> Iterator[bytes]:
        folder, _, name = chunk.ref.partition("/")
        with self._folder(chunk.owner, folder, internal_ok=True) as fd:
            st = None if fd is None else _lstat(fd, name, chunk.owner)
        if st is None or not stat.S_ISREG(st.st_mode):
            raise StorageUnavailableError(f"cannot read chunk {chunk.path}: it is gone")
        return self._read(chunk)

    def _read(self, chunk: UploadEntry) -> Iterator[bytes]:
        # opened on the first next(), so an iterator that is never started holds no fd
        folder, _, name = chunk.ref.partition("/")
        with self._folder(chunk.owner, folder, internal_ok=True) as fd:
            if fd is None:
                raise StorageUnavailableError(f"cannot read chunk {chunk.path}: it is gone")
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            file_fd = _os(chunk.owner, chunk.path, os.open, name, flags, dir_fd=fd)
        with os.fdopen(file_fd, "rb", buffering=0) as file:
            while piece := _os(chunk.owner, chunk.path, file.read, CHUNK_SIZE):
                yield piece

    def release(self, chunks: Sequence[UploadEntry]) -> None:
        for owner, folder in {(c.owner, c.ref.partition("/")[0]) for c in chunks}:
            with self._root(owner) as root:
                if root is not None:
                    _remove_tree(root, folder, owner)

    def cleanup(self, older_than_seconds: float, *, now: float | None = None) -> int:
        """Goes by the folder's own mtime, which every chunk written into it moves on; also
        removes what interrupted assemblies and deletions left."""
        if self._users is None:
            raise ValueError("DirectoryUploads.cleanup needs `users` to know whose uploads")
        cutoff = (time.time() if now is None else now) - older_than_seconds
        removed = 0
        for uid in self._users():
            with self._root(uid) as root:
                if root is None:
                    continue
                for item in _scan(root, uid):
                    st = _lstat(root, item.name, uid)
                    if st is not None and stat.S_ISDIR(st.st_mode) and st.st_mtime < cutoff:
                        self._remove_folder(root, uid, item.name)
                        removed += 1
        return removed

    # -- helpers --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _root(self, uid: str, create: bool = False) -> Iterator[int | None]:
        """An fd of the user's uploads root (which may itself be a symlink the operator chose);
        None when there is none yet and not `create`."""
        path = self._root_for_user(uid)
        if create:
            try:
                os.mkdir(path, _DIR_MODE)
            except FileExistsError:
                pass
            except FileNotFoundError as exc:
                raise StorageUnavailableError(
                    f"cannot create {path}: the home folder of {uid!r} is missing") from exc
            except OSError as exc:
                raise _unavailable(uid, "", exc) from exc
        try:
            fd: int | None = os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            fd = None
        except OSError as exc:
            raise _unavailable(uid, "", exc) from exc
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def _folder(self, uid: str, name: str, *, internal_ok: bool = False
                ) -> Iterator[int | None]:
        """An fd of an upload folder (a claimed one with `internal_ok`); None if none."""
        if not (_readable(name) or (internal_ok and _INTERNAL.fullmatch(name))):
            yield None
            return
        with self._root(uid) as root:
            if root is None:
                yield None
                return
            with _subdir(root, name, uid) as fd:
                yield fd

    def _remove_folder(self, root: int, uid: str, name: str) -> None:
        """Rename first, so the folder disappears at once however long the removal takes."""
        gone = f".ocbridge-gone-{uuid.uuid4().hex}"
        try:
            os.rename(name, gone, src_dir_fd=root, dst_dir_fd=root)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _unavailable(uid, name, exc) from exc
        self._sync(root, uid)
        _remove_tree(root, gone, uid)

    def _sync(self, dir_fd: int, uid: str) -> None:
        if self._fsync:
            _os(uid, "", os.fsync, dir_fd)


def _readable(name: str) -> bool:
    try:
        _check_writable(name)
    except InvalidPathError:
        return False
    return True


def _check_writable(name: str) -> None:
    check_name(name)
    if _INTERNAL.fullmatch(name) or len(name.encode("utf-8", "surrogateescape")) > _NAME_MAX_BYTES:
        raise InvalidPathError(f"{name[:40]!r} is not a valid name for an upload or a chunk")


@contextlib.contextmanager
def _subdir(root: int, name: str, uid: str) -> Iterator[int | None]:
    """An fd of a folder below the root, never through a symlink; None if there is none."""
    try:
        fd: int | None = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root)
    except (FileNotFoundError, NotADirectoryError):
        fd = None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise _unavailable(uid, name, exc) from exc
        fd = None  # a symlink: not ours, so not there
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _same_dir(root: int, name: str, fd: int, uid: str) -> bool:
    st = _lstat(root, name, uid)
    mine = os.fstat(fd)
    return st is not None and (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


def _lstat(dir_fd: int, name: str, uid: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _unavailable(uid, name, exc) from exc


def _scan(dir_fd: int, uid: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(dir_fd) as entries:
            return list(entries)
    except OSError as exc:
        raise _unavailable(uid, "", exc) from exc


def _listing(dir_fd: int, uid: str, folder: str, kind: Callable[[int], bool]
             ) -> list[UploadEntry]:
    """Entries of one kind (folders or regular files) by name in byte order, without the
    staging's own names."""
    found = []
    for item in _scan(dir_fd, uid):
        if not _readable(item.name):
            continue
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _unavailable(uid, item.name, exc) from exc
        if kind(st.st_mode):
            found.append(_entry(uid, f"{folder}/{item.name}" if folder else item.name, st))
    return sorted(found, key=lambda e: e.name.encode("utf-8", "surrogateescape"))


def _entry(uid: str, path: str, st: os.stat_result) -> UploadEntry:
    mtime = int(st.st_mtime)
    is_dir = stat.S_ISDIR(st.st_mode)
    if is_dir:
        etag = uniqid(st.st_mtime_ns // 1000 / 1_000_000)
        size = 0
    else:
        etag = file_etag(mtime, st.st_ino, st.st_dev, st.st_size)
        size = st.st_size
    return UploadEntry(fileid=_fileid(uid, path), owner=uid, path=path,
                       name=path.rpartition("/")[2], is_dir=is_dir, size=size, mtime=mtime,
                       etag=etag, ref=path)


def _claimed(entry: UploadEntry, folder: str) -> UploadEntry:
    """A chunk read from the claimed folder, named as it was in its upload folder."""
    path = f"{folder}/{entry.name}"
    return UploadEntry(fileid=_fileid(entry.owner, path), owner=entry.owner, path=path,
                       name=entry.name, is_dir=False, size=entry.size, mtime=entry.mtime,
                       etag=entry.etag, ref=entry.ref)


def _fileid(uid: str, path: str) -> int:
    digest = hashlib.sha256(f"{uid}\0{path}".encode("utf-8", "surrogateescape")).digest()
    return _ID_BASE | int.from_bytes(digest[:8]) & (_ID_BASE - 1)


def _remove_tree(root: int, name: str, uid: str) -> None:
    def failed(function: Callable[..., object], path: str, exc: BaseException) -> None:
        if not isinstance(exc, FileNotFoundError):
            raise _unavailable(uid, name, exc if isinstance(exc, OSError) else None) from exc

    shutil.rmtree(name, dir_fd=root, onexc=failed)


def _os[**P, R](uid: str, path: str, function: Callable[P, R], *args: P.args,
                **kwargs: P.kwargs) -> R:
    """Call an os function; OS errors become StorageUnavailableError (FileExistsError is
    left alone for the callers that expect it)."""
    try:
        return function(*args, **kwargs)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _unavailable(uid, path, exc) from exc


def _folder_gone() -> ConflictError:
    """No such upload folder (any more) on a write: the metadata staging's answer."""
    return ConflictError("Files cannot be created in non-existent collections")


def _unavailable(uid: str, path: str, exc: OSError | None) -> StorageUnavailableError:
    reason = (exc.strerror or str(exc)) if exc is not None else "unexpected error"
    where = f"uploads/{path}" if path else "uploads"
    return StorageUnavailableError(f"cannot access {where} of {uid!r}: {reason}")
