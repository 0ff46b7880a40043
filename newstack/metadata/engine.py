"""Database engines for the metadata service: SQLite tuned for many threads, or PostgreSQL.

Write transactions are serialised per user (PostgreSQL advisory lock) or for the whole database
(SQLite's write lock, taken at BEGIN); the store and the backend open them through `write_tx`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event, func, select

SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
_WRITE_OPTION: Final = "ocbridge_write"


def open_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` with the settings the metadata store relies on."""
    engine = create_engine(url, **kwargs)
    configure_engine(engine)
    return engine


def configure_engine(engine: Engine) -> None:
    """Install the per-connection setup (idempotent). SQLite: WAL, foreign keys, busy timeout,
    md5() and our own BEGIN, so that write transactions take the write lock up front and never
    fail half-way with 'database is locked' when two threads upgrade a read lock at once."""
    if engine.dialect.name != "sqlite" or event.contains(engine, "connect", _sqlite_connect):
        return
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    engine.dispose()  # connections pooled before now lack the setup


#: per-connection page cache bound (KiB); negative PRAGMA values are KiB, positive are pages
SQLITE_CACHE_KIB = 64 * 1024


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 must not issue BEGIN itself: _sqlite_begin does, with the right mode
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function("md5", 1, _md5, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # SQLite's default 2 MiB page cache re-reads the node index from the OS for every
        # batch once a user has ~100k rows (about 1.2 GB read per migration); the cache only
        # grows as pages are used, so small databases pay nothing for the higher bound
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # straight to the driver: exec_driver_sql would run SQLAlchemy's whole execution path
    # (and its events) for a statement that returns nothing, on every transaction
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.connection.driver_connection.execute(  # type: ignore[union-attr]
        "BEGIN IMMEDIATE" if write else "BEGIN"
    )


def _md5(value: str | None) -> str | None:
    # PostgreSQL's md5(text) on SQLite: hex of the UTF-8 bytes
    return None if value is None else hashlib.md5(value.encode("utf-8")).hexdigest()


def _advisory_key(name: str) -> int:
    return int(struct.unpack(">q", hashlib.sha256(name.encode("utf-8")).digest()[:8])[0])


@contextmanager
def write_tx(engine: Engine, lock_name: str | None = None) -> Iterator[Connection]:
    """A write transaction, committed at the end of the block (rolled back on an exception).

    `lock_name` (usually a uid) serialises writers of that name on PostgreSQL with a
    transaction-scoped advisory lock; SQLite serialises all writers anyway.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            if lock_name is not None and conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_advisory_key(lock_name))))
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """Reads from one snapshot of the database (so a folder and its children agree); never
    commits."""
    with engine.connect() as conn:  # closing rolls back
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")  # autobegins
        else:
            # begin now, not at the first SQLAlchemy statement: the store also reads through
            # the driver connection (MetadataStore._driver), which must be inside the snapshot
            conn.begin()
        yield conn
