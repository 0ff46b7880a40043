"""The `native` FilesBackend: the new stack's metadata store (newstack/metadata) plus a blob driver.

Blobs are written first under fresh ids and switched in by one metadata transaction, so a failed
or refused write leaves nothing behind; the metadata follows ownCloud 10's rules (REFERENCE §2.3,
§3.4, §4, §6.5) so clients cannot tell this backend from the server they synced with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from sqlalchemy import Connection

from bridge.oc10.formats import ChecksumAccumulator, parse_quota, trash_name
from bridge.oc10.mimetypes import DIR_MIMETYPE, mimetype_for
from bridge.oc10.passwords import VerifiedCredentialCache, hash_password, needs_rehash
from bridge.oc10.tokens import login_matches_token, token_hash
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
)
from newstack.metadata.store import (
    AREA_FILES,
    AREA_TRASH,
    FILE_PERMISSIONS,
    FOLDER_PERMISSIONS,
    LISTING_FIELDS,
    Changes,
    LockRecord,
    MetadataStore,
    NodeRecord,
    TrashRecord,
    UserRecord,
    VersionRecord,
    base_name,
    join_path,
    new_blob_id,
    parent_path,
)
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
from newstack.sharing.directory import NativeDirectory
from newstack.sharing.native_store import NativeShareStore
from newstack.storage.base import StorageDriver, StorageError

_SCOPES: Final = ("exclusive", "shared")
#: how long a user resolved from Basic credentials is reused without asking the database
USER_CACHE_TTL: Final = 10.0
USER_CACHE_ENTRIES: Final = 10_000


class _AuthenticatedUsers:
    """Users that `authenticate` resolved, by a sha256 of the exact (login, password) pair.

    A different password is a different key, so only credentials that verified can hit; failures
    are never stored. An entry is used for `ttl` seconds after it was made (not extended by use)
    and only while the store's users_generation is the one it was made under, so a password
    change, disabling, deletion, group or app password change made through this process's
    store takes effect at once; changes made by another process within `ttl`. Thread-safe.
    """

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, int, User]] = OrderedDict()

    @staticmethod
    def key(login: str, password: str) -> bytes:
        return hashlib.sha256(f"{login}\0{password}".encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes, generation: int) -> User | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expiry, made_under, user = entry
            if expiry <= now or made_under != generation:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return user

    def put(self, key: bytes, generation: int, user: User) -> None:
        expiry = self._clock() + self._ttl
        with self._lock:
            self._entries[key] = (expiry, generation, user)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class NativeBackend:
    """FilesBackend over a MetadataStore and a StorageDriver; thread-safe, stateless per call.

    `secret` and `passwordsalt` are the ownCloud 10 instance's config.php values (app password
    hashes and legacy password hashes depend on them). `default_quota` is appconfig
    files/default_quota, used for users whose quota is 'default' or NULL.
    """

    def __init__(
        self,
        store: MetadataStore,
        driver: StorageDriver,
        *,
        instance_id: str,
        data_fingerprint: str = "",
        secret: str,
        passwordsalt: str,
        credential_cache: VerifiedCredentialCache,
        default_quota: str | None = None,
        share_folder: str = "/",
        clock: Callable[[], float] = time.time,
        user_cache_ttl: float = USER_CACHE_TTL,
    ) -> None:
        self.store = store
        self.driver = driver
        self.shares = NativeShareStore(store, clock=clock)
        self._directory = NativeDirectory(store.engine)
        self.instance_id = instance_id
        self.data_fingerprint = data_fingerprint
        self._secret = secret
        self._passwordsalt = passwordsalt
        self._credentials = credential_cache
        self._default_quota = default_quota
        #: where new shares land in recipients' files (oC10's config.php `share_folder`)
        self.share_folder = share_folder
        self._clock = clock
        self._users = (
            _AuthenticatedUsers(user_cache_ttl, USER_CACHE_ENTRIES, time.monotonic)
            if user_cache_ttl > 0
            else None
        )

    def set_identity(self, identity: dict[str, str]) -> None:
        """Take up the instance identity migration imported while this process was serving
        (newstack/service.py watches for it): oc:id, fingerprint and hashes depend on it."""
        self.instance_id = identity["instance_id"]
        self.data_fingerprint = identity.get("data_fingerprint", "")
        self._secret = identity["secret"]
        self._passwordsalt = identity["passwordsalt"]
        self._default_quota = identity.get("default_quota")
        self.share_folder = identity.get("share_folder", "/")

    # -- users and credentials --------------------------------------------------------------------

    def authenticate(self, login: str, password: str) -> User | None:
        """REFERENCE §4.5: token (app password) for this login name, else the login password;
        then the same again with the uid of the one account whose e-mail is `login`.

        A success is remembered for `user_cache_ttl` seconds (default 10), so a client's next
        requests with the same credentials cost no database query; changes to users, groups
        or app passwords made through this process's store end that at once, changes made by
        another process (e.g. `ocbridge users` on the command line) within the TTL. The token's
        last_activity is then brought up to date at the next miss (oC10: once a minute)."""
        if not login or not password:
            return None
        if self._users is None:
            return self._authenticate(login, password)
        # the generation is read before the database so that a change committed meanwhile
        # makes the entry stale rather than cached under the new generation
        generation = self.store.users_generation
        key = self._users.key(login, password)
        user = self._users.get(key, generation)
        if user is None:
            user = self._authenticate(login, password)
            if user is not None:
                self._users.put(key, generation, user)
        return user

    def authenticate_bearer(self, token: str) -> User | None:
        """An OAuth2 access token carried over from ownCloud's oauth2 app (AuthModule): known,
        not expired (refused from its `expires` second on), its user enabled."""
        found = self.store.oauth2_access_token(token) if token else None
        if found is None or self._clock() >= found[1]:
            return None
        record = self.store.user(found[0])
        if record is None or not record.enabled:
            return None
        return self._user(record)

    def _authenticate(self, login: str, password: str) -> User | None:
        record = self._login(login, password)
        if record is None:
            uids = self.store.uids_by_email(login)
            if len(uids) == 1:
                record = self._login(uids[0], password)
        if record is None or not record.enabled:
            return None
        return self._user(record)

    def _login(self, login: str, password: str) -> UserRecord | None:
        token = self.store.app_password(token_hash(password, self._secret))
        if token is not None and login_matches_token(login, token.login_name):
            record = self.store.user(token.uid)
            if record is not None and record.enabled:
                self.store.touch_app_password(token, int(self._clock()))
                return record
        record = self.store.user_by_login(login)
        if record is None or not record.password:
            return None
        if not self._credentials.verify(record.uid, password, record.password, self._passwordsalt):
            return None
        if needs_rehash(record.password):
            upgraded = hash_password(password)
            self.store.update_user(record.uid, password=upgraded)
            self._credentials.add(record.uid, password, upgraded)
            record = replace(record, password=upgraded)
        return record

    def user(self, uid: str) -> User | None:
        record = self.store.user(uid)
        return None if record is None else self._user(record)

    def _user(self, record: UserRecord) -> User:
        return User(
            uid=record.uid,
            display_name=record.display_name or record.uid,
            email=record.email,
            enabled=record.enabled,
            quota=self._quota_bytes(record),
            language=record.language or "en",
            groups=self.store.groups_of(record.uid),
        )

    def _quota_bytes(self, record: UserRecord) -> int | None:
        return parse_quota(record.quota, self._default_quota)

    def delete_user(self, uid: str) -> None:
        """Delete a user and all their files, versions and trash, blobs included, and their
        shares (given and received), as oC10's post_deleteUser hook does."""
        self.store.delete_user(uid, lambda blob: self.driver.delete(blob, missing_ok=True))
        self.shares.user_deleted(uid)

    # -- reading ----------------------------------------------------------------------------------

    def stat(self, uid: str, path: str) -> Node:
        path = normalize(path)
        record = self.store.lookup_node(uid, AREA_FILES, path)
        if record is None:
            raise NotFoundError(f"{path!r} not found in the files of {uid!r}")
        return _node(record)

    def children(self, uid: str, path: str) -> list[Node]:
        path = normalize(path)
        with self.store.read() as conn:
            folder = self._get(conn, uid, path)
            if not folder.is_dir:
                return []
            rows = self.store.listing(conn, folder.fileid)
        return [_listed_node(row) for row in rows]

    def children_many(self, uid: str, paths: Iterable[str]) -> dict[str, list[Node]]:
        asked = {path: normalize(path) for path in paths}
        with self.store.read() as conn:
            found = self.store.nodes_at(conn, uid, AREA_FILES, list(set(asked.values())))
            rows = self.store.listings(
                conn, [record.fileid for record in found.values() if record.is_dir]
            )
        listed: dict[str, list[Node]] = {}
        for path, normal in asked.items():
            record = found.get(normal)
            if record is not None:
                listed[path] = (
                    [_listed_node(row) for row in rows[record.fileid]] if record.is_dir else []
                )
        return listed

    def by_id(self, uid: str, fileid: int) -> Node:
        with self.store.read() as conn:
            return _node(self._by_id(conn, uid, fileid))

    def extras(self, uid: str, nodes: Iterable[Node]) -> dict[int, NodeExtras]:
        ids = sorted({node.fileid for node in nodes})
        if not ids:
            return {}
        with self.store.read() as conn:
            favorites = self.store.favorites(conn, uid, ids)
            tags = self.store.tags(conn, uid, ids)
            comments = self.store.comment_counts(conn, uid, ids)
            dead = self.store.dead_props(conn, ids)
            shared = self.shares.share_types(conn, uid, ids, self._today())
        annotated = favorites.union(tags, comments, dead, shared)
        # most nodes have no annotation: they share one empty NodeExtras (read-only, as
        # dav/props.py's own _NO_EXTRAS), which spares a thousand-entry listing ~2 ms
        empty = NodeExtras()
        return {
            fileid: NodeExtras(
                favorite=fileid in favorites,
                tags=tuple(tags.get(fileid, ())),
                share_types=shared.get(fileid, ()),
                comments_count=comments.get(fileid, (0, 0))[0],
                comments_unread=comments.get(fileid, (0, 0))[1],
                dead=dead.get(fileid, {}),
            )
            if fileid in annotated
            else empty
            for fileid in ids
        }

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC).date()

    def quota(self, uid: str) -> Quota:
        with self.store.read() as conn:
            record = self.store.user(uid, conn)
            if record is None:
                raise NotFoundError(f"no user {uid!r}")
            root = self._get(conn, uid, "")
        return quota_of(root.size, self._quota_bytes(record))

    def read(self, uid: str, node: Node, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        # the node's current blob, looked up again: `node` may be older than the content
        record = _in_files(self.store.lookup_node_by_id(node.fileid), uid, node.fileid)
        if record.is_dir:
            raise ForbiddenError(f"{record.path!r} is a folder; only files have content")
        return self._open_blob(record.blob_id, start, end, record.path)

    def _open_blob(
        self, blob_id: str | None, start: int, end: int | None, what: str
    ) -> Iterator[bytes]:
        if blob_id is None:
            raise StorageUnavailableError(f"the content of {what!r} is missing from storage")
        with _storage_errors(what):
            chunks = self.driver.open(blob_id, start, end)
        return _translated(chunks, what)

    # -- writing ----------------------------------------------------------------------------------

    def write(
        self,
        uid: str,
        path: str,
        body: BinaryIO,
        *,
        length: int | None,
        mtime: int | None = None,
        checksum: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> WriteResult:
        path = normalize(path)
        if path == "":
            raise AlreadyExistsError("the files root is a folder; PUT needs a file name")
        name = base_name(path)
        check_name(name)
        now = self._clock()
        with self.store.read() as conn:
            self._folder(conn, uid, parent_path(path))
            existing = self.store.node(conn, uid, AREA_FILES, path)
            check_target(existing, path, if_match, if_none_match)
            free = self._free_space(conn, uid)
        if free is not None and length is not None and length > free:
            raise QuotaExceededError(f"{length} bytes do not fit: {max(free, 0)} bytes free")

        blob_id = new_blob_id()
        with _storage_errors(path):
            info = self.driver.put(blob_id, body_chunks(body, length, free, path))
        garbage: list[str] = []
        try:
            computed = (
                info.checksums.oc10() if info.checksums is not None else self._checksum(blob_id)
            )
            if checksum and checksum.strip() and checksum.strip() not in computed:
                raise ChecksumMismatchError(CHECKSUM_MESSAGE)
            new_mtime = int(mtime) if mtime is not None else int(now)
            with self.store.write(uid) as conn:
                parent = self._folder(conn, uid, parent_path(path))
                existing = self.store.node(conn, uid, AREA_FILES, path)
                check_target(existing, path, if_match, if_none_match)
                free = self._free_space(conn, uid)
                if free is not None and info.size > free:
                    raise QuotaExceededError(f"{info.size} bytes do not fit: {free} bytes free")
                changes = Changes()
                if existing is None:
                    fileid = self.store.allocate_fileids(1, conn)[0]
                    self.store.insert_node(
                        conn,
                        NodeRecord(
                            fileid=fileid,
                            owner=uid,
                            area=AREA_FILES,
                            path=path,
                            parent=parent.fileid,
                            name=name,
                            is_dir=False,
                            size=info.size,
                            mtime=new_mtime,
                            etag=_file_etag(new_mtime, fileid, info.size),
                            checksum=computed,
                            mimetype=mimetype_for(name),
                            permissions=FILE_PERMISSIONS,
                            blob_id=blob_id,
                        ),
                    )
                    changes.add(AREA_FILES, path, info.size)
                else:
                    fileid = existing.fileid
                    garbage.extend(self._keep_as_version(conn, existing))
                    self.store.update_node(
                        conn,
                        fileid,
                        size=info.size,
                        mtime=new_mtime,
                        etag=_file_etag(new_mtime, fileid, info.size),
                        checksum=computed,
                        blob_id=blob_id,
                    )
                    changes.add(AREA_FILES, path, info.size - max(existing.size, 0))
                # X-OC-MTime is also the time propagated to the parents (REFERENCE §6.5)
                self.store.propagate(
                    conn, uid, changes, etag=self.store.uniqid.next(now), mtime=new_mtime
                )
                written = self.store.node_by_id(conn, fileid)
        except BaseException:
            self._delete_blobs([blob_id])
            raise
        self._delete_blobs(garbage)
        assert written is not None
        return WriteResult(
            node=_node(written), created=existing is None, mtime_accepted=mtime is not None
        )

    def _keep_as_version(self, conn: Connection, current: NodeRecord) -> list[str]:
        """Before an overwrite: non-empty content becomes version `.v<its mtime>` (REFERENCE
        §3.4); returns blobs no longer used (an empty file's, or a replaced version's)."""
        if current.blob_id is None:
            return []
        if current.size == 0:
            return [current.blob_id]
        replaced = self.store.put_version(conn, _version_of(current))
        return [replaced] if replaced else []

    def mkdir(self, uid: str, path: str) -> Node:
        path = normalize(path)
        if path == "":
            raise AlreadyExistsError("the files root exists")
        name = base_name(path)
        check_name(name)
        now = self._clock()
        with self.store.write(uid) as conn:
            parent = self._folder(conn, uid, parent_path(path))
            if self.store.node(conn, uid, AREA_FILES, path) is not None:
                raise AlreadyExistsError(f"{path!r} exists")
            etag = self.store.uniqid.next(now)
            fileid = self.store.allocate_fileids(1, conn)[0]
            folder = NodeRecord(
                fileid=fileid,
                owner=uid,
                area=AREA_FILES,
                path=path,
                parent=parent.fileid,
                name=name,
                is_dir=True,
                size=0,
                mtime=int(now),
                etag=etag,
                checksum="",
                mimetype=DIR_MIMETYPE,
                permissions=FOLDER_PERMISSIONS,
                blob_id=None,
            )
            self.store.insert_node(conn, folder)
            changes = Changes()
            changes.add(AREA_FILES, path)
            self.store.propagate(conn, uid, changes, etag=etag, mtime=int(now))
        return _node(folder)

    def delete(self, uid: str, path: str) -> None:
        path = normalize(path)
        if path == "":
            raise ForbiddenError("the files root cannot be deleted")
        now = self._clock()
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, path)
            changes = Changes()
            self._trash_node(conn, node, now, changes)
            self.store.propagate(
                conn, uid, changes, etag=self.store.uniqid.next(now), mtime=int(now)
            )

    def _trash_node(self, conn: Connection, node: NodeRecord, now: float, changes: Changes) -> None:
        """Trashbin::move2trash: the node (fileid kept) becomes `<name>.d<t>` in the trash."""
        uid = node.owner
        trash_root = self.store.node(conn, uid, AREA_TRASH, "")
        if trash_root is None:  # a migrated user without one
            trash_root = self.store.make_root(conn, uid, AREA_TRASH, now)
        ts = int(now)
        # oC10 would overwrite an item trashed under the same name in the same second; we keep
        # both by taking the next free second instead
        while self.store.node(conn, uid, AREA_TRASH, trash_name(node.name, ts)) is not None:
            ts += 1
        trash_path = trash_name(node.name, ts)
        self.store.move_subtree(
            conn, node, area=AREA_TRASH, path=trash_path, parent=trash_root.fileid, name=trash_path
        )
        self.store.add_trash_record(
            conn,
            TrashRecord(
                fileid=node.fileid,
                owner=uid,
                original_name=node.name,
                original_location=parent_path(node.path) or ".",
                deleted_at=ts,
            ),
        )
        self.store.delete_locks_below(conn, uid, node.path)
        size = max(node.size, 0)
        changes.add(AREA_FILES, node.path, -size)
        changes.add(AREA_TRASH, trash_path, size)

    def move(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        src, dst = normalize(src), normalize(dst)
        check_move(src, dst, "move")
        name = base_name(dst)
        check_name(name)
        now = self._clock()
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, src)
            parent = self._folder(conn, uid, parent_path(dst))
            target = self.store.node(conn, uid, AREA_FILES, dst)
            changes = Changes()
            if target is not None:
                if not overwrite:
                    raise AlreadyExistsError(f"{dst!r} exists")
                check_replace(src, dst)
                self._trash_node(conn, target, now, changes)
            self.store.delete_locks_below(conn, uid, src)
            moved = self.store.move_subtree(
                conn,
                node,
                area=AREA_FILES,
                path=dst,
                parent=parent.fileid,
                name=name,
                mimetype=renamed_mimetype(node.is_dir, node.name, name),
            )
            size = max(node.size, 0)
            changes.add(AREA_FILES, src, -size)
            changes.add(AREA_FILES, dst, size)
            self.store.propagate(
                conn, uid, changes, etag=self.store.uniqid.next(now), mtime=int(now)
            )
        return WriteResult(node=_node(moved), created=target is None)

    def copy(self, uid: str, src: str, dst: str, *, overwrite: bool) -> WriteResult:
        src, dst = normalize(src), normalize(dst)
        check_move(src, dst, "copy")
        name = base_name(dst)
        check_name(name)
        now = self._clock()
        with self.store.read() as conn:
            top = self._get(conn, uid, src)
            self._folder(conn, uid, parent_path(dst))
            target = self.store.node(conn, uid, AREA_FILES, dst)
            if target is not None and not overwrite:
                raise AlreadyExistsError(f"{dst!r} exists")
            below = self.store.descendants(conn, top.fileid) if top.is_dir else []
            sources = [top, *below]
            versions = self.store.versions_of(conn, [n.fileid for n in sources if not n.is_dir])
            free = self._free_space(conn, uid)
        if free is not None and max(top.size, 0) > free:
            raise QuotaExceededError(f"copying {top.size} bytes does not fit: {free} bytes free")

        # blobs first, under new ids; metadata after, in one transaction
        ids = dict(
            zip(
                (n.fileid for n in sources),
                self.store.allocate_fileids(len(sources)),
                strict=True,
            )
        )
        copied: list[str] = []
        new_blobs: dict[str, str] = {}
        try:
            for blob in [n.blob_id for n in sources if n.blob_id] + [v.blob_id for v in versions]:
                new_blobs[blob] = new_blob_id()
                with _storage_errors(src):
                    self.driver.copy(blob, new_blobs[blob])
                copied.append(new_blobs[blob])
            with self.store.write(uid) as conn:
                parent = self._folder(conn, uid, parent_path(dst))
                target = self.store.node(conn, uid, AREA_FILES, dst)
                changes = Changes()
                if target is not None:
                    if not overwrite:
                        raise AlreadyExistsError(f"{dst!r} exists")
                    check_replace(src, dst)
                    self._trash_node(conn, target, now, changes)
                etag = self.store.uniqid.next(now)
                rows = []
                for n in sources:
                    fileid = ids[n.fileid]
                    is_top = n is top
                    path = dst if is_top else dst + n.path[len(top.path) :]
                    rows.append(
                        replace(
                            n,
                            fileid=fileid,
                            path=path,
                            path_hash="",
                            parent=parent.fileid if is_top else ids[n.parent],
                            name=name if is_top else n.name,
                            # a copy is new content on disk for oC10: new mtime and etag
                            mtime=int(now),
                            etag=etag if n.is_dir else _file_etag(int(now), fileid, n.size),
                            mimetype=(renamed_mimetype(n.is_dir, n.name, name) if is_top else None)
                            or n.mimetype,
                            blob_id=new_blobs[n.blob_id] if n.blob_id else None,
                        )
                    )
                for row in rows:
                    self.store.insert_node(conn, row)
                self.store.insert_versions(
                    conn,
                    (
                        replace(v, fileid=ids[v.fileid], blob_id=new_blobs[v.blob_id])
                        for v in versions
                    ),
                )
                changes.add(AREA_FILES, dst, max(top.size, 0))
                self.store.propagate(conn, uid, changes, etag=etag, mtime=int(now))
                result = self.store.node_by_id(conn, ids[top.fileid])
        except BaseException:
            self._delete_blobs(copied)
            raise
        assert result is not None
        return WriteResult(node=_node(result), created=target is None)

    def set_mtime(self, uid: str, path: str, mtime: int) -> Node:
        path = normalize(path)
        now = self._clock()
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, path)
            etag = self.store.uniqid.next(now)
            new_etag = etag if node.is_dir else _file_etag(mtime, node.fileid, node.size)
            self.store.update_node(conn, node.fileid, mtime=int(mtime), etag=new_etag)
            changes = Changes()
            changes.add(AREA_FILES, path)
            self.store.propagate(conn, uid, changes, etag=etag, mtime=int(mtime))
            touched = self.store.node_by_id(conn, node.fileid)
        assert touched is not None
        return _node(touched)

    def set_etag(self, uid: str, path: str, etag: str) -> Node:
        """PROPPATCH {DAV:}getetag: overwrite the stored etag, nothing else (no propagation,
        as Node::setEtag only updates the cache row)."""
        path = normalize(path)
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, path)
            self.store.update_node(conn, node.fileid, etag=etag.strip('"')[:40])
        return _node(replace(node, etag=etag.strip('"')[:40]))

    def set_favorite(self, uid: str, path: str, favorite: bool) -> None:
        path = normalize(path)
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, path)
            self.store.set_favorite(conn, uid, node.fileid, favorite)

    def set_favorite_by_id(self, uid: str, fileid: int, favorite: bool) -> None:
        """Favorite a node of another owner that `uid` sees through a share (per user)."""
        with self.store.write(uid) as conn:
            self.store.set_favorite(conn, uid, fileid, favorite)

    def set_tags(self, uid: str, path: str, tags: Iterable[str]) -> None:
        """Replace the user's personal tags of a node (PROPPATCH oc:tags)."""
        path = normalize(path)
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, path)
            self.store.set_tags(conn, uid, node.fileid, tags)

    def set_dead_props(self, uid: str, path: str, props: dict[str, str | None]) -> None:
        path = normalize(path)
        with self.store.write(uid) as conn:
            node = self._get(conn, uid, path)
            self.store.set_dead_props(conn, node.fileid, props)

    # -- trash and versions -----------------------------------------------------------------------

    def trash(self, uid: str) -> list[TrashItem]:
        with self.store.read() as conn:
            items = []
            for record in self.store.trash_records(conn, uid):
                node = self.store.node_by_id(conn, record.fileid)
                if node is None:
                    continue
                items.append(
                    TrashItem(
                        node=_node(node),
                        original_name=record.original_name,
                        original_location=record.original_location,
                        deleted_at=record.deleted_at,
                    )
                )
        return items

    def trashed(self, uid: str, fileid: int) -> Node:
        with self.store.read() as conn:
            return _node(self._trashed(conn, uid, fileid))

    def trash_children(self, uid: str, fileid: int) -> list[Node]:
        """Children of a trashed folder (trash-bin/<uid>/<fileid>/…), by name in byte order."""
        with self.store.read() as conn:
            folder = self._trashed(conn, uid, fileid)
            if not folder.is_dir:
                return []
            return [_node(child) for child in self.store.children(conn, folder.fileid)]

    def read_trashed(
        self, uid: str, fileid: int, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        """Content of a trashed file (GET on a trash-bin item)."""
        with self.store.read() as conn:
            node = self._trashed(conn, uid, fileid)
        if node.is_dir:
            raise ForbiddenError(f"trashed item {fileid} is a folder; only files have content")
        return self._open_blob(node.blob_id, start, end, node.path)

    def restore(self, uid: str, fileid: int, dst: str | None = None) -> Node:
        """Back to the original place (or `dst`); the fileid is kept.

        Without `dst`, like Trashbin::restore: a missing original folder means the files root,
        and a name taken there gets ' (restored)', then ' (restored 2)', ... before the extension.
        With `dst`, that exact path: its parent must exist and it must not (AlreadyExistsError;
        the DAV layer deletes an existing target first when the client asked to overwrite).
        """
        now = self._clock()
        with self.store.write(uid) as conn:
            node = self._trashed(conn, uid, fileid)
            top_path = node.path.split("/", 1)[0]
            top = (
                node if top_path == node.path else self.store.node(conn, uid, AREA_TRASH, top_path)
            )
            record = self.store.trash_record(conn, top.fileid) if top is not None else None
            if dst is not None:
                path = normalize(dst)
                if path == "":
                    raise AlreadyExistsError("the files root exists")
                check_name(base_name(path))
                parent = self._folder(conn, uid, parent_path(path))
                if self.store.node(conn, uid, AREA_FILES, path) is not None:
                    raise AlreadyExistsError(f"{path!r} exists")
            else:
                folder, name = _original_place(node, top_path, record)
                parent_node = self.store.node(conn, uid, AREA_FILES, folder)
                if parent_node is None or not parent_node.is_dir:
                    folder = ""
                    parent_node = self._folder(conn, uid, "")
                parent = parent_node
                path = join_path(folder, self._free_restore_name(conn, uid, folder, name))
            name = base_name(path)
            restored = self.store.move_subtree(
                conn,
                node,
                area=AREA_FILES,
                path=path,
                parent=parent.fileid,
                name=name,
                mimetype=renamed_mimetype(node.is_dir, _name_before_trash(node, record), name),
            )
            if node is top:
                self.store.delete_trash_record(conn, node.fileid)
            size = max(node.size, 0)
            changes = Changes()
            changes.add(AREA_TRASH, node.path, -size)
            changes.add(AREA_FILES, path, size)
            self.store.propagate(
                conn, uid, changes, etag=self.store.uniqid.next(now), mtime=int(now)
            )
        return _node(restored)

    def _free_restore_name(self, conn: Connection, uid: str, folder: str, name: str) -> str:
        return next(
            candidate
            for candidate in restore_names(name)
            if self.store.node(conn, uid, AREA_FILES, join_path(folder, candidate)) is None
        )

    def purge(self, uid: str, fileid: int | None = None) -> None:
        now = self._clock()
        blobs: list[str] = []
        with self.store.write(uid) as conn:
            changes = Changes()
            if fileid is None:
                root = self.store.node(conn, uid, AREA_TRASH, "")
                if root is None:
                    return
                for child in self.store.children(conn, root.fileid):
                    blobs.extend(self.store.delete_subtree(conn, child))
                    changes.add(AREA_TRASH, child.path, -max(child.size, 0))
            else:
                node = self._trashed(conn, uid, fileid)
                blobs.extend(self.store.delete_subtree(conn, node))
                changes.add(AREA_TRASH, node.path, -max(node.size, 0))
            self.store.propagate(
                conn, uid, changes, etag=self.store.uniqid.next(now), mtime=int(now)
            )
        self._delete_blobs(blobs)

    def versions(self, uid: str, fileid: int) -> list[Version]:
        with self.store.read() as conn:
            node = self._file_by_id(conn, uid, fileid)
            return [_version(v) for v in self.store.versions(conn, node.fileid)]

    def versions_many(self, uid: str, fileids: Iterable[int]) -> dict[int, list[Version]]:
        with self.store.read() as conn:
            files = [
                record.fileid
                for record in self.store.nodes_by_ids(conn, sorted(set(fileids)))
                if record.owner == uid and record.area == AREA_FILES and not record.is_dir
            ]
            records = self.store.versions_of(conn, files)
        found: dict[int, list[Version]] = {fileid: [] for fileid in files}
        # newest first, as `versions` orders them
        for record in sorted(records, key=lambda v: v.version_id, reverse=True):
            found[record.fileid].append(_version(record))
        return found

    def read_version(self, uid: str, fileid: int, version_id: int) -> Iterator[bytes]:
        with self.store.read() as conn:
            node = self._file_by_id(conn, uid, fileid)
            version = self.store.version(conn, node.fileid, version_id)
        if version is None:
            raise NotFoundError(f"file {fileid} has no version {version_id}")
        return self._open_blob(version.blob_id, 0, None, f"{node.path}.v{version_id}")

    def restore_version(self, uid: str, fileid: int, version_id: int) -> Node:
        """Storage::rollback: the current content becomes version `.v<its mtime>` (unless that
        exists), the chosen version becomes the current content with mtime = its id."""
        now = self._clock()
        garbage: list[str] = []
        with self.store.write(uid) as conn:
            node = self._file_by_id(conn, uid, fileid)
            version = self.store.version(conn, fileid, version_id)
            if version is None:
                raise NotFoundError(f"file {fileid} has no version {version_id}")
            self.store.delete_version(conn, fileid, version_id)
            if node.blob_id is not None:
                if self.store.version(conn, fileid, node.mtime) is None:
                    self.store.put_version(conn, _version_of(node))
                else:
                    garbage.append(node.blob_id)
            self.store.update_node(
                conn,
                fileid,
                blob_id=version.blob_id,
                size=version.size,
                checksum=version.checksum,
                mtime=version_id,
                etag=_file_etag(version_id, fileid, version.size),
            )
            changes = Changes()
            changes.add(AREA_FILES, node.path, version.size - max(node.size, 0))
            self.store.propagate(
                conn, uid, changes, etag=self.store.uniqid.next(now), mtime=int(now)
            )
            restored = self.store.node_by_id(conn, fileid)
        self._delete_blobs(garbage)
        assert restored is not None
        return _node(restored)

    # -- finding (REPORT) -------------------------------------------------------------------------

    def favorites(self, uid: str) -> list[Node]:
        with self.store.read() as conn:
            return [_node(record) for record in self.store.favorite_nodes(conn, uid)]

    def search(self, uid: str, pattern: str, limit: int) -> list[Node]:
        like = f"%{unicodedata.normalize('NFC', pattern)}%"
        with self.store.read() as conn:
            return [_node(record) for record in self.store.search_names(conn, uid, like, limit)]

    def systemtag_fileids(self, uid: str, tag_id: int) -> list[int]:
        """As the oc10 backend answers (FilesReportPlugin::getSystemTagFileIds): NotFoundError
        for an unknown tag, or an invisible one asked by a non-admin."""
        with self.store.read() as conn:
            visibility = self.store.systemtag_visibility(conn, tag_id)
            if visibility is None:
                raise NotFoundError(f"no system tag {tag_id}")
            if not visibility and "admin" not in self.store.groups_of(uid):
                raise NotFoundError(f"system tag {tag_id} is not visible to {uid!r}")
            return self.store.systemtag_fileids(conn, tag_id)

    # -- locks ------------------------------------------------------------------------------------

    def locks(
        self, uid: str, path: str, *, with_parents: bool = True, with_children: bool = False
    ) -> list[Lock]:
        """Live locks on `path`; with_parents adds depth-infinity locks on its ancestors,
        with_children adds locks anywhere below it."""
        path = normalize(path)
        with self.store.read() as conn:
            records = self.store.locks(conn, uid, self._clock())
        return [
            _lock(r)
            for r in records
            if r.path == path
            or (with_parents and r.depth != 0 and strictly_below(path, r.path))
            or (with_children and strictly_below(r.path, path))
        ]

    def lock(self, uid: str, lock: Lock) -> Lock:
        """Store a new lock; LockedError if it conflicts with a live one (an exclusive lock
        conflicts with any other, shared locks only with exclusive ones) on the path, on an
        ancestor locked with depth infinity or, for a depth-infinity lock, below the path."""
        if lock.scope not in _SCOPES:
            raise ValueError(f"lock scope must be one of {_SCOPES}, not {lock.scope!r}")
        path = normalize(lock.path)
        now = self._clock()
        created = lock.created_at or int(now)
        with self.store.write(uid) as conn:
            self.store.purge_expired_locks(conn, uid, now)
            for other in self.store.locks(conn, uid, now):
                covers = (
                    other.path == path
                    or (other.depth != 0 and strictly_below(path, other.path))
                    or (lock.depth != 0 and strictly_below(other.path, path))
                )
                if covers and "exclusive" in (lock.scope, other.scope):
                    raise LockedError(f"{path!r} is locked ({other.scope}, {other.path!r})")
            record = LockRecord(
                token=lock.token,
                uid=uid,
                path=path,
                scope=lock.scope,
                depth=lock.depth,
                timeout=lock.timeout,
                created_at=created,
                owner=lock.owner,
            )
            self.store.add_lock(conn, record)
        return _lock(record)

    def refresh_lock(self, uid: str, token: str, timeout: int) -> Lock:
        now = int(self._clock())
        with self.store.write(uid) as conn:
            record = self.store.lock_by_token(conn, token)
            if record is None or record.uid != uid or not record.alive(now):
                raise NotFoundError(f"no live lock {token!r}")
            self.store.update_lock(conn, token, timeout=timeout, created_at=now)
        return _lock(replace(record, timeout=timeout, created_at=now))

    def unlock(self, uid: str, path: str, token: str) -> None:
        path = normalize(path)
        with self.store.write(uid) as conn:
            record = self.store.lock_by_token(conn, token)
            if record is None or record.uid != uid:
                raise NotFoundError(f"no lock {token!r}")
            if not (
                record.path == path or (record.depth != 0 and strictly_below(path, record.path))
            ):
                raise ConflictError(f"lock {token!r} does not cover {path!r}")
            self.store.delete_lock(conn, token)

    # -- sharees ----------------------------------------------------------------------------------

    @property
    def passwordsalt(self) -> str:
        return self._passwordsalt

    def find_users(self, pattern: str, limit: int) -> list[User]:
        found = (self.user(uid) for uid in self._directory.find_uids(pattern, limit))
        return [user for user in found if user is not None]

    def find_groups(self, pattern: str, limit: int) -> list[str]:
        return self._directory.find_groups(pattern, limit)

    def group_members(self, gid: str) -> list[str]:
        return self._directory.group_members(gid)

    # -- helpers ----------------------------------------------------------------------------------

    def _get(self, conn: Connection, uid: str, path: str) -> NodeRecord:
        node = self.store.node(conn, uid, AREA_FILES, path)
        if node is None:
            raise NotFoundError(f"{path!r} not found in the files of {uid!r}")
        return node

    def _folder(self, conn: Connection, uid: str, path: str) -> NodeRecord:
        node = self.store.node(conn, uid, AREA_FILES, path)
        if node is None or not node.is_dir:
            raise ConflictError(f"parent folder {path!r} does not exist")
        return node

    def _by_id(self, conn: Connection, uid: str, fileid: int) -> NodeRecord:
        return _in_files(self.store.node_by_id(conn, fileid), uid, fileid)

    def _trashed(self, conn: Connection, uid: str, fileid: int) -> NodeRecord:
        node = self.store.node_by_id(conn, fileid)
        if node is None or node.owner != uid or node.area != AREA_TRASH or node.path == "":
            raise NotFoundError(f"no item {fileid} in the trash of {uid!r}")
        return node

    def _file_by_id(self, conn: Connection, uid: str, fileid: int) -> NodeRecord:
        node = self._by_id(conn, uid, fileid)
        if node.is_dir:
            raise NotFoundError(f"{fileid} is a folder; only files have versions")
        return node

    def _free_space(self, conn: Connection, uid: str) -> int | None:
        """Bytes the user may still write into files/ (None = unlimited). Only files/ counts."""
        record = self.store.user(uid, conn)
        if record is None:
            raise NotFoundError(f"no user {uid!r}")
        limit = self._quota_bytes(record)
        if limit is None:
            return None
        root = self._get(conn, uid, "")
        return max(limit - max(root.size, 0), 0)

    def _checksum(self, blob_id: str) -> str:
        accumulator = ChecksumAccumulator()
        with _storage_errors(blob_id):
            for chunk in self.driver.open(blob_id):
                accumulator.update(chunk)
        return accumulator.result()

    def _delete_blobs(self, blob_ids: Iterable[str]) -> None:
        # after the commit: a blob that cannot go now is an orphan, never a broken node
        for blob_id in blob_ids:
            try:
                self.driver.delete(blob_id, missing_ok=True)
            except StorageError:
                pass


# ---------------------------------------------------------------------------------------------
# Pure helpers



def _in_files(node: NodeRecord | None, uid: str, fileid: int) -> NodeRecord:
    """`node` (looked up by `fileid`) if it is in `uid`'s files, else NotFoundError."""
    if node is None or node.owner != uid or node.area != AREA_FILES:
        raise NotFoundError(f"no file or folder with id {fileid} in the files of {uid!r}")
    return node







def _file_etag(mtime: int, fileid: int, size: int) -> str:
    """32 hex like Local::getETag's md5(mtime.inode.device.size), with randomness in place of
    the inode and device, so two writes never share an etag."""
    return hashlib.md5(f"{mtime}{fileid}{secrets.token_hex(8)}{size}".encode()).hexdigest()




def _original_place(node: NodeRecord, top_path: str, record: TrashRecord | None) -> tuple[str, str]:
    """(folder, name) a trashed node came from, relative to the files root."""
    if record is not None:
        location = "" if record.original_location == "." else record.original_location
        top_name = record.original_name
    else:  # a trash node without its row: fall back to the top level and the plain name
        location, top_name = "", top_path.rsplit(".d", 1)[0]
    if node.path == top_path:
        return location, top_name
    inner = node.path[len(top_path) + 1 :]
    return join_path(join_path(location, top_name), parent_path(inner)).strip("/"), node.name


def _name_before_trash(node: NodeRecord, record: TrashRecord | None) -> str:
    """Only the top of a trashed tree was renamed (to `<name>.d<t>`)."""
    if "/" in node.path:
        return node.name
    return record.original_name if record is not None else node.name.rsplit(".d", 1)[0]




def _node(record: NodeRecord) -> Node:
    return Node(
        fileid=record.fileid,
        owner=record.owner,
        path=record.path,
        name=record.name,
        is_dir=record.is_dir,
        size=record.size,
        mtime=record.mtime,
        etag=record.etag,
        permissions=record.permissions,
        mimetype=record.mimetype,
        checksum=record.checksum or "",
    )


#: Node is a plain frozen dataclass (no __post_init__, no __slots__) whose fields are the
#: listing columns: a listing of thousands fills its instances' attributes directly, which costs
#: a third of the generated frozen __init__ (one object.__setattr__ per field)
_PLAIN_NODE: Final = (
    tuple(f.name for f in fields(Node)) == LISTING_FIELDS
    and not hasattr(Node, "__post_init__")
    and not hasattr(Node, "__slots__")
)
_new = object.__new__


def _listed_node(row: Sequence[Any]) -> Node:
    """A Node from a `MetadataStore.listing` row: the same as _node(NodeRecord(...))."""
    if not _PLAIN_NODE:
        values = dict(zip(LISTING_FIELDS, row, strict=True))
        values["is_dir"] = bool(values["is_dir"])
        values["checksum"] = values["checksum"] or ""
        return Node(**values)
    node: Node = _new(Node)
    node.__dict__.update(
        fileid=row[0],
        owner=row[1],
        path=row[2],
        name=row[3],
        is_dir=bool(row[4]),
        size=row[5],
        mtime=row[6],
        etag=row[7],
        permissions=row[8],
        mimetype=row[9],
        checksum=row[10] or "",
    )
    return node


def _version_of(node: NodeRecord) -> VersionRecord:
    assert node.blob_id is not None
    return VersionRecord(
        fileid=node.fileid,
        version_id=node.mtime,
        size=node.size,
        etag=node.etag,
        checksum=node.checksum,
        mimetype=node.mimetype,
        blob_id=node.blob_id,
    )


def _version(record: VersionRecord) -> Version:
    return Version(
        fileid=record.fileid,
        version_id=record.version_id,
        size=record.size,
        etag=record.etag,
        mimetype=record.mimetype,
        checksum=record.checksum,
    )


def _lock(record: LockRecord) -> Lock:
    return Lock(
        token=record.token,
        path=record.path,
        owner=record.owner or "",
        scope=record.scope,
        depth=record.depth,
        timeout=record.timeout,
        created_at=record.created_at,
    )



@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    """The one place driver errors become backend errors."""
    try:
        yield
    except StorageError as exc:
        raise StorageUnavailableError(f"storage failed for {what!r}: {exc}") from exc


def _translated(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    try:
        with _storage_errors(what):
            yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


if TYPE_CHECKING:  # mypy checks here that NativeBackend has every FilesBackend method

    def _conforms(backend: NativeBackend) -> FilesBackend:
        return backend
