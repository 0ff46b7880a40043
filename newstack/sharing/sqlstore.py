"""The ShareStore over any table with oc_share's columns: oC10's own oc_share (legacy/shares.py)
and the native `shares` table (native_store.py) differ only in how transactions and ids are made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection, Table

from bridge.oc10 import tokens
from bridge.oc10.formats import PERM_ALL, PERM_CREATE, PERM_DELETE
from newstack.sharing.model import (
    KEEP,
    LINK_PERMISSIONS,
    LISTED_TYPES,
    STATE_ACCEPTED,
    STATE_PENDING,
    STATE_REJECTED,
    TYPE_GROUP,
    TYPE_LINK,
    TYPE_REMOTE,
    TYPE_REMOTE_GROUP,
    TYPE_USER,
    TYPE_USERGROUP,
    NewShare,
    Received,
    Share,
    ShareError,
    ShareNotFoundError,
)

#: oC10 file queries only look at these item types (legacy calendar rows etc. stay invisible)
ITEM_TYPES: Final = ("file", "folder")
#: ids per IN list, below every database's bound-parameter limit
CHUNK: Final = 500
#: up to this many shares of a user are read whole for oc:share-types (one indexed query)
OWN_SHARES_AT_ONCE: Final = 2000
_STATES: Final = (STATE_ACCEPTED, STATE_PENDING, STATE_REJECTED)
_TOKEN_TYPES: Final = (TYPE_LINK, TYPE_REMOTE, TYPE_REMOTE_GROUP)

#: allocates `count` fresh share ids inside the given write transaction
IdAllocator = Callable[[Connection, int], list[int]]
Transaction = Callable[[], AbstractContextManager[Connection]]


def midnight(day: dt.date | None) -> dt.datetime | None:
    """oc_share.expiration as oC10 writes it: the expiry day at 00:00:00."""
    return None if day is None else dt.datetime.combine(day, dt.time())


def expiry_day(value: Any) -> dt.date | None:
    """The expiry day of a stored expiration (a datetime, or text on odd SQLite rows)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.datetime.fromisoformat(str(value).strip()).date()


def share_of(row: Any) -> Share:
    return Share(
        id=int(row.id), share_type=int(row.share_type), share_with=row.share_with,
        uid_owner=row.uid_owner, uid_initiator=row.uid_initiator or row.uid_owner,
        item_type=row.item_type, file_source=int(row.file_source),
        file_target=row.file_target or "", permissions=int(row.permissions),
        stime=int(row.stime), accepted=int(row.accepted),
        expiration=expiry_day(row.expiration), token=row.token,
        mail_send=int(row.mail_send), share_name=row.share_name, attributes=row.attributes)


def share_row(share: Share) -> dict[str, Any]:
    """The column values of a share row (type 0, 1, 3, 6, 7) as oC10 writes them."""
    return {
        "id": share.id, "share_type": share.share_type, "share_with": share.share_with,
        "uid_owner": share.uid_owner, "uid_initiator": share.uid_initiator, "parent": None,
        "item_type": share.item_type, "item_source": str(share.file_source),
        "item_target": None, "file_source": share.file_source,
        "file_target": share.file_target, "permissions": share.permissions,
        "stime": share.stime, "accepted": share.accepted,
        "expiration": midnight(share.expiration), "token": share.token,
        "mail_send": share.mail_send, "share_name": share.share_name,
        "attributes": share.attributes,
    }


def member_row(group_share: Share, uid: str, target: str, state: int) -> dict[str, Any]:
    """A member's type-2 row under a group share: the group row's columns, own target/state."""
    row = share_row(group_share)
    row.update(share_type=TYPE_USERGROUP, share_with=uid, parent=group_share.id,
               file_target=target, accepted=state, token=None, share_name=None)
    del row["id"]
    return row


