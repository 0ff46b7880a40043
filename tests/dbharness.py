"""Throw-away databases on the real test servers (MariaDB, PostgreSQL) and SQLite files.

tests/conftest.py turns these into fixtures. Every name is ocb_test_<pid>_<hex>, so
sweep_stale() can drop what crashed runs left behind without touching a live run's databases.
"""

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

Kind = Literal["mariadb", "postgres", "sqlite"]
SERVER_KINDS: tuple[Kind, ...] = ("mariadb", "postgres")

_URL_ENV = {"mariadb": "OCBRIDGE_TEST_MYSQL_URL", "postgres": "OCBRIDGE_TEST_PG_URL"}
_DEFAULT_URL = {
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/",
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/",
}
_START_HINT = {
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
}
_NAME_RE = re.compile(r"ocb_test_(\d+)_[0-9a-f]+")


class DatabaseServerUnavailable(RuntimeError):
    """A test database server did not answer; the message says which one and how to start it."""


def server_url(kind: Kind) -> URL:
    """The admin URL of a server, from its OCBRIDGE_TEST_* variable or the local default."""
    url = make_url(os.environ.get(_URL_ENV[kind]) or _DEFAULT_URL[kind])
    if kind == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    elif not url.database:
        url = url.set(database="postgres")  # PostgreSQL always connects to some database
    return url


def _new_name() -> str:
    return f"ocb_test_{os.getpid()}_{secrets.token_hex(4)}"


def _admin_engine(kind: Kind) -> sa.Engine:
    url = server_url(kind)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        engine.connect().close()
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseServerUnavailable(
            f"cannot reach the {kind} test server at {url.render_as_string()} ({exc.orig}). "
            f"Start it with: {_START_HINT[kind]}  (or point {_URL_ENV[kind]} at another server)"
        ) from exc
    return engine


def create_temp_database(kind: Kind) -> str:
    """Create an empty database and return its URL (password included)."""
    name = _new_name()
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix=f"{name}_")
        return f"sqlite:///{directory}/{name}.db"
    engine = _admin_engine(kind)
    try:
        with engine.connect() as conn:
            if kind == "mariadb":
                conn.exec_driver_sql(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
            else:
                conn.exec_driver_sql(
                    f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"
                )
    finally:
        engine.dispose()
    return server_url(kind).set(database=name).render_as_string(hide_password=False)


def _kind_of(url: URL) -> Kind:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend in ("mysql", "mariadb"):
        return "mariadb"
    if backend == "postgresql":
        return "postgres"
    raise ValueError(f"not a test database URL: {url.render_as_string()}")


def _drop_server_database(conn: sa.Connection, kind: Kind, name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"refusing to drop {name!r}: not a test database name")
    if kind == "postgres":
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    # A connection left inside a transaction would make DROP DATABASE wait for ever.
    leftovers = conn.execute(
        sa.text(
            "SELECT id FROM information_schema.PROCESSLIST "
            "WHERE db = :name AND id <> CONNECTION_ID()"
        ),
        {"name": name},
    ).scalars()
    for thread_id in leftovers.all():
        try:
            conn.exec_driver_sql(f"KILL CONNECTION {int(thread_id)}")
        except sa.exc.OperationalError:
            pass  # it ended on its own meanwhile
    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")


def drop_database(url: str) -> None:
    """Drop a database made by create_temp_database (a no-op if it is already gone)."""
    parsed = make_url(url)
    kind = _kind_of(parsed)
    if kind == "sqlite":
        assert parsed.database is not None
        directory = Path(parsed.database).parent
        if _NAME_RE.match(directory.name):
            shutil.rmtree(directory, ignore_errors=True)
        return
    assert parsed.database is not None
    engine = _admin_engine(kind)
    try:
        with engine.connect() as conn:
            _drop_server_database(conn, kind, parsed.database)
    finally:
        engine.dispose()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(name: str) -> bool:
    match = _NAME_RE.match(name)
    return match is not None and not _pid_alive(int(match.group(1)))


def sweep_stale(kinds: tuple[Kind, ...] = (*SERVER_KINDS, "sqlite")) -> list[str]:
    """Drop test databases whose creating process is gone; return their names."""
    dropped: list[str] = []
    for kind in kinds:
        if kind == "sqlite":
            for directory in Path(tempfile.gettempdir()).glob("ocb_test_*"):
                if directory.is_dir() and _is_stale(directory.name):
                    shutil.rmtree(directory, ignore_errors=True)
                    dropped.append(directory.name)
            continue
        engine = _admin_engine(kind)
        try:
            with engine.connect() as conn:
                if kind == "mariadb":
                    listing = "SELECT schema_name FROM information_schema.SCHEMATA"
                else:
                    listing = "SELECT datname FROM pg_database"
                names = conn.exec_driver_sql(listing).scalars().all()
                for name in names:
                    if _NAME_RE.fullmatch(name) and _is_stale(name):
                        _drop_server_database(conn, kind, name)
                        dropped.append(name)
        finally:
            engine.dispose()
    return dropped
