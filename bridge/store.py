"""The bridge's own database: each user's routing (state, stack, epoch), the routing epoch, the
proxies' acknowledgments of it, generated secrets, and each user's migration lifecycle with its
audit trail (bridge/lifecycle.py). SQLite by default, PostgreSQL at scale.

Every routing change bumps one global epoch in the same transaction. Proxies poll the epoch,
apply the change, drain the affected users' in-flight writes and then record the epoch in
`proxy_acks`; `wait_for_acks` tells the caller when every live proxy has done so (docs/proxy.md).
"""

from __future__ import annotations

import secrets as secrets_mod
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event

from bridge.config import Settings
from bridge.errors import OcbridgeError
from bridge.lifecycle import Lifecycle, Transition, check_transition, initial_state, routing_for

State = Literal["legacy", "copying", "frozen", "cutover", "new"]
Stack = Literal["legacy", "new"]
STATES: Final[tuple[State, ...]] = get_args(State)
STACKS: Final[tuple[Stack, ...]] = get_args(Stack)
#: states whose writes the proxy refuses (reads continue on the current stack)
FROZEN_STATES: Final = frozenset({"frozen", "cutover"})
#: the stack a state implies; None = the state keeps whatever stack the user had
_STACK_OF: Final[dict[str, Stack | None]] = {
    "legacy": "legacy", "copying": "legacy", "frozen": None, "cutover": None, "new": "new"}

#: a proxy whose heartbeat is older than this is not waited for
LIVE_SECONDS: Final = 10.0
#: ack rows older than this are deleted (a proxy that died long ago)
FORGET_SECONDS: Final = 24 * 3600.0

metadata = sa.MetaData()

