"""Both ShareStores (native `shares` on SQLite/PostgreSQL, oC10's oc_share on MariaDB, PostgreSQL,
SQLite) keep oc_share's semantics: one contract, run on each."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bridge.oc10.schema import oc10_tables
from newstack.legacy.shares import Oc10ShareStore
from newstack.metadata.engine import open_engine
from newstack.metadata.store import MetadataStore
from newstack.sharing import sqlstore
from newstack.sharing.model import (
    KEEP,
    STATE_ACCEPTED,
    STATE_PENDING,
    STATE_REJECTED,
    TYPE_GROUP,
    TYPE_LINK,
    TYPE_REMOTE,
    TYPE_USER,
    NewShare,
    Received,
    Share,
    ShareError,
    ShareNotFoundError,
)
from newstack.sharing.native_store import NativeShareStore
from newstack.sharing.sqlstore import SqlShareStore, check_new_share

BASE = 2**31 + 1000
NOW = 1_760_000_000

STORES = [
    pytest.param(("native", "sqlite"), id="native-sqlite"),
    pytest.param(("native", "postgres"), marks=pytest.mark.postgres, id="native-postgres"),
    pytest.param(("oc10", "mariadb"), marks=pytest.mark.mariadb, id="oc10-mariadb"),
    pytest.param(("oc10", "postgres"), marks=pytest.mark.postgres, id="oc10-postgres"),
    pytest.param(("oc10", "sqlite"), id="oc10-sqlite"),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, new_database) -> Iterator[SqlShareStore]:  # type: ignore[no-untyped-def]
    kind, db = request.param
    url = new_database(db)
    if kind == "native":
        metadata = MetadataStore(open_engine(url), BASE)
        yield NativeShareStore(metadata, clock=lambda: NOW, rng=random.Random(1))
        metadata.engine.dispose()
    else:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        tables = oc10_tables("oc_")
        tables.share.create(engine)  # the store touches oc_share only
        yield Oc10ShareStore(engine, tables, clock=lambda: NOW, rng=random.Random(1))
        engine.dispose()


def folder_share(kind: int, share_with: str | None, fileid: int = 100, permissions: int = 31,
                 owner: str = "alice", **more: object) -> NewShare:
    return NewShare(share_type=kind, share_with=share_with, uid_owner=owner,
                    uid_initiator=str(more.pop("initiator", owner)), item_type="folder",
                    file_source=fileid, file_target=str(more.pop("target", "/Team")),
                    permissions=permissions, **more)  # type: ignore[arg-type]


def test_user_share_round_trip_and_recipient_view(store: SqlShareStore) -> None:
    share = store.create(folder_share(TYPE_USER, "bob", permissions=17, target="/Projects"))
    assert share.id > 0 and share.stime == NOW and share.token is None
    assert store.get(share.id) == share
    assert store.created_by("alice") == [share]
    assert store.created_by("bob") == []
    assert store.received("bob", []) == [Received(share, "bob", "/Projects", STATE_ACCEPTED)]
    assert store.received("alice", []) == []  # owners never receive their own shares
    moved = store.set_received(share.id, "bob", target="/Renamed")
    assert moved.target == "/Renamed"
    assert store.received("bob", [])[0].target == "/Renamed"
    store.set_received(share.id, "bob", state=STATE_REJECTED)
    assert store.received("bob", [])[0].state == STATE_REJECTED
    with pytest.raises(ShareNotFoundError):
        store.set_received(share.id, "carol", state=STATE_ACCEPTED)


def test_group_share_members_keep_their_own_target_and_state(store: SqlShareStore) -> None:
    group = store.create(folder_share(TYPE_GROUP, "staff", permissions=15))
    assert [r.target for r in store.received("bob", ["staff"])] == ["/Team"]
    store.set_received(group.id, "bob", target="/Team (alice)")
    store.set_received(group.id, "carol", state=STATE_REJECTED)
    bob, = store.received("bob", ["staff", "other"])
    carol, = store.received("carol", ["staff"])
    dave, = store.received("dave", ["staff"])
    assert (bob.target, bob.state) == ("/Team (alice)", STATE_ACCEPTED)
    assert (carol.target, carol.state) == ("/Team", STATE_REJECTED)
    assert (dave.target, dave.state) == ("/Team", STATE_ACCEPTED)
    assert store.received("bob", []) == []  # not (any more) in the group
    # a second change updates the member's row instead of adding one
    store.set_received(group.id, "bob", state=STATE_PENDING)
    again, = store.received("bob", ["staff"])
    assert (again.target, again.state) == ("/Team (alice)", STATE_PENDING)
    # members' rows follow the group share's permissions and never show as shares
    updated = store.update(group.id, permissions=1, expiration=dt.date(2030, 1, 2))
    assert updated.permissions == 1 and updated.expiration == dt.date(2030, 1, 2)
    assert store.received("bob", ["staff"])[0].share == updated
    assert [s.id for s in store.on_files([100])] == [group.id]
    with store._reading() as conn:
        t = store.table
        rows = conn.execute(sa.select(t.c.share_with, t.c.permissions, t.c.expiration)
                            .where(t.c.parent == group.id).order_by(t.c.share_with)).all()
    assert [(r.share_with, r.permissions, r.expiration) for r in rows] == [
        ("bob", 1, dt.datetime(2030, 1, 2)), ("carol", 1, dt.datetime(2030, 1, 2))]
    store.delete(group.id)
    assert store.received("bob", ["staff"]) == []
    with store._reading() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(store.table)).scalar_one()
    assert left == 0  # the members' rows went with the share


def test_links_tokens_passwords_expiry(store: SqlShareStore) -> None:
    link = store.create(folder_share(TYPE_LINK, "1|$2y$10$hash", permissions=4,
                                     target="/Inbox", share_name="Drop here"))
    assert link.token is not None and len(link.token) == 15 and link.token.isalnum()
    assert link.password_hash == "1|$2y$10$hash"
    assert store.by_token(link.token) == link
    assert store.by_token(link.token.swapcase()) is None  # tokens are case-sensitive
    assert store.by_token("nope") is None
    chosen = store.create(folder_share(TYPE_LINK, None, fileid=101, permissions=1,
                                       token="AbCdEfGhIjKlMnO", expiration=dt.date(2026, 3, 4)))
    assert store.by_token("AbCdEfGhIjKlMnO") == chosen
    assert chosen.expired(dt.date(2026, 3, 5)) and not chosen.expired(dt.date(2026, 3, 4))
    unprotected = store.update(link.id, share_with=None, share_name="Renamed")
    assert unprotected.password_hash is None and unprotected.share_name == "Renamed"
    assert store.update(link.id, permissions=15).permissions == 15
    assert store.update(link.id, expiration=KEEP).permissions == 15
    with pytest.raises(ShareError, match="link permissions"):
        store.update(link.id, permissions=7)


@pytest.mark.parametrize(("kind", "item_type", "permissions"), [
    # oC10 10.16 shares without READ: update only (a file), create only (an upload folder)
    (TYPE_USER, "file", 2), (TYPE_USER, "folder", 4), (TYPE_GROUP, "folder", 4),
])
def test_shares_without_read_are_allowed(kind: int, item_type: str, permissions: int) -> None:
    check_new_share(NewShare(share_type=kind, share_with="bob", uid_owner="alice",
                             uid_initiator="alice", item_type=item_type, file_source=5,
                             file_target="/x", permissions=permissions))


@pytest.mark.parametrize(("kind", "item_type", "permissions", "message"), [
    (TYPE_USER, "file", 31, "create or delete"),
    (TYPE_USER, "folder", 0, "1 to 31"),
    (TYPE_USER, "folder", 32, "1 to 31"),
    (TYPE_LINK, "folder", 2, "link permissions"),
    (TYPE_LINK, "file", 4, "create or delete"),
    (9, "folder", 1, "unknown share type"),
])
def test_refused_permissions_and_types(kind: int, item_type: str, permissions: int,
                                       message: str) -> None:
    new = NewShare(share_type=kind, share_with="bob", uid_owner="alice", uid_initiator="alice",
                   item_type=item_type, file_source=5, file_target="/x",
                   permissions=permissions)
    with pytest.raises(ShareError, match=message):
        check_new_share(new)


def test_refused_duplicates_self_shares_and_unknown_ids(store: SqlShareStore) -> None:
    store.create(folder_share(TYPE_USER, "bob"))
    with pytest.raises(ShareError, match="already shared with this user"):
        store.create(folder_share(TYPE_USER, "bob", target="/Other"))
    with pytest.raises(ShareError, match="share owner"):
        store.create(folder_share(TYPE_USER, "alice"))
    with pytest.raises(ShareNotFoundError):
        store.delete(424242)
    with pytest.raises(ShareNotFoundError):
        store.update(424242, permissions=1)
    share = store.create(folder_share(TYPE_USER, "carol"))
    with pytest.raises(ShareError, match="below the files root"):
        store.set_received(share.id, "carol", target="no-slash")
    with pytest.raises(ShareError, match="'.' or '..'"):
        store.set_received(share.id, "carol", target="/../x")


def test_created_by_reshares_and_file_filter(store: SqlShareStore) -> None:
    own = store.create(folder_share(TYPE_USER, "bob", fileid=7, target="/P"))
    reshare = store.create(folder_share(TYPE_USER, "carol", fileid=8, initiator="bob",
                                        target="/W"))
    remote = store.create(NewShare(
        share_type=TYPE_REMOTE, share_with="m@https://r.invalid", uid_owner="alice",
        uid_initiator="alice", item_type="file", file_source=9, file_target="",
        permissions=19, token="Fedtoken1234567"))
    assert store.created_by("alice") == [own, remote]
    assert store.created_by("alice", reshares=True) == [own, reshare, remote]
    assert store.created_by("bob") == [reshare]
    assert store.created_by("alice", file_sources=[8], reshares=True) == [reshare]
    assert store.created_by("alice", types=[TYPE_REMOTE]) == [remote]
    assert store.on_files([7, 8, 9, 10]) == [own, reshare, remote]
    assert store.on_files(range(1000, 2000)) == []
    assert store.by_token("Fedtoken1234567") == remote


def test_native_ids_come_from_above_the_base_and_imports_keep_theirs(
        store: SqlShareStore) -> None:
    if not isinstance(store, NativeShareStore):
        assert store.create(folder_share(TYPE_USER, "bob")).id < 2**31
        return
    first = store.create(folder_share(TYPE_USER, "dave"))
    assert first.id == BASE
    migrated = Share(id=42, share_type=TYPE_GROUP, share_with="staff", uid_owner="alice",
                     uid_initiator="alice", item_type="folder", file_source=300,
                     file_target="/Team", permissions=31, stime=5)
    link = Share(id=43, share_type=TYPE_LINK, share_with="1|$2y$04$x", uid_owner="alice",
                 uid_initiator="alice", item_type="folder", file_source=301,
                 file_target="/Photos", permissions=1, stime=6, token="LinkToken123456",
                 expiration=dt.date(2031, 1, 1), share_name="Public link")
    members = [(42, "bob", "/Team (alice)", 0), (42, "carol", "/Team", 2)]
    for _ in range(2):  # a second run changes nothing
        store.import_shares(iter([migrated, link]), iter(members))
        assert store.get(42) == migrated and store.by_token("LinkToken123456") == link
        assert [(r.target, r.state) for r in store.received("bob", ["staff"])] == [
            ("/Team (alice)", 0)]
        assert store.received("carol", ["staff"])[0].state == 2
        with store._reading() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(store.table)
                                 ).scalar_one()
        assert count == 5
    assert store.create(folder_share(TYPE_USER, "carol")).id > BASE + 2  # past member rows
    too_high = Share(**{**link.__dict__, "id": BASE + 5000})
    with pytest.raises(ShareError, match="id base"):
        store.import_shares([too_high], [])
    with pytest.raises(ShareError, match="no group share"):
        store.import_shares([], [(43, "bob", "/x", 0)])


def test_share_types_read_whole_or_by_listing_agree(store: SqlShareStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    today = dt.date(2026, 6, 1)
    store.create(folder_share(TYPE_LINK, None, fileid=10, permissions=1))
    store.create(folder_share(TYPE_USER, "bob", fileid=10))
    store.create(folder_share(TYPE_LINK, None, fileid=11, permissions=1,
                              expiration=dt.date(2026, 5, 31)))
    store.create(folder_share(TYPE_GROUP, "staff", fileid=11))
    store.create(folder_share(TYPE_USER, "carol", fileid=12, owner="dave"))
    store.create(folder_share(TYPE_USER, "carol", fileid=13, initiator="bob"))
    expected = {10: (3, 0), 11: (1,), 13: (0,)}
    with store._reading() as conn:
        assert store.share_types(conn, "alice", [10, 11, 12, 13, 14], today) == expected
        assert store.share_types(conn, "bob", [10, 13], today) == {13: (0,)}
        monkeypatch.setattr(sqlstore, "OWN_SHARES_AT_ONCE", 1)
        assert store.share_types(conn, "alice", [10, 11, 12, 13, 14], today) == expected
        assert store.share_types(conn, "alice", [11], today) == {11: (1,)}