def check_new_share(share: NewShare) -> None:
    """What oC10's Manager refuses before it writes (messages as its exceptions say them)."""
    if share.share_type not in LISTED_TYPES:
        raise ShareError(f"unknown share type {share.share_type}")
    if share.item_type not in ITEM_TYPES:
        raise ShareError(f"item_type must be 'file' or 'folder', not {share.item_type!r}")
    check_permissions(share.share_type, share.item_type, share.permissions)
    if share.share_type in (TYPE_USER, TYPE_GROUP) and not share.share_with:
        raise ShareError("a user or group share needs share_with (the recipient)")
    if share.share_type == TYPE_USER and share.share_with == share.uid_owner:
        raise ShareError("Can't share with the share owner")
    if share.accepted not in _STATES:
        raise ShareError(f"unknown share state {share.accepted}")
    if share.token is not None and not (share.token.isascii() and share.token.isalnum()
                                        and 1 <= len(share.token) <= 32):
        raise ShareError("a share token is 1 to 32 characters of [A-Za-z0-9]")
    if share.share_name is not None and len(share.share_name) > 64:
        raise ShareError("a link name has at most 64 characters")
    if not share.file_target.startswith("/") and share.share_type != TYPE_REMOTE:
        raise ShareError(f"a share target starts with '/', got {share.file_target!r}")


def check_permissions(share_type: int, item_type: str, permissions: int) -> None:
    if not 0 < permissions <= PERM_ALL:
        raise ShareError(f"share permissions must be 1 to 31, got {permissions}")
    if item_type == "file" and permissions & (PERM_CREATE | PERM_DELETE):
        raise ShareError("a file share cannot carry create or delete permissions")
    if share_type == TYPE_LINK and permissions not in LINK_PERMISSIONS:
        raise ShareError(f"link permissions must be one of {LINK_PERMISSIONS}, got {permissions}")


def check_target(target: str) -> None:
    if not target.startswith("/") or target == "/" or "//" in target or target.endswith("/"):
        raise ShareError(f"a share target is '/<name>' below the files root, got {target!r}")
    if any(part in (".", "..") for part in target.split("/")[1:]):
        raise ShareError(f"a share target cannot contain '.' or '..': {target!r}")


#: SharesPlugin asks the DefaultShareProvider for 0, 1, 3 (files and folders), then the
#: FederatedShareProvider for 6: internal types come first, each group by id
INTERNAL_TYPES: Final = (TYPE_USER, TYPE_GROUP, TYPE_LINK)
FEDERATED_TYPES: Final = (TYPE_REMOTE,)


def share_types_by_file(rows: Iterable[tuple[int, int, int, dt.date | None]], today: dt.date
                        ) -> dict[int, tuple[int, ...]]:
    """oc:share-types from (id, file_source, share_type, expiry day) of the shares a user owns
    or initiated: expired ones left out, each type once, in the order oC10's providers answer."""
    ordered = sorted(rows, key=lambda row: (row[2] not in INTERNAL_TYPES, row[0]))
    found: dict[int, list[int]] = {}
    for _id, fileid, share_type, expires in ordered:
        if expires is not None and expires < today:
            continue
        types = found.setdefault(fileid, [])
        if share_type not in types:
            types.append(share_type)
    return {fileid: tuple(types) for fileid, types in found.items()}


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    for fileid in ids:
        batch.append(int(fileid))
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


