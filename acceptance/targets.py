"""The three servers the features run against, each reset to an empty state before every test
case: `legacy` (an ownCloud 10 fixture instance served in place), `newstack` (the native
backend) and `proxy` (`ocbridge proxy` in front of both, the case's users split across them).

Users, groups, quotas and app settings are provisioned with our own library code (the fixture
builder's account rows on the ownCloud side, the metadata store on the native side), because
neither server offers ownCloud's provisioning API."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from bridge.config import Settings
from bridge.oc10.configphp import OC10Config
from bridge.oc10.passwords import DEFAULT_COST, hash_password
from bridge.oc10.schema import oc10_tables
from bridge.store import BridgeStore
from fixtures.accounts import add_user
from fixtures.builder import build_instance
from fixtures.profiles import get_profile
from newstack.app import NewstackApp, ServerInfo
from newstack.legacy.backend import Oc10Backend
from newstack.legacy.instance import open_instance
from newstack.metadata.store import LoginThrottle
from newstack.ocs import capabilities as caps
from newstack.server import ServerOptions, free_port, make_server
from newstack.service import Newstack, open_newstack
from newstack.sharing.view import SharingBackend

TARGETS = ("legacy", "newstack", "proxy")
#: bcrypt cost of provisioned users: ownCloud's 10 would cost ~60 ms per user created
HASH_COST = 4
ADMIN = "admin"


_HASHES: dict[str, str] = {}


def stored_hash(password: str) -> str:
    """One hash per password for the whole run, at ownCloud's own cost: a cheaper one would be
    rehashed by the server at every user's first login (as oC10 does), costing ~0.1 s a user."""
    if password not in _HASHES:
        _HASHES[password] = hash_password(password, DEFAULT_COST)
    return _HASHES[password]


class Switch:
    """A WSGI app that forwards to whichever app the current test case installed, so one
    listening server serves a fresh backend per case."""

    def __init__(self) -> None:
        self.current: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.current is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no test case is running"]
        return self.current(environ, start_response)


