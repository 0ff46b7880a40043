"""The `oc10` FilesBackend: an ownCloud 10 database and data directory, served in place.

Reads come from oc_filecache (as oC10 with `filesystem_check_changes` = 0: the cache is the
truth), bytes from `<home>/files/…`. Writes change the disk and the rows together the way oC10
does (REFERENCE §2.3, §3.4): part file then rename, file etag md5(mtime inode device size),
one fresh uniqid() for every ancestor up to the storage root, sizes and mtimes propagated,
versions kept on overwrite, deletes moved to the trash with their versions.

Writes of one user are serialised within a process (oC10 serialises them with file locks);
several processes writing for the same user at the same instant are not coordinated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import secrets
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.formats import (
    ChecksumAccumulator,
    file_etag,
    home_storage_id,
    parse_trash_name,
    parse_version_name,
    trash_name,
    version_name,
)
from bridge.oc10.mimetypes import DIR_MIMETYPE, mimetype_for
from bridge.oc10.passwords import VerifiedCredentialCache
from newstack.backend import (
    AlreadyExistsError,
    ChecksumMismatchError,
    ConflictError,
    FilesBackend,
    ForbiddenError,
    Lock,
    LockedError,
    Node,
    NodeExtras,
    NotFoundError,
    Quota,
    QuotaExceededError,
    StorageUnavailableError,
    TrashItem,
    User,
    Version,
    WriteResult,
    filled_node,
)
from newstack.legacy import annotations as file_annotations
from newstack.legacy import locks
from newstack.legacy.accounts import Oc10Accounts
from newstack.legacy.filecache import (
    PERM_FILE,
    PERM_FOLDER,
    PERM_ROOT,
    FileCache,
    Row,
    join,
    name_of,
    parent_of,
)
from newstack.legacy.instance import LegacyInstance, Mimetypes, Storages
from newstack.legacy.shares import Oc10ShareStore
from newstack.metadata.store import UniqidClock
from newstack.rules import (
    CHECKSUM_MESSAGE,
    body_chunks,
    check_move,
    check_name,
    check_replace,
    check_target,
    normalize,
    quota_of,
    renamed_mimetype,
    restore_names,
    strictly_below,
)
from newstack.sharing.directory import Oc10Directory
from newstack.uploads.directory import DirectoryUploads

FILES: Final = "files"
TRASH: Final = "files_trashbin/files"
TRASH_VERSIONS: Final = "files_trashbin/versions"
VERSIONS: Final = "files_versions"
READ_CHUNK: Final = 1 << 20
#: what a read-only mount leaves of the permission bits: READ | SHARE (REFERENCE §2.3)
READ_ONLY_MASK: Final = 1 | 16
READ_ONLY_MESSAGE: Final = "this ownCloud instance is served read-only"


class Oc10Backend:
    """FilesBackend over one ownCloud 10 instance. Thread-safe."""

    def __init__(self, instance: LegacyInstance, *,
                 credential_cache: VerifiedCredentialCache | None = None,
                 clock: Callable[[], float] = time.time, read_only: bool = False) -> None:
        #: serve without writing anything: every write is refused (403) and permissions say so
        self.read_only = read_only
        self.instance = instance
        self.instance_id = instance.instance_id
        self.data_fingerprint = instance.data_fingerprint
        self.engine = instance.engine
        self.t = instance.tables
        self._clock = clock
        self.accounts = Oc10Accounts(instance.engine, instance.tables, instance.config,
                                     credential_cache=credential_cache, read_only=read_only)
        self.mimetypes = Mimetypes(instance.tables)
        self.cache = FileCache(instance.tables, self.mimetypes)
        self.storages = Storages(instance.tables)
        self.uniqid = UniqidClock()
        self.shares = Oc10ShareStore(instance.engine, instance.tables, clock=clock)
        self._directory = Oc10Directory(instance.engine, instance.tables)
        self._homes: dict[str, Path] = {}
        self._user_locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        #: chunked uploads where oC10 keeps them: <home>/uploads/<transfer id>/, or
        #: config.php's dav.chunk_base_dir/<uid>
        chunk_base = instance.config.raw.get("dav.chunk_base_dir")
        self.uploads = DirectoryUploads(
            (lambda uid: Path(str(chunk_base)) / uid) if chunk_base
            else (lambda uid: self._set_up_home_dir(uid) / "uploads"),
            users=self.accounts.uids)
        with self.engine.connect() as conn:
            self.mimetypes.load(conn)

    def close(self) -> None:
        """Close the database connections (the server closes them at exit anyway)."""
        self.instance.close()

    # -- users ------------------------------------------------------------------------------------

    def authenticate(self, login: str, password: str) -> User | None:
        return self.accounts.authenticate(login, password)

    def user(self, uid: str) -> User | None:
        return self.accounts.user(uid)

    def home(self, uid: str) -> Path:
        """The user's home folder on this machine (oc_accounts.home, moved along with the data
        directory when it was given explicitly)."""
        home = self._homes.get(uid)
        if home is None:
            home = self.accounts.home(uid)
            configured = self.instance.config.datadirectory
            if self.instance.data_dir != configured and home.is_relative_to(configured):
                home = self.instance.data_dir / home.relative_to(configured)
            self._homes[uid] = home
        return home

    def _set_up_home_dir(self, uid: str) -> Path:
        """The user's home, set up first if this is the user's first request."""
        if self.read_only:
            raise ForbiddenError(READ_ONLY_MESSAGE)
        self._home_storage(uid)
        return self.home(uid)

    # -- reading ----------------------------------------------------------------------------------

    def stat(self, uid: str, path: str) -> Node:
        path = normalize(path)
        with self._reading(uid) as conn:
            return self._node(uid, self._get(conn, uid, path))

    def children(self, uid: str, path: str) -> list[Node]:
        path = normalize(path)
        with self._reading(uid) as conn:
            folder = self._get(conn, uid, path)
            if not folder.is_dir:
                return []
            return [self._node(uid, row) for row in self.cache.children(conn, folder.fileid)]

    def children_many(self, uid: str, paths: Iterable[str]) -> dict[str, list[Node]]:
        asked = {path: normalize(path) for path in paths}
        spaths = {normal: join(FILES, normal) if normal else FILES
                  for normal in set(asked.values())}
        with self._reading(uid) as conn:
            folders = self.cache.get_many(conn, self._storage(conn, uid), list(spaths.values()))
            rows = self.cache.children_of(
                conn, [row.fileid for row in folders.values() if row.is_dir])
        listed: dict[str, list[Node]] = {}
        for path, normal in asked.items():
            folder = folders.get(spaths[normal])
            if folder is not None:
                listed[path] = ([self._node(uid, row) for row in rows[folder.fileid]]
                                if folder.is_dir else [])
        return listed

    def by_id(self, uid: str, fileid: int) -> Node:
        with self._reading(uid) as conn:
            return self._node(uid, self._by_id(conn, uid, fileid))

    def extras(self, uid: str, nodes: Iterable[Node]) -> dict[int, NodeExtras]:
        ids = sorted({node.fileid for node in nodes})
        if not ids:
            return {}
        with self._reading(uid) as conn:
            return file_annotations.extras(conn, self.t, uid, ids)

    def quota(self, uid: str) -> Quota:
        user = self.accounts.user(uid)
        if user is None:
            raise NotFoundError(f"no user {uid!r}")
        with self._reading(uid) as conn:
            root = self._get(conn, uid, "")
        return quota_of(root.size, user.quota)

    def read(self, uid: str, node: Node, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        with self._reading(uid) as conn:
            row = self._by_id(conn, uid, node.fileid)
        if row.is_dir:
            raise ForbiddenError(f"{node.path!r} is a folder; only files have content")
        return self._read_file(uid, row, start, end)

    def _read_file(self, uid: str, row: Row, start: int, end: int | None) -> Iterator[bytes]:
        """Bytes [start, end) of a file, never past the size its row gives (which is what the
        client was told in Content-Length); a file shorter than its row fails the transfer
        when the bytes run out, so the connection ends instead of waiting for the rest."""
        try:
            handle = open(self._disk(uid, row.path), "rb")  # noqa: SIM115 - closed by _chunks
        except OSError as exc:
            # File::get: "Could not open file" is a 503 in oC10 too
            raise StorageUnavailableError(
                f"could not open {row.path!r}: {exc.strerror}") from exc
        stop = row.size if end is None else min(end, row.size)
        return _chunks(handle, start, stop, row.path)

    # -- writing ----------------------------------------------------------------------------------

    def write(self, uid: str, path: str, body: BinaryIO, *, length: int | None,
              mtime: int | None = None, checksum: str | None = None,
              if_match: str | None = None, if_none_match: str | None = None) -> WriteResult:
        path = normalize(path)
        if path == "":
            raise AlreadyExistsError("the files root is a folder; PUT needs a file name")
        name = name_of(path)
        check_name(name)
        spath = join(FILES, path)
        with self._reading(uid) as conn:
            self._folder(conn, uid, parent_of(path))
            check_target(self._row(conn, uid, spath), path, if_match, if_none_match)
            free = self._free_space(conn, uid)
        if free is not None and length is not None and length > free:
            raise QuotaExceededError(f"{length} bytes do not fit: {max(free, 0)} bytes free")

        # the body goes to a part file next to the target first (part_file_in_storage)
        target = self._disk(uid, spath)
        part = f"{target}.ocTransferId{secrets.randbelow(10**10)}.part"
        accumulator = ChecksumAccumulator()
        try:
            with _os_errors(path), open(part, "xb") as out:
                for chunk in body_chunks(body, length, free, path):
                    accumulator.update(chunk)
                    out.write(chunk)
            computed = accumulator.result()
            if checksum and checksum.strip() and checksum.strip() not in computed:
                raise ChecksumMismatchError(CHECKSUM_MESSAGE)
            now = self._clock()
            with self._writing(uid) as conn:
                storage = self._storage(conn, uid)
                parent = self._folder(conn, uid, parent_of(path))
                existing = self._row(conn, uid, spath)
                check_target(existing, path, if_match, if_none_match)
                free = self._free_space(conn, uid)
                size = os.stat(part).st_size
                if free is not None and size > free:
                    raise QuotaExceededError(f"{size} bytes do not fit: {free} bytes free")
                version_changes: dict[str, int] = {}
                if existing is not None:
                    self._keep_as_version(conn, uid, storage, existing, now, version_changes)
                with _os_errors(path):
                    os.replace(part, target)
                    if mtime is not None:
                        os.utime(target, (now, mtime))
                    st = os.stat(target)
                values = dict(size=st.st_size, mtime=int(st.st_mtime),
                              storage_mtime=int(st.st_mtime), etag=_etag(st), checksum=computed)
                if existing is None:
                    row = self.cache.insert(conn, storage, spath, parent=parent.fileid,
                                            mimetype=mimetype_for(name), size=st.st_size,
                                            mtime=int(st.st_mtime), etag=_etag(st),
                                            permissions=PERM_FILE, checksum=computed)
                    fileid = row.fileid
                    delta = st.st_size
                else:
                    fileid = existing.fileid
                    self.cache.update(conn, fileid, **values)
                    delta = st.st_size - max(existing.size, 0)
                # X-OC-MTime is also the time propagated to the parents (REFERENCE §6.5)
                self._propagate(conn, storage, {spath: delta}, now, int(st.st_mtime))
                if version_changes:
                    self._propagate(conn, storage, version_changes, now)
                self._parent_touched(conn, uid, parent)
                written = self.cache.by_id(conn, fileid)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        assert written is not None
        return WriteResult(node=self._node(uid, written), created=existing is None,
                           mtime_accepted=mtime is not None)

    def _keep_as_version(self, conn: Connection, uid: str, storage: int, current: Row,
                         now: float, changes: dict[str, int]) -> None:
        """Storage::store before an overwrite: non-empty content becomes
        files_versions/<path>.v<its mtime> with its own row (checksum kept)."""
        disk = self._disk(uid, current.path)
        try:
            size = os.stat(disk).st_size
        except FileNotFoundError:
            return  # a row without its file: nothing to keep
        if size == 0:
            return
        folder = self._ensure_folder(conn, uid, storage, _versions_dir(current.path), now, changes)
        vpath = join(folder.path, version_name(current.name, current.mtime))
        replaced = self.cache.get(conn, storage, vpath)
        if replaced is not None:
            self.cache.delete_tree(conn, replaced)
            changes[vpath] = changes.get(vpath, 0) - max(replaced.size, 0)
        with _os_errors(current.path):
            os.replace(disk, self._disk(uid, vpath))
            st = os.stat(self._disk(uid, vpath))
        self.cache.insert(conn, storage, vpath, parent=folder.fileid, mimetype=current.mimetype,
                          size=st.st_size, mtime=int(st.st_mtime), etag=_etag(st),
                          permissions=PERM_FILE, checksum=current.checksum)
        changes[vpath] = changes.get(vpath, 0) + st.st_size

    def mkdir(self, uid: str, path: str) -> Node:
        path = normalize(path)
        if path == "":
            raise AlreadyExistsError("the files root exists")
        check_name(name_of(path))
        spath = join(FILES, path)
        now = self._clock()
        with self._writing(uid) as conn:
            storage = self._storage(conn, uid)
            parent = self._folder(conn, uid, parent_of(path))
            if self._row(conn, uid, spath) is not None:
                raise AlreadyExistsError(f"{path!r} exists")
            row = self._make_folder(conn, uid, storage, spath, parent.fileid, now)
            self._propagate(conn, storage, {spath: 0}, now)
            self._parent_touched(conn, uid, parent)
        return self._node(uid, row)

    def delete(self, uid: str, path: str) -> None:
        path = normalize(path)
        if path == "":
            raise ForbiddenError("the files root cannot be deleted")
        now = self._clock()
        with self._writing(uid) as conn:
            storage = self._storage(conn, uid)
            row = self._get(conn, uid, path)
            changes: dict[str, int] = {}
            self._trash(conn, uid, storage, row, now, changes)
            self._propagate(conn, storage, changes, now)

    def _trash(self, conn: Connection, uid: str, storage: int, row: Row, now: float,
               changes: dict[str, int]) -> None:
        """Trashbin::move2trash: `files/<dir>/<name>` becomes files_trashbin/files/<name>.d<t>
        (fileid kept) with an oc_files_trash row; its versions follow it."""
        trash = self._ensure_folder(conn, uid, storage, TRASH, now, changes)
        ts = int(now)
        # oC10 would overwrite an item trashed under the same name in the same second; we keep
        # both by taking the next free second instead
        while self.cache.get(conn, storage, join(TRASH, trash_name(row.name, ts))) is not None:
            ts += 1
        tpath = join(TRASH, trash_name(row.name, ts))
        self._move_on_disk(uid, row.path, tpath)
        moved = self.cache.move(conn, row, tpath, trash.fileid)
        rel = row.path.removeprefix(FILES + "/")
        conn.execute(self.t.files_trash.insert().values(
            id=row.name, user=uid, timestamp=str(ts), location=parent_of(rel) or ".",
            type=None, mime=None))
        ids = [moved.fileid, *(r.fileid for r in self.cache.descendants(conn, moved))]
        locks.remove_for_files(conn, self.t, ids)
        size = max(row.size, 0)
        changes[row.path] = changes.get(row.path, 0) - size
        changes[tpath] = changes.get(tpath, 0) + size
        # versions: of a file, each .v<vts> → files_trashbin/versions/<name>.v<vts>.d<t>;
        # of a folder, its versions folder → files_trashbin/versions/<name>.d<t>
        if row.is_dir:
            vfolder = self.cache.get(conn, storage, join(VERSIONS, rel))
            sources = [(vfolder, trash_name(row.name, ts))] if vfolder is not None else []
        else:
            sources = [(v, f"{v.name}.d{ts}") for v in self._version_rows(conn, storage, row)]
        if sources:
            vtrash = self._ensure_folder(conn, uid, storage, TRASH_VERSIONS, now, changes)
            for source, new_name in sources:
                self._move_row(conn, uid, source, join(TRASH_VERSIONS, new_name), vtrash,
                               changes)

    def _transfer_target(self, conn: Connection, uid: str, src: str, dst: str,
                         overwrite: bool) -> tuple[int, Row, Row, Row | None]:
        """MOVE and COPY: (storage, source row, destination folder, existing target)."""
        storage = self._storage(conn, uid)
        row = self._get(conn, uid, src)
        parent = self._folder(conn, uid, parent_of(dst))
        target = self._row(conn, uid, join(FILES, dst))
        if target is not None and not overwrite:
            raise AlreadyExistsError(f"{dst!r} exists")
        return storage, row, parent, target

    def move(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        src, dst = normalize(src), normalize(dst)
        check_move(src, dst, "move")
        name = name_of(dst)
        check_name(name)
        now = self._clock()
        with self._writing(uid) as conn:
            storage, row, parent, target = self._transfer_target(conn, uid, src, dst, overwrite)
            changes: dict[str, int] = {}
            if target is not None:
                check_replace(src, dst)
                self._trash(conn, uid, storage, target, now, changes)
            ids = [row.fileid, *(r.fileid for r in self.cache.descendants(conn, row))]
            locks.remove_for_files(conn, self.t, ids)
            old_parent = self._row(conn, uid, parent_of(row.path))
            versions = self._versions_of_tree(conn, storage, row)
            moved = self._move_row(conn, uid, row, join(FILES, dst), parent, changes,
                                   mimetype=renamed_mimetype(row.is_dir, row.name, name))
            self._move_versions(conn, uid, storage, versions, row, moved, now, changes)
            self._propagate(conn, storage, changes, now)
            self._parent_touched(conn, uid, parent)
            if old_parent is not None and old_parent.fileid != parent.fileid:
                self._parent_touched(conn, uid, old_parent)
        return WriteResult(node=self._node(uid, moved), created=target is None)

    def copy(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        src, dst = normalize(src), normalize(dst)
        check_move(src, dst, "copy")
        name = name_of(dst)
        check_name(name)
        now = self._clock()
        with self._writing(uid) as conn:
            storage, top, parent, target = self._transfer_target(conn, uid, src, dst, overwrite)
            free = self._free_space(conn, uid)
            if free is not None and max(top.size, 0) > free:
                raise QuotaExceededError(
                    f"copying {top.size} bytes does not fit: {free} bytes free")
            changes: dict[str, int] = {}
            if target is not None:
                check_replace(src, dst)
                self._trash(conn, uid, storage, target, now, changes)
            below = self.cache.descendants(conn, top)
            versions = self._versions_of_tree(conn, storage, top)
            dpath = join(FILES, dst)
            new_ids: dict[int, int] = {}
            copied_top: Row | None = None
            for source in [top, *below]:
                is_top = source is top
                path = dpath if is_top else dpath + source.path[len(top.path):]
                new_parent = parent.fileid if is_top else new_ids[source.parent]
                mimetype = (renamed_mimetype(source.is_dir, source.name, name) if is_top
                            else None) or source.mimetype
                new = self._copy_row(conn, uid, storage, source, path, new_parent, mimetype, now)
                new_ids[source.fileid] = new.fileid
                copied_top = copied_top or new
            assert copied_top is not None
            changes[dpath] = changes.get(dpath, 0) + max(copied_top.size, 0)
            self._copy_versions(conn, uid, storage, versions, top, copied_top, now, changes)
            self._propagate(conn, storage, changes, now)
            self._parent_touched(conn, uid, parent)
            result = self.cache.by_id(conn, copied_top.fileid)
        assert result is not None
        return WriteResult(node=self._node(uid, result), created=target is None)

    def _copy_row(self, conn: Connection, uid: str, storage: int, source: Row, path: str,
                  parent: int, mimetype: str, now: float) -> Row:
        """One node of a copy: a new row (new fileid) for a new file or folder on disk; a copy
        is new content for oC10, so it gets a new mtime and etag; the checksum stays valid."""
        disk = self._disk(uid, path)
        with _os_errors(path):
            if source.is_dir:
                os.mkdir(disk)
            else:
                try:
                    shutil.copyfile(self._disk(uid, source.path), disk)
                except FileNotFoundError as exc:
                    raise StorageUnavailableError(
                        f"the content of {source.path!r} is missing from the data directory"
                    ) from exc
            st = os.stat(disk)
        if source.is_dir:
            return self.cache.insert(conn, storage, path, parent=parent, mimetype=DIR_MIMETYPE,
                                     size=max(source.size, 0), mtime=int(st.st_mtime),
                                     etag=self.uniqid.next(now), permissions=PERM_FOLDER)
        return self.cache.insert(conn, storage, path, parent=parent, mimetype=mimetype,
                                 size=st.st_size, mtime=int(st.st_mtime), etag=_etag(st),
                                 permissions=PERM_FILE, checksum=source.checksum)

    def set_mtime(self, uid: str, path: str, mtime: int) -> Node:
        path = normalize(path)
        now = self._clock()
        with self._writing(uid) as conn:
            storage = self._storage(conn, uid)
            row = self._get(conn, uid, path)
            disk = self._disk(uid, row.path)
            with _os_errors(path):
                os.utime(disk, (now, mtime))
                st = os.stat(disk)
            etag = self.uniqid.next(now) if row.is_dir else _etag(st)
            self.cache.update(conn, row.fileid, mtime=int(mtime), storage_mtime=int(st.st_mtime),
                              etag=etag)
            self._propagate(conn, storage, {row.path: 0}, now, int(mtime))
            touched = self.cache.by_id(conn, row.fileid)
        assert touched is not None
        return self._node(uid, touched)

    def set_favorite(self, uid: str, path: str, favorite: bool) -> None:
        path = normalize(path)
        with self._writing(uid) as conn:
            row = self._get(conn, uid, path)
            file_annotations.set_favorite(conn, self.t, uid, row.fileid, favorite)

    @property
    def share_folder(self) -> str:
        """config.php `share_folder`: where new shares land in recipients' files."""
        return self.instance.config.share_folder

    def set_favorite_by_id(self, uid: str, fileid: int, favorite: bool) -> None:
        """Favorite a node of another owner that `uid` sees through a share (per user)."""
        with self._writing(uid) as conn:
            file_annotations.set_favorite(conn, self.t, uid, fileid, favorite)

    def set_dead_props(self, uid: str, path: str, props: dict[str, str | None]) -> None:
        path = normalize(path)
        with self._writing(uid) as conn:
            row = self._get(conn, uid, path)
            file_annotations.set_dead_props(conn, self.t, row.fileid, props)

    # -- trash ------------------------------------------------------------------------------------

    def trash(self, uid: str) -> list[TrashItem]:
        with self._reading(uid) as conn:
            storage = self._storage(conn, uid)
            folder = self.cache.get(conn, storage, TRASH)
            if folder is None:
                return []
            records = {
                (r.id, r.timestamp): r.location
                for r in conn.execute(
                    sa.select(self.t.files_trash.c.id, self.t.files_trash.c.timestamp,
                              self.t.files_trash.c.location)
                    .where(self.t.files_trash.c.user == uid))
            }
            items = []
            for row in self.cache.children(conn, folder.fileid):
                parsed = parse_trash_name(row.name)
                if parsed is None:
                    continue  # not made by the trash bin: oC10 lists it neither
                name, ts = parsed
                items.append(TrashItem(node=self._node(uid, row), original_name=name,
                                       original_location=records.get((name, str(ts)), "."),
                                       deleted_at=ts))
        return items

    def trashed(self, uid: str, fileid: int) -> Node:
        with self._reading(uid) as conn:
            return self._node(uid, self._trashed(conn, uid, fileid))

    def trash_children(self, uid: str, fileid: int) -> list[Node]:
        with self._reading(uid) as conn:
            folder = self._trashed(conn, uid, fileid)
            if not folder.is_dir:
                return []
            return [self._node(uid, r) for r in self.cache.children(conn, folder.fileid)]

    def read_trashed(self, uid: str, fileid: int, start: int = 0, end: int | None = None
                     ) -> Iterator[bytes]:
        with self._reading(uid) as conn:
            row = self._trashed(conn, uid, fileid)
        if row.is_dir:
            raise ForbiddenError(f"trashed item {fileid} is a folder; only files have content")
        return self._read_file(uid, row, start, end)

    def restore(self, uid: str, fileid: int, dst: str | None = None) -> Node:
        """Trashbin::restore: back to the original folder (the files root when it is gone),
        a taken name gets ' (restored)'; with `dst`, exactly there. The fileid is kept."""
        now = self._clock()
        with self._writing(uid) as conn:
            storage = self._storage(conn, uid)
            row = self._trashed(conn, uid, fileid)
            rel = row.path[len(TRASH) + 1:]
            top_name, _, inner = rel.partition("/")
            parsed = parse_trash_name(top_name)
            orig_top, ts = parsed if parsed is not None else (top_name, 0)
            location = conn.execute(
                sa.select(self.t.files_trash.c.location).where(
                    (self.t.files_trash.c.user == uid) & (self.t.files_trash.c.id == orig_top)
                    & (self.t.files_trash.c.timestamp == str(ts)))).scalar()
            if dst is not None:
                path = normalize(dst)
                if path == "":
                    raise AlreadyExistsError("the files root exists")
                check_name(name_of(path))
                parent = self._folder(conn, uid, parent_of(path))
                if self._row(conn, uid, join(FILES, path)) is not None:
                    raise AlreadyExistsError(f"{path!r} exists")
            else:
                base = "" if location in (None, ".") else str(location)
                if inner:
                    folder, name = join(join(base, orig_top), parent_of(inner)), row.name
                else:
                    folder, name = base, orig_top
                found = self._row(conn, uid, join(FILES, folder) if folder else FILES)
                if found is None or not found.is_dir:
                    folder = ""
                    found = self._get(conn, uid, "")
                parent = found
                name = next(n for n in restore_names(name)
                            if self._row(conn, uid, join(FILES, join(folder, n))) is None)
                path = join(folder, name)
            name = name_of(path)
            changes: dict[str, int] = {}
            versions = self._trashed_versions(conn, storage, orig_top, ts) if not inner else []
            restored = self._move_row(
                conn, uid, row, join(FILES, path), parent, changes,
                mimetype=renamed_mimetype(row.is_dir, orig_top if not inner else row.name, name))
            if not inner:
                conn.execute(self.t.files_trash.delete().where(
                    (self.t.files_trash.c.user == uid) & (self.t.files_trash.c.id == orig_top)
                    & (self.t.files_trash.c.timestamp == str(ts))))
                self._restore_versions(conn, uid, storage, versions, restored, ts, now, changes)
            self._propagate(conn, storage, changes, now)
            self._parent_touched(conn, uid, parent)
        return self._node(uid, restored)

    def purge(self, uid: str, fileid: int | None = None) -> None:
        now = self._clock()
        with self._writing(uid) as conn:
            storage = self._storage(conn, uid)
            changes: dict[str, int] = {}
            if fileid is None:
                tops = [r for folder in (TRASH, TRASH_VERSIONS)
                        if (f := self.cache.get(conn, storage, folder)) is not None
                        for r in self.cache.children(conn, f.fileid)]
                conn.execute(self.t.files_trash.delete().where(self.t.files_trash.c.user == uid))
            else:
                row = self._trashed(conn, uid, fileid)
                tops = [row]
                rel = row.path[len(TRASH) + 1:]
                parsed = parse_trash_name(rel) if "/" not in rel else None
                if parsed is not None:
                    name, ts = parsed
                    tops.extend(self._trashed_versions(conn, storage, name, ts))
                    conn.execute(self.t.files_trash.delete().where(
                        (self.t.files_trash.c.user == uid) & (self.t.files_trash.c.id == name)
                        & (self.t.files_trash.c.timestamp == str(ts))))
            for top in tops:
                self._delete_forever(conn, uid, top, changes)
            if changes:
                self._propagate(conn, storage, changes, now)

    def _delete_forever(self, conn: Connection, uid: str, row: Row,
                        changes: dict[str, int]) -> None:
        ids = self.cache.delete_tree(conn, row)
        file_annotations.delete_for_files(conn, self.t, ids)
        locks.remove_for_files(conn, self.t, ids)
        # shares of files gone for good: what oC10's DeleteOrphanedSharesJob removes later
        for i in range(0, len(ids), 500):
            conn.execute(self.t.share.delete().where(
                self.t.share.c.file_source.in_(ids[i:i + 500])))
        disk = self._disk(uid, row.path)
        with _os_errors(row.path):
            if os.path.isdir(disk) and not os.path.islink(disk):
                shutil.rmtree(disk)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(disk)
        changes[row.path] = changes.get(row.path, 0) - max(row.size, 0)

    # -- versions ---------------------------------------------------------------------------------

    def versions(self, uid: str, fileid: int) -> list[Version]:
        with self._reading(uid) as conn:
            row = self._file_by_id(conn, uid, fileid)
            found = self._version_rows(conn, row.storage, row)
        return _versions(row, found)

    def versions_many(self, uid: str, fileids: Iterable[int]) -> dict[int, list[Version]]:
        with self._reading(uid) as conn:
            storage = self._storage(conn, uid)
            files = [row for row in self.cache.by_ids(conn, sorted(set(fileids)))
                     if row.storage == storage and _in_files(row.path) and not row.is_dir]
            folders = self.cache.get_many(conn, storage,
                                          sorted({_versions_dir(row.path) for row in files}))
            kept = self.cache.children_of(conn, [folder.fileid for folder in folders.values()])
        found: dict[int, list[Version]] = {}
        for row in files:
            folder = folders.get(_versions_dir(row.path))
            found[row.fileid] = _versions(
                row, _versions_in(row, kept[folder.fileid]) if folder is not None else [])
        return found

    def read_version(self, uid: str, fileid: int, version_id: int) -> Iterator[bytes]:
        with self._reading(uid) as conn:
            row = self._file_by_id(conn, uid, fileid)
            version = self._version_row(conn, row, version_id)
        return self._read_file(uid, version, 0, None)

    def restore_version(self, uid: str, fileid: int, version_id: int) -> Node:
        """Storage::rollback: the current content becomes version `.v<its mtime>` (unless that
        exists), the chosen version becomes the current content with mtime = its id."""
        now = self._clock()
        with self._writing(uid) as conn:
            storage = self._storage(conn, uid)
            row = self._file_by_id(conn, uid, fileid)
            version = self._version_row(conn, row, version_id)
            changes: dict[str, int] = {}
            disk = self._disk(uid, row.path)
            if self.cache.get(conn, storage, join(parent_of(version.path),
                                                  version_name(row.name, row.mtime))) is None:
                self._keep_as_version(conn, uid, storage, row, now, changes)
            self.cache.delete_tree(conn, version)
            changes[version.path] = changes.get(version.path, 0) - max(version.size, 0)
            with _os_errors(row.path):
                os.replace(self._disk(uid, version.path), disk)
                os.utime(disk, (now, version_id))
                st = os.stat(disk)
            self.cache.update(conn, row.fileid, size=st.st_size, mtime=version_id,
                              storage_mtime=int(st.st_mtime), etag=_etag(st),
                              checksum=version.checksum)
            changes[row.path] = changes.get(row.path, 0) + st.st_size - max(row.size, 0)
            self._propagate(conn, storage, changes, now)
            restored = self.cache.by_id(conn, row.fileid)
        assert restored is not None
        return self._node(uid, restored)

    def _version_rows(self, conn: Connection, storage: int, row: Row) -> list[Row]:
        folder = self.cache.get(conn, storage, _versions_dir(row.path))
        if folder is None:
            return []
        return _versions_in(row, self.cache.children(conn, folder.fileid))

    def _version_row(self, conn: Connection, row: Row, version_id: int) -> Row:
        folder = _versions_dir(row.path)
        version = self.cache.get(conn, row.storage,
                                 join(folder, version_name(row.name, version_id)))
        if version is None:
            raise NotFoundError(f"file {row.fileid} has no version {version_id}")
        return version

    def _versions_of_tree(self, conn: Connection, storage: int, row: Row) -> list[Row]:
        """What follows a file or folder when it moves: its versions, or its versions folder."""
        if row.is_dir:
            folder = self.cache.get(conn, storage, _versions_path(row.path))
            return [folder] if folder is not None else []
        return self._version_rows(conn, storage, row)

    def _move_versions(self, conn: Connection, uid: str, storage: int, versions: list[Row],
                       old: Row, new: Row, now: float, changes: dict[str, int]) -> None:
        """The versions hook of a rename: files_versions follows the file or folder."""
        if not versions:
            return
        target_dir = self._ensure_folder(conn, uid, storage, _versions_dir(new.path), now,
                                         changes)
        for v in versions:
            if old.is_dir:
                new_name = new.name
            else:
                new_name = version_name(new.name, _version_id(v))
            if self.cache.get(conn, storage, join(target_dir.path, new_name)) is None:
                self._move_row(conn, uid, v, join(target_dir.path, new_name), target_dir,
                               changes)

    def _copy_versions(self, conn: Connection, uid: str, storage: int, versions: list[Row],
                       old: Row, new: Row, now: float, changes: dict[str, int]) -> None:
        """The versions hook of a copy: the copy has the same old versions as the original."""
        if not versions:
            return
        target_dir = self._ensure_folder(conn, uid, storage, _versions_dir(new.path), now,
                                         changes)
        for v in versions:
            new_name = new.name if old.is_dir else version_name(new.name, _version_id(v))
            top_path = join(target_dir.path, new_name)
            if self.cache.get(conn, storage, top_path) is not None:
                continue
            ids: dict[int, int] = {}
            for source in [v, *self.cache.descendants(conn, v)]:
                path = top_path if source is v else top_path + source.path[len(v.path):]
                parent = target_dir.fileid if source is v else ids[source.parent]
                ids[source.fileid] = self._copy_row(conn, uid, storage, source, path, parent,
                                                    source.mimetype, now).fileid
            changes[top_path] = changes.get(top_path, 0) + max(v.size, 0)

    def _trashed_versions(self, conn: Connection, storage: int, name: str, ts: int
                          ) -> list[Row]:
        folder = self.cache.get(conn, storage, TRASH_VERSIONS)
        if folder is None:
            return []
        found = []
        for v in self.cache.children(conn, folder.fileid):
            parsed = parse_trash_name(v.name)
            if parsed is None or parsed[1] != ts:
                continue
            base = parsed[0]
            if base == name and v.is_dir:
                found.append(v)
            elif (p := parse_version_name(base)) is not None and p[0] == name and not v.is_dir:
                found.append(v)
        return found

    def _restore_versions(self, conn: Connection, uid: str, storage: int, versions: list[Row],
                          restored: Row, ts: int, now: float, changes: dict[str, int]) -> None:
        if not versions:
            return
        target_dir = self._ensure_folder(conn, uid, storage, _versions_dir(restored.path), now,
                                         changes)
        for v in versions:
            base = v.name[: -len(f".d{ts}")]
            parsed = parse_version_name(base)
            new_name = (restored.name if v.is_dir or parsed is None
                        else version_name(restored.name, parsed[1]))
            if self.cache.get(conn, storage, join(target_dir.path, new_name)) is None:
                self._move_row(conn, uid, v, join(target_dir.path, new_name), target_dir,
                               changes)

    # -- finding ----------------------------------------------------------------------------------

    def favorites(self, uid: str) -> list[Node]:
        with self._reading(uid) as conn:
            storage = self._storage(conn, uid)
            ids = file_annotations.favorite_fileids(conn, self.t, uid)
            rows = self.cache.by_ids(conn, sorted(set(ids)))
        return [self._node(uid, r) for r in sorted(rows, key=lambda r: r.fileid)
                if r.storage == storage and _in_files(r.path)]

    def search(self, uid: str, pattern: str, limit: int) -> list[Node]:
        like = f"%{unicodedata.normalize('NFC', pattern)}%"
        with self._reading(uid) as conn:
            storage = self._storage(conn, uid)
            rows = self.cache.search(conn, storage, FILES, like, limit)
        return [self._node(uid, r) for r in rows]

    def systemtag_fileids(self, uid: str, tag_id: int) -> list[int]:
        with self._reading(uid) as conn:
            return file_annotations.systemtag_fileids(conn, self.t, uid, tag_id)

    # -- locks ------------------------------------------------------------------------------------

    def locks(self, uid: str, path: str, *, with_parents: bool = True,
              with_children: bool = False) -> list[Lock]:
        path = normalize(path)
        with self._reading(uid) as conn:
            found = self._live_locks(conn, uid)
        return [
            lock for lock in found
            if lock.path == path
            or (with_parents and lock.depth != 0 and strictly_below(path, lock.path))
            or (with_children and strictly_below(lock.path, path))
        ]

    def _live_locks(self, conn: Connection, uid: str) -> list[Lock]:
        storage = self._storage(conn, uid)
        return [found.lock.as_lock(_user_path(found.path))
                for found in locks.storage_locks(conn, self.t, storage, int(self._clock()))
                if _in_files(found.path)]

    def lock(self, uid: str, lock: Lock) -> Lock:
        """Store a new lock; LockedError if it conflicts with a live one (an exclusive lock
        conflicts with any other, shared locks only with exclusive ones) on the path, on an
        ancestor locked with depth infinity or, for a depth-infinity lock, below the path."""
        path = normalize(lock.path)
        now = int(self._clock())
        stored = dataclasses.replace(lock, path=path, created_at=lock.created_at or now)
        with self._writing(uid) as conn:
            row = self._get(conn, uid, path)
            other = locks.conflicting_lock(self._live_locks(conn, uid), stored)
            if other is not None:
                raise LockedError(f"{path!r} is locked ({other.scope}, {other.path!r})")
            locks.insert_lock(conn, self.t, row.fileid, uid, stored)
        return stored

    def refresh_lock(self, uid: str, token: str, timeout: int) -> Lock:
        now = int(self._clock())
        with self._writing(uid) as conn:
            for found in self._live_locks(conn, uid):
                if found.token == token:
                    locks.refresh(conn, self.t, token, timeout, now)
                    return Lock(token=token, path=found.path, owner=found.owner,
                                scope=found.scope, depth=found.depth, timeout=timeout,
                                created_at=now)
        raise NotFoundError(f"no live lock {token!r}")

    def unlock(self, uid: str, path: str, token: str) -> None:
        path = normalize(path)
        with self._writing(uid) as conn:
            for found in self._live_locks(conn, uid):
                if found.token != token:
                    continue
                if not (found.path == path
                        or (found.depth != 0 and strictly_below(path, found.path))):
                    raise ConflictError(f"lock {token!r} does not cover {path!r}")
                locks.remove(conn, self.t, token)
                return
        raise NotFoundError(f"no lock {token!r}")

    def home_storage(self, uid: str) -> tuple[str, int]:
        """oc_storages id and numeric id of the user's home (the OCS share API reports both)."""
        return home_storage_id(uid), self._home_storage(uid)

    # -- sharees ----------------------------------------------------------------------------------

    @property
    def passwordsalt(self) -> str:
        return self.instance.config.passwordsalt

    def find_users(self, pattern: str, limit: int) -> list[User]:
        found = (self.accounts.user(uid) for uid in self._directory.find_uids(pattern, limit))
        return [user for user in found if user is not None]

    def find_groups(self, pattern: str, limit: int) -> list[str]:
        return self._directory.find_groups(pattern, limit)

    def group_members(self, gid: str) -> list[str]:
        return self._directory.group_members(gid)

    # -- helpers ----------------------------------------------------------------------------------

    def _user_lock(self, uid: str) -> threading.RLock:
        with self._guard:
            return self._user_locks.setdefault(uid, threading.RLock())

    @contextlib.contextmanager
    def _writing(self, uid: str) -> Iterator[Connection]:
        if self.read_only:
            raise ForbiddenError(READ_ONLY_MESSAGE)
        self._home_storage(uid)
        with self._user_lock(uid), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _reading(self, uid: str) -> Iterator[Connection]:
        self._home_storage(uid)
        with self.engine.connect() as conn:
            yield conn

    def _storage(self, conn: Connection, uid: str) -> int:
        """The user's home storage (numeric id), cached once known."""
        return self._home_storage(uid)

    def _home_storage(self, uid: str) -> int:
        """The user's home storage; set up on first use as oC10 does at a user's first login
        (storage row, '' and 'files' rows and folders, the oc_mounts row). Called before a
        request's own connection opens, so that connection's snapshot already has the home."""
        storage = self.storages.cached(uid)
        if storage is not None:
            return storage
        with self.engine.connect() as conn:
            storage = self.storages.home(conn, uid)
        if storage is not None:
            return storage
        if not self.accounts.exists(uid):
            raise NotFoundError(f"no user {uid!r}")
        if self.read_only:
            raise NotFoundError(f"{uid!r} never logged in: no home to show (served read-only)")
        with self._user_lock(uid), self.engine.begin() as setup:
            storage = self.storages.home(setup, uid, create=True)
            assert storage is not None
            self._set_up_home(setup, uid, storage)
        return storage

    def _set_up_home(self, conn: Connection, uid: str, storage: int) -> None:
        now = self._clock()
        home = self.home(uid)
        root = self.cache.get(conn, storage, "")
        if root is None:
            home.mkdir(parents=True, exist_ok=True)
            root = self.cache.insert(conn, storage, "", parent=-1, mimetype=DIR_MIMETYPE,
                                     size=0, mtime=int(now), etag=self.uniqid.next(now),
                                     permissions=PERM_ROOT)
        for folder in (FILES, "cache"):
            if self.cache.get(conn, storage, folder) is None:
                (home / folder).mkdir(exist_ok=True)
                self.cache.insert(conn, storage, folder, parent=root.fileid,
                                  mimetype=DIR_MIMETYPE, size=0, mtime=int(now),
                                  etag=self.uniqid.next(now), permissions=PERM_FOLDER)
        mounts = self.t.mounts
        exists = conn.execute(sa.select(mounts.c.id).where(
            (mounts.c.user_id == uid) & (mounts.c.root_id == root.fileid))).first()
        if exists is None:
            conn.execute(mounts.insert().values(storage_id=storage, root_id=root.fileid,
                                                user_id=uid, mount_point=f"/{uid}/"))

    def _row(self, conn: Connection, uid: str, spath: str) -> Row | None:
        return self.cache.get(conn, self._storage(conn, uid), spath)

    def _get(self, conn: Connection, uid: str, path: str) -> Row:
        row = self._row(conn, uid, join(FILES, path) if path else FILES)
        if row is None:
            raise NotFoundError(f"{path!r} not found in the files of {uid!r}")
        return row

    def _folder(self, conn: Connection, uid: str, path: str) -> Row:
        row = self._row(conn, uid, join(FILES, path) if path else FILES)
        if row is None or not row.is_dir:
            raise ConflictError(f"parent folder {path!r} does not exist")
        return row

    def _by_id(self, conn: Connection, uid: str, fileid: int) -> Row:
        row = self.cache.by_id(conn, fileid)
        if row is None or row.storage != self._storage(conn, uid) or not _in_files(row.path):
            raise NotFoundError(f"no file or folder with id {fileid} in the files of {uid!r}")
        return row

    def _file_by_id(self, conn: Connection, uid: str, fileid: int) -> Row:
        row = self._by_id(conn, uid, fileid)
        if row.is_dir:
            raise NotFoundError(f"{fileid} is a folder; only files have versions")
        return row

    def _trashed(self, conn: Connection, uid: str, fileid: int) -> Row:
        row = self.cache.by_id(conn, fileid)
        if (row is None or row.storage != self._storage(conn, uid)
                or not row.path.startswith(TRASH + "/")):
            raise NotFoundError(f"no item {fileid} in the trash of {uid!r}")
        return row

    def _free_space(self, conn: Connection, uid: str) -> int | None:
        """Bytes the user may still write into files/ (None = unlimited); only files/ counts
        (the quota wrapper, REFERENCE §2.6)."""
        user = self.accounts.user(uid)
        if user is None:
            raise NotFoundError(f"no user {uid!r}")
        if user.quota is None:
            return None
        return max(user.quota - max(self._get(conn, uid, "").size, 0), 0)

    def _disk(self, uid: str, spath: str) -> str:
        return os.path.join(self.home(uid), spath) if spath else str(self.home(uid))

    def _node(self, uid: str, row: Row) -> Node:
        permissions = row.permissions & READ_ONLY_MASK if self.read_only else row.permissions
        # the files root is '' for clients, whatever its row's name ('files')
        name = "" if row.path == FILES else row.name
        return filled_node(row.fileid, uid, _user_path(row.path), name, row.is_dir, row.size,
                           row.mtime, row.etag, permissions, row.mimetype, row.checksum)

    def _propagate(self, conn: Connection, storage: int, changes: dict[str, int], now: float,
                   mtime: int | None = None) -> None:
        """Propagate `changes`; the folders' mtime is `mtime` (a client's X-OC-MTime) or the
        time now, after the disk work: never older than what that work wrote."""
        when = max(int(now), int(self._clock())) if mtime is None else mtime
        self.cache.propagate(conn, storage, changes, etag=self.uniqid.next(now), mtime=when)

    def _parent_touched(self, conn: Connection, uid: str, parent: Row) -> None:
        """Updater::correctParentStorageMtime: the folder's storage_mtime is its disk mtime."""
        with contextlib.suppress(OSError):
            st = os.stat(self._disk(uid, parent.path))
            self.cache.update(conn, parent.fileid, storage_mtime=int(st.st_mtime))

    def _make_folder(self, conn: Connection, uid: str, storage: int, spath: str, parent: int,
                     now: float) -> Row:
        with _os_errors(spath):
            try:
                os.mkdir(self._disk(uid, spath))
            except FileExistsError:
                if not os.path.isdir(self._disk(uid, spath)):
                    raise
        return self.cache.insert(conn, storage, spath, parent=parent, mimetype=DIR_MIMETYPE,
                                 size=0, mtime=int(now), etag=self.uniqid.next(now),
                                 permissions=PERM_FOLDER)

    def _ensure_folder(self, conn: Connection, uid: str, storage: int, spath: str, now: float,
                       changes: dict[str, int]) -> Row:
        """The folder at storage path `spath`, made (with its missing parents) if needed."""
        row = self.cache.get(conn, storage, spath)
        if row is not None:
            return row
        parent = self._ensure_folder(conn, uid, storage, parent_of(spath), now, changes)
        row = self._make_folder(conn, uid, storage, spath, parent.fileid, now)
        changes.setdefault(spath, 0)
        return row

    def _move_on_disk(self, uid: str, src: str, dst: str) -> None:
        source, target = self._disk(uid, src), self._disk(uid, dst)
        with _os_errors(src):
            if not os.path.lexists(source):
                # a row without its file (REFERENCE §8.3): the rows still move, as in oC10
                # where the cache entry follows a rename the storage could not do
                return
            os.replace(source, target)

    def _move_row(self, conn: Connection, uid: str, row: Row, spath: str, parent: Row,
                  changes: dict[str, int], mimetype: str | None = None) -> Row:
        self._move_on_disk(uid, row.path, spath)
        moved = self.cache.move(conn, row, spath, parent.fileid, mimetype)
        size = max(row.size, 0)
        changes[row.path] = changes.get(row.path, 0) - size
        changes[spath] = changes.get(spath, 0) + size
        return moved


