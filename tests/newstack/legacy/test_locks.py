"""newstack/legacy/locks.py: oc_persistent_locks rows as ownCloud 10 writes them, on real
fixture instances (SQLite, MariaDB, PostgreSQL), and the pure conflict rule as a table.

Expected rows are checked with plain SQL and hashlib; each test's changes are rolled back.
"""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from newstack.backend import Lock
from newstack.legacy import locks
from newstack.legacy.annotations import ValueTooLongError
from tests.newstack.legacy.instances import Instance

NOW = 1_717_000_000


def lock(path: str = "", scope: str = "exclusive", depth: int = 0, token: str = "t",
         owner: str = "Alice (alice@example.org)", timeout: int = 1800,
         created_at: int = NOW) -> Lock:
    return Lock(token=token, path=path, owner=owner, scope=scope, depth=depth,
                timeout=timeout, created_at=created_at)


# ---------------------------------------------------------------------------------------------
# the conflict rule (no database)

X, S = "exclusive", "shared"

CONFLICTS = [
    # (existing (path, scope, depth), requested (path, scope, depth), conflicts?)
    (("a", X, 0), ("a", S, 0), True),
    (("a", S, 0), ("a", S, 0), False),
    (("a", S, 0), ("a", X, 0), True),
    (("a", X, 0), ("a/b", X, 0), False),      # depth 0 does not reach children
    (("a", X, -1), ("a/b", S, 0), True),      # depth infinity does
    (("a", S, -1), ("a/b/c", S, 0), False),
    (("a", S, -1), ("a/b/c", X, 0), True),
    (("", X, -1), ("a/b", S, 0), True),       # the root, locked with depth infinity
    (("", X, 0), ("a", X, 0), False),
    (("a/b", X, 0), ("a", X, -1), True),      # a depth-infinity lock over a locked child
    (("a/b", X, 0), ("a", X, 0), False),
    (("a/b", S, 0), ("a", S, -1), False),
    (("ab", X, -1), ("a", X, -1), False),     # a sibling with a common prefix
    (("a", X, -1), ("ab", X, 0), False),
]


@pytest.mark.parametrize(("have", "want", "conflicts"), CONFLICTS)
def test_conflicting_lock(have: tuple[str, str, int], want: tuple[str, str, int],
                          conflicts: bool) -> None:
    other = lock(have[0], have[1], have[2], token="other")
    requested = lock(want[0], want[1], want[2], token="new")
    found = locks.conflicting_lock([other], requested)
    assert (found is other) if conflicts else (found is None)


def test_conflicting_lock_without_descendants_is_sabres_rule() -> None:
    child = lock("a/b", X, 0, token="child")
    assert locks.conflicting_lock([child], lock("a", X, -1)) is child
    assert locks.conflicting_lock([child], lock("a", X, -1), descendants=False) is None
    shared = [lock("a", S, 0, token="s1"), lock("a", X, 0, token="x1")]
    assert locks.conflicting_lock(shared, lock("a", S, 0)) is shared[1]


# ---------------------------------------------------------------------------------------------
# rows




def two_files(inst: Instance, conn: sa.Connection) -> tuple[int, int]:
    ids = sorted(int(r["fileid"]) for r in inst.rows(conn, "filecache")
                 if str(r["path"]).startswith("files/"))
    return ids[0], ids[1]


def account(inst: Instance, conn: sa.Connection, uid: str) -> int:
    return next(int(r["id"]) for r in inst.rows(conn, "accounts") if r["user_id"] == uid)


