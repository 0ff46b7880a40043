"""A catch-up pass's extras: trash records, favorites, tags, comments and their read markers,
dead properties and system tag assignments, brought to exactly what a full re-import
(migrate/runner.py, phase `extras`) would write, by writing only the difference.

Every kind but the trash records is read from both sides in fileid order (one streamed query
per side) and compared a fileid at a time, so memory holds one fileid's rows and a window of
fileids, never the user's tree; a fileid that only ownCloud has rows for is looked up in the
user's nodes a window at a time (a full import keeps only rows of the user's nodes). Trash
records, keyed by their item's name in the trash, are compared a chunk at a time both ways.
The changes are written in transactions of at most `batch` rows: a pass killed in between
leaves a difference that the next pass writes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.formats import path_hash
from migrate import account_data
from migrate.runner import FAVORITE, unix_seconds
from migrate.source import LegacySource
from newstack.metadata import schema
from newstack.metadata.schema import AREA_TRASH
from newstack.metadata.store import MetadataStore

Note = Callable[[str, str, str], None]

#: fileids (or trash names) per lookup: below every database's bound-parameter limit
CHUNK = 500
#: rows streamed per fetch from either database
_FETCH = 1000


@dataclass(frozen=True)
class Kind:
    table: sa.Table
    #: the columns that identify a row (fileid among them) and the ones compared
    key: tuple[str, ...]
    values: tuple[str, ...] = ()
    #: the rows carry the user's uid (their own rows, not the rows of their nodes)
    by_user: bool = False
    #: a column unique across all users' rows: an inserted row first takes it over
    unique: str | None = None


KINDS: dict[str, Kind] = {
    "favorites": Kind(schema.favorites, ("uid", "fileid"), by_user=True),
    "tags": Kind(schema.tags, ("uid", "fileid", "tag"), by_user=True),
    # oC10's ids are kept (replies point at them), so a comment is known by its id
    "comments": Kind(schema.comments, ("fileid", "id"),
                     ("actor", "message", "created", "parent_id"), unique="id"),
    "comment_read_markers": Kind(schema.comment_read_markers, ("uid", "fileid"),
                                 ("marked_at",), by_user=True),
    "dead_props": Kind(schema.dead_props, ("fileid", "name"), ("value",)),
    "systemtag_objects": Kind(schema.systemtag_objects, ("fileid", "tag_id")),
    "trash": Kind(schema.trash, ("fileid",),
                  ("owner", "original_name", "original_location", "deleted_at")),
}


class Item(NamedTuple):
    """One row of one kind, as both sides are compared."""

    fileid: int
    kind: str
    key: tuple[Any, ...]
    values: tuple[Any, ...] = ()


@dataclass
class Changes:
    """Rows to write, by kind: inserted, updated (key and values) and deleted (key)."""

    inserts: dict[str, list[Item]] = field(default_factory=dict)
    updates: dict[str, list[Item]] = field(default_factory=dict)
    deletes: dict[str, list[Item]] = field(default_factory=dict)
    added: int = 0
    changed: int = 0
    removed: int = 0

    def __len__(self) -> int:
        return sum(len(rows) for part in (self.inserts, self.updates, self.deletes)
                   for rows in part.values())

    def insert(self, item: Item) -> None:
        self.inserts.setdefault(item.kind, []).append(item)
        self.added += 1

    def update(self, item: Item) -> None:
        self.updates.setdefault(item.kind, []).append(item)
        self.changed += 1

    def delete(self, item: Item) -> None:
        self.deletes.setdefault(item.kind, []).append(item)
        self.removed += 1

    def clear(self) -> None:
        self.inserts.clear()
        self.updates.clear()
        self.deletes.clear()


# -- the comparison (pure) --------------------------------------------------------------------


def diff(wanted: Iterable[Item], held: Iterable[Item], changes: Changes, *,
         deletes: bool = True) -> None:
    """What turns `held` into `wanted` (both: the rows of one fileid, or of one chunk). Of
    two wanted rows with one key the later wins, as in a full import's dicts. Without
    `deletes`, rows held but not wanted stay (the caller deals with them)."""
    want = {(item.kind, item.key): item for item in wanted}
    have = {(item.kind, item.key): item for item in held}
    for key, item in want.items():
        current = have.get(key)
        if current is None:
            changes.insert(item)
        elif current.values != item.values:
            changes.update(item)
    if not deletes:
        return
    for key, item in have.items():
        if key not in want:
            changes.delete(item)


def _groups(items: Iterable[Item]) -> Iterator[tuple[int, list[Item]]]:
    """Consecutive items of one fileid together; a fileid met again raises (the input must
    be in fileid order)."""
    last: int | None = None
    for fileid, group in itertools.groupby(items, key=lambda item: item.fileid):
        if last is not None and fileid <= last:
            raise ValueError(f"rows not in fileid order: {fileid} after {last}")
        last = fileid
        yield fileid, list(group)


def merged(wanted: Iterable[Item], *held: Iterable[Item]
           ) -> Iterator[tuple[int, list[Item], list[Item]]]:
    """(fileid, wanted rows, held rows) for every fileid either side has rows for, in fileid
    order; each input in fileid order. Merged a fileid's group at a time, not row by row: the
    Python cost per row is what a pass over 100,000 files spends most of its time on."""
    streams = [_groups(wanted), *(_groups(side) for side in held)]
    heads = [next(stream, None) for stream in streams]
    while True:
        present = [head[0] for head in heads if head is not None]
        if not present:
            return
        fileid = min(present)
        want: list[Item] = []
        have: list[Item] = []
        for i, head in enumerate(heads):
            if head is not None and head[0] == fileid:
                (want if i == 0 else have).extend(head[1])
                heads[i] = next(streams[i], None)
        yield fileid, want, have


def diff_windows(groups: Iterable[tuple[int, list[Item], list[Item]]],
                 known: Callable[[Sequence[int]], set[int]], changes: Changes,
                 flush: Callable[[], None], batch: int) -> None:
    """Compares merged groups a window at a time. Rows wanted for a fileid the new stack
    holds no row for are kept only if `known` says the fileid is one of the user's nodes
    (rows held are of the user's nodes by construction); `flush` is called whenever `batch`
    changes are waiting."""
    for window in itertools.batched(groups, CHUNK):
        unsure = [fileid for fileid, wanted, held in window if wanted and not held]
        mine = known(unsure) if unsure else set()
        for fileid, wanted, held in window:
            if wanted and not held and fileid not in mine:
                wanted = []
            diff(wanted, held, changes)
        if len(changes) >= batch:
            flush()


# -- the new stack ----------------------------------------------------------------------------


def held_items(conn: Connection, uid: str, kind: str) -> Iterator[Item]:
    """The new stack's rows of one kind for the user's nodes, in fileid order (streamed)."""
    spec = KINDS[kind]
    t, n = spec.table, schema.nodes
    query = (sa.select(*(t.c[c] for c in spec.key + spec.values))
             .join(n, n.c.fileid == t.c.fileid).where(n.c.owner == uid)
             .order_by(t.c.fileid))
    if spec.by_user:
        query = query.where(t.c.uid == uid)
    width = len(spec.key)
    result = conn.execution_options(stream_results=True, yield_per=_FETCH).execute(query)
    try:
        for row in result:
            key = tuple(row[:width])
            yield Item(int(row.fileid), kind, key, tuple(row[width:]))
    finally:
        result.close()


def known_fileids(store: MetadataStore, uid: str, fileids: Sequence[int]) -> set[int]:
    n = schema.nodes
    found: set[int] = set()
    with store.read() as conn:
        for start in range(0, len(fileids), CHUNK):
            found.update(int(f) for f in conn.execute(sa.select(n.c.fileid).where(
                n.c.owner == uid, n.c.fileid.in_(fileids[start:start + CHUNK]))).scalars())
    return found


def write_changes(conn: Connection, changes: Changes) -> None:
    """Deletes, then updates, then inserts (executemany batches), kind by kind."""
    for kind, items in changes.deletes.items():
        spec = KINDS[kind]
        t = spec.table
        conn.execute(sa.delete(t).where(*(t.c[c] == sa.bindparam(f"b_{c}") for c in spec.key)),
                     [{f"b_{c}": v for c, v in zip(spec.key, item.key, strict=True)}
                      for item in items])
    for kind, items in changes.updates.items():
        spec = KINDS[kind]
        t = spec.table
        conn.execute(sa.update(t).where(*(t.c[c] == sa.bindparam(f"b_{c}") for c in spec.key)),
                     [{**{f"b_{c}": v for c, v in zip(spec.key, item.key, strict=True)},
                       **dict(zip(spec.values, item.values, strict=True))} for item in items])
    for kind, items in changes.inserts.items():
        spec = KINDS[kind]
        t = spec.table
        rows = [{**dict(zip(spec.key, item.key, strict=True)),
                 **dict(zip(spec.values, item.values, strict=True))} for item in items]
        if spec.unique is not None:
            # a comment oC10 moved to another file: its id is taken over, not duplicated
            taken = [row[spec.unique] for row in rows]
            for start in range(0, len(taken), CHUNK):
                conn.execute(sa.delete(t).where(t.c[spec.unique].in_(
                    taken[start:start + CHUNK])))
        conn.execute(sa.insert(t), rows)


def delete_foreign(conn: Connection, uid: str) -> int:
    """The user's favorites, tags and read markers of nodes that are not theirs (the new
    stack's own, made after a rollback): a full import would not have them."""
    n = schema.nodes
    removed = 0
    for spec in KINDS.values():
        if not spec.by_user:
            continue
        t = spec.table
        theirs = sa.select(n.c.fileid).where(n.c.fileid == t.c.fileid, n.c.owner == uid)
        removed += conn.execute(sa.delete(t).where(t.c.uid == uid, ~theirs.exists())).rowcount
    return removed


# -- ownCloud 10 -------------------------------------------------------------------------------


def _stream(source: LegacySource, query: Any) -> Iterator[Any]:
    with source.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=_FETCH).execute(query)
        try:
            yield from result
        finally:
            result.close()  # an unbuffered MySQL result left early must be closed first