# ---------------------------------------------------------------------------------------------


def _etag(st: os.stat_result) -> str:
    """Local::getETag of a file just written or touched."""
    return file_etag(int(st.st_mtime), st.st_ino, st.st_dev, st.st_size)


def _in_files(spath: str) -> bool:
    return spath == FILES or spath.startswith(FILES + "/")


def _user_path(spath: str) -> str:
    if spath == FILES:
        return ""
    if spath.startswith(FILES + "/"):
        return spath[len(FILES) + 1:]
    if spath.startswith(TRASH + "/"):
        return spath[len(TRASH) + 1:]
    return spath


def _versions_path(spath: str) -> str:
    """files/a/b → files_versions/a/b."""
    return VERSIONS + spath[len(FILES):]


def _versions_dir(spath: str) -> str:
    """The files_versions folder holding the versions of the file at `spath`."""
    return _versions_path(parent_of(spath))


def _versions_in(row: Row, in_folder: list[Row]) -> list[Row]:
    """The version rows of file `row` among the rows of its files_versions folder."""
    return [v for v in in_folder
            if not v.is_dir and (p := parse_version_name(v.name)) is not None
            and p[0] == row.name]


def _versions(row: Row, found: list[Row]) -> list[Version]:
    """Version values of file `row` from its version rows, newest first."""
    return sorted(
        (Version(fileid=row.fileid, version_id=vid, size=v.size, etag=v.etag,
                 mimetype=row.mimetype, checksum=v.checksum)
         for v, vid in ((v, _version_id(v)) for v in found)),
        key=lambda v: v.version_id, reverse=True)


def _version_id(row: Row) -> int:
    parsed = parse_version_name(row.name)
    return parsed[1] if parsed is not None else 0


def _chunks(handle: BinaryIO, start: int, stop: int, what: str) -> Iterator[bytes]:
    with handle:
        if start:
            handle.seek(start)
        left = max(stop - start, 0)
        while left > 0:
            chunk = handle.read(min(READ_CHUNK, left))
            if not chunk:
                raise StorageUnavailableError(
                    f"{what!r} is {left} bytes shorter on disk than oc_filecache says")
            left -= len(chunk)
            yield chunk


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """Disk errors become the answers oC10 gives: a full disk is 507, the rest 503."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise QuotaExceededError(f"no space left on the data directory for {what!r}") from exc
        raise StorageUnavailableError(f"data directory failed for {what!r}: {exc}") from exc


if TYPE_CHECKING:  # mypy checks here that Oc10Backend has every FilesBackend method

    def _conforms(backend: Oc10Backend) -> FilesBackend:
        return backend
