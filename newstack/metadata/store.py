"""The metadata service: users, credentials and every user's node tree, on SQLite or PostgreSQL.

Node operations take the Connection of a transaction opened with `read()` or `write(uid)`, so the
backend (newstack/native.py) makes one transaction per client request; admin operations open
their own. Etag, mtime and size propagation follows ownCloud 10's Propagator (REFERENCE §2.3).

Hot path: the lookups every request makes (a node by path or id, a folder's children, a user,
a user's groups, an app password) use statements built once at import. On SQLite they run on
the driver connection under the SQLAlchemy transaction (same snapshot, same write transaction),
skipping SQLAlchemy's per-execution work, which costs several times the query itself; and the
`lookup_*` methods and the admin reads without a `conn` run their one statement without any
transaction (one statement reads one snapshot) on one of the store's own reader connections,
taken from the engine's pool once and kept (returned to no pool: a pool check-out and check-in
cost more than the query; closed when the engine is disposed). These statements
do not pass through engine events or `echo` logging. The per-listing annotation queries
(`favorites`, `tags`, `comment_counts`, `dead_props`) stay on the Connection (one statement
each, visible to events) with a plain `IN (?, …)` list on SQLite.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool, QueuePool

from bridge.errors import OcbridgeError
from bridge.oc10.formats import path_hash, uniqid
from bridge.oc10.mimetypes import DIR_MIMETYPE
from bridge.oc10.passwords import hash_password
from bridge.oc10.tokens import new_app_password, token_hash
from newstack.metadata import schema
from newstack.metadata.engine import configure_engine, read_tx, write_tx
from newstack.metadata.schema import AREA_FILES, AREA_TRASH, NO_PARENT
from newstack.metadata.upgrade import upgrade_to_head

#: new stack fileids must lie above every id a 32-bit oC10 column could ever have held
MIN_FILEID_BASE: Final = 2**31
DEFAULT_FILEID_BLOCK: Final = 64
#: permissions as oC10 stores them in a home storage: files 27 (no CREATE), folders 31
FILE_PERMISSIONS: Final = 27
FOLDER_PERMISSIONS: Final = 31
# how many ids go into one IN (...) list; SQLite allows 32766 bound parameters
_IN_CHUNK: Final = 5000
_INSERT_BATCH: Final = 1000
_ALLOC_LOCK: Final = "ocbridge-fileid-alloc"


class MetadataError(OcbridgeError):
    """The metadata database refuses an operation; the message says why and what to do."""


class FileidBaseError(MetadataError):
    """The configured fileid base would let new-stack ids collide with ownCloud 10 ids."""


class UserAdminError(MetadataError):
    """A user, group or app password operation cannot be done (unknown, duplicate, invalid)."""


# ---------------------------------------------------------------------------------------------
# Records: one per table row, field names = column names


@dataclass(frozen=True)
class NodeRecord:
    """A row of `nodes`."""

    fileid: int
    owner: str
    area: str
    path: str
    parent: int
    name: str
    is_dir: bool
    size: int
    mtime: int
    etag: str
    checksum: str
    mimetype: str
    permissions: int
    blob_id: str | None
    #: md5 of `path`; computed when left empty
    path_hash: str = ""

    def row(self) -> dict[str, Any]:
        # spelled out: dataclasses.asdict deep-copies every field and was a tenth of a bulk
        # import's time
        return {
            "fileid": self.fileid, "owner": self.owner, "area": self.area, "path": self.path,
            "parent": self.parent, "name": self.name, "is_dir": self.is_dir,
            "size": self.size, "mtime": self.mtime, "etag": self.etag,
            "checksum": self.checksum, "mimetype": self.mimetype,
            "permissions": self.permissions, "blob_id": self.blob_id,
            "path_hash": self.path_hash or path_hash(self.path),
        }


@dataclass(frozen=True)
class UserRecord:
    uid: str
    display_name: str | None
    email: str | None
    password: str
    quota: str | None
    enabled: bool
    created: int
    last_login: int
    language: str | None


@dataclass(frozen=True)
class AppPasswordRecord:
    id: int
    uid: str
    login_name: str
    token_hash: str
    name: str
    type: int
    last_activity: int
    last_check: int
    password_enc: str | None


@dataclass(frozen=True)
class VersionRecord:
    fileid: int
    version_id: int
    size: int
    etag: str
    checksum: str
    mimetype: str
    blob_id: str


@dataclass(frozen=True)
class TrashRecord:
    fileid: int
    owner: str
    original_name: str
    original_location: str
    deleted_at: int


@dataclass(frozen=True)
class LockRecord:
    token: str
    uid: str
    path: str
    scope: str
    depth: int
    timeout: int
    created_at: int
    owner: str | None

    def alive(self, now: float) -> bool:
        return self.timeout < 0 or self.created_at + self.timeout > now


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _record[T](cls: type[T], row: Row[Any]) -> T:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    mapping = row._mapping
    return cls(**{name: mapping[name] for name in names})


_NODE_COLUMNS = [schema.nodes.c[f.name] for f in fields(NodeRecord)]
#: the columns of `listing` rows, in this order: what a client sees of a node
LISTING_FIELDS: Final = (
    "fileid", "owner", "path", "name", "is_dir", "size", "mtime", "etag", "permissions",
    "mimetype", "checksum",
)
_USER_COLUMNS = [schema.users.c[f.name] for f in fields(UserRecord)]
_APP_PASSWORD_COLUMNS = [schema.app_passwords.c[f.name] for f in fields(AppPasswordRecord)]
_IS_DIR = [f.name for f in fields(NodeRecord)].index("is_dir")
_ENABLED = [f.name for f in fields(UserRecord)].index("enabled")


_NODE_FIELDS = tuple(f.name for f in fields(NodeRecord))
#: NodeRecord is a plain frozen dataclass: its attributes may be filled directly, half the
#: cost of the generated frozen __init__, which counts when a walk reads thousands of rows
_PLAIN_RECORD: Final = not hasattr(NodeRecord, "__post_init__") and not hasattr(
    NodeRecord, "__slots__"
)
_new = object.__new__


def _node_record(row: Sequence[Any]) -> NodeRecord:
    """A NodeRecord from a row of _NODE_COLUMNS (SQLite's driver gives is_dir as 0/1)."""
    values = list(row)
    values[_IS_DIR] = bool(values[_IS_DIR])
    if not _PLAIN_RECORD:
        return NodeRecord(*values)
    record: NodeRecord = _new(NodeRecord)
    record.__dict__.update(zip(_NODE_FIELDS, values, strict=True))
    return record


#: positions of NodeRecord's fields in a `child_rows_of` row
NODE_FIELD_AT: Final = {name: i for i, name in enumerate(_NODE_FIELDS)}
node_record_of: Final = _node_record


def _user_record(row: Sequence[Any]) -> UserRecord:
    values = list(row)
    values[_ENABLED] = bool(values[_ENABLED])
    return UserRecord(*values)


class _Query:
    """A statement built once: `stmt` for SQLAlchemy and, for SQLite's driver, `sql` with the
    same named parameters (built by SQLAlchemy's own SQLite compiler, so both agree)."""

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        self.sql = str(stmt.compile(dialect=sqlite_dialect.dialect(paramstyle="named")))


def _queries() -> dict[str, _Query]:
    n, u, gm, a = schema.nodes, schema.users, schema.group_members, schema.app_passwords
    return {
        "node": _Query(
            select(*_NODE_COLUMNS).where(
                n.c.owner == bindparam("owner"),
                n.c.area == bindparam("area"),
                n.c.path_hash == bindparam("path_hash"),
            )
        ),
        "node_by_id": _Query(select(*_NODE_COLUMNS).where(n.c.fileid == bindparam("fileid"))),
        # SQLite compares names bytewise (BINARY); PostgreSQL gets COLLATE "C" in its own query
        "children": _Query(
            select(*_NODE_COLUMNS).where(n.c.parent == bindparam("parent")).order_by(n.c.name)
        ),
        "children_pg": _Query(
            select(*_NODE_COLUMNS)
            .where(n.c.parent == bindparam("parent"))
            .order_by(n.c.name.collate("C"))
        ),
        "listing": _Query(
            select(*(n.c[name] for name in LISTING_FIELDS))
            .where(n.c.parent == bindparam("parent"))
            .order_by(n.c.name)
        ),
        "listing_pg": _Query(
            select(*(n.c[name] for name in LISTING_FIELDS))
            .where(n.c.parent == bindparam("parent"))
            .order_by(n.c.name.collate("C"))
        ),
        "user": _Query(select(*_USER_COLUMNS).where(u.c.uid == bindparam("uid"))),
        "user_by_login": _Query(select(*_USER_COLUMNS).where(u.c.uid_lower == bindparam("low"))),
        "groups_of": _Query(
            select(gm.c.gid).where(gm.c.uid == bindparam("uid")).order_by(gm.c.gid)
        ),
        "app_password": _Query(
            select(*_APP_PASSWORD_COLUMNS).where(a.c.token_hash == bindparam("token_hash"))
        ),
    }


_Q: Final = _queries()


# ---------------------------------------------------------------------------------------------
# Paths: '' is an area root, segments joined by '/', no leading or trailing '/'


def parent_path(path: str) -> str:
    return path.rpartition("/")[0]


def base_name(path: str) -> str:
    return path.rpartition("/")[2]


def join_path(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def ancestors(path: str) -> list[str]:
    """Strict ancestors of `path` up to and including the area root '' (nearest first)."""
    result = []
    while path:
        path = parent_path(path)
        result.append(path)
    return result


def is_same_or_below(path: str, top: str) -> bool:
    return top == "" or path == top or path.startswith(top + "/")


# ---------------------------------------------------------------------------------------------
# Change sets for propagation


class Changes:
    """Paths changed in one request, per area, with the size each change added (may be < 0)."""

    def __init__(self) -> None:
        self.by_area: dict[str, dict[str, int]] = {}

    def add(self, area: str, path: str, size_delta: int = 0) -> None:
        paths = self.by_area.setdefault(area, {})
        paths[path] = paths.get(path, 0) + size_delta


# ---------------------------------------------------------------------------------------------
# Clocks


class UniqidClock:
    """PHP uniqid() values that strictly increase within this process, so no two changes share
    an etag even when they happen in the same microsecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self, t: float) -> str:
        micros = round(t * 1_000_000)
        with self._lock:
            micros = max(micros, self._last + 1)
            self._last = micros
        return uniqid(micros / 1_000_000)


# ---------------------------------------------------------------------------------------------
# The store


def _close_all(connections: list[sqlite3.Connection], *_event_args: object) -> None:
    """engine_disposed: close the store's reader connections along with the pool's."""
    while connections:
        connections.pop().close()


def _changes_users[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    """A MetadataStore method that changes users, groups or app passwords: the store's
    users_generation moves on once it is done (committed or not)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        finally:
            store = args[0]
            assert isinstance(store, MetadataStore)
            store._users_changed()

    return wrapper


class MetadataStore:
    """Users, groups, app passwords and node trees in one SQL database; thread-safe.

    `fileid_base` is where new-stack fileids start. It must be above 2^31 and above every fileid
    already stored (ownCloud 10's), and it may be raised later but never lowered. Ids are handed
    out in blocks of `fileid_block` per process and are never reused (gaps are normal).
    """

    def __init__(
        self,
        engine: Engine,
        fileid_base: int,
        *,
        fileid_block: int = DEFAULT_FILEID_BLOCK,
        upgrade: bool = True,
    ) -> None:
        if fileid_block < 1:
            raise ValueError("fileid_block must be at least 1")
        configure_engine(engine)
        self.engine = engine
        self.fileid_base = fileid_base
        self._block = fileid_block
        self._pool_lock = threading.Lock()
        self._pool: list[int] = []
        self.uniqid = UniqidClock()
        self._sqlite = engine.dialect.name == "sqlite"
        #: idle SQLite connections for `_single` (a LIFO stack; list pop/append are atomic);
        #: only with pools that hand each thread its own connection (not :memory:'s)
        self._readers: list[sqlite3.Connection] | None = None
        if self._sqlite and isinstance(engine.pool, QueuePool | NullPool):
            self._readers = []
            event.listen(engine, "engine_disposed", functools.partial(_close_all, self._readers))
        self._generations = itertools.count(1)
        self._users_generation = 0
        if upgrade:
            upgrade_to_head(engine)
        self._init_allocator()

    # -- transactions -----------------------------------------------------------------------------

    def read(self) -> AbstractContextManager[Connection]:
        """A connection for reads (one snapshot on SQLite); nothing is committed."""
        return read_tx(self.engine)

    def write(self, uid: str | None = None) -> AbstractContextManager[Connection]:
        """A transaction committed when the block ends; serialised with other writes of `uid`."""
        return write_tx(self.engine, None if uid is None else f"user:{uid}")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def users_generation(self) -> int:
        """Changes whenever this process changes users, groups, memberships, app passwords or
        instance settings (after the commit), so caches of what they resolve to can tell they
        are stale. Changes made by other processes are not seen here."""
        return self._users_generation

    def _users_changed(self) -> None:
        self._users_generation = next(self._generations)

    def _driver(self, conn: Connection) -> sqlite3.Connection | None:
        """SQLite's driver connection under `conn` (its transaction included), else None."""
        if not self._sqlite:
            return None
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        return driver

    def _first(self, conn: Connection, query: _Query, params: dict[str, Any]) -> Any:
        rows = self._all(conn, query, params)
        return rows[0] if rows else None

    def _all(self, conn: Connection, query: _Query, params: dict[str, Any]) -> Sequence[Any]:
        driver = self._driver(conn)
        if driver is not None:
            # fetchall, not fetchone: the statement is finished (reset) before we go on
            return driver.execute(query.sql, params).fetchall()
        return conn.execute(query.stmt, params).all()

    def _single(self, query: _Query, params: dict[str, Any]) -> Sequence[Any]:
        """Rows of one statement run on its own. A single statement reads one consistent
        snapshot, so SQLite needs no transaction: it runs on a driver connection in autocommit
        mode (no SQLAlchemy Connection, no BEGIN/ROLLBACK); elsewhere in read()."""
        if not self._sqlite:
            with self.read() as conn:
                return conn.execute(query.stmt, params).all()
        readers = self._readers
        if readers is not None:
            try:
                reader = readers.pop()
            except IndexError:
                reader = self._new_reader()
            try:
                rows = reader.execute(query.sql, params).fetchall()
            except BaseException:
                reader.close()
                raise
            readers.append(reader)
            return rows
        pooled = self.engine.raw_connection()
        try:
            driver = pooled.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            return driver.execute(query.sql, params).fetchall()
        finally:
            pooled.close()

    def _new_reader(self) -> sqlite3.Connection:
        """A connection set up as the engine's (WAL, busy timeout, autocommit), no longer the
        pool's: the pool may open another in its place."""
        pooled = self.engine.raw_connection()
        reader = pooled.driver_connection
        assert isinstance(reader, sqlite3.Connection)
        pooled.detach()
        return reader

    # -- instance settings ------------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        """A value of the `instance` table (instance_id, secret, passwordsalt, ...)."""
        with self.read() as conn:
            return conn.scalar(select(schema.instance.c.value).where(schema.instance.c.key == key))

    def settings(self) -> dict[str, str]:
        with self.read() as conn:
            return {key: value for key, value in conn.execute(select(schema.instance))}

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or with None remove) an instance setting."""
        table = schema.instance
        try:
            with self.write() as conn:
                conn.execute(delete(table).where(table.c.key == key))
                if value is not None:
                    conn.execute(insert(table).values(key=key, value=value))
        finally:
            self._users_changed()

    # -- fileids ----------------------------------------------------------------------------------

    def _init_allocator(self) -> None:
        base = self.fileid_base
        if base <= MIN_FILEID_BASE:
            raise FileidBaseError(
                f"fileid base {base} is too low: it must be above 2^31 = {MIN_FILEID_BASE} so "
                "new-stack ids never meet ownCloud 10's; set a larger base in the configuration"
            )
        alloc, nodes = schema.fileid_alloc, schema.nodes
        with write_tx(self.engine, _ALLOC_LOCK) as conn:
            row = conn.execute(select(alloc).where(alloc.c.id == 1).with_for_update()).first()
            highest = conn.scalar(select(func.max(nodes.c.fileid)))
            if row is None:
                if highest is not None and highest >= base:
                    raise FileidBaseError(
                        f"fileid base {base} is not above the highest stored fileid {highest}; "
                        f"set a base above {highest} (far above, as ownCloud 10 keeps allocating)"
                    )
                conn.execute(insert(alloc).values(id=1, base=base, next_id=base))
                return
            if base < row.base:
                raise FileidBaseError(
                    f"fileid base {base} is below the base {row.base} this database already "
                    f"uses; lowering it could hand out ids twice. Configure {row.base} or more"
                )
            if highest is not None and highest >= row.next_id:
                raise FileidBaseError(
                    f"fileid {highest} is stored but was never handed out by the allocator (next "
                    f"is {row.next_id}): ownCloud 10 ids reached the new stack's range. Raise "
                    "the fileid base above every ownCloud 10 id and restart"
                )
            if base > row.base:
                if highest is not None and highest >= base:
                    raise FileidBaseError(
                        f"fileid base {base} is not above the highest stored fileid {highest}"
                    )
                conn.execute(
                    update(alloc)
                    .where(alloc.c.id == 1)
                    .values(base=base, next_id=max(row.next_id, base))
                )

    def allocate_fileids(self, count: int, conn: Connection | None = None) -> list[int]:
        """`count` fresh fileids, never handed out before (by any process).

        Ids come from this process's block when it has enough; a new block is taken in a short
        transaction of its own. On SQLite, pass the caller's write transaction as `conn`: a
        second write transaction from the same thread would wait for the first. Ids taken
        inside it are exactly the ones needed (none are kept back for later, since a rollback
        returns them to the counter). No lock is held while the database is asked.
        """
        if count <= 0:
            return []
        with self._pool_lock:
            taken, self._pool = self._pool[:count], self._pool[count:]
        need = count - len(taken)
        if need == 0:
            return taken
        if conn is not None and not self.is_postgres:
            return taken + list(self._take_block(need, conn))
        block = self._take_block(max(need, self._block), None)
        with self._pool_lock:
            self._pool.extend(block[need:])
        return taken + list(block[:need])

    def _take_block(self, size: int, conn: Connection | None) -> range:
        alloc = schema.fileid_alloc

        def take(c: Connection) -> range:
            start = c.scalar(select(alloc.c.next_id).where(alloc.c.id == 1).with_for_update())
            if start is None:
                raise MetadataError("fileid_alloc has no row: the store was not initialised")
            c.execute(update(alloc).where(alloc.c.id == 1).values(next_id=start + size))
            return range(start, start + size)

        if conn is not None and not self.is_postgres:
            return take(conn)
        with write_tx(self.engine) as own:
            return take(own)

    # -- nodes: reads ------------------------------------------------------------------------------

    def node(self, conn: Connection, owner: str, area: str, path: str) -> NodeRecord | None:
        params = {"owner": owner, "area": area, "path_hash": path_hash(path)}
        row = self._first(conn, _Q["node"], params)
        return None if row is None else _node_record(row)

    def node_by_id(self, conn: Connection, fileid: int) -> NodeRecord | None:
        row = self._first(conn, _Q["node_by_id"], {"fileid": fileid})
        return None if row is None else _node_record(row)

    def nodes_by_ids(self, conn: Connection, fileids: Sequence[int]) -> list[NodeRecord]:
        """`node_by_id` for many fileids, a chunk per query; unknown ones left out, unordered."""
        n = schema.nodes
        found: list[NodeRecord] = []
        for chunk in _chunks(fileids):
            rows = conn.execute(select(*_NODE_COLUMNS).where(n.c.fileid.in_(chunk)))
            found.extend(_node_record(row) for row in rows)
        return found

    def lookup_node(self, owner: str, area: str, path: str) -> NodeRecord | None:
        """`node` as a statement of its own, for a request that reads nothing else with it."""
        params = {"owner": owner, "area": area, "path_hash": path_hash(path)}
        rows = self._single(_Q["node"], params)
        return _node_record(rows[0]) if rows else None

    def lookup_node_by_id(self, fileid: int) -> NodeRecord | None:
        """`node_by_id` as a statement of its own."""
        rows = self._single(_Q["node_by_id"], {"fileid": fileid})
        return _node_record(rows[0]) if rows else None

    def children(self, conn: Connection, parent: int) -> list[NodeRecord]:
        """Direct children ordered by name in byte order (UTF-8 = code point order)."""
        query = _Q["children_pg"] if self.is_postgres else _Q["children"]
        return [_node_record(row) for row in self._all(conn, query, {"parent": parent})]

    def children_of(self, conn: Connection, parents: Sequence[int]) -> list[NodeRecord]:
        """Direct children of several folders in one query (ix_nodes_parent_name), unordered:
        for walks that open many folders at once (a catch-up pass)."""
        n = schema.nodes
        found: list[NodeRecord] = []
        for chunk in _chunks(list(parents)):
            rows = conn.execute(select(*_NODE_COLUMNS).where(n.c.parent.in_(chunk))).all()
            found.extend(_node_record(row) for row in rows)
        return found

    def child_rows_of(self, conn: Connection, parents: Sequence[int]) -> list[Sequence[Any]]:
        """`children_of` as plain rows of NodeRecord's fields in their order (`node_record_of`
        makes the record of one): for a walk that compares thousands of children and acts on
        few, which then builds only those few records."""
        n = schema.nodes
        found: list[Sequence[Any]] = []
        for chunk in _chunks(list(parents)):
            found.extend(conn.execute(select(*_NODE_COLUMNS).where(n.c.parent.in_(chunk))).all())
        return found

    def listing(self, conn: Connection, parent: int) -> Sequence[Sequence[Any]]:
        """`children` as plain rows of the LISTING_FIELDS columns (is_dir may come as 0/1), for
        folder listings that build their own objects from thousands of rows."""
        query = _Q["listing_pg"] if self.is_postgres else _Q["listing"]
        return self._all(conn, query, {"parent": parent})

    def nodes_at(
        self, conn: Connection, owner: str, area: str, paths: Sequence[str]
    ) -> dict[str, NodeRecord]:
        """`node` for many paths of one area, a chunk of paths per query (the unique
        owner/area/path_hash index): path -> record, paths with no node left out."""
        n = schema.nodes
        wanted = set(paths)
        found: dict[str, NodeRecord] = {}
        for chunk in _chunks(sorted({path_hash(p) for p in wanted})):
            rows = conn.execute(
                select(*_NODE_COLUMNS).where(
                    n.c.owner == owner, n.c.area == area, n.c.path_hash.in_(chunk)
                )
            )
            for row in rows:
                record = _node_record(row)
                if record.path in wanted:  # a hash shared by another path is not it
                    found[record.path] = record
        return found

    def listings(
        self, conn: Connection, parents: Sequence[int]
    ) -> dict[int, list[Sequence[Any]]]:
        """`listing` of many folders, a chunk of folders per query: parent -> its rows in the
        same (byte) order `listing` gives; a folder without children maps to []."""
        n = schema.nodes
        name = n.c.name.collate("C") if self.is_postgres else n.c.name
        columns = [n.c[field] for field in LISTING_FIELDS]
        found: dict[int, list[Sequence[Any]]] = {parent: [] for parent in parents}
        for chunk in _chunks(sorted(found)):
            rows = conn.execute(
                select(n.c.parent, *columns).where(n.c.parent.in_(chunk)).order_by(n.c.parent, name)
            ).all()  # fetched at once: tens of thousands of rows, one fetch per row costs
            for row in rows:
                found[row[0]].append(row[1:])
        return found

    def _descendant_ids(self, fileid: int) -> Any:
        """A recursive CTE of the fileids strictly below `fileid`."""
        n = schema.nodes
        sub = select(n.c.fileid).where(n.c.parent == fileid).cte("subtree", recursive=True)
        return sub.union_all(select(n.c.fileid).where(n.c.parent == sub.c.fileid))

    def descendants(self, conn: Connection, fileid: int) -> list[NodeRecord]:
        """Every node below `fileid`, parents before their children."""
        n = schema.nodes
        sub = self._descendant_ids(fileid)
        rows = conn.execute(
            select(*_NODE_COLUMNS).where(n.c.fileid.in_(select(sub.c.fileid))).order_by(n.c.path)
        )
        return [_record(NodeRecord, row) for row in rows]

    # -- nodes: writes -----------------------------------------------------------------------------

    def insert_node(self, conn: Connection, node: NodeRecord) -> None:
        conn.execute(insert(schema.nodes).values(**node.row()))

    def update_node(self, conn: Connection, fileid: int, **values: Any) -> None:
        if "path" in values:
            values["path_hash"] = path_hash(values["path"])
        conn.execute(update(schema.nodes).where(schema.nodes.c.fileid == fileid).values(**values))

    def move_subtree(
        self,
        conn: Connection,
        node: NodeRecord,
        *,
        area: str,
        path: str,
        parent: int,
        name: str,
        mimetype: str | None = None,
    ) -> NodeRecord:
        """Move `node` and everything below it to `path` in `area`, keeping every fileid.

        Descendants get their paths (and hashes) rewritten by one UPDATE.
        """
        n = schema.nodes
        values: dict[str, Any] = {"area": area, "path": path, "parent": parent, "name": name}
        if mimetype is not None:
            values["mimetype"] = mimetype
        if node.is_dir:
            sub = self._descendant_ids(node.fileid)
            # path = <new path> || substr(path, len(old path) + 1), counted in characters
            tail = func.substr(n.c.path, len(node.path) + 1)
            new_path = literal(path) + tail
            conn.execute(
                update(n)
                .where(n.c.fileid.in_(select(sub.c.fileid)))
                .values(area=area, path=new_path, path_hash=func.md5(new_path))
            )
        self.update_node(conn, node.fileid, **values)
        moved = self.node_by_id(conn, node.fileid)
        assert moved is not None
        return moved

    def delete_subtree(self, conn: Connection, node: NodeRecord) -> list[str]:
        """Delete `node`, its descendants and everything attached to them (versions, trash row,
        favorites, tags, comments, properties); returns the blob ids that are now unused."""
        n, v = schema.nodes, schema.versions
        ids = [node.fileid]
        if node.is_dir:
            sub = self._descendant_ids(node.fileid)
            ids.extend(conn.scalars(select(sub.c.fileid)))
        blobs: list[str] = []
        for chunk in _chunks(ids):
            blobs.extend(
                b for b in conn.scalars(select(n.c.blob_id).where(n.c.fileid.in_(chunk))) if b
            )
            blobs.extend(conn.scalars(select(v.c.blob_id).where(v.c.fileid.in_(chunk))))
        # children first is not needed: rows reference parents by value, not by foreign key
        for chunk in _chunks(ids):
            conn.execute(delete(n).where(n.c.fileid.in_(chunk)))
        return blobs

    def propagate(
        self, conn: Connection, owner: str, changes: Changes, *, etag: str, mtime: int
    ) -> None:
        """oC10's Propagator::propagateChange for every changed path, one UPDATE per area.

        Every strict ancestor up to and including the area root gets the same new `etag`,
        `mtime = max(mtime, <mtime>)` and its size moved by the sum of the deltas below it
        (only where the size is known, i.e. >= 0).
        """
        n = schema.nodes
        for area, paths in changes.by_area.items():
            deltas: dict[str, int] = {}
            for changed, delta in paths.items():
                for ancestor in ancestors(changed):
                    deltas[ancestor] = deltas.get(ancestor, 0) + delta
            if not deltas:
                continue
            hashes = {path_hash(p): d for p, d in deltas.items()}
            values: dict[str, Any] = {
                "etag": etag,
                "mtime": case((n.c.mtime < mtime, mtime), else_=n.c.mtime),
            }
            moved = {h: d for h, d in hashes.items() if d}
            if moved:
                delta_expr = case(*((n.c.path_hash == h, d) for h, d in moved.items()), else_=0)
                values["size"] = case((n.c.size >= 0, n.c.size + delta_expr), else_=n.c.size)
            conn.execute(
                update(n)
                .where(n.c.owner == owner, n.c.area == area, n.c.path_hash.in_(list(hashes)))
                .values(**values)
            )

    def insert_nodes(self, rows: Iterable[NodeRecord], conn: Connection | None = None) -> int:
        """Bulk insert for the migration: explicit fileids, no propagation, executemany batches.

        Every fileid must be below the fileid base (an ownCloud 10 id). Runs in `conn` when given,
        else in a transaction of its own. Returns the number of rows.
        """
        if conn is None:
            with self.write() as own:
                return self.insert_nodes(rows, own)
        base = self.fileid_base

        def checked(node: NodeRecord) -> NodeRecord:
            if node.fileid >= base:
                raise FileidBaseError(
                    f"cannot import fileid {node.fileid} ({node.owner}:{node.path!r}): it is not "
                    f"below the new stack's fileid base {base}; raise the base above "
                    "every ownCloud 10 fileid"
                )
            return node

        driver = self._driver(conn)
        if driver is not None:
            # SQLite: plain tuples into one prepared INSERT on the driver connection (inside
            # conn's transaction), the values NodeRecord.row() gives; SQLAlchemy's per-row
            # parameter processing cost ~20 us a row, a fifth of a migration's metadata time
            columns = ("fileid", "owner", "area", "path", "parent", "name", "is_dir", "size",
                       "mtime", "etag", "checksum", "mimetype", "permissions", "blob_id",
                       "path_hash")
            sql = (f"INSERT INTO {schema.nodes.name} ({', '.join(columns)}) "
                   f"VALUES ({', '.join('?' * len(columns))})")
            values = [(n.fileid, n.owner, n.area, n.path, n.parent, n.name, int(n.is_dir),
                       n.size, n.mtime, n.etag, n.checksum, n.mimetype, n.permissions,
                       n.blob_id, n.path_hash or path_hash(n.path))
                      for n in map(checked, rows)]
            try:
                driver.executemany(sql, values)
            except sqlite3.IntegrityError as exc:  # what the generic path raises
                raise IntegrityError(sql, None, exc) from exc
            return len(values)
        total = 0
        batch: list[dict[str, Any]] = []
        for node in rows:
            batch.append(checked(node).row())
            if len(batch) >= _INSERT_BATCH:
                conn.execute(insert(schema.nodes), batch)
                total += len(batch)
                batch = []
        if batch:
            conn.execute(insert(schema.nodes), batch)
            total += len(batch)
        return total

    def make_root(
        self, conn: Connection, owner: str, area: str, now: float, fileid: int | None = None
    ) -> NodeRecord:
        """Create the root folder of an area for `owner` (files root: permissions 31 = RDNVCK)."""
        if fileid is None:
            fileid = self.allocate_fileids(1, conn)[0]
        root = NodeRecord(
            fileid=fileid,
            owner=owner,
            area=area,
            path="",
            parent=NO_PARENT,
            name="",
            is_dir=True,
            size=0,
            mtime=int(now),
            etag=self.uniqid.next(now),
            checksum="",
            mimetype=DIR_MIMETYPE,
            permissions=FOLDER_PERMISSIONS,
            blob_id=None,
        )
        self.insert_node(conn, root)
        return root

    # -- versions ---------------------------------------------------------------------------------

    def versions(self, conn: Connection, fileid: int) -> list[VersionRecord]:
        """Versions of a file, newest first (as oC10 lists them)."""
        v = schema.versions
        rows = conn.execute(select(v).where(v.c.fileid == fileid).order_by(v.c.version_id.desc()))
        return [_record(VersionRecord, row) for row in rows]

    def version(self, conn: Connection, fileid: int, version_id: int) -> VersionRecord | None:
        v = schema.versions
        row = conn.execute(
            select(v).where(v.c.fileid == fileid, v.c.version_id == version_id)
        ).first()
        return None if row is None else _record(VersionRecord, row)

    def put_version(self, conn: Connection, version: VersionRecord) -> str | None:
        """Store a version, replacing one with the same id (as oC10 overwrites `.v<T>`);
        returns the replaced version's blob id, now unused, or None."""
        old = self.version(conn, version.fileid, version.version_id)
        if old is not None:
            self.delete_version(conn, version.fileid, version.version_id)
        conn.execute(insert(schema.versions).values(**asdict(version)))
        return None if old is None or old.blob_id == version.blob_id else old.blob_id

    def delete_version(self, conn: Connection, fileid: int, version_id: int) -> None:
        v = schema.versions
        conn.execute(delete(v).where(v.c.fileid == fileid, v.c.version_id == version_id))

    def versions_of(self, conn: Connection, fileids: Sequence[int]) -> list[VersionRecord]:
        v = schema.versions
        result: list[VersionRecord] = []
        for chunk in _chunks(fileids):
            rows = conn.execute(select(v).where(v.c.fileid.in_(chunk)))
            result.extend(_record(VersionRecord, row) for row in rows)
        return result

    def insert_versions(self, conn: Connection, rows: Iterable[VersionRecord]) -> None:
        batch = [asdict(r) for r in rows]
        if batch:
            conn.execute(insert(schema.versions), batch)

    # -- trash rows -------------------------------------------------------------------------------

    def trash_records(self, conn: Connection, owner: str) -> list[TrashRecord]:
        t = schema.trash
        rows = conn.execute(
            select(t).where(t.c.owner == owner).order_by(t.c.deleted_at, t.c.fileid)
        )
        return [_record(TrashRecord, row) for row in rows]

    def trash_record(self, conn: Connection, fileid: int) -> TrashRecord | None:
        row = conn.execute(select(schema.trash).where(schema.trash.c.fileid == fileid)).first()
        return None if row is None else _record(TrashRecord, row)

    def add_trash_record(self, conn: Connection, record: TrashRecord) -> None:
        conn.execute(insert(schema.trash).values(**asdict(record)))

    def delete_trash_record(self, conn: Connection, fileid: int) -> None:
        conn.execute(delete(schema.trash).where(schema.trash.c.fileid == fileid))

    # -- finding (REPORT filter-files and search-files) -------------------------------------------

    def favorite_nodes(self, conn: Connection, uid: str) -> list[NodeRecord]:
        """The user's favorites among their own files (the trash left out), by fileid."""
        n, f = schema.nodes, schema.favorites
        rows = conn.execute(
            select(*_NODE_COLUMNS)
            .select_from(n.join(f, f.c.fileid == n.c.fileid))
            .where(f.c.uid == uid, n.c.owner == uid, n.c.area == AREA_FILES)
            .order_by(n.c.fileid)
        )
        return [_record(NodeRecord, row) for row in rows]

    def search_names(
        self, conn: Connection, owner: str, like: str, limit: int
    ) -> list[NodeRecord]:
        """At most `limit` nodes of `owner`'s files (the root left out) whose name matches the
        SQL LIKE pattern `like` ignoring case, by fileid."""
        n = schema.nodes
        rows = conn.execute(
            select(*_NODE_COLUMNS)
            .where(n.c.owner == owner, n.c.area == AREA_FILES, n.c.path != "",
                   n.c.name.ilike(like))
            .order_by(n.c.fileid)
            .limit(limit)
        )
        return [_record(NodeRecord, row) for row in rows]

    # -- annotations, batched per listing ---------------------------------------------------------

    def favorites(self, conn: Connection, uid: str, fileids: Sequence[int]) -> set[int]:
        f = schema.favorites
        found: set[int] = set()
        for chunk in _chunks(fileids):
            if self._sqlite:
                sql = f"SELECT fileid FROM favorites WHERE uid = ? AND fileid IN ({_marks(chunk)})"
                found.update(fileid for (fileid,) in conn.exec_driver_sql(sql, (uid, *chunk)))
                continue
            found.update(
                conn.scalars(select(f.c.fileid).where(f.c.uid == uid, f.c.fileid.in_(chunk)))
            )
        return found

    def set_favorite(self, conn: Connection, uid: str, fileid: int, favorite: bool) -> None:
        f = schema.favorites
        conn.execute(delete(f).where(f.c.uid == uid, f.c.fileid == fileid))
        if favorite:
            conn.execute(insert(f).values(uid=uid, fileid=fileid))

    def tags(self, conn: Connection, uid: str, fileids: Sequence[int]) -> dict[int, list[str]]:
        t = schema.tags
        found: dict[int, list[str]] = {}
        for chunk in _chunks(fileids):
            if self._sqlite:
                rows: Iterable[Any] = conn.exec_driver_sql(
                    f"SELECT fileid, tag FROM tags WHERE uid = ? AND fileid IN ({_marks(chunk)}) "
                    "ORDER BY fileid, tag",
                    (uid, *chunk),
                )
            else:
                rows = conn.execute(
                    select(t.c.fileid, t.c.tag)
                    .where(t.c.uid == uid, t.c.fileid.in_(chunk))
                    .order_by(t.c.fileid, t.c.tag)
                )
            for fileid, tag in rows:
                found.setdefault(fileid, []).append(tag)
        return found

    def set_tags(self, conn: Connection, uid: str, fileid: int, tags: Iterable[str]) -> None:
        t = schema.tags
        conn.execute(delete(t).where(t.c.uid == uid, t.c.fileid == fileid))
        rows = [{"uid": uid, "fileid": fileid, "tag": tag} for tag in sorted(set(tags))]
        if rows:
            conn.execute(insert(t), rows)

    def comment_counts(
        self, conn: Connection, uid: str, fileids: Sequence[int]
    ) -> dict[int, tuple[int, int]]:
        """fileid -> (comments, unread by `uid`); unread = newer than the user's read marker,
        all of them when there is none (oC10 CommentPropertiesPlugin)."""
        c, m = schema.comments, schema.comment_read_markers
        found: dict[int, tuple[int, int]] = {}
        for chunk in _chunks(fileids):
            if self._sqlite:
                rows: Iterable[Any] = conn.exec_driver_sql(
                    "SELECT c.fileid, count(*), sum(CASE WHEN m.marked_at IS NULL OR "
                    "c.created > m.marked_at THEN 1 ELSE 0 END) FROM comments AS c "
                    "LEFT OUTER JOIN comment_read_markers AS m "
                    "ON m.fileid = c.fileid AND m.uid = ? "
                    f"WHERE c.fileid IN ({_marks(chunk)}) GROUP BY c.fileid",
                    (uid, *chunk),
                )
            else:
                unread = case(
                    (or_(m.c.marked_at.is_(None), c.c.created > m.c.marked_at), 1), else_=0
                )
                rows = conn.execute(
                    select(c.c.fileid, func.count(), func.sum(unread))
                    .select_from(c.outerjoin(m, and_(m.c.fileid == c.c.fileid, m.c.uid == uid)))
                    .where(c.c.fileid.in_(chunk))
                    .group_by(c.c.fileid)
                )
            for fileid, count, unread_count in rows:
                found[fileid] = (int(count), int(unread_count or 0))
        return found

    def dead_props(self, conn: Connection, fileids: Sequence[int]) -> dict[int, dict[str, str]]:
        p = schema.dead_props
        found: dict[int, dict[str, str]] = {}
        for chunk in _chunks(fileids):
            if self._sqlite:
                rows: Iterable[Any] = conn.exec_driver_sql(
                    f"SELECT fileid, name, value FROM dead_props WHERE fileid IN ({_marks(chunk)})",
                    tuple(chunk),
                )
            else:
                rows = conn.execute(
                    select(p.c.fileid, p.c.name, p.c.value).where(p.c.fileid.in_(chunk))
                )
            for fileid, name, value in rows:
                found.setdefault(fileid, {})[name] = value
        return found

    def set_dead_props(
        self, conn: Connection, fileid: int, props: Mapping[str, str | None]
    ) -> None:
        p = schema.dead_props
        if not props:
            return
        conn.execute(delete(p).where(p.c.fileid == fileid, p.c.name.in_(list(props))))
        rows = [
            {"fileid": fileid, "name": name, "value": value}
            for name, value in props.items()
            if value is not None
        ]
        if rows:
            conn.execute(insert(p), rows)

    # -- locks ------------------------------------------------------------------------------------

    def locks(self, conn: Connection, uid: str, now: float) -> list[LockRecord]:
        """The user's live locks (expired ones are left for `purge_expired_locks`)."""
        lk = schema.locks
        records = [
            _record(LockRecord, row) for row in conn.execute(select(lk).where(lk.c.uid == uid))
        ]
        return [r for r in records if r.alive(now)]

    def purge_expired_locks(self, conn: Connection, uid: str, now: float) -> None:
        lk = schema.locks
        expired = [
            r.token
            for r in (
                _record(LockRecord, row) for row in conn.execute(select(lk).where(lk.c.uid == uid))
            )
            if not r.alive(now)
        ]
        for chunk in _chunks(expired):
            conn.execute(delete(lk).where(lk.c.token.in_(chunk)))

    def lock_by_token(self, conn: Connection, token: str) -> LockRecord | None:
        row = conn.execute(select(schema.locks).where(schema.locks.c.token == token)).first()
        return None if row is None else _record(LockRecord, row)

    def add_lock(self, conn: Connection, lock: LockRecord) -> None:
        conn.execute(insert(schema.locks).values(**asdict(lock)))

    def update_lock(self, conn: Connection, token: str, **values: Any) -> None:
        conn.execute(update(schema.locks).where(schema.locks.c.token == token).values(**values))

    def delete_lock(self, conn: Connection, token: str) -> None:
        conn.execute(delete(schema.locks).where(schema.locks.c.token == token))

    def delete_locks_below(self, conn: Connection, uid: str, path: str) -> None:
        """Drop locks on `path` and below it (the node went away: moved, trashed)."""
        lk = schema.locks
        tokens = [
            token
            for token, lock_path in conn.execute(
                select(lk.c.token, lk.c.path).where(lk.c.uid == uid)
            )
            if is_same_or_below(lock_path, path)
        ]
        for chunk in _chunks(tokens):
            conn.execute(delete(lk).where(lk.c.token.in_(chunk)))

    # -- users ------------------------------------------------------------------------------------

    @_changes_users
    def add_user(
        self,
        uid: str,
        *,
        password: str | None = None,
        password_hash: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        quota: str | None = None,
        enabled: bool = True,
        language: str | None = None,
        created: int | None = None,
        create_roots: bool = True,
    ) -> UserRecord:
        """Create a user; `password` is hashed in oC10's current format, `password_hash` is
        stored as given (migration). Creates the user's files and trash roots unless the
        migration brings its own (`create_roots=False`, then insert_nodes)."""
        _check_uid(uid)
        if password is not None and password_hash is not None:
            raise UserAdminError(f"user {uid!r}: give a password or a password hash, not both")
        stored = hash_password(password) if password is not None else (password_hash or "")
        now = time.time()
        record = UserRecord(
            uid=uid,
            display_name=display_name,
            email=email,
            password=stored,
            quota=quota,
            enabled=enabled,
            created=int(now) if created is None else created,
            last_login=0,
            language=language,
        )
        try:
            with self.write(uid) as conn:
                conn.execute(
                    insert(schema.users).values(
                        **asdict(record), uid_lower=uid.lower(), email_lower=_lower(email)
                    )
                )
                if create_roots:
                    self.make_root(conn, uid, AREA_FILES, now)
                    self.make_root(conn, uid, AREA_TRASH, now)
        except IntegrityError as exc:
            raise UserAdminError(
                f"cannot add user {uid!r}: a user with that name (in any letter case) exists"
            ) from exc
        return record

    def user(self, uid: str, conn: Connection | None = None) -> UserRecord | None:
        """The user with exactly this uid."""
        if conn is None:
            rows = self._single(_Q["user"], {"uid": uid})
            return _user_record(rows[0]) if rows else None
        row = self._first(conn, _Q["user"], {"uid": uid})
        return None if row is None else _user_record(row)

    def user_by_login(self, login: str, conn: Connection | None = None) -> UserRecord | None:
        """The user whose uid equals `login` ignoring case (the stored case is returned)."""
        if conn is None:
            rows = self._single(_Q["user_by_login"], {"low": login.lower()})
            return _user_record(rows[0]) if rows else None
        row = self._first(conn, _Q["user_by_login"], {"low": login.lower()})
        return None if row is None else _user_record(row)

    def uids_by_email(self, email: str) -> list[str]:
        u = schema.users
        if not email.strip():
            return []
        with self.read() as conn:
            return list(conn.scalars(select(u.c.uid).where(u.c.email_lower == email.lower())))

    def list_users(self) -> list[UserRecord]:
        with self.read() as conn:
            rows = conn.execute(select(schema.users).order_by(schema.users.c.uid))
            return [_record(UserRecord, row) for row in rows]

    @_changes_users
    def update_user(self, uid: str, **values: Any) -> None:
        """Change columns of a user (display_name, email, quota, enabled, language, last_login,
        password = a stored hash)."""
        allowed = {f.name for f in fields(UserRecord)} - {"uid"}
        unknown = set(values) - allowed
        if unknown:
            raise UserAdminError(f"cannot change {sorted(unknown)} of a user")
        if "email" in values:
            values["email_lower"] = _lower(values["email"])
        with self.write(uid) as conn:
            result = conn.execute(
                update(schema.users).where(schema.users.c.uid == uid).values(**values)
            )
            if result.rowcount == 0:
                raise UserAdminError(f"no user {uid!r}")

    def set_password(self, uid: str, password: str) -> None:
        """Store `password` in oC10's current hash format (`1|$2y$10$…`)."""
        self.update_user(uid, password=hash_password(password))

    @_changes_users
    def delete_user(self, uid: str, remove_blob: Callable[[str], None] | None = None) -> None:
        """Delete a user with their nodes, trash, versions, annotations, app passwords and
        memberships; `remove_blob` is called for each blob id after the commit."""
        n, v = schema.nodes, schema.versions
        with self.write(uid) as conn:
            if conn.scalar(select(schema.users.c.uid).where(schema.users.c.uid == uid)) is None:
                raise UserAdminError(f"no user {uid!r}")
            blobs = [b for b in conn.scalars(select(n.c.blob_id).where(n.c.owner == uid)) if b]
            blobs.extend(
                conn.scalars(
                    select(v.c.blob_id)
                    .select_from(v.join(n, n.c.fileid == v.c.fileid))
                    .where(n.c.owner == uid)
                )
            )
            for table in (schema.favorites, schema.tags, schema.comment_read_markers):
                conn.execute(delete(table).where(table.c.uid == uid))
            conn.execute(delete(schema.locks).where(schema.locks.c.uid == uid))
            # versions, trash rows and per-node annotations go with their nodes (ON DELETE CASCADE)
            conn.execute(delete(n).where(n.c.owner == uid))
            conn.execute(delete(schema.users).where(schema.users.c.uid == uid))
        if remove_blob is not None:
            for blob_id in blobs:
                remove_blob(blob_id)

    # -- groups -----------------------------------------------------------------------------------

    @_changes_users
    def add_group(self, gid: str) -> None:
        if not gid or len(gid) > 255:
            raise UserAdminError(f"invalid group name {gid!r}: use 1 to 255 characters")
        try:
            with self.write() as conn:
                conn.execute(insert(schema.groups).values(gid=gid))
        except IntegrityError as exc:
            raise UserAdminError(f"group {gid!r} exists") from exc

    @_changes_users
    def delete_group(self, gid: str) -> None:
        with self.write() as conn:
            conn.execute(delete(schema.groups).where(schema.groups.c.gid == gid))

    def list_groups(self) -> list[str]:
        with self.read() as conn:
            return list(conn.scalars(select(schema.groups.c.gid).order_by(schema.groups.c.gid)))

    @_changes_users
    def add_member(self, gid: str, uid: str) -> None:
        gm = schema.group_members
        with self.write() as conn:
            if conn.scalar(select(schema.groups.c.gid).where(schema.groups.c.gid == gid)) is None:
                raise UserAdminError(f"no group {gid!r}")
            if conn.scalar(select(schema.users.c.uid).where(schema.users.c.uid == uid)) is None:
                raise UserAdminError(f"no user {uid!r}")
            exists = conn.scalar(select(gm.c.uid).where(gm.c.gid == gid, gm.c.uid == uid))
            if exists is None:
                conn.execute(insert(gm).values(gid=gid, uid=uid))

    @_changes_users
    def remove_member(self, gid: str, uid: str) -> None:
        gm = schema.group_members
        with self.write() as conn:
            conn.execute(delete(gm).where(gm.c.gid == gid, gm.c.uid == uid))

    def groups_of(self, uid: str, conn: Connection | None = None) -> tuple[str, ...]:
        rows = (
            self._single(_Q["groups_of"], {"uid": uid})
            if conn is None
            else self._all(conn, _Q["groups_of"], {"uid": uid})
        )
        return tuple(gid for (gid,) in rows)

    # -- app passwords ----------------------------------------------------------------------------

    @_changes_users
    def add_app_password(
        self,
        uid: str,
        name: str,
        *,
        secret: str | None = None,
        login_name: str | None = None,
        token: str | None = None,
        rng: random.Random | None = None,
    ) -> str:
        """Create an app password (oc_authtoken type 1) and return its clear text, shown once.

        Stored as sha512(token + secret) like oC10; `secret` defaults to the instance setting.
        `login_name` (default: the uid) is what Basic auth must present with it.
        """
        secret = secret if secret is not None else self.setting("secret")
        if not secret:
            raise UserAdminError(
                "no instance secret: set the 'secret' instance setting (config.php `secret` of "
                "the ownCloud 10 instance) before creating app passwords"
            )
        token = token or new_app_password(rng or random.SystemRandom())
        with self.write(uid) as conn:
            if conn.scalar(select(schema.users.c.uid).where(schema.users.c.uid == uid)) is None:
                raise UserAdminError(f"no user {uid!r}")
            conn.execute(
                insert(schema.app_passwords).values(
                    uid=uid,
                    login_name=login_name or uid,
                    token_hash=token_hash(token, secret),
                    name=name or "(none)",
                    type=1,
                    last_activity=int(time.time()),
                    last_check=0,
                    password_enc=None,
                )
            )
        return token

    def app_password(self, hashed: str) -> AppPasswordRecord | None:
        rows = self._single(_Q["app_password"], {"token_hash": hashed})
        return AppPasswordRecord(*rows[0]) if rows else None

    def oauth2_access_token(self, token: str) -> tuple[str, int] | None:
        """(uid, expires) of an OAuth2 bearer token carried over from ownCloud, or None."""
        t = schema.oauth2_access_tokens
        with self.read() as conn:
            row = conn.execute(select(t.c.uid, t.c.expires).where(t.c.token == token)).first()
        return None if row is None else (str(row.uid), int(row.expires))

    def oauth2_client(self, identifier: str) -> tuple[int, str] | None:
        """(id, secret) of the OAuth2 client with this identifier, or None."""
        c = schema.oauth2_clients
        with self.read() as conn:
            row = conn.execute(select(c.c.id, c.c.secret, c.c.identifier)
                               .where(c.c.identifier == identifier)).first()
        # compared byte for byte (MySQL's collations fold case)
        if row is None or row.identifier != identifier:
            return None
        return int(row.id), str(row.secret)

    def oauth2_refresh_token(self, token: str) -> tuple[int, int, str, int | None] | None:
        """(id, client id, uid, access token id) of a refresh token, or None."""
        r = schema.oauth2_refresh_tokens
        with self.read() as conn:
            row = conn.execute(select(r).where(r.c.token == token)).first()
        if row is None or row.token != token:
            return None
        access = None if row.access_token_id is None else int(row.access_token_id)
        return int(row.id), int(row.client_id), str(row.uid), access

    def oauth2_rotate(self, refresh_id: int, access_id: int | None, client_id: int, uid: str,
                      access_token: str, refresh_token: str, expires: int) -> None:
        """The refresh grant: the used refresh token and its access token go, a new pair comes,
        in one transaction. New ids start at the fileid base, above every migrated id."""
        a, r = schema.oauth2_access_tokens, schema.oauth2_refresh_tokens
        with self.write(uid) as conn:
            if access_id is not None:
                conn.execute(delete(a).where(a.c.id == access_id))
            conn.execute(delete(r).where(r.c.id == refresh_id))
            ids = []
            for table in (a, r):
                top = conn.execute(select(func.max(table.c.id))).scalar()
                ids.append(max(self.fileid_base, int(top or 0) + 1))
            conn.execute(insert(a).values(id=ids[0], token=access_token, client_id=client_id,
                                          uid=uid, expires=expires))
            conn.execute(insert(r).values(id=ids[1], token=refresh_token, client_id=client_id,
                                          uid=uid, access_token_id=ids[0]))

    def systemtag_visibility(self, conn: Connection, tag_id: int) -> int | None:
        """oc_systemtag.visibility of a system tag (1 user-visible, 0 admins only), or None."""
        s = schema.systemtags
        found = conn.execute(select(s.c.visibility).where(s.c.id == tag_id)).scalar()
        return None if found is None else int(found)

    def systemtag_fileids(self, conn: Connection, tag_id: int) -> list[int]:
        """Every fileid a system tag is assigned to, ascending."""
        o = schema.systemtag_objects
        return [int(f) for f in conn.execute(
            select(o.c.fileid).where(o.c.tag_id == tag_id).order_by(o.c.fileid)).scalars()]

    def list_app_passwords(self, uid: str) -> list[AppPasswordRecord]:
        a = schema.app_passwords
        with self.read() as conn:
            rows = conn.execute(select(a).where(a.c.uid == uid).order_by(a.c.id))
            return [_record(AppPasswordRecord, row) for row in rows]

    @_changes_users
    def delete_app_password(self, uid: str, token_id: int) -> None:
        a = schema.app_passwords
        with self.write(uid) as conn:
            conn.execute(delete(a).where(a.c.uid == uid, a.c.id == token_id))

    def touch_app_password(self, token: AppPasswordRecord, now: int) -> None:
        """Record use of a token, at most once a minute (oC10 updates last_activity so)."""
        if token.last_activity >= now - 60:
            return
        a = schema.app_passwords
        token_id = token.id
        with self.write() as conn:
            conn.execute(
                update(a)
                .where(a.c.id == token_id, a.c.last_activity < now - 60)
                .values(last_activity=now)
            )


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _check_uid(uid: str) -> None:
    if (
        not uid
        or len(uid) > 255
        or uid != uid.strip()
        or any(c in uid for c in "/\\\0")
        or uid in (".", "..")
    ):
        raise UserAdminError(
            f"invalid user id {uid!r}: use 1 to 255 characters, no '/', '\\' or NUL and no "
            "leading or trailing whitespace"
        )


