"""This process's routing view: loaded from the bridge store, refreshed when the epoch moves,
and acknowledged once the writes it affects have drained (the ack protocol, docs/proxy.md).

Writes are counted per user and per epoch they were routed at; an epoch that changed users U
is acknowledged when no write of a user in U routed at an older epoch is still in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from typing import Final

from bridge.store import BridgeStore, Stack, UserRoute
from proxy.route import RoutingView, UserRouting

log = logging.getLogger("ocbridge.proxy")

HEARTBEAT_SECONDS: Final = 1.0
#: a full reload now and then heals anything an incremental refresh could have missed
FULL_RELOAD_SECONDS: Final = 60.0


class ViewKeeper:
    def __init__(self, store: BridgeStore, *, default_stack: Stack = "legacy",
                 refresh_seconds: float = 0.25, proxy_id: str | None = None) -> None:
        self.store = store
        self.default_stack: Stack = default_stack
        self.refresh_seconds = refresh_seconds
        self.proxy_id = proxy_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.started_at = time.time()
        self.view = RoutingView(epoch=0, default_stack=default_stack)
        self.acked_epoch = 0
        #: uid -> epoch at which it changed, for changes not yet acknowledged
        self._pending: dict[str, int] = {}
        #: uid -> {epoch routed at: writes in flight}
        self._writes: dict[str, Counter[int]] = {}
        self._last_full = 0.0
        self._last_beat = 0.0

    # -- in-flight writes -----------------------------------------------------------------------

    def write_started(self, uid: str, epoch: int) -> None:
        self._writes.setdefault(uid, Counter())[epoch] += 1

    def write_finished(self, uid: str, epoch: int) -> None:
        counts = self._writes.get(uid)
        if counts is None:
            return
        counts[epoch] -= 1
        if counts[epoch] <= 0:
            del counts[epoch]
        if not counts:
            del self._writes[uid]

    def draining(self) -> int:
        """Writes still in flight that hold back the acknowledgment."""
        total = 0
        for uid, changed_at in self._pending.items():
            counts = self._writes.get(uid)
            if counts:
                total += sum(n for epoch, n in counts.items() if epoch < changed_at)
        return total

    # -- refreshing: reads run in a thread, the view changes on the event loop ----------------

    def fetch(self) -> tuple[int, list[UserRoute], bool] | None:
        """Blocking: (epoch, rows, full) when the view must move, None when it need not."""
        if time.monotonic() - self._last_full > FULL_RELOAD_SECONDS:
            epoch, rows = self.store.routes(0)
            return epoch, rows, True
        epoch = self.store.epoch()
        if epoch == self.view.epoch:
            return None
        epoch, rows = self.store.routes(self.view.epoch)
        return epoch, rows, False

    def apply(self, fetched: tuple[int, list[UserRoute], bool] | None) -> bool:
        """Install what `fetch` read; True if the view moved."""
        if fetched is None:
            return False
        epoch, rows, full = fetched
        old = self.view
        if full:
            users = {r.uid: _routing(r) for r in rows}
            changed = {uid for uid in set(users) | set(old.users)
                       if users.get(uid) != old.users.get(uid)}
            self._last_full = time.monotonic()
        else:
            users = dict(old.users)
            users.update((r.uid, _routing(r)) for r in rows)
            changed = {r.uid for r in rows}
        self.view = RoutingView(epoch=epoch, users=users, default_stack=self.default_stack)
        for uid in changed:
            self._pending[uid] = epoch
        if changed:
            log.info("routing epoch %d applied (%d user(s) changed)", epoch, len(changed))
        return epoch != old.epoch or bool(changed)

    def load(self) -> None:
        """Blocking full load, at start (before serving)."""
        epoch, rows = self.store.routes(0)
        self.apply((epoch, rows, True))
        self._pending.clear()
        self.acked_epoch = epoch

    def settle(self) -> bool:
        """On the loop: acknowledge the view's epoch if nothing holds it back; True if the
        acknowledged epoch moved."""
        if self.draining() == 0 and self.acked_epoch != self.view.epoch:
            self._pending.clear()
            self.acked_epoch = self.view.epoch
            return True
        if self.draining() == 0:
            self._pending.clear()
        return False

    def record(self, epoch: int, seen: int, draining: int) -> None:
        """Blocking: the heartbeat row."""
        self.store.record_ack(self.proxy_id, epoch=epoch, seen_epoch=seen, draining=draining,
                              started_at=self.started_at, pid=os.getpid())
        self._last_beat = time.monotonic()

    async def step(self) -> None:
        """One refresh: read, apply, acknowledge (at once on a change, else at heartbeat pace)."""
        moved = self.apply(await asyncio.to_thread(self.fetch))
        acked = self.settle()
        if acked:
            log.info("routing epoch %d acknowledged", self.acked_epoch)
        if moved or acked or time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS:
            await asyncio.to_thread(self.record, self.acked_epoch, self.view.epoch,
                                    self.draining())

    async def run(self) -> None:
        """Refresh and acknowledge until cancelled; a store outage is logged and retried (the
        view stays as it was: the proxy keeps routing by the last epoch it saw)."""
        failing = False
        while True:
            try:
                await self.step()
                if failing:
                    log.warning("bridge store reachable again")
                    failing = False
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is down or locked: keep routing, say so once
                if not failing:
                    log.exception("cannot refresh the routing view from the bridge store")
                    failing = True
            await asyncio.sleep(self.refresh_seconds)

    def close(self) -> None:
        try:
            self.store.remove_proxy(self.proxy_id)
        except Exception:  # best effort at shutdown: a stale row ages out of the live set
            log.warning("could not remove proxy %s from proxy_acks", self.proxy_id)


def _routing(row: UserRoute) -> UserRouting:
    return UserRouting(state=row.state, stack=row.stack, epoch=row.epoch)