routes = sa.Table(
    "routes", metadata,
    sa.Column("uid", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("stack", sa.String(16), nullable=False),
    #: the routing epoch at which this row last changed
    sa.Column("epoch", sa.BigInteger, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)
routing_epoch = sa.Table(
    "routing_epoch", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
)
proxy_acks = sa.Table(
    "proxy_acks", metadata,
    sa.Column("proxy_id", sa.String(128), primary_key=True),
    #: the last epoch fully applied: routed by, and older writes of changed users drained
    sa.Column("epoch", sa.BigInteger, nullable=False),
    #: the last epoch routed by (may still be draining writes)
    sa.Column("seen_epoch", sa.BigInteger, nullable=False),
    sa.Column("draining", sa.Integer, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)
bridge_secrets = sa.Table(
    "bridge_secrets", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)
#: each user's migration lifecycle (bridge/lifecycle.py); no row = as the routing says
lifecycle = sa.Table(
    "lifecycle", metadata,
    sa.Column("uid", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
#: every lifecycle move, kept: the audit trail
lifecycle_audit = sa.Table(
    "lifecycle_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=True),
)


class StoreError(OcbridgeError):
    """The bridge store cannot be opened or a routing change is not valid."""


@dataclass(frozen=True)
class UserRoute:
    uid: str
    state: State
    stack: Stack
    epoch: int
    updated_at: float

    @property
    def frozen(self) -> bool:
        return self.state in FROZEN_STATES


@dataclass(frozen=True)
class ProxyAck:
    proxy_id: str
    epoch: int
    seen_epoch: int
    draining: int
    heartbeat: float
    started_at: float
    host: str
    pid: int


@dataclass(frozen=True)
class AckStatus:
    """Who has applied `epoch`: complete when every live proxy acknowledged it."""

    epoch: int
    acked: tuple[ProxyAck, ...]
    waiting: tuple[ProxyAck, ...]

    @property
    def complete(self) -> bool:
        return not self.waiting


def store_url(settings: Settings) -> str:
    """bridge.store_url, else SQLite at <newstack.data_dir>/bridge.db."""
    if settings.bridge.store_url:
        return settings.bridge.store_url
    return f"sqlite:///{Path(settings.newstack.data_dir).resolve() / 'bridge.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # proxies poll while the CLI and migration jobs write: WAL keeps readers off writers' backs
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class BridgeStore:
    """The routing table and the ack protocol over one SQLAlchemy engine; thread-safe."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], float] = time.time) -> BridgeStore:
        """Open (and create if needed) the store at `url`."""
        options: dict[str, Any] = {"pool_pre_ping": True}
        sa_url = sa.make_url(url)
        if sa_url.get_backend_name() == "sqlite":
            database = sa_url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"check_same_thread": False, "timeout": 10}
        engine = sa.create_engine(url, **options)
        if sa_url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                if conn.execute(sa.select(routing_epoch.c.epoch)).first() is None:
                    conn.execute(routing_epoch.insert().values(id=1, epoch=0))
        except sa.exc.IntegrityError:
            pass  # another process created the epoch row at the same moment
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            shown = sa_url.render_as_string(hide_password=True)
            raise StoreError(f"cannot open the bridge store at {shown}: "
                             f"{exc.__class__.__name__}: {str(exc).splitlines()[0]} "
                             "(check bridge.store_url)") from exc
        return cls(engine, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> BridgeStore:
        return cls.open(store_url(settings))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- routing ------------------------------------------------------------------------------

    def epoch(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(routing_epoch.c.epoch)).scalar_one())

    def route(self, uid: str) -> UserRoute | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(routes).where(routes.c.uid == uid)).first()
        return None if row is None else _route(row)

    def routes(self, since_epoch: int = 0) -> tuple[int, list[UserRoute]]:
        """(current epoch, rows changed after `since_epoch`), read in one transaction so that
        the rows are exactly those of that epoch."""
        with self.engine.connect() as conn:
            epoch = int(conn.execute(sa.select(routing_epoch.c.epoch)).scalar_one())
            rows = conn.execute(sa.select(routes).where(routes.c.epoch > since_epoch)
                                .order_by(routes.c.uid)).all()
        return epoch, [_route(r) for r in rows]

    def set_state(self, uid: str, state: str, stack: str | None = None) -> UserRoute:
        """Set `uid`'s routing state (and stack), bumping the epoch; returns the new row.

        legacy and copying route to the legacy stack, new to the new stack; frozen and cutover
        keep the user's current stack unless `stack` is given."""
        if state not in STATES:
            raise StoreError(f"unknown routing state {state!r}; choose from {', '.join(STATES)}")
        if stack is not None and stack not in STACKS:
            raise StoreError(f"unknown stack {stack!r}; choose from {', '.join(STACKS)}")
        implied = _STACK_OF[state]
        if implied is not None and stack is not None and stack != implied:
            raise StoreError(f"state {state!r} routes to the {implied} stack, not {stack!r}")
        if not uid or len(uid) > 64:
            raise StoreError(f"{uid!r} is not a user id (1 to 64 characters)")
        now = self._clock()
        with self._begin() as conn:
            epoch = self._bump(conn)
            old = conn.execute(sa.select(routes.c.stack).where(routes.c.uid == uid)).scalar()
            chosen = implied or stack or (str(old) if old is not None else "legacy")
            values = {"state": state, "stack": chosen, "epoch": epoch, "updated_at": now}
            if old is None:
                conn.execute(routes.insert().values(uid=uid, **values))
            else:
                conn.execute(routes.update().where(routes.c.uid == uid).values(**values))
        return UserRoute(uid, state, cast(Stack, chosen), epoch, now)

    def _bump(self, conn: Connection) -> int:
        conn.execute(routing_epoch.update().where(routing_epoch.c.id == 1)
                     .values(epoch=routing_epoch.c.epoch + 1))
        return int(conn.execute(sa.select(routing_epoch.c.epoch)
                                .where(routing_epoch.c.id == 1)).scalar_one())

    # -- acknowledgments ------------------------------------------------------------------------

    def record_ack(self, proxy_id: str, *, epoch: int, seen_epoch: int, draining: int,
                   started_at: float, pid: int, host: str | None = None) -> None:
        """A proxy's heartbeat: the epoch it fully applied and what it is still draining."""
        now = self._clock()
        values = {"epoch": epoch, "seen_epoch": seen_epoch, "draining": draining,
                  "heartbeat": now}
        with self._begin() as conn:
            updated = conn.execute(proxy_acks.update().where(proxy_acks.c.proxy_id == proxy_id)
                                   .values(**values)).rowcount
            if not updated:
                conn.execute(proxy_acks.insert().values(
                    proxy_id=proxy_id, started_at=started_at, pid=pid,
                    host=(host or socket.gethostname())[:255], **values))
                conn.execute(proxy_acks.delete().where(
                    proxy_acks.c.heartbeat < now - FORGET_SECONDS))

    def remove_proxy(self, proxy_id: str) -> None:
        """A proxy that stops cleanly is not waited for any more."""
        with self._begin() as conn:
            conn.execute(proxy_acks.delete().where(proxy_acks.c.proxy_id == proxy_id))

    def proxies(self) -> list[ProxyAck]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(proxy_acks).order_by(proxy_acks.c.proxy_id)).all()
        return [ProxyAck(**{k: v for k, v in r._mapping.items()}) for r in rows]

    def ack_status(self, epoch: int, live_seconds: float = LIVE_SECONDS) -> AckStatus:
        now = self._clock()
        live = [p for p in self.proxies() if p.heartbeat >= now - live_seconds]
        return AckStatus(epoch, tuple(p for p in live if p.epoch >= epoch),
                         tuple(p for p in live if p.epoch < epoch))

    def wait_for_acks(self, epoch: int, timeout: float, *, poll: float = 0.05,
                      live_seconds: float = LIVE_SECONDS) -> AckStatus:
        """Wait until every live proxy has applied `epoch` (and drained the writes it
        affects), or `timeout` seconds pass; the last status either way. With no live proxy
        the change is complete at once: nothing routes by an older epoch."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.ack_status(epoch, live_seconds)
            if status.complete or time.monotonic() >= deadline:
                return status
            time.sleep(poll)

    # -- lifecycle and audit trail ---------------------------------------------------------------

    def lifecycle(self, uid: str) -> Lifecycle:
        """`uid`'s lifecycle state; without a record, the stack their routing names."""
        with self.engine.connect() as conn:
            return self._lifecycle(conn, uid)

    def _lifecycle(self, conn: Connection, uid: str) -> Lifecycle:
        found = conn.execute(sa.select(lifecycle.c.state).where(lifecycle.c.uid == uid)).scalar()
        if found is not None:
            return cast(Lifecycle, found)
        stack = conn.execute(sa.select(routes.c.stack).where(routes.c.uid == uid)).scalar()
        return initial_state(None if stack is None else str(stack))

    def transition(self, uid: str, target: str, *, actor: str, reason: str = "") -> Transition:
        """Move `uid` to lifecycle state `target` if the table allows it (TransitionError if
        not), change the routing the new state implies (bumping the epoch) and append the move
        to the audit trail, all in one transaction. A concurrent move of the same user makes
        this one fail rather than both succeed."""
        if not uid or len(uid) > 64:
            raise StoreError(f"{uid!r} is not a user id (1 to 64 characters)")
        now = self._clock()
        with self._begin() as conn:
            current = self._lifecycle(conn, uid)
            check_transition(current, target, reason)
            to = cast(Lifecycle, target)
            values = {"state": to, "reason": reason, "actor": actor[:255], "updated_at": now}
            if conn.execute(sa.select(lifecycle.c.uid).where(lifecycle.c.uid == uid)).first():
                moved = conn.execute(lifecycle.update().where(
                    lifecycle.c.uid == uid, lifecycle.c.state == current).values(**values))
                if moved.rowcount != 1:
                    raise StoreError(f"{uid}: another job changed the lifecycle state at the "
                                     "same moment; look at `ocbridge status` and try again")
            else:
                conn.execute(lifecycle.insert().values(uid=uid, **values))
            epoch = self._route_for(conn, uid, to, now)
            conn.execute(lifecycle_audit.insert().values(
                uid=uid, at=now, actor=actor[:255], from_state=current, to_state=to,
                reason=reason, epoch=epoch))
        return Transition(uid, now, actor, current, to, reason, epoch)

    def _route_for(self, conn: Connection, uid: str, state: Lifecycle, now: float) -> int | None:
        """Bring `uid`'s routing row in line with lifecycle `state`; the new epoch, or None
        when the routing stays as it is."""
        wanted = routing_for(state)
        if wanted is None:
            return None
        row = conn.execute(sa.select(routes.c.state, routes.c.stack)
                           .where(routes.c.uid == uid)).first()
        old_stack = None if row is None else str(row.stack)
        stack = _STACK_OF[wanted] or old_stack or "legacy"
        if row is not None and (row.state, row.stack) == (wanted, stack):
            return None
        epoch = self._bump(conn)
        values = {"state": wanted, "stack": stack, "epoch": epoch, "updated_at": now}
        if row is None:
            conn.execute(routes.insert().values(uid=uid, **values))
        else:
            conn.execute(routes.update().where(routes.c.uid == uid).values(**values))
        return epoch

    def lifecycles(self) -> list[tuple[str, Lifecycle, str, float]]:
        """(uid, state, reason, since) of every user with a lifecycle record."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(lifecycle).order_by(lifecycle.c.uid)).all()
        return [(str(r.uid), cast(Lifecycle, r.state), str(r.reason), float(r.updated_at))
                for r in rows]

    def audit(self, uid: str | None = None, *, to_state: str | None = None,
              limit: int = 100) -> list[Transition]:
        """The newest `limit` recorded moves (of `uid`, into `to_state`), newest first."""
        query = sa.select(lifecycle_audit).order_by(lifecycle_audit.c.id.desc()).limit(limit)
        if uid is not None:
            query = query.where(lifecycle_audit.c.uid == uid)
        if to_state is not None:
            query = query.where(lifecycle_audit.c.to_state == to_state)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Transition(uid=str(r.uid), at=float(r.at), actor=str(r.actor),
                           from_state=cast(Lifecycle, r.from_state),
                           to_state=cast(Lifecycle, r.to_state), reason=str(r.reason),
                           epoch=None if r.epoch is None else int(r.epoch)) for r in rows]

    # -- secrets ----------------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """A random secret kept in the store (e.g. the routing cookie key), made on first use;
        every process sharing the store gets the same value."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(bridge_secrets.c.value)
                                 .where(bridge_secrets.c.name == name)).scalar()
        if value is not None:
            return str(value)
        try:
            with self._begin() as conn:
                conn.execute(bridge_secrets.insert().values(
                    name=name, value=secrets_mod.token_urlsafe(48)))
        except sa.exc.IntegrityError:
            pass  # another process made it first: use theirs
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(bridge_secrets.c.value)
                                    .where(bridge_secrets.c.name == name)).scalar_one())


def _route(row: sa.Row[Any]) -> UserRoute:
    m = row._mapping
    return UserRoute(uid=str(m["uid"]), state=cast(State, m["state"]),
                     stack=cast(Stack, m["stack"]), epoch=int(m["epoch"]),
                     updated_at=float(m["updated_at"]))