def test_insert_writes_the_row_oc10_writes(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    first, second = two_files(instance, conn)
    token = "c2a1b0e4-6a55-4ab4-9d2a-0e4b8f1f2d3c"
    stored = locks.insert_lock(conn, t, first, "alice",
                               lock("x", X, -1, token=token, owner="<d:href>me</d:href>"))
    locks.insert_lock(conn, t, second, "bob", lock("y", S, 0, token="other", owner=""))
    rows = {r["token"]: r for r in instance.rows(conn, "persistent_locks")}
    row = rows[token]
    assert {k: row[k] for k in ("file_id", "owner", "timeout", "created_at", "token_hash",
                                "scope", "depth", "owner_account_id")} == {
        "file_id": first, "owner": "<d:href>me</d:href>", "timeout": 1800, "created_at": NOW,
        "token_hash": hashlib.md5(token.encode()).hexdigest(), "scope": 1, "depth": -1,
        "owner_account_id": account(instance, conn, "alice")}
    assert rows["other"]["scope"] == 2 and rows["other"]["depth"] == 0
    assert rows["other"]["owner_account_id"] == account(instance, conn, "bob")
    assert stored == locks.StoredLock(
        fileid=first, token=token, owner="<d:href>me</d:href>", scope=X, depth=-1,
        timeout=1800, created_at=NOW, owner_account_id=account(instance, conn, "alice"))
    assert stored.as_lock("x") == lock("x", X, -1, token=token, owner="<d:href>me</d:href>")


def test_locks_on_whoever_took_them_until_they_expire(instance: Instance,
                                                      conn: sa.Connection) -> None:
    t = instance.t
    first, second = two_files(instance, conn)
    locks.insert_lock(conn, t, first, "alice", lock(token="a", timeout=100))
    locks.insert_lock(conn, t, first, "bob", lock(scope=S, token="b", timeout=50,
                                                  created_at=NOW + 10))
    locks.insert_lock(conn, t, second, "carol", lock(token="c", timeout=0))
    tokens = [r.token for r in locks.locks_on(conn, t, [first, second], NOW)]
    assert tokens == ["a", "b"]  # in the order taken; a 0-second lock is never alive
    assert [r.token for r in locks.locks_on(conn, t, [second], NOW)] == []
    # alive while created_at > now - timeout: 'a' dies at NOW + 100, 'b' at NOW + 60
    assert [r.token for r in locks.locks_on(conn, t, [first], NOW + 59)] == ["a", "b"]
    assert [r.token for r in locks.locks_on(conn, t, [first], NOW + 60)] == ["a"]
    assert [r.token for r in locks.locks_on(conn, t, [first], NOW + 99)] == ["a"]
    assert locks.locks_on(conn, t, [first], NOW + 100) == []
    assert locks.lock_by_token(conn, t, "a", NOW + 99) is not None
    assert locks.lock_by_token(conn, t, "a", NOW + 100) is None
    assert locks.locks_on(conn, t, [], NOW) == []


def test_refresh_restarts_the_clock(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    first, _ = two_files(instance, conn)
    locks.insert_lock(conn, t, first, "alice", lock(token="r", timeout=100))
    refreshed = locks.refresh(conn, t, "r", 600, NOW + 90)
    assert refreshed is not None
    assert (refreshed.timeout, refreshed.created_at) == (600, NOW + 90)
    row = next(r for r in instance.rows(conn, "persistent_locks") if r["token"] == "r")
    assert (row["timeout"], row["created_at"]) == (600, NOW + 90)
    assert [r.token for r in locks.locks_on(conn, t, [first], NOW + 600)] == ["r"]
    assert locks.refresh(conn, t, "r", 600, NOW + 90 + 600) is None  # expired: gone for good
    assert locks.refresh(conn, t, "nope", 600, NOW) is None


def test_refresh_fills_an_empty_owner_only(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    first, _ = two_files(instance, conn)
    locks.insert_lock(conn, t, first, "alice", lock(token="e", owner=""))
    locks.insert_lock(conn, t, first, "alice", lock(token="f", owner="mine"))
    with pytest.raises(ValueTooLongError):
        locks.refresh(conn, t, "e", 60, NOW + 1, owner="x" * 101)
    got = locks.refresh(conn, t, "e", 60, NOW + 1, owner="Alice (a@x)")
    assert got is not None and got.owner == "Alice (a@x)"
    assert locks.refresh(conn, t, "f", 60, NOW + 1, owner="Alice (a@x)") is not None
    owners = {r["token"]: r["owner"] for r in instance.rows(conn, "persistent_locks")}
    assert owners == {"e": "Alice (a@x)", "f": "mine"}


def test_remove_and_cleanup(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    first, second = two_files(instance, conn)
    locks.insert_lock(conn, t, first, "alice", lock(token="keep", timeout=1000))
    locks.insert_lock(conn, t, second, "alice", lock(token="drop", timeout=1000))
    locks.insert_lock(conn, t, second, "alice", lock(token="old", timeout=10))
    locks.insert_lock(conn, t, second, "alice", lock(token="edge", timeout=20))
    assert not locks.remove(conn, t, "drop", fileid=first)  # not on that file
    assert locks.remove(conn, t, "drop", fileid=second)
    assert not locks.remove(conn, t, "drop")
    # LockMapper::cleanup: created_at < now - timeout; at exactly now - timeout it stays
    assert locks.delete_expired(conn, t, NOW + 20) == 1
    assert sorted(r["token"] for r in instance.rows(conn, "persistent_locks")) == [
        "edge", "keep"]
    assert locks.delete_expired(conn, t, NOW + 21) == 1
    assert locks.remove(conn, t, "keep")
    assert instance.rows(conn, "persistent_locks") == []


def test_insert_refuses_what_oc10_cannot_store(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    first, _ = two_files(instance, conn)
    with pytest.raises(ValueError, match="depth"):
        locks.insert_lock(conn, t, first, "alice", lock(depth=1))
    with pytest.raises(ValueError, match="scope"):
        locks.insert_lock(conn, t, first, "alice", lock(scope="write"))
    with pytest.raises(ValueError, match="created_at"):
        locks.insert_lock(conn, t, first, "alice", lock(created_at=0))
    with pytest.raises(ValueTooLongError, match="at most 100"):
        locks.insert_lock(conn, t, first, "alice", lock(owner="o" * 101))
    locks.insert_lock(conn, t, first, "alice", lock(owner="ö" * 100))  # characters count
    assert [r["owner"] for r in instance.rows(conn, "persistent_locks")] == ["ö" * 100]
    # a user without an account row (oC10: no session user) locks with a NULL account id
    stored = locks.insert_lock(conn, t, first, "ghost", lock(token="g"))
    assert stored.owner_account_id is None


def test_storage_locks_and_remove_for_files(instance: Instance, conn: sa.Connection) -> None:
    t = instance.t
    cache = instance.rows(conn, "filecache")
    storage = next(m["storage_id"] for m in instance.rows(conn, "mounts")
                   if m["mount_point"] == "/alice/")
    mine = sorted((int(r["fileid"]), r["path"]) for r in cache
                  if r["storage"] == storage and str(r["path"]).startswith("files/"))
    other = next(int(r["fileid"]) for r in cache
                 if r["storage"] != storage and str(r["path"]).startswith("files/"))
    (a, a_path), (b, b_path) = mine[0], mine[1]
    locks.insert_lock(conn, t, b, "bob", lock(token="b", scope=S))
    locks.insert_lock(conn, t, a, "alice", lock(token="a", timeout=5))
    locks.insert_lock(conn, t, other, "alice", lock(token="elsewhere"))
    found = locks.storage_locks(conn, t, storage, NOW)
    assert [(f.path, f.lock.token, f.lock.fileid) for f in found] == [
        (b_path, "b", b), (a_path, "a", a)]
    assert [f.lock.token for f in locks.storage_locks(conn, t, storage, NOW + 5)] == ["b"]
    assert locks.remove_for_files(conn, t, [a, b, a]) == 2
    assert [r["token"] for r in instance.rows(conn, "persistent_locks")] == ["elsewhere"]
