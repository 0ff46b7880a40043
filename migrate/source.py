"""Reading one user of an ownCloud 10 instance for migration: streamed, in fileid order.

Rows come from oc_filecache of the user's home storage through a server-side cursor, so a user
with a million files never becomes a Python list; a job resumes with `after` = the last fileid
it committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bridge.oc10.formats import home_storage_id
from migrate import fastread
from newstack.legacy.filecache import FileCache, Row
from newstack.legacy.instance import LegacyInstance, Mimetypes

#: a row of oc_filecache as the migration reads it
SourceRow = Row


class LegacySource:
    def __init__(self, instance: LegacyInstance) -> None:
        self.instance = instance
        self.t = instance.tables
        self.engine = instance.engine
        self.mimetypes = Mimetypes(instance.tables)
        self.cache = FileCache(instance.tables, self.mimetypes)
        with self.engine.connect() as conn:
            self.mimetypes.load(conn)
        #: MySQL/MariaDB through PyMySQL: rows over five wire columns (migrate/fastread.py)
        self.fast = fastread.supported(self.engine)

    def home_storage(self, uid: str) -> int | None:
        s = self.t.storages
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(s.c.numeric_id).where(
                s.c.id == home_storage_id(uid))).scalar()
        return None if found is None else int(found)

    def home(self, uid: str) -> Path:
        a = self.t.accounts
        with self.engine.connect() as conn:
            home = conn.execute(sa.select(a.c.home).where(a.c.user_id == uid)).scalar()
        configured = self.instance.config.datadirectory
        path = Path(home) if home else configured / uid
        if self.instance.data_dir != configured and path.is_relative_to(configured):
            path = self.instance.data_dir / path.relative_to(configured)
        return path

    def rows(self, storage: int, *, after: int = -1, batch: int = 1000,
             where: Any = None) -> Generator[list[SourceRow]]:
        """The storage's rows with fileid > `after`, in fileid order, `batch` at a time."""
        c = self.t.filecache.c
        if self.fast:
            fast = fastread.wire_select(self.t.filecache).where(c.storage == storage,
                                                                c.fileid > after)
            if where is not None:
                fast = fast.where(where)
            yield from fastread.batches(self.engine, fast.order_by(c.fileid), batch, storage,
                                        self.mimetypes.names, self._reload_mimetypes)
            return
        query = self.cache.select().where(c.storage == storage, c.fileid > after)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                query.order_by(c.fileid))
            try:
                for part in result.partitions(batch):
                    if any(r[5] not in self.mimetypes.names() for r in part):
                        with self.engine.connect() as other:  # mimetypes made since
                            self.mimetypes.load(other)
                    yield self.cache.make_rows(None, part)
            finally:
                # also when left early (a job stopped or crashed): an unbuffered MySQL result
                # must be closed before its connection goes back to the pool
                result.close()

    def _reload_mimetypes(self) -> dict[int, str]:
        with self.engine.connect() as conn:  # mimetypes made since
            self.mimetypes.load(conn)
        return self.mimetypes.names()

    def all_rows(self, storage: int, where: Any) -> list[SourceRow]:
        """Every row of the storage matching `where` (a folder's children, one path...)."""
        with contextlib.closing(self.rows(storage, where=where)) as batches:
            return [row for batch in batches for row in batch]

    def table_rows(self, table: sa.Table, where: Any) -> list[dict[str, Any]]:
        """Small per-user tables (accounts, tokens, groups, trash records...) in full."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table).where(where))]