def legacy_categories(source: LegacySource, uid: str) -> Iterator[Item]:
    """Favorites and tags (oc_vcategory), in fileid order."""
    cat, obj = source.t.vcategory, source.t.vcategory_to_object
    query = (sa.select(cat.c.category, obj.c.objid)
             .join(obj, obj.c.categoryid == cat.c.id)
             .where(cat.c.uid == uid, obj.c.type == "files").order_by(obj.c.objid))
    for category, objid in _stream(source, query):
        fileid = int(objid)
        if category == FAVORITE:
            yield Item(fileid, "favorites", (uid, fileid))
        else:
            yield Item(fileid, "tags", (uid, fileid, category))


def legacy_comments(source: LegacySource) -> Iterator[Item]:
    """Comments on files (any author: the user's files are among them), in fileid order.
    object_id is a string column: ordered by its integer value, as the import reads it."""
    cm = source.t.comments
    fileid = sa.cast(cm.c.object_id, sa.BigInteger)
    query = (sa.select(fileid.label("fileid"), cm.c.id, cm.c.actor_id, cm.c.message,
                       cm.c.creation_timestamp, cm.c.parent_id)
             .where(cm.c.object_type == "files").order_by(fileid, cm.c.id))
    for row in _stream(source, query):
        f = int(row.fileid)
        yield Item(f, "comments", (f, int(row.id)),
                   (row.actor_id, row.message or "", unix_seconds(row.creation_timestamp),
                    int(row.parent_id or 0)))