def _marks(items: Sequence[Any]) -> str:
    """`?, ?, …` for an IN list of SQLite's driver."""
    return ", ".join("?" * len(items))


def _chunks[T](items: Sequence[T]) -> Iterator[list[T]]:
    items = list(items)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


# ---------------------------------------------------------------------------------------------
# Failed-login throttle


class LoginThrottle:
    """Slows down password guessing: a delay per (login, remote address) that doubles with each
    failure inside `window` seconds, up to `max_delay` (Nextcloud-style Throttler numbers:
    0.1 s · 2^failures, capped at 25 s, failures forgotten after 12 h). In memory, per process.

    The HTTP layer calls `delay()` before checking credentials (and sleeps that long),
    `failure()` after a wrong one and `success()` after a right one.
    """

    def __init__(
        self,
        *,
        first_delay: float = 0.1,
        max_delay: float = 25.0,
        window: float = 12 * 3600,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first = first_delay
        self._max = max_delay
        self._window = window
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    @staticmethod
    def _key(login: str, remote_addr: str) -> tuple[str, str]:
        return login.lower(), remote_addr

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if t > now - self._window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def attempts(self, login: str, remote_addr: str) -> int:
        with self._lock:
            return len(self._recent(self._key(login, remote_addr), self._clock()))

    def delay(self, login: str, remote_addr: str) -> float:
        """Seconds to wait before answering this login attempt (0 when there were no failures)."""
        attempts = self.attempts(login, remote_addr)
        if attempts == 0:
            return 0.0
        if attempts > 64:
            return self._max
        return min(self._first * math.pow(2, attempts), self._max)

    def failure(self, login: str, remote_addr: str) -> None:
        key = self._key(login, remote_addr)
        now = self._clock()
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times[-64:]
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_entries:
                self._failures.popitem(last=False)

    def success(self, login: str, remote_addr: str) -> None:
        with self._lock:
            self._failures.pop(self._key(login, remote_addr), None)


def new_blob_id() -> str:
    """A fresh blob id (never reused, so a live blob is never overwritten)."""
    return secrets.token_hex(16)


__all__ = [
    "AREA_FILES",
    "AREA_TRASH",
    "NO_PARENT",
    "AppPasswordRecord",
    "Changes",
    "FileidBaseError",
    "LockRecord",
    "LoginThrottle",
    "MetadataError",
    "MetadataStore",
    "LISTING_FIELDS",
    "NodeRecord",
    "TrashRecord",
    "UserAdminError",
    "UserRecord",
    "VersionRecord",
    "ancestors",
    "base_name",
    "join_path",
    "new_blob_id",
    "parent_path",
]