class SqlShareStore:
    """ShareStore over `table`; `reading`/`writing` open transactions, `allocate` gives new ids
    (None: the database's own auto-increment, as oc_share has)."""

    def __init__(self, table: Table, *, reading: Transaction, writing: Transaction,
                 allocate: IdAllocator | None, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.table = table
        self._reading = reading
        self._writing = writing
        self._allocate = allocate
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        self._listed = table.c.share_type.in_(LISTED_TYPES)
        self._files = sa.and_(table.c.item_type.in_(ITEM_TYPES), table.c.file_source.isnot(None))

    # -- reading ----------------------------------------------------------------------------------

    def get(self, share_id: int) -> Share | None:
        with self._reading() as conn:
            return self._get(conn, share_id)

    def _get(self, conn: Connection, share_id: int) -> Share | None:
        s = self.table
        row = conn.execute(sa.select(s).where(s.c.id == share_id, self._listed, self._files)
                           ).first()
        return None if row is None else share_of(row)

    def by_token(self, token: str) -> Share | None:
        s = self.table
        with self._reading() as conn:
            # a token compares byte for byte (MySQL's default collations would fold case)
            rows = conn.execute(sa.select(s).where(s.c.token == token,
                                                   s.c.share_type.in_(_TOKEN_TYPES), self._files)
                                .order_by(s.c.id)).all()
        for row in rows:
            if row.token == token:
                return share_of(row)
        return None

    def created_by(self, uid: str, *, file_sources: Iterable[int] | None = None,
                   types: Iterable[int] = LISTED_TYPES, reshares: bool = False) -> list[Share]:
        s = self.table
        wanted = [t for t in types if t in LISTED_TYPES]
        who = (sa.or_(s.c.uid_initiator == uid, s.c.uid_owner == uid) if reshares
               else s.c.uid_initiator == uid)
        where = sa.and_(who, s.c.share_type.in_(wanted), self._files)
        with self._reading() as conn:
            if file_sources is None:
                rows = conn.execute(sa.select(s).where(where)).all()
            else:
                rows = []
                for chunk in chunks(file_sources):
                    rows.extend(conn.execute(
                        sa.select(s).where(where, s.c.file_source.in_(chunk))).all())
        return sorted((share_of(row) for row in rows), key=lambda share: share.id)

    def on_files(self, fileids: Iterable[int], types: Iterable[int] = LISTED_TYPES
                 ) -> list[Share]:
        s = self.table
        wanted = [t for t in types if t in LISTED_TYPES]
        rows: list[Any] = []
        with self._reading() as conn:
            for chunk in chunks(fileids):
                rows.extend(conn.execute(sa.select(s).where(
                    s.c.file_source.in_(chunk), s.c.share_type.in_(wanted), self._files)).all())
        return sorted((share_of(row) for row in rows), key=lambda share: share.id)

    def share_types(self, conn: Connection, uid: str, fileids: Sequence[int], today: dt.date
                    ) -> dict[int, tuple[int, ...]]:
        """oc:share-types of many nodes for `uid`, in the caller's transaction. Most users own
        few shares: one indexed query for all of them beats binding a listing's ids."""
        s = self.table
        kinds = sa.or_(sa.and_(s.c.share_type.in_(INTERNAL_TYPES), s.c.item_type.in_(ITEM_TYPES)),
                       s.c.share_type.in_(FEDERATED_TYPES))
        columns = (s.c.id, s.c.file_source, s.c.share_type, s.c.expiration)
        mine = sa.or_(s.c.uid_owner == uid, s.c.uid_initiator == uid)
        rows = conn.execute(sa.select(*columns).where(mine, kinds).limit(OWN_SHARES_AT_ONCE + 1)
                            ).all()
        if len(rows) > OWN_SHARES_AT_ONCE:
            rows = []
            for chunk in chunks(fileids):
                rows.extend(conn.execute(sa.select(*columns).where(
                    mine, kinds, s.c.file_source.in_(chunk))).all())
        wanted = set(fileids)
        return share_types_by_file(
            ((int(r.id), int(r.file_source), int(r.share_type), expiry_day(r.expiration))
             for r in rows if r.file_source in wanted), today)

    def received(self, uid: str, groups: Iterable[str]) -> list[Received]:
        s = self.table
        member = s.alias("member")
        gids = list(groups)
        found: list[Received] = []
        with self._reading() as conn:
            for row in conn.execute(sa.select(s).where(
                    s.c.share_type == TYPE_USER, s.c.share_with == uid, s.c.uid_owner != uid,
                    self._files)):
                if row.share_with != uid:  # MySQL's case-insensitive collations
                    continue
                share = share_of(row)
                found.append(Received(share, uid, share.file_target, share.accepted))
            if gids:
                joined = s.outerjoin(member, sa.and_(
                    member.c.parent == s.c.id, member.c.share_type == TYPE_USERGROUP,
                    member.c.share_with == uid))
                query = (sa.select(s, member.c.file_target.label("member_target"),
                                   member.c.accepted.label("member_state"),
                                   member.c.share_with.label("member_uid"))
                         .select_from(joined)
                         .where(s.c.share_type == TYPE_GROUP, s.c.share_with.in_(gids),
                                s.c.uid_owner != uid, self._files))
                for row in conn.execute(query):
                    share = share_of(row)
                    if row.member_uid is not None and row.member_uid == uid:
                        found.append(Received(share, uid, row.member_target or share.file_target,
                                              int(row.member_state)))
                    else:
                        found.append(Received(share, uid, share.file_target, share.accepted))
        found.sort(key=lambda received: received.share.id)
        return found

    # -- writing ----------------------------------------------------------------------------------

    def create(self, share: NewShare) -> Share:
        check_new_share(share)
        token = share.token
        if token is None and share.share_type == TYPE_LINK:
            token = tokens.new_share_token(self._rng)
        stime = share.stime or int(self._clock())
        s = self.table
        with self._writing() as conn:
            if share.share_type in (TYPE_USER, TYPE_GROUP):
                exists = conn.execute(sa.select(s.c.id, s.c.share_with).where(
                    s.c.file_source == share.file_source, s.c.share_type == share.share_type,
                    s.c.share_with == share.share_with)).all()
                if any(row.share_with == share.share_with for row in exists):
                    kind = "user" if share.share_type == TYPE_USER else "group"
                    raise ShareError(f"Path is already shared with this {kind}")
            new = Share(
                id=0, share_type=share.share_type, share_with=share.share_with,
                uid_owner=share.uid_owner, uid_initiator=share.uid_initiator,
                item_type=share.item_type, file_source=share.file_source,
                file_target=share.file_target, permissions=share.permissions, stime=stime,
                accepted=share.accepted, expiration=share.expiration, token=token,
                share_name=share.share_name, attributes=share.attributes)
            row = share_row(new)
            if self._allocate is None:
                del row["id"]
                result = conn.execute(sa.insert(s).values(**row))
                share_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            else:
                share_id = self._allocate(conn, 1)[0]
                conn.execute(sa.insert(s).values(**{**row, "id": share_id}))
        return dataclasses.replace(new, id=share_id)

    def update(self, share_id: int, *, permissions: int | object = KEEP,
               expiration: dt.date | None | object = KEEP,
               share_with: str | None | object = KEEP,
               share_name: str | None | object = KEEP,
               attributes: str | None | object = KEEP) -> Share:
        s = self.table
        with self._writing() as conn:
            current = self._get(conn, share_id)
            if current is None:
                raise ShareNotFoundError(f"no share with id {share_id}")
            values: dict[str, Any] = {}
            if permissions is not KEEP:
                if not isinstance(permissions, int):
                    raise ShareError("permissions must be an integer")
                check_permissions(current.share_type, current.item_type, permissions)
                values["permissions"] = permissions
            if expiration is not KEEP:
                if expiration is not None and not isinstance(expiration, dt.date):
                    raise ShareError("expiration must be a date or None")
                values["expiration"] = midnight(expiration)
            if share_with is not KEEP:
                if current.share_type != TYPE_LINK:
                    raise ShareError("only a link's share_with (its password hash) can change")
                if share_with is not None and not isinstance(share_with, str):
                    raise ShareError("a link password hash is text or None")
                values["share_with"] = share_with
            if share_name is not KEEP:
                if share_name is not None and (not isinstance(share_name, str)
                                               or len(share_name) > 64):
                    raise ShareError("a link name is text of at most 64 characters")
                values["share_name"] = share_name
            if attributes is not KEEP:
                if attributes is not None and not isinstance(attributes, str):
                    raise ShareError("attributes are JSON text or None")
                values["attributes"] = attributes
            if values:
                conn.execute(sa.update(s).where(s.c.id == share_id).values(**values))
                follow = {k: v for k, v in values.items()
                          if k in ("permissions", "expiration", "attributes")}
                if current.share_type == TYPE_GROUP and follow:
                    conn.execute(sa.update(s).where(
                        s.c.parent == share_id, s.c.share_type == TYPE_USERGROUP).values(**follow))
            updated = self._get(conn, share_id)
        assert updated is not None
        return updated

    def user_deleted(self, uid: str) -> int:
        """Manager::userDeleted (Share20\\Hooks::post_deleteUser): the user's own user, group
        and link shares, the user shares they received and their rows under group shares go;
        returns how many rows were deleted."""
        s = self.table
        with self._writing() as conn:
            # ids first: MySQL refuses a DELETE whose subquery reads the same table
            owned_groups = list(conn.scalars(sa.select(s.c.id).where(
                s.c.share_type == TYPE_GROUP, s.c.uid_owner == uid)))
            deleted = conn.execute(sa.delete(s).where(
                s.c.share_type == TYPE_USERGROUP, s.c.share_with == uid)).rowcount
            for chunk in chunks(owned_groups):
                deleted += conn.execute(sa.delete(s).where(
                    s.c.share_type == TYPE_USERGROUP, s.c.parent.in_(chunk))).rowcount
            deleted += conn.execute(sa.delete(s).where(sa.or_(
                sa.and_(s.c.share_type == TYPE_USER,
                        sa.or_(s.c.uid_owner == uid, s.c.share_with == uid)),
                sa.and_(s.c.share_type.in_((TYPE_GROUP, TYPE_LINK)), s.c.uid_owner == uid),
            ))).rowcount
        return int(deleted)

    def delete(self, share_id: int) -> None:
        s = self.table
        with self._writing() as conn:
            if self._get(conn, share_id) is None:
                raise ShareNotFoundError(f"no share with id {share_id}")
            conn.execute(sa.delete(s).where(s.c.parent == share_id,
                                            s.c.share_type == TYPE_USERGROUP))
            conn.execute(sa.delete(s).where(s.c.id == share_id))

    def set_received(self, share_id: int, uid: str, *, target: str | None = None,
                     state: int | None = None) -> Received:
        if target is not None:
            check_target(target)
        if state is not None and state not in _STATES:
            raise ShareError(f"unknown share state {state}")
        s = self.table
        with self._writing() as conn:
            share = self._get(conn, share_id)
            if share is None or share.share_type not in (TYPE_USER, TYPE_GROUP):
                raise ShareNotFoundError(f"no user or group share with id {share_id}")
            if share.share_type == TYPE_USER:
                if share.share_with != uid:
                    raise ShareNotFoundError(f"share {share_id} was not shared with {uid!r}")
                values: dict[str, Any] = {}
                if target is not None:
                    values["file_target"] = target
                if state is not None:
                    values["accepted"] = state
                if values:
                    conn.execute(sa.update(s).where(s.c.id == share_id).values(**values))
                return Received(share, uid, target or share.file_target,
                                share.accepted if state is None else state)
            rows = conn.execute(sa.select(s.c.id, s.c.share_with, s.c.file_target,
                                          s.c.accepted).where(
                s.c.parent == share_id, s.c.share_type == TYPE_USERGROUP,
                s.c.share_with == uid)).all()
            mine = next((row for row in rows if row.share_with == uid), None)
            new_target = target or (mine.file_target if mine else share.file_target)
            new_state = state if state is not None else (
                int(mine.accepted) if mine else share.accepted)
            if mine is not None:
                conn.execute(sa.update(s).where(s.c.id == mine.id).values(
                    file_target=new_target, accepted=new_state))
            else:
                row = member_row(share, uid, new_target, new_state)
                if self._allocate is not None:
                    row["id"] = self._allocate(conn, 1)[0]
                conn.execute(sa.insert(s).values(**row))
            return Received(share, uid, new_target, new_state)
