"""Looks up in ownCloud 10's database what identification needs, cached briefly per process:
login names, e-mails and app-password hashes → uid (oc_users, oc_accounts, oc_authtoken),
OAuth2 access tokens → user (oc_oauth2_access_tokens), link tokens → owner (oc_share type 3;
then the new stack's `shares`, which holds the links made there after their owner moved).

The queries mirror newstack/legacy/accounts.py (which verifies passwords and so cannot be
reused here); table shapes and token hashing come from bridge/oc10/.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from bridge.config import Settings
from bridge.errors import ConfigError, LegacyInstanceError
from bridge.oc10.configphp import OC10Config
from bridge.oc10.schema import OC10Tables, oc10_tables
from proxy.identify import LoginFacts, LoginQuery, Lookups, Queries

#: oc_share.share_type of public links
SHARE_TYPE_LINK: Final = 3
_PHP_TRIM: Final = " \t\n\r\0\x0b"
_MISSING: Final = object()


class TTLCache:
    """A bounded map whose entries expire; thread-safe."""

    def __init__(self, ttl: float, size: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[object, tuple[float, object]] = OrderedDict()

    def get(self, key: object) -> object:
        """The value, or _MISSING."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return _MISSING
            if item[0] <= self._clock():
                del self._items[key]
                return _MISSING
            return item[1]

    def put(self, key: object, value: object) -> None:
        with self._lock:
            self._items[key] = (self._clock() + self._ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class LegacyDirectory:
    """Answers identify.Queries from one ownCloud 10 database."""

    def __init__(self, engine: Engine, tables: OC10Tables, config: OC10Config, *,
                 ttl: float = 30.0, newstack: NewstackShares | None = None) -> None:
        self._engine = engine
        self._t = tables
        self.config = config
        self._cache = TTLCache(ttl)
        #: the new stack's metadata database, for links created there
        self._newstack = newstack

    @classmethod
    def from_settings(cls, settings: Settings) -> LegacyDirectory:
        legacy = settings.legacy
        if legacy.config_php is None:
            raise ConfigError(
                ["legacy.config_php: the proxy reads the ownCloud instance's config.php for its "
                 "database and secret (to resolve logins, app passwords, OAuth2 tokens and "
                 "link tokens); set it in the [legacy] section"], "proxy")
        config = OC10Config.from_file(Path(legacy.config_php))
        url = legacy.db_url or config.database_url()
        options: dict[str, object] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        engine = sa.create_engine(url, **options)
        tables = oc10_tables(config.dbtableprefix)
        try:
            with engine.connect() as conn:
                conn.execute(sa.select(sa.func.count()).select_from(tables.users)).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise LegacyInstanceError(
                f"the proxy cannot read the ownCloud tables ({tables.prefix}*): "
                f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
        return cls(engine, tables, config, ttl=float(settings.proxy.lookup_cache_seconds),
                   newstack=NewstackShares(_newstack_url(settings)))

    @property
    def secret(self) -> str:
        return self.config.secret

    @property
    def strict_login(self) -> bool:
        return self.config.strict_login_enforced

    def close(self) -> None:
        self._engine.dispose()
        if self._newstack is not None:
            self._newstack.close()

    def forget(self) -> None:
        self._cache.clear()

    # -- answering --------------------------------------------------------------------------------

    def cached(self, q: Queries) -> Lookups | None:
        """The answers if every one is in the cache (no I/O: safe on the event loop)."""
        answers: dict[object, object] = {}
        for key in _keys(q):
            value = self._cache.get(key)
            if value is _MISSING:
                return None
            answers[key] = value
        return _lookups(q, answers)

    def resolve(self, q: Queries) -> Lookups:
        """Answer `q`, from the cache or the database (blocking: run it in a thread)."""
        answers: dict[object, object] = {}
        with self._engine.connect() as conn:
            for key in _keys(q):
                value = self._cache.get(key)
                if value is _MISSING:
                    value = self._query(conn, key)
                    self._cache.put(key, value)
                answers[key] = value
        return _lookups(q, answers)

    def _query(self, conn: Connection, key: object) -> object:
        assert isinstance(key, tuple)
        kind = key[0]
        if kind == "login":
            return LoginFacts(uid=self._uid_by_login(conn, key[1]),
                              email_uids=self._uids_by_email(conn, key[1]))
        if kind == "token":
            t = self._t.authtoken
            row = conn.execute(sa.select(t.c.uid, t.c.login_name)
                               .where(t.c.token == key[1])).first()
            return None if row is None else (str(row[0]), str(row[1]))
        if kind == "oidc-email":
            return self._accounts_by_email(conn, key[1])
        if kind == "bearer":
            o = self._t.oauth2_access_tokens
            found = conn.execute(sa.select(o.c.user_id).where(o.c.token == key[1])).scalar()
            return None if found is None else str(found)
        if kind == "link":
            s = self._t.share
            found = conn.execute(sa.select(s.c.uid_owner).where(
                s.c.token == key[1], s.c.share_type == SHARE_TYPE_LINK).limit(1)).scalar()
            if found is None and self._newstack is not None:
                found = self._newstack.link_owner(key[1])
            return None if found is None else str(found)
        raise ValueError(f"unknown lookup {kind!r}")

    def _uid_by_login(self, conn: Connection, login: str) -> str | None:
        """Database::checkPassword's user: LOWER(uid) = LOWER(login), exact spelling first
        (NUL bytes dropped, as Manager::checkPassword does); else an account of another
        backend whose user_id is exactly the login."""
        login = login.replace("\0", "")
        if not login or len(login) > 255:
            return None
        u, a = self._t.users, self._t.accounts
        found = conn.execute(sa.select(u.c.uid).where(u.c.uid == login)).scalar()
        if found is None:
            found = conn.execute(
                sa.select(u.c.uid).where(sa.func.lower(u.c.uid) == sa.func.lower(login))
                .order_by(u.c.uid).limit(1)).scalar()
        if found is None:
            found = conn.execute(sa.select(a.c.user_id).where(a.c.user_id == login)).scalar()
        return None if found is None else str(found)

    def _uids_by_email(self, conn: Connection, email: str) -> tuple[str, ...]:
        """A login by e-mail (User\\Session::logClientIn): a name with an @, unless
        strict_login_enforced."""
        if self.config.strict_login_enforced:
            return ()
        if "@" not in email:
            return ()
        return self._accounts_by_email(conn, email)

    def _accounts_by_email(self, conn: Connection, email: str) -> tuple[str, ...]:
        """AccountMapper::getByEmail: LOWER(email) = LOWER(?); two are enough to know the
        e-mail does not name one account."""
        if not email.strip(_PHP_TRIM) or "\0" in email or len(email) > 255:
            return ()
        a = self._t.accounts
        return tuple(sorted(str(uid) for uid in conn.scalars(
            sa.select(a.c.user_id).where(sa.func.lower(a.c.email) == sa.func.lower(email))
            .limit(2))))


#: the columns of the new stack's `shares` table (newstack/metadata/schema.py, oc_share's names)
#: the proxy reads; spelt out here so that the proxy does not load the new stack's code
_NEW_SHARES: Final = sa.table("shares", sa.column("uid_owner"), sa.column("token"),
                              sa.column("share_type"))


def _newstack_url(settings: Settings) -> str:
    """newstack.metadata_url, else metadata.db in newstack.data_dir, as newstack/service.py
    opens it."""
    return settings.newstack.metadata_url or (
        f"sqlite:///{settings.newstack.data_dir.resolve() / 'metadata.db'}")


class NewstackShares:
    """The new stack's `shares` table, read for link tokens unknown to ownCloud 10.

    Opened at the first lookup, not at start: the new stack may start after the proxy (a SQLite
    file that does not exist yet means no link was made there, and nothing is created). A
    SQLite file that appears, or is replaced, is opened anew; after a failed query the next
    lookup connects afresh.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
        self._engine: Engine | None = None
        #: (device, inode) of the SQLite file the engine was opened on
        self._file: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def link_owner(self, token: str) -> str | None:
        """Blocking: the owner of the public link `token` made on the new stack, else None."""
        engine = self._open()
        if engine is None:
            return None
        s = _NEW_SHARES
        try:
            with engine.connect() as conn:
                found = conn.execute(sa.select(s.c.uid_owner).where(
                    s.c.token == token, s.c.share_type == SHARE_TYPE_LINK).limit(1)).scalar()
        except sa.exc.SQLAlchemyError:
            self._drop(engine)  # not cached by the caller: the next lookup asks again
            raise
        return None if found is None else str(found)

    def _open(self) -> Engine | None:
        with self._lock:
            if self._path is not None:
                try:
                    stat = self._path.stat()
                except OSError:  # not there (yet, or any more): no link was made on it
                    self._close_locked()
                    return None
                if self._engine is not None and self._file != (stat.st_dev, stat.st_ino):
                    self._close_locked()  # a new file in its place: the old one is gone
                self._file = (stat.st_dev, stat.st_ino)
            if self._engine is None:
                options: dict[str, object] = {"pool_pre_ping": True}
                if self.url.startswith("sqlite"):
                    options["connect_args"] = {"timeout": 30, "check_same_thread": False}
                self._engine = sa.create_engine(self.url, **options)
            return self._engine

    def _drop(self, engine: Engine) -> None:
        with self._lock:
            if self._engine is engine:
                self._close_locked()

    def _close_locked(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._file = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()


def _keys(q: Queries) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    if q.login is not None:
        keys.append(("login", q.login.login))
        if q.login.token_hash:
            keys.append(("token", q.login.token_hash))
    if q.app_token_hash is not None:
        keys.append(("token", q.app_token_hash))
    if q.bearer is not None:
        keys.append(("bearer", q.bearer))
    if q.link_token is not None:
        keys.append(("link", q.link_token))
    if q.oidc_email is not None:
        keys.append(("oidc-email", q.oidc_email))
    return keys


def _lookups(q: Queries, answers: dict[object, object]) -> Lookups:
    login: LoginFacts | None = None
    if isinstance(q.login, LoginQuery):
        facts = answers[("login", q.login.login)]
        assert isinstance(facts, LoginFacts)
        token = answers.get(("token", q.login.token_hash)) if q.login.token_hash else None
        login = LoginFacts(token=token if isinstance(token, tuple) else None,
                           uid=facts.uid, email_uids=facts.email_uids)
    app_token_uid: str | None = None
    if q.app_token_hash is not None:
        row = answers.get(("token", q.app_token_hash))
        app_token_uid = row[0] if isinstance(row, tuple) else None
    bearer = answers.get(("bearer", q.bearer)) if q.bearer is not None else None
    link = answers.get(("link", q.link_token)) if q.link_token is not None else None
    emails = answers.get(("oidc-email", q.oidc_email)) if q.oidc_email is not None else None
    return Lookups(login=login, app_token_uid=app_token_uid,
                   bearer_uid=bearer if isinstance(bearer, str) else None,
                   link_owner=link if isinstance(link, str) else None,
                   oidc_email_uids=emails if isinstance(emails, tuple) else ())