def legacy_read_markers(source: LegacySource, uid: str) -> Iterator[Item]:
    rm = source.t.comments_read_markers
    fileid = sa.cast(rm.c.object_id, sa.BigInteger)
    query = (sa.select(fileid.label("fileid"), rm.c.marker_datetime)
             .where(rm.c.user_id == uid, rm.c.object_type == "files").order_by(fileid))
    for row in _stream(source, query):
        if row.marker_datetime is not None:
            f = int(row.fileid)
            yield Item(f, "comment_read_markers", (uid, f), (unix_seconds(row.marker_datetime),))


def legacy_dead_props(source: LegacySource, storage: int, note: Note) -> Iterator[Item]:
    """oc_properties of the home storage's nodes, decoded as the import decodes them, in
    (fileid, id) order: of two rows of one name the later wins in `diff` as in the import."""
    from newstack.dav.xml import xml_text
    from newstack.legacy.annotations import VT_STRING, VT_XML

    p, fc = source.t.properties, source.t.filecache
    query = (sa.select(p.c.fileid, p.c.propertyname, p.c.propertyvalue, p.c.propertytype)
             .join(fc, fc.c.fileid == p.c.fileid).where(fc.c.storage == storage)
             .order_by(p.c.fileid, p.c.id))
    for fileid, name, value, kind in _stream(source, query):
        if kind == VT_STRING:
            xml = xml_text(value or "")
        elif kind == VT_XML:
            xml = value or ""
        else:
            note("dead-property-php-object", str(fileid),
                 f"{name}: a serialised PHP object; only PHP can read it back, not migrated "
                 "(the oc10 backend does not serve it either)")
            continue
        yield Item(int(fileid), "dead_props", (int(fileid), name), (xml,))


def legacy_systemtags(source: LegacySource, storage: int) -> Iterator[Item]:
    for fileid, tag_id in _stream(source, account_data.systemtag_rows(source.t, storage)):
        yield Item(int(fileid), "systemtag_objects", (int(fileid), int(tag_id)))


# -- trash records ------------------------------------------------------------------------------


def trash_item_name(record: dict[str, Any]) -> str:
    """The trashed item's name in files_trashbin/files, as the import finds it."""
    return f"{record['id']}.d{record['timestamp']}"


def _trash_nodes(store: MetadataStore, uid: str, names: Sequence[str]) -> dict[str, int]:
    """Name in the trash → fileid of the user's trashed top-level items of these names."""
    n = schema.nodes
    wanted = set(names)
    with store.read() as conn:
        rows = conn.execute(sa.select(n.c.fileid, n.c.path).where(
            n.c.owner == uid, n.c.area == AREA_TRASH,
            n.c.path_hash.in_([path_hash(name) for name in wanted])))
        return {path: int(fileid) for fileid, path in rows if path in wanted}


