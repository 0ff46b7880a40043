"""oc_filecache rows of one storage, read and written by ownCloud 10's rules (REFERENCE §2.3).

Paths here are storage-internal ('' is the storage root, 'files/…' the user's files). Rows are
found by (storage, path_hash), the unique index, never by comparing `path` (its collation
differs between MySQL, PostgreSQL and SQLite). Subtrees are walked by `parent`, one query per
level, so moving a folder costs its size, not the size of the storage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection

from bridge.oc10.formats import path_hash
from bridge.oc10.mimetypes import DIR_MIMETYPE
from bridge.oc10.schema import OC10Tables
from newstack.legacy.instance import Mimetypes

#: ids per IN list: well below every database's bound-parameter limit
BATCH: Final = 500
#: Constants::PERMISSION_ALL and typical home-storage values (REFERENCE §2.3)
PERM_ROOT: Final = 23
PERM_FOLDER: Final = 31
PERM_FILE: Final = 27


@dataclass(frozen=True)
class Row:
    fileid: int
    storage: int
    path: str
    parent: int
    name: str
    mimetype: str
    size: int
    mtime: int
    storage_mtime: int
    etag: str
    permissions: int
    checksum: str
    #: 0, or the server-side encryption version (such files are not readable here)
    encrypted: int = 0

    @property
    def is_dir(self) -> bool:
        return self.mimetype == DIR_MIMETYPE


#: Row is a plain frozen dataclass: its attributes may be filled directly, a third of the cost
#: of the generated frozen __init__, which counts when listings read thousands of rows
_PLAIN_ROW: Final = not hasattr(Row, "__post_init__") and not hasattr(Row, "__slots__")
_new = object.__new__


def _filled_row(fileid: int, storage: int, path: str, parent: int, name: str, mimetype: str,
                size: int, mtime: int, storage_mtime: int, etag: str, permissions: int,
                checksum: str, encrypted: int) -> Row:
    if not _PLAIN_ROW:
        return Row(fileid, storage, path, parent, name, mimetype, size, mtime, storage_mtime,
                   etag, permissions, checksum, encrypted)
    row: Row = _new(Row)
    row.__dict__.update(fileid=fileid, storage=storage, path=path, parent=parent, name=name,
                        mimetype=mimetype, size=size, mtime=mtime, storage_mtime=storage_mtime,
                        etag=etag, permissions=permissions, checksum=checksum,
                        encrypted=encrypted)
    return row


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def name_of(path: str) -> str:
    return path.rpartition("/")[2]


def join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def ancestors(path: str) -> Iterator[str]:
    """Strict ancestors of a storage path, nearest first, down to the storage root ''."""
    while path:
        path = parent_of(path)
        yield path


class FileCache:
    def __init__(self, tables: OC10Tables, mimetypes: Mimetypes) -> None:
        self.t = tables.filecache
        self.mimetypes = mimetypes
        c = self.t.c
        self._columns = (c.fileid, c.storage, c.path, c.parent, c.name, c.mimetype, c.size,
                         c.mtime, c.storage_mtime, c.etag, c.permissions, c.checksum,
                         c.encrypted)

    # -- reading ----------------------------------------------------------------------------------

    def select(self) -> sa.Select[Any]:
        """The columns a Row is made of (see `make_rows`)."""
        return sa.select(*self._columns)

    def make_rows(self, conn: Connection | None, result: Sequence[Any]) -> list[Row]:
        """Rows from `select()` results, mimetype ids resolved (ones made since loaded through
        `conn`; without it, the caller has loaded them)."""
        names = self.mimetypes.names()
        if conn is not None and any(r[5] not in names for r in result):
            self.mimetypes.load(conn)
            names = self.mimetypes.names()
        return [
            _filled_row(int(r[0]), int(r[1]), r[2] or "", int(r[3]), r[4] or "",
                        names.get(r[5], "application/octet-stream"), int(r[6]), int(r[7]),
                        int(r[8] or r[7]), r[9] or "", int(r[10] or 0), r[11] or "",
                        int(r[12] or 0))
            for r in result
        ]

    def _rows(self, conn: Connection, where: Any) -> list[Row]:
        return self.make_rows(conn, conn.execute(self.select().where(where)).all())

    def get(self, conn: Connection, storage: int, path: str) -> Row | None:
        c = self.t.c
        rows = self._rows(conn, (c.storage == storage) & (c.path_hash == path_hash(path)))
        return rows[0] if rows else None

    def by_id(self, conn: Connection, fileid: int) -> Row | None:
        rows = self._rows(conn, self.t.c.fileid == fileid)
        return rows[0] if rows else None

    def by_ids(self, conn: Connection, fileids: Sequence[int]) -> list[Row]:
        out: list[Row] = []
        for i in range(0, len(fileids), BATCH):
            out.extend(self._rows(conn, self.t.c.fileid.in_(fileids[i:i + BATCH])))
        return out

    def get_many(self, conn: Connection, storage: int, paths: Sequence[str]) -> dict[str, Row]:
        """`get` for many paths of one storage, BATCH paths per query: path -> row, paths
        without a row left out."""
        c = self.t.c
        wanted = set(paths)
        hashes = sorted({path_hash(p) for p in wanted})
        found: dict[str, Row] = {}
        for i in range(0, len(hashes), BATCH):
            for row in self._rows(conn, (c.storage == storage)
                                  & c.path_hash.in_(hashes[i:i + BATCH])):
                if row.path in wanted:  # a hash shared by another path is not it
                    found[row.path] = row
        return found

    def children(self, conn: Connection, fileid: int) -> list[Row]:
        """Direct children, ordered by name in byte order (as a C-locale sort)."""
        rows = self._rows(conn, self.t.c.parent == fileid)
        rows.sort(key=_name_order)
        return rows

    def children_of(self, conn: Connection, fileids: Sequence[int]) -> dict[int, list[Row]]:
        """`children` of many folders, BATCH folders per query: fileid -> its children in
        the same order; one without children (or a file) maps to []."""
        found: dict[int, list[Row]] = {fileid: [] for fileid in fileids}
        parents = sorted(found)
        for i in range(0, len(parents), BATCH):
            for row in self._rows(conn, self.t.c.parent.in_(parents[i:i + BATCH])):
                found[row.parent].append(row)
        for rows in found.values():
            rows.sort(key=_name_order)
        return found

    def descendants(self, conn: Connection, top: Row) -> list[Row]:
        """Everything below `top`, parents before children."""
        out: list[Row] = []
        level = [top.fileid] if top.is_dir else []
        while level:
            found: list[Row] = []
            for i in range(0, len(level), BATCH):
                found.extend(self._rows(conn, self.t.c.parent.in_(level[i:i + BATCH])))
            out.extend(found)
            level = [r.fileid for r in found if r.is_dir]
        return out

    def search(self, conn: Connection, storage: int, under: str, like: str, limit: int
               ) -> list[Row]:
        c = self.t.c
        where = ((c.storage == storage) & (sa.func.lower(c.name).like(sa.func.lower(like)))
                 & c.path.like(_like_prefix(under) + "/%", escape="\\"))
        result = conn.execute(
            sa.select(c.fileid).where(where).order_by(c.fileid).limit(limit)).scalars().all()
        return sorted(self.by_ids(conn, list(result)), key=lambda r: r.fileid)

    # -- writing ----------------------------------------------------------------------------------

    def insert(self, conn: Connection, storage: int, path: str, *, parent: int, mimetype: str,
               size: int, mtime: int, etag: str, permissions: int, checksum: str = "",
               storage_mtime: int | None = None) -> Row:
        mid, part = self.mimetypes.ids(conn, mimetype)
        values = dict(storage=storage, path=path, path_hash=path_hash(path), parent=parent,
                      name=name_of(path), mimetype=mid, mimepart=part, size=size, mtime=mtime,
                      storage_mtime=mtime if storage_mtime is None else storage_mtime,
                      encrypted=0, unencrypted_size=0, etag=etag, permissions=permissions,
                      checksum=checksum)
        fileid = conn.execute(self.t.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
        return Row(int(fileid), storage, path, parent, name_of(path), mimetype, size, mtime,
                   values["storage_mtime"], etag, permissions, checksum)  # type: ignore[arg-type]

    def update(self, conn: Connection, fileid: int, **values: Any) -> None:
        if "mimetype" in values:
            values["mimetype"], values["mimepart"] = self.mimetypes.ids(conn, values["mimetype"])
        conn.execute(self.t.update().where(self.t.c.fileid == fileid).values(**values))

    def move(self, conn: Connection, top: Row, path: str, parent: int,
             mimetype: str | None = None) -> Row:
        """Cache::moveFromCache within one storage: the fileids stay, path, path_hash, parent
        and name of `top` and of everything below it change."""
        below = self.descendants(conn, top)
        values: dict[str, Any] = dict(path=path, path_hash=path_hash(path), parent=parent,
                                      name=name_of(path))
        if mimetype is not None:
            values["mimetype"] = mimetype
        self.update(conn, top.fileid, **values)
        if below:
            cut = len(top.path)
            moved = [{"b_id": r.fileid, "b_path": path + r.path[cut:],
                      "b_hash": path_hash(path + r.path[cut:])} for r in below]
            stmt = (self.t.update().where(self.t.c.fileid == sa.bindparam("b_id"))
                    .values(path=sa.bindparam("b_path"), path_hash=sa.bindparam("b_hash")))
            for i in range(0, len(moved), BATCH):
                conn.execute(stmt, moved[i:i + BATCH])
        return Row(top.fileid, top.storage, path, parent, name_of(path),
                   mimetype or top.mimetype, top.size, top.mtime, top.storage_mtime, top.etag,
                   top.permissions, top.checksum)

    def delete_tree(self, conn: Connection, top: Row) -> list[int]:
        """Delete `top` and everything below it; returns the fileids."""
        ids = [top.fileid, *(r.fileid for r in self.descendants(conn, top))]
        for i in range(0, len(ids), BATCH):
            conn.execute(self.t.delete().where(self.t.c.fileid.in_(ids[i:i + BATCH])))
        return ids

    def propagate(self, conn: Connection, storage: int, changes: Mapping[str, int], *,
                  etag: str, mtime: int) -> None:
        """Propagator::propagateChange for every changed path: each strict ancestor up to the
        storage root gets `etag`, mtime = GREATEST(mtime, `mtime`) and the summed size change
        (only where its size is known, i.e. >= 0)."""
        deltas: dict[str, int] = {}
        for changed, delta in changes.items():
            for folder in ancestors(changed):
                deltas[folder] = deltas.get(folder, 0) + delta
        by_delta: dict[int, list[str]] = defaultdict(list)
        for folder, delta in deltas.items():
            by_delta[delta].append(path_hash(folder))
        c = self.t.c
        for delta, hashes in by_delta.items():
            size = sa.case((c.size >= 0, c.size + delta), else_=c.size) if delta else c.size
            conn.execute(
                self.t.update()
                .where((c.storage == storage) & c.path_hash.in_(hashes))
                .values(etag=etag, size=size,
                        mtime=sa.case((c.mtime < mtime, mtime), else_=c.mtime)))


def _name_order(row: Row) -> bytes:
    return row.name.encode("utf-8", "surrogateescape")


def _like_prefix(path: str) -> str:
    return path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def by_path(rows: Iterable[Row]) -> dict[str, Row]:
    return {r.path: r for r in rows}
