"""Who may log in to the `oc10` backend, and who they are: ownCloud 10's users, accounts,
preferences, groups and app passwords (oc_authtoken), read in place (REFERENCE §1.3, §4).

newstack/legacy/backend.py asks this module; hash and token formats live in bridge/oc10/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Row, Select

from bridge.oc10.configphp import OC10Config
from bridge.oc10.formats import parse_quota
from bridge.oc10.passwords import (
    DEFAULT_COST,
    VerifiedCredentialCache,
    hash_password,
    needs_rehash,
)
from bridge.oc10.schema import OC10Tables
from bridge.oc10.tokens import login_matches_token, token_hash
from newstack.backend import User

#: Account::STATE_ENABLED; 0 (initial), 2 (disabled) and 3 (deleted) cannot log in
STATE_ENABLED: Final = 1
#: IToken::TEMPORARY_TOKEN: a browser session, deleted by DefaultTokenCleanupJob when idle
TEMPORARY_TOKEN: Final = 0
#: DefaultTokenProvider::updateTokenActivity writes last_activity at most once a minute
TOKEN_ACTIVITY_INTERVAL: Final = 60
#: appconfig core/last_check_timeout (minutes) when unset
DEFAULT_LAST_CHECK_TIMEOUT: Final = 5
#: config.php session_lifetime (seconds) when unset, as DefaultTokenProvider reads it
DEFAULT_SESSION_LIFETIME: Final = 20 * 60
#: oC10 writes oc_accounts.last_login at every login; we do it at most this often
LAST_LOGIN_INTERVAL: Final = 60

# the preferences SyncService::syncAccount copies over the account at each password login
_PREFS: Final = (
    ("pref_enabled", "core", "enabled"),
    ("pref_email", "settings", "email"),
    ("pref_quota", "files", "quota"),
    ("pref_lang", "core", "lang"),
)
_PHP_INTVAL = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)")
# PHP trim()'s default characters
_PHP_TRIM: Final = " \t\n\r\0\x0b"


def _php_intval(value: object, default: int) -> int:
    """PHP (int) of a config or appconfig value: leading digits of a string, else 0."""
    if value is None:
        return default
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value)
    match = _PHP_INTVAL.match(str(value))
    return int(match.group(1)) if match else 0


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class _Account:
    """A user as oC10's user manager sees it after its account sync (REFERENCE §4.1)."""

    uid: str
    #: oc_users.password; None for users of other backends (no oc_users row)
    password: str | None
    display_name: str
    email: str | None
    enabled: bool
    #: the quota string in force ('none', 'default', '10 GB', …; None = default)
    quota: str | None
    #: appconfig files/default_quota (None when unset)
    default_quota: str | None
    language: str | None
    home: str
    last_login: int
    has_account: bool


@dataclass(frozen=True)
class _Token:
    id: int
    uid: str
    login_name: str
    has_password: bool
    last_activity: int
    last_check: int
    last_check_timeout: int


class _Refused:
    """The credentials matched a user who may not log in (disabled): no further attempts."""


_REFUSED: Final = _Refused()


