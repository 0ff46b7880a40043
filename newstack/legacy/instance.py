"""One ownCloud 10 instance as the `oc10` backend sees it: config.php, database, data directory.

Also the two lookups every request needs and that never change once made: a user's home
storage (oc_storages) and the mimetype ids (oc_mimetypes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from bridge.errors import LegacyInstanceError
from bridge.oc10.configphp import OC10Config
from bridge.oc10.formats import home_storage_id
from bridge.oc10.schema import OC10Tables, oc10_tables


@dataclass(frozen=True)
class LegacyInstance:
    config: OC10Config
    engine: Engine
    tables: OC10Tables
    data_dir: Path

    @property
    def instance_id(self) -> str:
        return self.config.instanceid

    @property
    def data_fingerprint(self) -> str:
        return self.config.data_fingerprint

    def close(self) -> None:
        self.engine.dispose()


def open_instance(
    config_php: Path, *, db_url: str = "", data_dir: Path | None = None
) -> LegacyInstance:
    """Open the instance that `config_php` describes; `db_url` and `data_dir` override it (for
    a copy of the instance moved elsewhere). Fails with a clear error when the data directory
    is not an ownCloud one or the database has no ownCloud tables."""
    config = OC10Config.from_file(config_php)
    root = Path(data_dir) if data_dir is not None else config.datadirectory
    if not (root / ".ocdata").is_file():
        raise LegacyInstanceError(
            f"{root} is not an ownCloud data directory (no .ocdata file); check "
            "'datadirectory' in config.php or pass the data directory explicitly")
    url = db_url or config.database_url()
    engine = sa.create_engine(url, pool_pre_ping=True, **_engine_options(url))
    tables = oc10_tables(config.dbtableprefix)
    try:
        with engine.connect() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(tables.storages)).scalar_one()
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise LegacyInstanceError(
            f"cannot read the ownCloud tables ({tables.prefix}*) at "
            f"{sa.make_url(url).render_as_string(hide_password=True)}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}") from exc
    return LegacyInstance(config=config, engine=engine, tables=tables, data_dir=root)


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # ownCloud's own SQLite file: no WAL switch (PHP may still open it), but wait for locks
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": 10, "max_overflow": 20, "pool_recycle": 3600}


class Storages:
    """numeric ids of home storages (`home::<uid>`), made on first use as oC10 does."""

    def __init__(self, tables: OC10Tables) -> None:
        self._t = tables
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}

    def cached(self, uid: str) -> int | None:
        return self._ids.get(uid)

    def home(self, conn: Connection, uid: str, *, create: bool = False) -> int | None:
        cached = self._ids.get(uid)
        if cached is not None:
            return cached
        t = self._t.storages
        sid = home_storage_id(uid)
        numeric = conn.execute(sa.select(t.c.numeric_id).where(t.c.id == sid)).scalar()
        if numeric is None and create:
            try:
                with conn.begin_nested():
                    numeric = conn.execute(
                        t.insert().values(id=sid, available=1, last_checked=None)
                    ).inserted_primary_key[0]  # type: ignore[index]
            except IntegrityError:  # another request made it meanwhile
                numeric = conn.execute(sa.select(t.c.numeric_id).where(t.c.id == sid)).scalar()
        if numeric is not None:
            with self._lock:
                self._ids[uid] = int(numeric)
        return None if numeric is None else int(numeric)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._ids.pop(uid, None)


class Mimetypes:
    """oc_mimetypes both ways; ids are made on first use (mimepart before the full type, as
    Loader::getId does)."""

    def __init__(self, tables: OC10Tables) -> None:
        self._t = tables.mimetypes
        self._lock = threading.Lock()
        self._names: dict[int, str] = {}
        self._ids: dict[str, int] = {}

    def load(self, conn: Connection) -> None:
        rows = conn.execute(sa.select(self._t.c.id, self._t.c.mimetype)).all()
        with self._lock:
            for mid, name in rows:
                self._names[int(mid)] = name
                self._ids[name] = int(mid)

    def name(self, conn: Connection, mid: int) -> str:
        name = self._names.get(mid)
        if name is None:
            self.load(conn)
            name = self._names.get(mid, "application/octet-stream")
        return name

    def names(self) -> dict[int, str]:
        return self._names

    def ids(self, conn: Connection, mimetype: str) -> tuple[int, int]:
        """(mimetype id, mimepart id), made if missing."""
        part = self._id(conn, mimetype.split("/", 1)[0])
        return self._id(conn, mimetype), part

    def _id(self, conn: Connection, name: str) -> int:
        mid = self._ids.get(name)
        if mid is not None:
            return mid
        self.load(conn)
        mid = self._ids.get(name)
        if mid is None:
            try:
                with conn.begin_nested():
                    conn.execute(self._t.insert().values(mimetype=name))
            except IntegrityError:
                pass
            mid = conn.execute(
                sa.select(self._t.c.id).where(self._t.c.mimetype == name)).scalar_one()
            with self._lock:
                self._names[int(mid)] = name
                self._ids[name] = int(mid)
        return int(mid)
