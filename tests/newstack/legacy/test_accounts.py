"""newstack/legacy/accounts.py: logging in and looking up users of a real ownCloud 10 fixture
instance (SQLite, MariaDB, PostgreSQL) exactly as oC10 would (REFERENCE §4), checked against the
fixture's manifest.json and against rows read with plain SQL.

One instance per database kind is shared by the module; tests that change rows put them back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bridge.oc10 import passwords
from bridge.oc10.configphp import OC10Config
from bridge.oc10.schema import OC10Tables, oc10_tables
from fixtures.manifest import Manifest
from fixtures.profiles import get_profile
from newstack.backend import User
from newstack.legacy.accounts import Oc10Accounts
from tests.newstack.legacy.instances import DATABASES, built_instance

GiB = 2**30
#: manifest quota -> bytes, with appconfig files/default_quota = '5 GB' for None and 'default'
QUOTA_BYTES: dict[str | None, int | None] = {
    None: 5 * GiB, "default": 5 * GiB, "none": None, "10 GB": 10 * GiB, "5 GB": 5 * GiB,
    "2.5 GB": int(2.5 * GiB), "1 MB": 2**20,
}
#: bcrypt cost of the test instance (config.php hashingCost), so logins stay cheap
COST = 4


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


class Instance:
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.config = OC10Config.from_file(Path(manifest.config_php))
        self.engine = sa.create_engine(manifest.db_url)
        self.t: OC10Tables = oc10_tables(manifest.table_prefix)

    def accounts(self, clock: Clock | None = None, **config: Any) -> Oc10Accounts:
        return Oc10Accounts(self.engine, self.t, dataclasses.replace(self.config, **config),
                            clock=clock or Clock())

    def execute(self, statement: sa.Executable) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement)

    def scalar(self, statement: sa.Select[Any]) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(statement).scalar()

    def stored_hash(self, uid: str) -> str:
        u = self.t.users
        return str(self.scalar(sa.select(u.c.password).where(u.c.uid == uid)))

    def set_hash(self, uid: str, stored: str) -> None:
        u = self.t.users
        self.execute(u.update().where(u.c.uid == uid).values(password=stored))

    def token_row(self, token: str) -> dict[str, Any]:
        t = self.t.authtoken
        digest = hashlib.sha512((token + self.config.secret).encode()).hexdigest()
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(t).where(t.c.token == digest)).one()._mapping)

    def set_token(self, token_id: int, **values: Any) -> None:
        t = self.t.authtoken
        self.execute(t.update().where(t.c.id == token_id).values(**values))

    def set_pref(self, uid: str, appid: str, key: str, value: str | None) -> None:
        p = self.t.preferences
        self.execute(p.delete().where(p.c.userid == uid, p.c.appid == appid,
                                      p.c.configkey == key))
        if value is not None:
            self.execute(p.insert().values(userid=uid, appid=appid, configkey=key,
                                           configvalue=value))


@pytest.fixture(scope="module", params=DATABASES)
def instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Instance]:
    # seven regular users reach every hash format and a user without e-mail; the edge users
    # add a disabled one, one never logged in, and a mixed-case uid with '@'
    profile = dataclasses.replace(get_profile("edge", users=7, files_per_user=2),
                                  trash_items=0, hash_cost=COST)
    with built_instance(request.param, tmp_path_factory.mktemp("oc10"), profile) as manifest:
        inst = Instance(manifest)
        try:
            yield inst
        finally:
            inst.engine.dispose()


def enabled(user: dict[str, Any]) -> bool:
    return bool(user["state"] == 1)


def expected_user(inst: Instance, user: dict[str, Any]) -> User:
    p = inst.t.preferences
    lang = inst.scalar(sa.select(p.c.configvalue).where(
        p.c.userid == user["uid"], p.c.appid == "core", p.c.configkey == "lang"))
    return User(uid=user["uid"], display_name=user["display_name"], email=user["email"],
                enabled=enabled(user), quota=QUOTA_BYTES[user["quota"]], language=lang,
                groups=tuple(sorted(user["groups"])))


# ---------------------------------------------------------------------------------------------
# the fixture has what these tests rely on


def test_the_fixture_covers_every_case(instance: Instance) -> None:
    users = instance.manifest.users
    assert {u["hash_format"] for u in users} == {
        "bcrypt", "legacy-bcrypt", "legacy-sha1", "argon2"}
    assert any(not enabled(u) for u in users)
    assert any(u["email"] is None for u in users)
    assert any(u["uid"] != u["uid"].lower() for u in users)
    assert any(t["login_name"] == u["email"] for u in users for t in u["app_passwords"])
    assert {t["type"] for u in users for t in u["app_passwords"]} == {0, 1}
    assert {u["quota"] for u in users} >= {None, "default", "none"}
    a = instance.t.appconfig
    assert instance.scalar(sa.select(a.c.configvalue).where(
        a.c.appid == "files", a.c.configkey == "default_quota")) == "5 GB"


# ---------------------------------------------------------------------------------------------
# login passwords


def test_every_user_logs_in_with_the_password_in_any_case(instance: Instance) -> None:
    accounts = instance.accounts()
    for user in instance.manifest.users:
        want = expected_user(instance, user) if enabled(user) else None
        for login in (user["uid"], user["uid"].upper(), user["uid"].lower()):
            assert accounts.authenticate(login, user["password"]) == want, login


def test_every_hash_format_verifies_and_is_upgraded_after_login(instance: Instance) -> None:
    """Hasher::verify (REFERENCE §4.2): the three old formats and argon2 are rewritten as
    `1|$2y$<hashingCost>$…` after a successful login; a current bcrypt hash is left alone."""
    salt = instance.config.passwordsalt
    users = {u["uid"]: u for u in instance.manifest.users if enabled(u)}
    uids = ["alice", "bob", "carol", "dave", "erin"]
    formats = {
        "alice": passwords.hash_password(users["alice"]["password"], COST),
        "bob": passwords.hash_legacy_bcrypt(users["bob"]["password"], salt, COST),
        "carol": passwords.hash_legacy_sha1(users["carol"]["password"]),
        "dave": passwords.hash_argon2(users["dave"]["password"]),
        "erin": passwords.hash_password(users["erin"]["password"], COST + 1),
    }
    old = {uid: instance.stored_hash(uid) for uid in uids}
    try:
        for uid, stored in formats.items():
            instance.set_hash(uid, stored)
        accounts = instance.accounts()
        for uid in uids:
            assert accounts.authenticate(uid, users[uid]["password"] + "x") is None
            assert instance.stored_hash(uid) == formats[uid]  # a failure rewrites nothing
            assert accounts.authenticate(uid, users[uid]["password"]) is not None, uid
            now = instance.stored_hash(uid)
            if uid == "alice":
                assert now == formats["alice"]
            else:
                assert now != formats[uid] and now.startswith(f"1|$2y$0{COST}$"), uid
                assert passwords.verify_password(users[uid]["password"], now, salt)
            assert accounts.authenticate(uid, users[uid]["password"]) is not None, uid
    finally:
        for uid, stored in old.items():
            instance.set_hash(uid, stored)


def test_wrong_and_odd_credentials_fail(instance: Instance) -> None:
    accounts = instance.accounts()
    alice = instance.manifest.user("alice")
    bob = instance.manifest.user("bob")
    for login, password in [
        ("alice", alice["password"] + "x"),
        ("alice", alice["password"].upper()),
        ("alice", bob["password"]),
        ("bob", alice["password"]),
        ("alice", ""),
        ("", alice["password"]),
        ("   ", alice["password"]),
        ("nobody", alice["password"]),
        ("alice", "0"),
        ("nobody@example.org", alice["password"]),
    ]:
        assert accounts.authenticate(login, password) is None, (login, password)
    # the database compares as oC10's query does: MySQL's PAD SPACE collations ignore
    # trailing blanks, so oC10 on MariaDB lets 'alice ' in as alice
    padded = accounts.authenticate("alice ", alice["password"])
    if instance.engine.dialect.name == "mysql":
        assert padded is not None and padded.uid == "alice"
    else:
        assert padded is None


def test_nul_bytes_are_dropped_from_a_password_login(instance: Instance) -> None:
    """Manager::checkPassword removes NUL bytes from the login name and the password."""
    accounts = instance.accounts()
    alice = instance.manifest.user("alice")
    pw = alice["password"]
    assert accounts.authenticate("al\0ice", pw[:3] + "\0" + pw[3:]) is not None
    assert accounts.authenticate("alice", pw[:3] + "\0x" + pw[3:]) is None


def test_a_password_change_counts_at_the_next_request_without_paying_bcrypt_twice(
        instance: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[str] = []
    real_verify = passwords.verify_password

    def counting(password: str, stored: str, salt: str) -> bool:
        checks.append(stored)
        return real_verify(password, stored, salt)

    monkeypatch.setattr(passwords, "verify_password", counting)
    accounts = instance.accounts()
    alice = instance.manifest.user("alice")
    old = instance.stored_hash("alice")
    try:
        assert accounts.authenticate("alice", alice["password"]) is not None
        assert accounts.authenticate("alice", alice["password"]) is not None
        assert accounts.authenticate("ALICE", alice["password"]) is not None
        assert len(checks) == 1  # the cache answered the second and third time
        instance.set_hash("alice", passwords.hash_password("A-new-one-42", COST))
        assert accounts.authenticate("alice", alice["password"]) is None
        assert accounts.authenticate("alice", "A-new-one-42") is not None
        assert accounts.authenticate("alice", "A-new-one-42") is not None
        assert len(checks) == 3
    finally:
        instance.set_hash("alice", old)
    assert accounts.authenticate("alice", "A-new-one-42") is None
    assert accounts.authenticate("alice", alice["password"]) is not None


def test_a_login_notes_last_login_at_most_once_a_minute(instance: Instance) -> None:
    clock = Clock()
    accounts = instance.accounts(clock)
    carol = instance.manifest.user("carol")
    a = instance.t.accounts
    query = sa.select(a.c.last_login).where(a.c.user_id == "carol")
    instance.execute(a.update().where(a.c.user_id == "carol").values(last_login=1_000))
    assert accounts.authenticate("carol", carol["password"]) is not None
    assert instance.scalar(query) == int(clock.now)
    first = clock.now
    clock.now += 30
    assert accounts.authenticate("carol", carol["password"]) is not None
    assert instance.scalar(query) == int(first)
    clock.now += 31
    assert accounts.authenticate("carol", carol["password"]) is not None
    assert instance.scalar(query) == int(clock.now)


# ---------------------------------------------------------------------------------------------
# e-mail as login name


def test_every_user_with_an_email_logs_in_with_it(instance: Instance) -> None:
    accounts = instance.accounts()
    with_email = [u for u in instance.manifest.users if u["email"]]
    assert len(with_email) >= 8
    for user in with_email:
        want = expected_user(instance, user) if enabled(user) else None
        assert accounts.authenticate(user["email"], user["password"]) == want
        assert accounts.authenticate(user["email"].upper(), user["password"]) == want
        assert accounts.authenticate(user["email"], user["password"] + "x") is None


def test_an_email_that_two_accounts_share_logs_nobody_in(instance: Instance) -> None:
    accounts = instance.accounts()
    alice = instance.manifest.user("alice")
    a = instance.t.accounts
    instance.execute(a.update().where(a.c.user_id == "frank").values(email="ALICE@example.org"))
    try:
        assert accounts.authenticate("alice@example.org", alice["password"]) is None
        assert accounts.authenticate("alice", alice["password"]) is not None
    finally:
        instance.execute(a.update().where(a.c.user_id == "frank").values(email=None))
    assert accounts.authenticate("alice@example.org", alice["password"]) is not None


def test_strict_login_enforced_turns_email_logins_off(instance: Instance) -> None:
    accounts = instance.accounts(strict_login_enforced=True)
    alice = instance.manifest.user("alice")
    assert accounts.authenticate("alice@example.org", alice["password"]) is None
    assert accounts.authenticate("alice", alice["password"]) is not None


# ---------------------------------------------------------------------------------------------
# app passwords and tokens (oc_authtoken)


def test_every_app_password_logs_in_with_its_login_name(instance: Instance) -> None:
    """REFERENCE §4.5: the Basic user name must equal the token's login_name ignoring ASCII
    case; a token made after an e-mail login does not work with the uid, while a token made
    with the uid also works with the e-mail (logClientIn retries with the e-mail's uid)."""
    accounts = instance.accounts()
    tried = 0
    for user in instance.manifest.users:
        want = expected_user(instance, user) if enabled(user) else None
        for app in user["app_passwords"]:
            if app["type"] == 0:
                continue
            token, login_name = app["token"], app["login_name"]
            assert accounts.authenticate(login_name, token) == want, app
            assert accounts.authenticate(login_name.swapcase(), token) == want, app
            if login_name == user["email"]:
                assert accounts.authenticate(user["uid"], token) is None, app
            elif user["email"]:
                assert accounts.authenticate(user["email"], token) == want, app
            tried += 1
    assert tried >= 15


def test_an_app_password_of_someone_else_or_mangled_fails(instance: Instance) -> None:
    accounts = instance.accounts()
    alice = instance.manifest.user("alice")
    bob = instance.manifest.user("bob")
    token = next(t["token"] for t in alice["app_passwords"] if t["type"] == 1)
    assert accounts.authenticate("alice", token) is not None
    assert accounts.authenticate("bob", token) is None
    assert accounts.authenticate(bob["email"], token) is None
    assert accounts.authenticate("nobody", token) is None
    assert accounts.authenticate("alice", token.lower()) is None
    assert accounts.authenticate("alice", token[:-1]) is None
    # non-ASCII letters are not folded by strcasecmp
    assert accounts.authenticate("alİce", token) is None


def test_a_used_token_notes_activity_once_a_minute_and_its_check(instance: Instance) -> None:
    """updateTokenActivity: last_activity at most once a minute; checkTokenCredentials: a
    token without a stored password gets last_check = now once last_check_timeout passed."""
    clock = Clock()
    accounts = instance.accounts(clock)
    bob = instance.manifest.user("bob")
    app = next(t for t in bob["app_passwords"] if t["type"] == 1)
    before = instance.token_row(app["token"])
    instance.set_token(before["id"], last_activity=1_000, last_check=1_000)
    assert accounts.authenticate(app["login_name"], app["token"]) is not None
    row = instance.token_row(app["token"])
    assert (row["last_activity"], row["last_check"]) == (int(clock.now), int(clock.now))
    first = int(clock.now)
    clock.now += 59
    assert accounts.authenticate(app["login_name"], app["token"]) is not None
    row = instance.token_row(app["token"])
    assert (row["last_activity"], row["last_check"]) == (first, first)
    clock.now += 2
    assert accounts.authenticate(app["login_name"], app["token"]) is not None
    row = instance.token_row(app["token"])
    assert (row["last_activity"], row["last_check"]) == (int(clock.now), first)
    clock.now += 5 * 60
    assert accounts.authenticate(app["login_name"], app["token"]) is not None
    row = instance.token_row(app["token"])
    assert (row["last_activity"], row["last_check"]) == (int(clock.now), int(clock.now))


def test_a_browser_session_token_works_only_while_it_is_alive(instance: Instance) -> None:
    """Type 0 tokens idle for longer than session_lifetime (20 min) are gone at the next
    DefaultTokenCleanupJob run; the fixture's are weeks old."""
    clock = Clock()
    accounts = instance.accounts(clock)
    sessions = [(u, t) for u in instance.manifest.users for t in u["app_passwords"]
                if t["type"] == 0]
    assert sessions
    for _, app in sessions:
        assert accounts.authenticate(app["login_name"], app["token"]) is None, app
    user, app = next((u, t) for u, t in sessions if u["uid"] == "alice")
    row = instance.token_row(app["token"])
    instance.set_token(row["id"], last_activity=int(clock.now) - 600)
    try:
        assert accounts.authenticate("alice", app["token"]) == expected_user(instance, user)
        assert instance.token_row(app["token"])["last_activity"] == int(clock.now)
        clock.now += 20 * 60 + 1
        assert accounts.authenticate("alice", app["token"]) is None
        longer = instance.accounts(clock, raw={**instance.config.raw, "session_lifetime": 3600})
        assert longer.authenticate("alice", app["token"]) is not None
    finally:
        instance.set_token(row["id"], last_activity=row["last_activity"])


def test_token_auth_enforced_refuses_plain_passwords(instance: Instance) -> None:
    accounts = instance.accounts(token_auth_enforced=True)
    alice = instance.manifest.user("alice")
    token = next(t["token"] for t in alice["app_passwords"] if t["type"] == 1)
    assert accounts.authenticate("alice", alice["password"]) is None
    assert accounts.authenticate("alice", token) is not None


def test_a_deleted_token_stops_working_at_once(instance: Instance) -> None:
    accounts = instance.accounts()
    olga = instance.manifest.user("olga")
    app = next(t for t in olga["app_passwords"] if t["type"] == 1)
    row = instance.token_row(app["token"])
    assert accounts.authenticate(app["login_name"], app["token"]) is not None
    t = instance.t.authtoken
    instance.execute(t.delete().where(t.c.id == row["id"]))
    try:
        assert accounts.authenticate(app["login_name"], app["token"]) is None
    finally:
        instance.execute(t.insert().values(**row))


# ---------------------------------------------------------------------------------------------
# disabled users


def test_a_disabled_user_gets_in_with_nothing(instance: Instance) -> None:
    accounts = instance.accounts()
    dan = instance.manifest.user("dan")
    assert dan["state"] == 2
    for login, password in [("dan", dan["password"]), (dan["email"], dan["password"])] + [
            (t["login_name"], t["token"]) for t in dan["app_passwords"]]:
        assert accounts.authenticate(login, password) is None, login
    user = accounts.user("dan")
    assert user is not None and user.enabled is False


def test_the_enabled_preference_overrides_the_account_state(instance: Instance) -> None:
    """SyncService::syncState: a core/enabled preference wins over oc_accounts.state."""
    accounts = instance.accounts()
    alice = instance.manifest.user("alice")
    dan = instance.manifest.user("dan")
    instance.set_pref("alice", "core", "enabled", "false")
    instance.set_pref("dan", "core", "enabled", "true")
    try:
        assert accounts.authenticate("alice", alice["password"]) is None
        got = accounts.authenticate("dan", dan["password"])
        assert got is not None and got.enabled
    finally:
        instance.set_pref("alice", "core", "enabled", None)
        instance.set_pref("dan", "core", "enabled", None)
    a = instance.t.accounts
    instance.execute(a.update().where(a.c.user_id == "alice").values(state=0))
    try:  # Account::STATE_INITIAL is not enabled either (User::isEnabled)
        assert accounts.authenticate("alice", alice["password"]) is None
    finally:
        instance.execute(a.update().where(a.c.user_id == "alice").values(state=1))
    assert accounts.authenticate("alice", alice["password"]) is not None


# ---------------------------------------------------------------------------------------------
# user(), home(), exists()


def test_user_matches_the_manifest(instance: Instance) -> None:
    accounts = instance.accounts()
    for user in instance.manifest.users:
        assert accounts.user(user["uid"]) == expected_user(instance, user)
        assert accounts.exists(user["uid"])
        assert accounts.home(user["uid"]) == Path(instance.manifest.data_dir) / user["uid"]
    assert accounts.uids() == sorted(u["uid"] for u in instance.manifest.users)
    assert accounts.user("nobody") is None
    assert not accounts.exists("nobody")
    assert accounts.user("ALICE") is None  # uids are exact; only logins ignore case
    assert accounts.home("nobody") == Path(instance.manifest.data_dir) / "nobody"


def test_user_fallbacks_and_overrides(instance: Instance) -> None:
    """Display name: account, else oc_users.displayname, else uid; quota: the files/quota
    preference overrides the account; no core/lang preference gives 'en'."""
    accounts = instance.accounts()
    a, u = instance.t.accounts, instance.t.users
    p = instance.t.preferences
    lang = instance.scalar(sa.select(p.c.configvalue).where(
        p.c.userid == "bob", p.c.appid == "core", p.c.configkey == "lang"))
    instance.execute(a.update().where(a.c.user_id == "bob").values(display_name=""))
    instance.set_pref("bob", "files", "quota", "1 GB")
    instance.set_pref("bob", "core", "lang", None)
    try:
        user = accounts.user("bob")
        assert user is not None
        assert (user.display_name, user.quota, user.language) == ("bob", GiB, "en")
        instance.execute(u.update().where(u.c.uid == "bob").values(displayname="Bobby"))
        user = accounts.user("bob")
        assert user is not None and user.display_name == "Bobby"
    finally:
        bob = instance.manifest.user("bob")
        instance.execute(a.update().where(a.c.user_id == "bob")
                         .values(display_name=bob["display_name"]))
        instance.execute(u.update().where(u.c.uid == "bob").values(displayname=None))
        instance.set_pref("bob", "files", "quota", None)
        instance.set_pref("bob", "core", "lang", lang)


def test_a_local_user_without_an_account_row(instance: Instance) -> None:
    """A pre-10 database: only oc_users and preferences; the first login makes the account."""
    accounts = instance.accounts()
    u = instance.t.users
    instance.execute(u.insert().values(uid="Zed", displayname="Zed Old",
                                       password=passwords.hash_legacy_sha1("zed-pw-123")))
    instance.set_pref("Zed", "settings", "email", "zed@example.org")
    try:
        got = accounts.authenticate("zed", "zed-pw-123")
        assert got == User(uid="Zed", display_name="Zed Old", email="zed@example.org",
                           enabled=True, quota=5 * GiB, language="en", groups=())
        assert accounts.authenticate("zed@example.org", "zed-pw-123") is None  # not in accounts
        assert accounts.exists("Zed") and not accounts.exists("zed")
        assert "Zed" in accounts.uids()
        assert accounts.home("Zed") == Path(instance.manifest.data_dir) / "Zed"
    finally:
        instance.execute(u.delete().where(u.c.uid == "Zed"))
        instance.set_pref("Zed", "settings", "email", None)


# ---------------------------------------------------------------------------------------------
# threads


def test_many_threads_log_in_at_once(instance: Instance) -> None:
    accounts = instance.accounts()
    users = [u for u in instance.manifest.users if enabled(u)]
    jobs: list[tuple[str, str, str | None]] = []
    for user in users:
        jobs.append((user["uid"], user["password"], user["uid"]))
        jobs.append((user["uid"], user["password"] + "x", None))
        app = next(t for t in user["app_passwords"] if t["type"] == 1)
        jobs.append((app["login_name"], app["token"], user["uid"]))
    jobs *= 4

    def run(job: tuple[str, str, str | None]) -> str | None:
        got = accounts.authenticate(job[0], job[1])
        return None if got is None else got.uid

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, jobs))
    assert results == [want for _, _, want in jobs]