class Oc10Accounts:
    """Users, credentials and groups of one ownCloud 10 database; thread-safe, no state per
    user besides the shared cache of verified passwords.

    Nothing about a user is cached between calls, so a password change, a disabled account or a
    deleted app password made by ownCloud itself counts at the very next request; only the
    slow hash check is skipped for a (uid, password, stored hash) triple that verified before.
    """

    def __init__(
        self,
        engine: Engine,
        tables: OC10Tables,
        config: OC10Config,
        *,
        credential_cache: VerifiedCredentialCache | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        #: no bookkeeping writes (token activity, last login, rehashing): the database account
        #: may have SELECT rights only
        self.read_only = read_only
        self._engine = engine
        self._t = tables
        self._config = config
        self._credentials = credential_cache or VerifiedCredentialCache(ttl=300)
        self._clock = clock
        raw = config.raw
        self._hash_cost = _php_intval(raw.get("hashingCost"), DEFAULT_COST)
        self._session_lifetime = _php_intval(raw.get("session_lifetime"),
                                             DEFAULT_SESSION_LIFETIME)
        default_language = raw.get("default_language")
        self._default_language = default_language if isinstance(default_language, str) else ""
        self._by_account_uid = self._account_query(from_accounts=True).where(
            tables.accounts.c.user_id == sa.bindparam("uid"))
        by_users = self._account_query(from_accounts=False)
        self._by_users_uid = by_users.where(tables.users.c.uid == sa.bindparam("uid"))
        # Database::checkPassword: LOWER(uid) = LOWER(?), the stored case comes back
        self._by_login = (
            by_users.where(sa.func.lower(tables.users.c.uid)
                           == sa.func.lower(sa.bindparam("login")))
            .order_by(tables.users.c.uid).limit(1))
        ac = tables.appconfig
        t = tables.authtoken
        timeout = (
            sa.select(ac.c.configvalue)
            .where(ac.c.appid == "core", ac.c.configkey == "last_check_timeout")
            .scalar_subquery())
        self._token_query = sa.select(
            t.c.id, t.c.uid, t.c.login_name, t.c.password.is_not(None), t.c.type,
            t.c.last_activity, t.c.last_check, timeout,
        ).where(t.c.token == sa.bindparam("token"))

    # -- queries --------------------------------------------------------------------------------

    def _account_query(self, *, from_accounts: bool) -> Select[tuple[object, ...]]:
        """oc_accounts with oc_users and the preferences that override it, one row per user;
        based on oc_accounts (every 10.x user) or on oc_users (a local user without one)."""
        t = self._t
        a, u = t.accounts, t.users
        if from_accounts:
            uid_col = a.c.user_id
            joined = a.outerjoin(u, u.c.uid == a.c.user_id)
        else:
            uid_col = u.c.uid
            joined = u.outerjoin(a, a.c.user_id == u.c.uid)
        prefs = []
        for label, appid, key in _PREFS:
            p = t.preferences.alias(label)
            joined = joined.outerjoin(p, sa.and_(p.c.userid == uid_col, p.c.appid == appid,
                                                 p.c.configkey == key))
            prefs.append(p.c.configvalue.label(label))
        ac = t.appconfig
        default_quota = (
            sa.select(ac.c.configvalue)
            .where(ac.c.appid == "files", ac.c.configkey == "default_quota")
            .scalar_subquery().label("default_quota"))
        return sa.select(
            uid_col.label("uid"), u.c.password, u.c.displayname,
            a.c.id.label("account_id"), a.c.display_name, a.c.email, a.c.quota, a.c.home,
            a.c.state, a.c.last_login, *prefs, default_quota,
        ).select_from(joined)

    def _account(self, row: Row[tuple[object, ...]] | None) -> _Account | None:
        if row is None:
            return None
        m = row._mapping
        uid = str(m["uid"])
        has_account = m["account_id"] is not None
        # SyncService::syncState/syncEmail/syncQuota: a preference, when present, overrides
        # the account column (User::setQuota writes it "as an override")
        enabled_pref = m["pref_enabled"]
        if enabled_pref is not None:
            enabled = enabled_pref == "true"
        else:
            # a user without an account gets one in state 1 at the first login
            enabled = not has_account or m["state"] == STATE_ENABLED
        email = m["pref_email"] if m["pref_email"] is not None else m["email"]
        quota = m["pref_quota"] if m["pref_quota"] is not None else m["quota"]
        # User::getDisplayName: the account's, or the uid when empty
        display = m["display_name"] or m["displayname"] or uid
        home = m["home"] or str(self._config.datadirectory / uid)
        return _Account(
            uid=uid,
            password=None if m["password"] is None else str(m["password"]),
            display_name=str(display),
            email=None if email is None else str(email),
            enabled=enabled,
            quota=None if quota is None else str(quota),
            default_quota=None if m["default_quota"] is None else str(m["default_quota"]),
            language=None if m["pref_lang"] is None else str(m["pref_lang"]),
            home=str(home),
            last_login=int(m["last_login"] or 0),
            has_account=has_account,
        )

    def _by_uid(self, conn: Connection, uid: str) -> _Account | None:
        row = conn.execute(self._by_account_uid, {"uid": uid}).first()
        if row is None:
            row = conn.execute(self._by_users_uid, {"uid": uid}).first()
        return self._account(row)

    def _local_user(self, conn: Connection, login: str) -> _Account | None:
        """The oc_users user `login` names, ignoring case; the exact spelling is tried first
        so that the common case is a primary-key lookup."""
        row = conn.execute(self._by_users_uid, {"uid": login}).first()
        if row is None:
            row = conn.execute(self._by_login, {"login": login}).first()
        return self._account(row)

    def _uids_by_email(self, conn: Connection, email: str) -> list[str]:
        """AccountMapper::getByEmail: LOWER(email) = LOWER(?)."""
        if not email.strip(_PHP_TRIM) or "\0" in email:
            return []
        a = self._t.accounts
        return [str(uid) for uid in conn.scalars(
            sa.select(a.c.user_id).where(sa.func.lower(a.c.email) == sa.func.lower(email)))]

    def _token(self, conn: Connection, password: str, now: int) -> _Token | None:
        """DefaultTokenProvider::getToken: the oc_authtoken row whose hash the password is."""
        row = conn.execute(self._token_query,
                           {"token": token_hash(password, self._config.secret)}).first()
        if row is None:
            return None
        tid, uid, login_name, has_password, kind, activity, check, timeout = row
        if int(kind) == TEMPORARY_TOKEN and int(activity) < now - self._session_lifetime:
            # an idle browser session: DefaultTokenCleanupJob deletes it at its next cron run
            return None
        return _Token(id=int(tid), uid=str(uid), login_name=str(login_name),
                      has_password=bool(has_password), last_activity=int(activity),
                      last_check=int(check),
                      last_check_timeout=_php_intval(timeout, DEFAULT_LAST_CHECK_TIMEOUT))

    # -- logging in -----------------------------------------------------------------------------

    def authenticate(self, login: str, password: str) -> User | None:
        """Basic credentials as User\\Session::logClientIn checks them (REFERENCE §4.5): an app
        password whose login name is `login` (ignoring ASCII case), else the login password of
        the user `login` names (ignoring case, any oC10 hash format, §4.2); failing both and
        unless strict_login_enforced, the same again for the one account whose e-mail is
        `login`. A disabled user is refused outright, as is a plain password when
        token_auth_enforced is set. None when nothing matches."""
        # tryBasicAuthLogin needs !empty() user and password: '' and '0' are empty in PHP
        if not isinstance(login, str) or not isinstance(password, str):
            return None
        if login in ("", "0") or password in ("", "0") or not login.strip(_PHP_TRIM):
            return None
        if not (_encodable(login) and _encodable(password)):
            return None
        now = int(self._clock())
        with self._engine.connect() as conn:
            token = self._token(conn, password, now)
            if token is None and self._config.token_auth_enforced:
                return None
            found = self._login(conn, login, password, token, now)
            if found is None and not self._config.strict_login_enforced:
                uids = self._uids_by_email(conn, login)
                if len(uids) == 1:
                    found = self._login(conn, uids[0], password, token, now)
            if not isinstance(found, _Account):
                conn.commit()  # token bookkeeping stays, as in oC10
                return None
            due = now - LAST_LOGIN_INTERVAL
            if found.has_account and found.last_login < due and not self.read_only:
                a = self._t.accounts
                conn.execute(a.update().where(a.c.user_id == found.uid, a.c.last_login < due)
                             .values(last_login=now))
            user = self._user(conn, found)
            conn.commit()
            return user

    def _login(self, conn: Connection, login: str, password: str, token: _Token | None,
               now: int) -> _Account | _Refused | None:
        """User\\Session::login: the token if it belongs to this login name, else the
        password."""
        if token is not None and login_matches_token(login, token.login_name):
            self._use_token(conn, token, now)
            # loginWithToken: Manager::get(uid), then loginInOwnCloud refuses disabled users
            account = self._by_uid(conn, token.uid)
            if account is None:
                return None
            return account if account.enabled else _REFUSED
        return self._check_password(conn, login, password)

    def _use_token(self, conn: Connection, token: _Token, now: int) -> None:
        """Session::checkTokenCredentials and DefaultTokenProvider::updateTokenActivity."""
        values: dict[str, int] = {}
        if token.last_check <= now - 60 * token.last_check_timeout and not token.has_password:
            # a token without a stored password has nothing to re-check: only the time is noted
            values["last_check"] = now
        if token.last_activity < now - TOKEN_ACTIVITY_INTERVAL:
            values["last_activity"] = now
        if values and not self.read_only:
            t = self._t.authtoken
            conn.execute(t.update().where(t.c.id == token.id).values(**values))

    def _check_password(self, conn: Connection, login: str, password: str
                        ) -> _Account | _Refused | None:
        """Manager::checkPassword (NUL bytes dropped) → Database::checkPassword → Hasher,
        which upgrades a hash in an old format or at another cost after a success."""
        login = login.replace("\0", "")
        password = password.replace("\0", "")
        if not login or not password:
            return None
        account = self._local_user(conn, login)
        if account is None or account.password is None:
            return None
        stored = account.password
        salt = self._config.passwordsalt
        if not self._credentials.verify(account.uid, password, stored, salt):
            return None
        if needs_rehash(stored, self._hash_cost) and not self.read_only:
            upgraded = hash_password(password, self._hash_cost)
            u = self._t.users
            conn.execute(u.update().where(u.c.uid == account.uid, u.c.password == stored)
                         .values(password=upgraded))
            self._credentials.add(account.uid, password, upgraded)
        return account if account.enabled else _REFUSED

    # -- who they are ---------------------------------------------------------------------------

    def _user(self, conn: Connection, account: _Account) -> User:
        gu = self._t.group_user
        groups = conn.scalars(sa.select(gu.c.gid).where(gu.c.uid == account.uid))
        return User(
            uid=account.uid,
            display_name=account.display_name,
            email=account.email,
            enabled=account.enabled,
            quota=parse_quota(account.quota, account.default_quota),
            language=account.language or self._default_language or "en",
            groups=tuple(sorted(str(gid) for gid in groups)),
        )

    def user(self, uid: str) -> User | None:
        """The user with exactly this uid (disabled ones too), or None."""
        with self._engine.connect() as conn:
            account = self._by_uid(conn, uid)
            return None if account is None else self._user(conn, account)

    def home(self, uid: str) -> Path:
        """oc_accounts.home, else <datadirectory>/<uid> (SyncService::syncHome)."""
        with self._engine.connect() as conn:
            account = self._by_uid(conn, uid)
        if account is None:
            return self._config.datadirectory / uid
        return Path(account.home)

    def exists(self, uid: str) -> bool:
        with self._engine.connect() as conn:
            return self._by_uid(conn, uid) is not None

    def uids(self) -> list[str]:
        """Every user: oc_accounts (any backend) and oc_users (local), sorted."""
        a, u = self._t.accounts, self._t.users
        with self._engine.connect() as conn:
            found = set(conn.scalars(sa.select(a.c.user_id)))
            found.update(conn.scalars(sa.select(u.c.uid)))
        return sorted(str(uid) for uid in found)
