"""The native ShareStore: the `shares` table of the metadata database (oc_share's columns), with
new ids from a range above every ownCloud 10 id and a bulk import that keeps migrated ids.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection

from newstack.metadata import schema
from newstack.metadata.engine import read_tx, write_tx
from newstack.metadata.store import MetadataStore
from newstack.sharing import sqlstore
from newstack.sharing.model import (
    LISTED_TYPES,
    STATE_ACCEPTED,
    STATE_PENDING,
    STATE_REJECTED,
    TYPE_GROUP,
    TYPE_USERGROUP,
    Share,
    ShareError,
)
from newstack.sharing.sqlstore import (
    ITEM_TYPES,
    SqlShareStore,
    expiry_day,
    member_row,
    share_of,
    share_row,
    share_types_by_file,
)

#: the instance setting that holds the next share id to hand out
NEXT_ID_KEY: Final = "share_next_id"
#: serialises share writes on PostgreSQL (SQLite serialises every writer anyway)
_WRITE_LOCK: Final = "ocbridge-shares"
_IMPORT_BATCH: Final = 500

_OWN_SHARES_SQL: Final = (
    "SELECT id, file_source, share_type, expiration FROM shares"
    " WHERE (uid_owner = ? OR uid_initiator = ?)"
    f" AND ((share_type IN ({', '.join(map(str, sqlstore.INTERNAL_TYPES))})"
    f" AND item_type IN ({', '.join(repr(t) for t in ITEM_TYPES)}))"
    f" OR share_type IN ({', '.join(map(str, sqlstore.FEDERATED_TYPES))}))"
    " LIMIT ?")

#: a migrated group member's own row: (group share id, member uid, file_target, accepted)
Member = tuple[int, str, str, int]


class NativeShareStore(SqlShareStore):
    """Shares in the metadata database. Ids of new shares start at the store's fileid base,
    which lies above 2^31 and so above every oc_share.id (an INT); imported ids must lie below
    it, so a migrated share never meets a native one."""

    def __init__(self, store: MetadataStore, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.metadata = store
        self.id_base = store.fileid_base
        engine = store.engine
        super().__init__(schema.shares, reading=lambda: read_tx(engine),
                         writing=lambda: write_tx(engine, _WRITE_LOCK),
                         allocate=self._allocate_ids, clock=clock, rng=rng)

    def _allocate_ids(self, conn: Connection, count: int) -> list[int]:
        table = schema.instance
        stored = conn.scalar(sa.select(table.c.value).where(table.c.key == NEXT_ID_KEY))
        start = max(int(stored), self.id_base) if stored is not None else self.id_base
        highest = conn.scalar(sa.select(sa.func.max(schema.shares.c.id)))
        if highest is not None and highest >= start:
            # a row the counter never handed out (written by hand): never hand its id out again
            start = int(highest) + 1
        if stored is None:
            conn.execute(sa.insert(table).values(key=NEXT_ID_KEY, value=str(start + count)))
        else:
            conn.execute(sa.update(table).where(table.c.key == NEXT_ID_KEY)
                         .values(value=str(start + count)))
        return list(range(start, start + count))

    def share_types(self, conn: Connection, uid: str, fileids: Sequence[int], today: dt.date
                    ) -> dict[int, tuple[int, ...]]:
        # every PROPFIND asks: on SQLite run the statement on the driver connection, inside the
        # caller's snapshot, without SQLAlchemy's per-execution work (as the store's hot paths)
        driver = self.metadata._driver(conn)
        if driver is None:
            return super().share_types(conn, uid, fileids, today)
        at_once = sqlstore.OWN_SHARES_AT_ONCE
        rows = driver.execute(_OWN_SHARES_SQL, (uid, uid, at_once + 1)).fetchall()
        if len(rows) > at_once:
            return super().share_types(conn, uid, fileids, today)
        wanted = set(fileids)
        return share_types_by_file(
            ((int(r[0]), int(r[1]), int(r[2]), expiry_day(r[3])) for r in rows if r[1] in wanted),
            today)

    def import_shares(self, shares: Iterable[Share], members: Iterable[Member]) -> int:
        """Migration: upsert ownCloud 10 shares by id (ids kept), then upsert group members' own
        rows (target, state) by (group share, uid). Running it again changes nothing. Streams
        both in batches; returns the number of rows written."""
        written = 0
        share_batches = itertools.batched(shares, _IMPORT_BATCH)
        for batch in share_batches:
            rows = [self._import_row(share) for share in batch]
            with self._writing() as conn:
                conn.execute(sa.delete(self.table).where(
                    self.table.c.id.in_([row["id"] for row in rows])))
                conn.execute(sa.insert(self.table), rows)
            written += len(rows)
        for member_batch in itertools.batched(members, _IMPORT_BATCH):
            with self._writing() as conn:
                written += self._import_members(conn, member_batch)
        return written

    def _import_row(self, share: Share) -> dict[str, Any]:
        if share.id >= self.id_base or share.id <= 0:
            raise ShareError(
                f"cannot import share {share.id}: migrated share ids lie between 1 and the new "
                f"stack's id base {self.id_base}; raise the base above every oc_share id")
        if share.share_type not in LISTED_TYPES or share.item_type not in ITEM_TYPES:
            raise ShareError(f"cannot import share {share.id}: type {share.share_type} "
                             f"on a {share.item_type!r} is not a file share")
        return share_row(share)

    def _import_members(self, conn: Connection, batch: tuple[Member, ...]) -> int:
        s = self.table
        parents = {int(row.id): share_of(row) for row in conn.execute(sa.select(s).where(
            s.c.id.in_({parent for parent, _uid, _target, _state in batch}),
            s.c.share_type == TYPE_GROUP))}
        existing = {(int(row.parent), row.share_with): int(row.id) for row in conn.execute(
            sa.select(s.c.id, s.c.parent, s.c.share_with).where(
                s.c.parent.in_(list(parents)), s.c.share_type == TYPE_USERGROUP))}
        fresh: list[dict[str, Any]] = []
        for parent, uid, target, state in batch:
            group_share = parents.get(parent)
            if group_share is None:
                raise ShareError(f"cannot import {uid!r}'s own row under share {parent}: no "
                                 "group share with that id was imported first")
            if state not in (STATE_ACCEPTED, STATE_PENDING, STATE_REJECTED):
                raise ShareError(f"cannot import {uid!r}'s row under share {parent}: unknown "
                                 f"state {state}")
            row = member_row(group_share, uid, target, state)
            known = existing.get((parent, uid))
            if known is not None:
                conn.execute(sa.update(s).where(s.c.id == known).values(**row))
            else:
                fresh.append(row)
        ids = self._allocate_ids(conn, len(fresh)) if fresh else []
        for row, new_id in zip(fresh, ids, strict=True):
            row["id"] = new_id
        if fresh:
            conn.execute(sa.insert(s), fresh)
        return len(batch)