def sync_trash(source: LegacySource, store: MetadataStore, uid: str, note: Note,
               changes: Changes, flush: Callable[[], None], batch: int) -> None:
    """oc_files_trash records → trash rows, a chunk of records at a time; then the trash rows
    held, a chunk at a time, less those no record asks for."""
    ft = source.t.files_trash
    records = _stream(source, sa.select(ft.c.id, ft.c.timestamp, ft.c.location)
                      .where(ft.c.user == uid).order_by(ft.c.auto_id))
    t = schema.trash
    for chunk in itertools.batched((dict(r._mapping) for r in records), CHUNK):
        fileids = _trash_nodes(store, uid, [trash_item_name(r) for r in chunk])
        wanted = []
        for record in chunk:
            fileid = fileids.get(trash_item_name(record))
            if fileid is None:
                note("trash-record-without-item", trash_item_name(record),
                     "oc_files_trash row without its trashed item: dropped")
                continue
            wanted.append(Item(fileid, "trash", (fileid,),
                               (uid, record["id"], record["location"] or ".",
                                int(record["timestamp"]))))
        with store.read() as conn:
            held = [Item(int(r.fileid), "trash", (int(r.fileid),),
                         (r.owner, r.original_name, r.original_location, int(r.deleted_at)))
                    for r in conn.execute(sa.select(t).where(
                        t.c.fileid.in_(sorted({item.fileid for item in wanted}))))]
        # rows of these items only: the other rows held are the second loop's
        diff(wanted, held, changes, deletes=False)
        if len(changes) >= batch:
            flush()
    n = schema.nodes
    with store.read() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=_FETCH).execute(
            sa.select(t.c.fileid, n.c.area, n.c.path, t.c.original_name, t.c.deleted_at)
            .join(n, n.c.fileid == t.c.fileid).where(t.c.owner == uid).order_by(t.c.fileid))
        for part in itertools.batched(rows, CHUNK):
            asked = _recorded_names(source, uid, [r.path for r in part if r.area == AREA_TRASH])
            for r in part:
                if r.area != AREA_TRASH or r.path not in asked:
                    changes.delete(Item(int(r.fileid), "trash", (int(r.fileid),)))
            if len(changes) >= batch:
                flush()


def _recorded_names(source: LegacySource, uid: str, paths: Sequence[str]) -> set[str]:
    """Which of these trash names a record of the user's in oc_files_trash names."""
    ids = sorted({path.rpartition(".d")[0] for path in paths if ".d" in path})
    if not ids:
        return set()
    ft = source.t.files_trash
    with source.engine.connect() as conn:
        found = {trash_item_name(dict(r._mapping)) for r in conn.execute(
            sa.select(ft.c.id, ft.c.timestamp).where(ft.c.user == uid, ft.c.id.in_(ids)))}
    return found & set(paths)


# -- the whole --------------------------------------------------------------------------------


@dataclass
class ExtrasCounts:
    added: int = 0
    changed: int = 0
    removed: int = 0
    transactions: int = 0


def resync(source: LegacySource, store: MetadataStore, uid: str, storage: int, note: Note,
           *, batch: int = 1000, crash: Callable[[str], None] = lambda step: None
           ) -> ExtrasCounts:
    """Brings the user's extras to ownCloud's, writing only what differs. System tag
    definitions must be imported first (assignments refer to them)."""
    changes = Changes()
    counts = ExtrasCounts()

    def flush() -> None:
        if not len(changes):
            return
        with store.write(uid) as conn:
            write_changes(conn, changes)
        counts.transactions += 1
        changes.clear()
        crash("delta:extras-written")

    def known(fileids: Sequence[int]) -> set[int]:
        return known_fileids(store, uid, fileids)

    passes: list[tuple[Iterator[Item], tuple[str, ...]]] = [
        (legacy_categories(source, uid), ("favorites", "tags")),
        (legacy_comments(source), ("comments",)),
        (legacy_read_markers(source, uid), ("comment_read_markers",)),
        (legacy_dead_props(source, storage, note), ("dead_props",)),
        (legacy_systemtags(source, storage), ("systemtag_objects",)),
    ]
    for wanted, kinds in passes:
        with store.read() as conn:
            held = [held_items(conn, uid, kind) for kind in kinds]
            diff_windows(merged(wanted, *held), known, changes, flush, batch)
    sync_trash(source, store, uid, note, changes, flush, batch)
    pending = len(changes)
    with store.write(uid) as conn:
        write_changes(conn, changes)
        changes.removed += delete_foreign(conn, uid)
    if pending:
        counts.transactions += 1
    counts.added, counts.changed, counts.removed = changes.added, changes.changed, \
        changes.removed
    return counts
