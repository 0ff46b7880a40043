"""WebDAV locks in oc_persistent_locks exactly as ownCloud 10 stores them (REFERENCE §1.2;
lib/private/Lock/Persistent/{LockManager,LockMapper,Lock}.php), plus the conflict rule a new
lock must pass, shared by both backends.

A lock belongs to a file id, not to a user: every user who sees the file sees its locks.
`timeout` is a duration; a lock is alive while created_at + timeout > now. The caller maps
file ids to paths in the acting user's view (StoredLock.as_lock).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.schema import OC10Tables
from newstack.backend import Lock
from newstack.legacy.annotations import ValueTooLongError
from newstack.rules import strictly_below

#: ILock::LOCK_SCOPE_EXCLUSIVE / LOCK_SCOPE_SHARED
SCOPE_EXCLUSIVE: Final = 1
SCOPE_SHARED: Final = 2
_SCOPE_CODES: Final = {"exclusive": SCOPE_EXCLUSIVE, "shared": SCOPE_SHARED}
_SCOPE_NAMES: Final = {SCOPE_EXCLUSIVE: "exclusive", SCOPE_SHARED: "shared"}
#: ILock::LOCK_DEPTH_ZERO / LOCK_DEPTH_INFINITE: LockMapper refuses any other depth
DEPTH_ZERO: Final = 0
DEPTH_INFINITE: Final = -1
#: oc_persistent_locks.owner is VARCHAR(100), .token VARCHAR(1024)
OWNER_LIMIT: Final = 100
TOKEN_LIMIT: Final = 1024
#: ids per IN list (see annotations.CHUNK)
CHUNK: Final = 900


@dataclass(frozen=True)
class StoredLock:
    """One oc_persistent_locks row, with the scope as the DAV layer names it."""

    fileid: int
    token: str
    #: free text (the <d:owner> XML, or "Display Name (email)"); '' when NULL
    owner: str
    #: 'exclusive' | 'shared'
    scope: str
    #: 0 or -1 (infinity)
    depth: int
    #: seconds the lock lives after created_at
    timeout: int
    created_at: int
    #: oc_accounts.id of the user who locked, None when unknown
    owner_account_id: int | None

    def as_lock(self, path: str) -> Lock:
        """The Lock the DAV layer shows, at `path` in the acting user's view."""
        return Lock(token=self.token, path=path, owner=self.owner, scope=self.scope,
                    depth=self.depth, timeout=self.timeout, created_at=self.created_at)


def token_hash(token: str) -> str:
    """Lock::setToken: md5 hex of the token (unique index UNIQ_…token_hash)."""
    return hashlib.md5(token.encode()).hexdigest()


def _alive(t: OC10Tables, now: float) -> sa.ColumnElement[bool]:
    # LockMapper::getLocksByPath: created_at > now - timeout; written as a sum because MySQL
    # refuses a negative result of UNSIGNED arithmetic
    lk = t.persistent_locks
    return lk.c.created_at + lk.c.timeout > int(now)


def _record(row: Any) -> StoredLock:
    return StoredLock(
        fileid=int(row.file_id),
        token=row.token,
        owner=row.owner or "",
        scope=_SCOPE_NAMES.get(int(row.scope), "shared"),
        depth=int(row.depth),
        timeout=int(row.timeout),
        created_at=int(row.created_at),
        owner_account_id=None if row.owner_account_id is None else int(row.owner_account_id),
    )


def locks_on(conn: Connection, t: OC10Tables, fileids: Sequence[int], now: float
             ) -> list[StoredLock]:
    """Live locks on these files, whoever took them, in the order they were taken."""
    lk = t.persistent_locks
    ids = sorted(set(fileids))
    found: list[tuple[int, StoredLock]] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = conn.execute(
            sa.select(lk).where(lk.c.file_id.in_(chunk), _alive(t, now)))
        found.extend((int(row.id), _record(row)) for row in rows)
    return [record for _, record in sorted(found, key=lambda pair: pair[0])]


@dataclass(frozen=True)
class StorageLock:
    """A live lock with the storage-internal path of its file ('files/…')."""

    path: str
    lock: StoredLock


def storage_locks(conn: Connection, t: OC10Tables, storage: int, now: float
                  ) -> list[StorageLock]:
    """Every live lock on files of one storage, with their paths, in the order taken: the
    join LockMapper::getLocksByPath makes (persistent_locks × filecache on file_id, storage =
    the node's storage), without its path filter, so a caller filters many paths at once."""
    lk, fc = t.persistent_locks, t.filecache
    rows = conn.execute(
        sa.select(lk, fc.c.path.label("filecache_path"))
        .select_from(lk.join(fc, lk.c.file_id == fc.c.fileid))
        .where(fc.c.storage == storage, _alive(t, now))
        .order_by(lk.c.id))
    return [StorageLock(path=row.filecache_path or "", lock=_record(row)) for row in rows]


def lock_by_token(conn: Connection, t: OC10Tables, token: str, now: float
                  ) -> StoredLock | None:
    """The live lock with this token (LockMapper::getLockByToken, by token_hash), or None."""
    lk = t.persistent_locks
    row = conn.execute(sa.select(lk).where(
        lk.c.token_hash == token_hash(token), _alive(t, now))).first()
    return None if row is None or row.token != token else _record(row)


def account_id(conn: Connection, t: OC10Tables, uid: str) -> int | None:
    """oc_accounts.id of a user (IUser::getAccountId)."""
    a = t.accounts
    found = conn.scalar(sa.select(a.c.id).where(a.c.user_id == uid))
    return None if found is None else int(found)