class _LiveServer:
    """cheroot in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        options = ServerOptions(host="127.0.0.1", port=free_port(), threads=4,
                                shutdown_timeout=2)
        self._server = make_server(app, options)
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.ready:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start within 10 s")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self._server.bind_addr[1]}"

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=5)


#: app settings ownCloud's acceptance harness puts in place before every scenario (its
#: FeatureContext sets the sharing capabilities to a known state; these two differ from a
#: fresh install, whose capabilities announce 'yes')
BASELINE_APPCONFIG = {("core", "shareapi_only_share_with_group_members"): "no",
                      ("core", "shareapi_only_share_with_membership_groups"): "no"}


@dataclasses.dataclass
class Settings_:
    """Server settings of a case (ownCloud's appconfig rows and config.php keys)."""

    appconfig: dict[tuple[str, str], str] = dataclasses.field(
        default_factory=lambda: dict(BASELINE_APPCONFIG))
    system: dict[str, object] = dataclasses.field(default_factory=dict)


class Stack(Protocol):
    """One backend of a target, reset per case."""

    app: NewstackApp | None

    def reset(self) -> None: ...
    def add_user(self, uid: str, password: str, display_name: str, email: str) -> None: ...
    def add_group(self, gid: str) -> None: ...
    def add_member(self, gid: str, uid: str) -> None: ...
    def set_quota(self, uid: str, quota: str) -> None: ...
    def close(self) -> None: ...


def _without_throttle(app: NewstackApp) -> NewstackApp:
    """ownCloud 10 core answers wrong passwords at once (slowing guesses is the separate
    brute_force_protection app, whose scenarios are tagged @skipOnBruteForceProtection); the
    auth suites send dozens of wrong passwords per case and would wait minutes otherwise."""
    app.throttle = LoginThrottle(first_delay=0.0, max_delay=0.0)
    return app


def _apply_settings(app: NewstackApp, settings: Settings_) -> None:
    info = app.info
    new = caps.settings_from_oc10(
        settings.appconfig, settings.system, version=info.version,
        versionstring=info.versionstring, edition=info.edition, product=info.product,
        hostname=info.hostname)
    app.capability_settings = new
    app.shares_api.settings = new


class LegacyStack:
    """An ownCloud 10 instance (SQLite) built once, restored from a snapshot before each case."""

    def __init__(self, where: Path) -> None:
        profile = dataclasses.replace(get_profile("small"), users=0, files_per_user=0,
                                      trash_items=0, hash_cost=HASH_COST)
        manifest, _ = build_instance(where / "instance", "sqlite", profile, 1)
        self.config_php = Path(manifest.config_php)
        self.admin_password = next(u["password"] for u in manifest.users if u["uid"] == ADMIN)
        config = OC10Config.from_file(self.config_php)
        self.data_dir = Path(config.datadirectory)
        self.db_file = self.data_dir / f"{config.dbname}.db"
        if not self.db_file.is_file():
            raise RuntimeError(f"expected the fixture's SQLite database at {self.db_file}")
        self.tables = oc10_tables(config.dbtableprefix)
        self.snapshot = where / "snapshot"
        shutil.copytree(self.data_dir, self.snapshot)
        self.backend: Oc10Backend | None = None
        self.app: NewstackApp | None = None
        self.version = manifest.version

    def reset(self) -> None:
        self._close_backend()
        for entry in self.data_dir.iterdir():
            if entry.name.startswith(self.db_file.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for entry in self.snapshot.iterdir():
            if entry.name.startswith(self.db_file.name):
                continue
            if entry.is_dir():
                shutil.copytree(entry, self.data_dir / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, self.data_dir / entry.name)
        # SQLite's backup API rewrites the live database in place, through its own locking:
        # the proxy's open connections then see the restored content, never a stale page cache
        source = sqlite3.connect(self.snapshot / self.db_file.name)
        target = sqlite3.connect(self.db_file)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        self.backend = Oc10Backend(open_instance(self.config_php))
        info = ServerInfo(version=self.version,
                          versionstring=".".join(self.version.split(".")[:3]),
                          hostname="legacy")
        self.app = _without_throttle(NewstackApp(SharingBackend(self.backend), info))

    def _engine(self) -> sa.Engine:
        return sa.create_engine(f"sqlite:///{self.db_file}")

    def add_user(self, uid: str, password: str, display_name: str, email: str) -> None:
        add_user(self.config_php, uid, password, display_name=display_name, email=email,
                 hash_cost=HASH_COST)
        engine = self._engine()
        try:
            with engine.begin() as conn:
                conn.execute(self.tables.users.update().where(self.tables.users.c.uid == uid)
                             .values(password=stored_hash(password)))
        finally:
            engine.dispose()

    def add_group(self, gid: str) -> None:
        engine = self._engine()
        try:
            with engine.begin() as conn:
                taken = conn.execute(sa.select(self.tables.groups.c.gid).where(
                    self.tables.groups.c.gid == gid)).first()
                if taken is None:
                    conn.execute(self.tables.groups.insert().values(gid=gid))
        finally:
            engine.dispose()

    def add_member(self, gid: str, uid: str) -> None:
        engine = self._engine()
        try:
            with engine.begin() as conn:
                conn.execute(self.tables.group_user.insert().values(gid=gid, uid=uid))
        finally:
            engine.dispose()

    def set_quota(self, uid: str, quota: str) -> None:
        t = self.tables
        engine = self._engine()
        try:
            with engine.begin() as conn:
                conn.execute(t.preferences.delete().where(
                    (t.preferences.c.userid == uid) & (t.preferences.c.appid == "files")
                    & (t.preferences.c.configkey == "quota")))
                conn.execute(t.preferences.insert().values(
                    userid=uid, appid="files", configkey="quota", configvalue=quota))
                conn.execute(t.accounts.update().where(t.accounts.c.user_id == uid)
                             .values(quota=quota))
        finally:
            engine.dispose()

    def _close_backend(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None
            self.app = None

    def close(self) -> None:
        self._close_backend()


class NativeStack:
    """The new stack's native backend in a fresh data directory per case."""

    def __init__(self, where: Path, admin_password: str) -> None:
        self.where = where
        self.admin_password = admin_password
        self.count = 0
        self.stack: Newstack | None = None
        self.app: NewstackApp | None = None

    def reset(self) -> None:
        self.close()
        self.count += 1
        data = self.where / f"case-{self.count}"
        defaults = Settings()
        settings = dataclasses.replace(defaults, newstack=dataclasses.replace(
            defaults.newstack, data_dir=data))
        self.stack = open_newstack(settings)
        self.stack.store.add_user(ADMIN, password_hash=stored_hash(self.admin_password),
                                  display_name="Administrator", email="admin@example.org")
        self.stack.store.add_group("admin")
        self.stack.store.add_member("admin", ADMIN)
        self.app = _without_throttle(
            NewstackApp(SharingBackend(self.stack.backend), ServerInfo(hostname="new")))

    def _store(self) -> Any:
        if self.stack is None:
            raise RuntimeError("no test case is running on the new stack")
        return self.stack.store

    def add_user(self, uid: str, password: str, display_name: str, email: str) -> None:
        self._store().add_user(uid, password_hash=stored_hash(password),
                               display_name=display_name, email=email)

    def add_group(self, gid: str) -> None:
        if gid not in self._store().list_groups():
            self._store().add_group(gid)

    def add_member(self, gid: str, uid: str) -> None:
        self._store().add_member(gid, uid)

    def set_quota(self, uid: str, quota: str) -> None:
        self._store().update_user(uid, quota=quota)

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()
            shutil.rmtree(self.where / f"case-{self.count}", ignore_errors=True)
            self.stack = None
            self.app = None


class Target(ABC):
    """What steps talk to: a base URL, the admin's login, and provisioning on every stack a
    user can live on."""

    name: str
    url: str
    admin_password: str

    @abstractmethod
    def begin(self, case_index: int, keep_together: bool) -> None:
        """Fresh server state for the next case; users of a sharing case on one stack."""

    @abstractmethod
    def stacks_for(self, uid: str) -> Iterable[Stack]:
        """The stacks on which user `uid` must exist."""

    @abstractmethod
    def all_stacks(self) -> Iterable[Stack]:
        """Every stack behind this target."""

    def add_user(self, uid: str, password: str, display_name: str, email: str) -> None:
        for stack in self.stacks_for(uid):
            stack.add_user(uid, password, display_name, email)

    def add_group(self, gid: str) -> None:
        for stack in self.all_stacks():
            stack.add_group(gid)

    def add_member(self, gid: str, uid: str) -> None:
        for stack in self.stacks_for(uid):
            stack.add_member(gid, uid)

    def set_quota(self, uid: str, quota: str) -> None:
        for stack in self.stacks_for(uid):
            stack.set_quota(uid, quota)

    def server_info(self) -> ServerInfo:
        """What status.php and the capabilities of this target say about the server."""
        for stack in self.all_stacks():
            if stack.app is not None:
                return stack.app.info
        raise RuntimeError("no test case is running")

    def configure(self, settings: Settings_) -> None:
        for stack in self.all_stacks():
            if stack.app is not None:
                _apply_settings(stack.app, settings)

    @abstractmethod
    def close(self) -> None:
        """Stop this target's servers and remove its scratch data."""


class SingleTarget(Target):
    def __init__(self, name: str, stack: LegacyStack | NativeStack) -> None:
        self.name = name
        self.stack = stack
        self.admin_password = stack.admin_password
        self.switch = Switch()
        self.server = _LiveServer(self.switch)
        self.url = self.server.url

    def begin(self, case_index: int, keep_together: bool) -> None:
        self.switch.current = None
        self.stack.reset()
        self.switch.current = self.stack.app

    def stacks_for(self, uid: str) -> Iterable[Stack]:
        return [self.stack]

    def all_stacks(self) -> Iterable[Stack]:
        return [self.stack]

    def close(self) -> None:
        self.switch.current = None
        self.server.stop()
        self.stack.close()


class ProxyTarget(Target):
    """`ocbridge proxy` (one worker, its own bridge store) in front of both stacks. Every user
    exists on both (the proxy identifies users from ownCloud's tables, as after a migration)
    and is routed to one: alternately within a case, or all to one stack when the case shares
    (a share graph moves as one cohort, docs/migration.md)."""

    name = "proxy"

    def __init__(self, where: Path) -> None:
        self.legacy = LegacyStack(where / "legacy")
        self.native = NativeStack(where / "new", self.legacy.admin_password)
        self.admin_password = self.legacy.admin_password
        self.legacy_switch, self.new_switch = Switch(), Switch()
        self.legacy_server = _LiveServer(self.legacy_switch)
        self.new_server = _LiveServer(self.new_switch)
        bridge = where / "bridge"
        bridge.mkdir(parents=True, exist_ok=True)
        self.store = BridgeStore.open(f"sqlite:///{bridge / 'bridge.db'}")
        self.log = where / "proxy.log"
        port = free_port()
        # the child needs PATH and the like; HTTP(S)_PROXY would send loopback traffic astray
        inherited = os.environ.items()  # noqa: TID251
        env = {**{k: v for k, v in inherited if not k.lower().endswith("_proxy")},
               "OCBRIDGE_LEGACY__CONFIG_PHP": str(self.legacy.config_php),
               "OCBRIDGE_NEWSTACK__DATA_DIR": str(bridge),
               "OCBRIDGE_PROXY__LEGACY_URL": self.legacy_server.url,
               "OCBRIDGE_PROXY__NEWSTACK_URL": self.new_server.url,
               "OCBRIDGE_PROXY__REFRESH_MS": "50",
               "OCBRIDGE_PROXY__LOOKUP_CACHE_SECONDS": "1"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "ocbridge"), "proxy", "--listen",
                 f"127.0.0.1:{port}", "--workers", "1"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not self.store.proxies():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the proxy did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        self.routes: dict[str, str] = {}
        self.case_index = 0
        self.keep_together = False

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def begin(self, case_index: int, keep_together: bool) -> None:
        self.legacy_switch.current = self.new_switch.current = None
        self.legacy.reset()
        self.native.reset()
        self.legacy_switch.current = self.legacy.app
        self.new_switch.current = self.native.app
        self.case_index, self.keep_together = case_index, keep_together
        self.routes = {}

    def route_of(self, uid: str) -> str:
        if uid not in self.routes:
            if self.keep_together:
                state = "new" if self.case_index % 2 == 0 else "legacy"
            else:
                state = "new" if len(self.routes) % 2 == 0 else "legacy"
            row = self.store.set_state(uid, state)
            status = self.store.wait_for_acks(row.epoch, 15)
            if not status.complete:
                raise RuntimeError(f"the proxy did not apply the route of {uid}: {status}")
            self.routes[uid] = state
        return self.routes[uid]

    def add_user(self, uid: str, password: str, display_name: str, email: str) -> None:
        # the proxy resolves every login from ownCloud's tables, so the user is there too
        self.legacy.add_user(uid, password, display_name, email)
        if self.route_of(uid) == "new":
            self.native.add_user(uid, password, display_name, email)

    def stacks_for(self, uid: str) -> Iterable[Stack]:
        return [self.legacy] + ([self.native] if self.route_of(uid) == "new" else [])

    def all_stacks(self) -> Iterable[Stack]:
        return [self.legacy, self.native]

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.legacy_server.stop()
        self.new_server.stop()
        self.legacy.close()
        self.native.close()
        self.store.close()


def open_target(name: str, where: Path) -> Target:
    """Start target `name` with its files under `where` (which must be empty or absent)."""
    where.mkdir(parents=True, exist_ok=True)
    if name == "legacy":
        return SingleTarget("legacy", LegacyStack(where / "legacy"))
    if name == "newstack":
        from secrets import token_urlsafe

        return SingleTarget("newstack", NativeStack(where / "new", token_urlsafe(12)))
    if name == "proxy":
        return ProxyTarget(where)
    raise ValueError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
