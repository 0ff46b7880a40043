"""A user's shares and public links: the oc_share rows of the items the user owns, copied one to
one into the native share store (ids, link tokens, password hashes, expiry, names, attributes,
recipients' targets and accept states, group members' own rows). Shares that cannot carry over
get the finding codes of the plan (migrate/plan.py). The import is an upsert by id, and rows
of the owner the legacy side no longer has are removed, so a run, a re-run and a catch-up pass
all end with exactly the legacy rows."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from bridge.oc10.formats import home_storage_id
from bridge.oc10.schema import OC10Tables
from newstack.metadata import schema
from newstack.metadata.store import MetadataStore
from newstack.sharing.model import (
    LISTED_TYPES,
    TYPE_GROUP,
    TYPE_LINK,
    TYPE_REMOTE,
    TYPE_REMOTE_GROUP,
    TYPE_USER,
    TYPE_USERGROUP,
    Share,
)
from newstack.sharing.sqlstore import ITEM_TYPES, share_of

BATCH: Final = 500
#: findings whose share is carried over as it is: ownCloud keeps and lists such a share (it
#: reaches nobody), so the new stack does too, and a client sees no difference
CARRIED_AS_IS: Final = frozenset({"share-recipient-missing", "share-group-missing"})
#: the two trees of a home whose items migrate (and can be shared)
_MIGRATED_ROOTS: Final = ("files", "files_trashbin/files")


@dataclass(frozen=True)
class LegacyShare:
    """One oc_share row of the owner (types 0, 1, 3, 6, 7) with what decides its fate."""

    share: Share
    #: oc_filecache.storage of the shared item (None: no row), and its path there
    file_storage: int | None
    file_path: str | None
    item_type: str


def finding_for(row: LegacyShare, home_storage: int | None, users: set[str],
                groups: set[str]) -> str | None:
    """What is odd about a share (a finding code of migrate/plan.py), or None. The share stays
    behind unless the code is in CARRIED_AS_IS."""
    share = row.share
    if row.item_type not in ITEM_TYPES:
        return "share-legacy-item"
    if row.file_storage is None:
        return "share-file-missing"
    if row.file_storage != home_storage:
        return "share-outside-home"
    path = row.file_path or ""
    if not any(path == root or path.startswith(root + "/") for root in _MIGRATED_ROOTS):
        return "share-file-missing"  # a row of cache/, thumbnails/...: nothing migrates it
    if share.share_type == TYPE_USER and share.share_with not in users:
        return "share-recipient-missing"
    if share.share_type == TYPE_GROUP and share.share_with not in groups:
        return "share-group-missing"
    return None


@dataclass
class ShareCounts:
    shares: int = 0
    links: int = 0
    federated: int = 0
    members: int = 0
    removed: int = 0
    #: finding code -> share ids not carried over
    skipped: dict[str, list[int]] = field(default_factory=dict)
    #: finding code -> share ids carried over as they are (CARRIED_AS_IS)
    noted: dict[str, list[int]] = field(default_factory=dict)


def legacy_shares(engine: Engine, t: OC10Tables, uid: str) -> Iterator[list[LegacyShare]]:
    """The owner's shares (every listed type, every item type) in id order, `BATCH` at a time,
    each with the storage and path of its item (server-side cursor)."""
    s, fc = t.share, t.filecache
    query = (sa.select(s, fc.c.storage.label("file_storage"), fc.c.path.label("file_path"))
             .select_from(s.outerjoin(fc, fc.c.fileid == s.c.file_source))
             .where(s.c.uid_owner == uid, s.c.share_type.in_(LISTED_TYPES))
             .order_by(s.c.id))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        try:
            for part in result.partitions(BATCH):
                # MySQL compares uid_owner case-insensitively; ownCloud's uids are exact
                yield [LegacyShare(_share(row), row.file_storage, row.file_path,
                                   row.item_type) for row in part if row.uid_owner == uid]
        finally:
            result.close()


def _share(row: Any) -> Share:
    if row.item_type in ITEM_TYPES:
        return share_of(row)
    # a pre-ownCloud-8 item (calendar, contact): never imported, described for the finding
    return Share(id=int(row.id), share_type=int(row.share_type), share_with=row.share_with,
                 uid_owner=row.uid_owner, uid_initiator=row.uid_initiator or row.uid_owner,
                 item_type=row.item_type, file_source=int(row.file_source or 0),
                 file_target=row.file_target or "", permissions=int(row.permissions),
                 stime=int(row.stime))


def members_of(conn: Connection, t: OC10Tables, parents: list[int]
               ) -> list[tuple[int, str, str, int]]:
    """Group members' own rows (type 2) under these group shares:
    (group share id, member uid, file_target, accepted), in id order."""
    s = t.share
    rows = conn.execute(sa.select(s.c.parent, s.c.share_with, s.c.file_target, s.c.accepted)
                        .where(s.c.parent.in_(parents), s.c.share_type == TYPE_USERGROUP)
                        .order_by(s.c.id))
    return [(int(r.parent), str(r.share_with), r.file_target or "", int(r.accepted or 0))
            for r in rows]


def existing(conn: Connection, t: OC10Tables, users: set[str], groups: set[str]
             ) -> tuple[set[str], set[str]]:
    """Which of these uids and gids exist on the instance (exact, case-sensitive)."""
    found_users: set[str] = set()
    found_groups: set[str] = set()
    if users:
        found_users = {str(u) for u in conn.execute(sa.select(t.users.c.uid).where(
            t.users.c.uid.in_(sorted(users)))).scalars()} | {
            str(u) for u in conn.execute(sa.select(t.accounts.c.user_id).where(
                t.accounts.c.user_id.in_(sorted(users)))).scalars()}
    if groups:
        found_groups = {str(g) for g in conn.execute(sa.select(t.groups.c.gid).where(
            t.groups.c.gid.in_(sorted(groups)))).scalars()}
    return found_users & users, found_groups & groups


def carried_batches(engine: Engine, t: OC10Tables, uid: str
                    ) -> Iterator[tuple[list[Share], list[LegacyShare], dict[int, str]]]:
    """(shares that carry over, all rows read, share id -> finding code) per batch."""
    with engine.connect() as conn:
        home = conn.execute(sa.select(t.storages.c.numeric_id).where(
            t.storages.c.id == home_storage_id(uid))).scalar()
    for batch in legacy_shares(engine, t, uid):
        wanted_users = {r.share.share_with for r in batch
                        if r.share.share_type == TYPE_USER and r.share.share_with}
        wanted_groups = {r.share.share_with for r in batch
                         if r.share.share_type == TYPE_GROUP and r.share.share_with}
        with engine.connect() as conn:
            users, groups = existing(conn, t, wanted_users, wanted_groups)
        reasons: dict[int, str] = {}
        carried: list[Share] = []
        for row in batch:
            reason = finding_for(row, None if home is None else int(home), users, groups)
            if reason is None or reason in CARRIED_AS_IS:
                carried.append(row.share)
            if reason is not None:
                reasons[row.share.id] = reason
        yield carried, batch, reasons


def import_user_shares(engine: Engine, t: OC10Tables, store: MetadataStore, uid: str
                       ) -> ShareCounts:
    """Copy the owner's shares into the native share store and drop the owner's migrated
    shares the legacy side no longer has. Idempotent; safe to run again after a crash."""
    from newstack.sharing.native_store import NativeShareStore

    target = NativeShareStore(store)
    counts = ShareCounts()
    kept: set[int] = set()
    for carried, _rows, reasons in carried_batches(engine, t, uid):
        for share_id, reason in reasons.items():
            where = counts.noted if reason in CARRIED_AS_IS else counts.skipped
            where.setdefault(reason, []).append(share_id)
        if not carried:
            continue
        groups = [s.id for s in carried if s.share_type == TYPE_GROUP]
        with engine.connect() as conn:
            members = members_of(conn, t, groups) if groups else []
        target.import_shares(carried, members)
        kept.update(s.id for s in carried)
        counts.members += len(members)
        for share in carried:
            if share.share_type == TYPE_LINK:
                counts.links += 1
            elif share.share_type in (TYPE_REMOTE, TYPE_REMOTE_GROUP):
                counts.federated += 1
            else:
                counts.shares += 1
    counts.removed = _remove_stale(store, uid, kept, target.id_base)
    return counts


def _remove_stale(store: MetadataStore, uid: str, kept: set[int], id_base: int) -> int:
    """Migrated shares of `uid` (ids below the base) that the legacy side no longer has, with
    their members' rows; shares made on the new stack are left alone."""
    s = schema.shares
    with store.read() as conn:
        have = [int(i) for i in conn.execute(sa.select(s.c.id).where(
            s.c.uid_owner == uid, s.c.share_type != TYPE_USERGROUP, s.c.id < id_base
        )).scalars()]
    stale = [i for i in have if i not in kept]
    for chunk in itertools.batched(stale, BATCH):
        with store.write(uid) as conn:
            conn.execute(sa.delete(s).where(s.c.parent.in_(chunk),
                                            s.c.share_type == TYPE_USERGROUP))
            conn.execute(sa.delete(s).where(s.c.id.in_(chunk)))
    return len(stale)