def insert_lock(conn: Connection, t: OC10Tables, fileid: int, uid: str, lock: Lock
                ) -> StoredLock:
    """LockManager::lock for a new token: one row with token_hash = md5(token), scope 1/2,
    depth 0/-1, `lock.timeout` and `lock.created_at` as given (the caller applies the default
    and maximum timeout and sets created_at to now) and the locking user's account id.

    ValueError for a scope or depth oC10 cannot store; ValueTooLongError when the owner text
    exceeds VARCHAR(100) or the token VARCHAR(1024) (MySQL and PostgreSQL refuse it: oC10
    answers 500)."""
    if lock.scope not in _SCOPE_CODES:
        raise ValueError(f"lock scope must be 'exclusive' or 'shared', not {lock.scope!r}")
    if lock.depth not in (DEPTH_ZERO, DEPTH_INFINITE):
        raise ValueError(f"ownCloud 10 stores lock depth 0 or -1 (infinity), not {lock.depth}")
    if lock.timeout < 0 or lock.created_at <= 0:
        raise ValueError("a stored lock needs timeout >= 0 and created_at set (unix seconds)")
    _checked_owner(lock.owner)
    if len(lock.token) > TOKEN_LIMIT:
        raise ValueTooLongError(f"a lock token has at most {TOKEN_LIMIT} characters")
    record = StoredLock(
        fileid=fileid, token=lock.token, owner=lock.owner, scope=lock.scope, depth=lock.depth,
        timeout=lock.timeout, created_at=lock.created_at,
        owner_account_id=account_id(conn, t, uid))
    conn.execute(sa.insert(t.persistent_locks).values(
        file_id=fileid,
        owner=lock.owner,
        timeout=lock.timeout,
        created_at=lock.created_at,
        token=lock.token,
        token_hash=token_hash(lock.token),
        scope=_SCOPE_CODES[lock.scope],
        depth=lock.depth,
        owner_account_id=record.owner_account_id,
    ))
    return record


def _checked_owner(owner: str) -> str:
    if len(owner) > OWNER_LIMIT:
        raise ValueTooLongError(
            f"the lock owner has {len(owner)} characters; ownCloud 10 stores at most "
            f"{OWNER_LIMIT} (oc_persistent_locks.owner): send a shorter <d:owner>")
    return owner


def refresh(conn: Connection, t: OC10Tables, token: str, timeout: int, now: float, *,
            owner: str | None = None) -> StoredLock | None:
    """LockManager::lock with the token of a live lock: created_at = now, the new timeout, and
    `owner` (oC10: the default "Display Name (email)") only where the stored owner is empty.
    None when there is no live lock with this token (an expired one cannot be refreshed)."""
    found = lock_by_token(conn, t, token, now)
    if found is None:
        return None
    values: dict[str, Any] = {"created_at": int(now), "timeout": timeout}
    if owner and not found.owner:
        values["owner"] = _checked_owner(owner)
    lk = t.persistent_locks
    conn.execute(sa.update(lk).where(lk.c.token_hash == token_hash(token)).values(**values))
    return StoredLock(
        fileid=found.fileid, token=found.token, owner=values.get("owner", found.owner),
        scope=found.scope, depth=found.depth, timeout=timeout, created_at=int(now),
        owner_account_id=found.owner_account_id)


def remove(conn: Connection, t: OC10Tables, token: str, *, fileid: int | None = None) -> bool:
    """Delete the lock with this token, live or not (LockMapper::deleteByFileIdAndToken, which
    also requires the file id: pass `fileid` to get that check). True when a row went."""
    lk = t.persistent_locks
    statement = sa.delete(lk).where(lk.c.token_hash == token_hash(token))
    if fileid is not None:
        statement = statement.where(lk.c.file_id == fileid)
    return conn.execute(statement).rowcount > 0


def remove_for_files(conn: Connection, t: OC10Tables, fileids: Sequence[int]) -> int:
    """Delete every lock, live or not, on these files (what the foreign key's ON DELETE CASCADE
    does when their oc_filecache rows go). Returns how many went."""
    lk = t.persistent_locks
    ids = sorted(set(fileids))
    removed = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        removed += conn.execute(sa.delete(lk).where(lk.c.file_id.in_(chunk))).rowcount
    return removed


def delete_expired(conn: Connection, t: OC10Tables, now: float) -> int:
    """LockMapper::cleanup (background job CleanupPersistentFileLocks, every 30 minutes):
    rows with created_at < now - timeout. Returns how many went."""
    lk = t.persistent_locks
    return conn.execute(
        sa.delete(lk).where(lk.c.created_at + lk.c.timeout < int(now))).rowcount


# ---------------------------------------------------------------------------------------------
# the conflict rule (pure)


def covers(existing: Lock, path: str) -> bool:
    """Whether `existing` applies to `path`: a lock on it, or on an ancestor with depth != 0."""
    return existing.path == path or (existing.depth != 0 and strictly_below(path, existing.path))


def conflicting_lock(existing: Iterable[Lock], requested: Lock, *, descendants: bool = True
                     ) -> Lock | None:
    """The first live lock that forbids `requested`, or None.

    An exclusive lock conflicts with any other lock, a shared one only with exclusive ones.
    A lock counts when it is on the requested path or on an ancestor with depth != 0
    (Sabre 4.7 Locks\\Plugin::httpLock over getLocks(uri, false)), and, for a requested lock
    with depth infinity and `descendants`, when it is anywhere below the path (RFC 4918 §6.1;
    the native backend checks this, Sabre does not). Paths in one user's view, '' the root.
    """
    for other in existing:
        if "exclusive" not in (requested.scope, other.scope):
            continue
        if covers(other, requested.path) or (
            descendants and requested.depth != 0 and strictly_below(other.path, requested.path)
        ):
            return other
    return None
