"""oc_filecache rows from MySQL/MariaDB (PyMySQL) at a fraction of the generic path's cost.

PyMySQL parses every column of every row in pure Python, and SQLAlchemy wraps each row once
more; at a hundred thousand rows a user that was the largest cost of a bulk migration. This
path asks the server for five columns instead of thirteen: the eight integers joined into one
comma-separated string (digits and minus signs only, so the comma cannot occur in them), and
the four strings (etag, checksum, name, path) as they are, decoded by PyMySQL exactly as on
the generic path, any character included. The integers are split and converted here, and the
rows are read through a raw unbuffered PyMySQL cursor, not SQLAlchemy's result.

NULLs keep the generic path's meaning (`FileCache.make_rows`): a NULL string is '', a NULL
or 0 storage_mtime is the mtime, NULL permissions or encrypted are 0; a NULL in a NOT NULL
integer column (fileid, parent, mimetype, size, mtime) fails loudly on both paths.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa

from newstack.legacy.filecache import Row

#: joined in this order into the first wire column
INT_COLUMNS: Final = ("fileid", "parent", "mimetype", "size", "mtime", "storage_mtime",
                      "permissions", "encrypted")
#: NULL → 0 where the generic path reads NULL as 0; '' (which int() refuses) for the rest,
#: so a NULL never shifts the fields of CONCAT_WS (which skips NULL arguments)
_NULL_AS_ZERO: Final = frozenset({"storage_mtime", "permissions", "encrypted"})
UNKNOWN_MIMETYPE: Final = "application/octet-stream"


def supported(engine: sa.Engine) -> bool:
    """Whether `engine` is MySQL or MariaDB through PyMySQL (the driver this path reads)."""
    return engine.dialect.name in ("mysql", "mariadb") and engine.dialect.driver == "pymysql"


def wire_select(filecache: sa.Table) -> sa.Select[Any]:
    """The five wire columns (see the module's docstring); `where` and order are the
    caller's."""
    c = filecache.c
    ints = sa.func.concat_ws(",", *(
        sa.func.coalesce(c[name], 0 if name in _NULL_AS_ZERO else "") for name in INT_COLUMNS))
    # CAST AS CHAR: a text string (str from PyMySQL) even where a server makes numbers binary
    return sa.select(sa.cast(ints, sa.String()), c.etag, c.checksum, c.name, c.path)


_new = object.__new__
_set = object.__setattr__


def make_rows(storage: int, part: Sequence[Sequence[Any]], names: Mapping[int, str],
              reload: Callable[[], Mapping[int, str]]) -> list[Row]:
    """Rows from `wire_select()` results; `names` resolves mimetype ids, and `reload()` gives
    them anew (once per batch at most) when an id is missing: a type made since loading."""
    out: list[Row] = []
    append = out.append
    reloaded = False
    for ints, etag, checksum, name, path in part:
        fileid, parent, mime, size, mtime, storage_mtime, permissions, encrypted = \
            ints.split(",")
        mtime_i = int(mtime)
        mimetype = names.get(int(mime))
        if mimetype is None:
            if not reloaded:
                names, reloaded = reload(), True
            mimetype = names.get(int(mime), UNKNOWN_MIMETYPE)
        row = _new(Row)
        # Row is a frozen dataclass: its generated __init__ sets each field through
        # object.__setattr__, four times the cost of handing it its finished __dict__;
        # tests/migrate/test_fastread.py checks the result equals Row(...)
        _set(row, "__dict__", {
            "fileid": int(fileid), "storage": storage, "path": path or "",
            "parent": int(parent), "name": name or "",
            "mimetype": mimetype, "size": int(size),
            "mtime": mtime_i, "storage_mtime": int(storage_mtime) or mtime_i,
            "etag": etag or "", "permissions": int(permissions), "checksum": checksum or "",
            "encrypted": int(encrypted)})
        append(row)
    return out


def batches(engine: sa.Engine, query: sa.Select[Any], batch: int, storage: int,
            names: Callable[[], Mapping[int, str]], reload: Callable[[], Mapping[int, str]]
            ) -> Generator[list[Row]]:
    """The rows of `query` (built on `wire_select()`), `batch` at a time, through an
    unbuffered PyMySQL cursor: one batch in memory at a time. Mimetype ids resolve through
    `names()`, and `reload()` when one is missing (see `make_rows`)."""
    import pymysql.cursors

    compiled = query.compile(dialect=engine.dialect,
                             compile_kwargs={"render_postcompile": True})
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(compiled.string, compiled.params)
            while part := cursor.fetchmany(batch):
                yield make_rows(storage, part, names(), reload)
        finally:
            # also when left early (a job stopped or crashed): the unbuffered result must be
            # read to its end before the connection goes back to the pool
            cursor.close()
